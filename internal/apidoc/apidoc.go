// Package apidoc reads the published API facts kept in the repository's top-level testdata/
// folder, so that tests check the code against what the API documents rather than against a
// copy of its own table.
package apidoc

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// AttachErrorsFile is AttachNetworkInterface's API reference, relative to the repository root.
const AttachErrorsFile = "testdata/AttachNetworkInterface.md"

// AttachErrorCount is how many error codes the reference documents: a table read with fewer
// means the file was cut or its layout changed, and a test over it would check too little.
const AttachErrorCount = 30

// Code is one row of an API reference's error table.
type Code struct {
	HTTPStatus int
	Code       string
}

var row = regexp.MustCompile(`(?m)^\|(\d{3})\|([A-Za-z0-9.]+)\|`)

// AttachErrors returns the error codes of AttachNetworkInterface's API reference, in the
// document's order. root is the path of the repository root from the caller's directory.
func AttachErrors(root string) ([]Code, error) {
	path := filepath.Join(root, AttachErrorsFile)
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("apidoc: the AttachNetworkInterface reference: %w", err)
	}
	var codes []Code
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		status, _ := strconv.Atoi(m[1]) // three digits: always a number
		codes = append(codes, Code{HTTPStatus: status, Code: m[2]})
	}
	if len(codes) != AttachErrorCount {
		return nil, fmt.Errorf("apidoc: %s: read %d error codes, want the reference's %d", path, len(codes), AttachErrorCount)
	}
	return codes, nil
}
