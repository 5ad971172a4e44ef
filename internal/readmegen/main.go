// Command readmegen writes the README's generated sections from the code: the configuration
// table (config.Variables) and the error-code table (cloud.Rules). `make docs` runs it; a
// test fails when the README is out of date.
//
//	go run ./internal/readmegen -readme README.md          # rewrite the sections
//	go run ./internal/readmegen -readme README.md -check   # exit 1 if they are stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/config"
)

func main() {
	path := flag.String("readme", "README.md", "the README to update")
	check := flag.Bool("check", false, "only check that the sections are up to date")
	flag.Parse()
	old, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	updated, err := Render(old)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *check {
		if !bytes.Equal(old, updated) {
			fmt.Fprintf(os.Stderr, "%s is out of date: run make docs\n", *path)
			os.Exit(1)
		}
		return
	}
	if err := os.WriteFile(*path, updated, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

// Render returns readme with every generated section replaced by what the code says now.
func Render(readme []byte) ([]byte, error) {
	out := string(readme)
	for name, body := range sections() {
		begin, end := "<!-- generated:"+name+" -->\n", "<!-- end:"+name+" -->"
		i := strings.Index(out, begin)
		j := strings.Index(out, end)
		if i < 0 || j < i {
			return nil, fmt.Errorf("README has no %q ... %q section", begin, end)
		}
		out = out[:i+len(begin)] + body + out[j:]
	}
	return []byte(out), nil
}

func sections() map[string]string {
	var cfg strings.Builder
	cfg.WriteString("| Variable | Default | Meaning |\n| --- | --- | --- |\n")
	for _, v := range config.Variables() {
		def := "`" + v.Default + "`"
		switch {
		case v.Required:
			def = "**required**"
		case v.Default == "":
			def = "(empty)"
		}
		fmt.Fprintf(&cfg, "| `%s` | %s | %s |\n", v.Name, def, v.Meaning)
	}
	var errs strings.Builder
	cloud.WriteMarkdownTable(&errs)
	return map[string]string{"config": cfg.String(), "errors": errs.String()}
}
