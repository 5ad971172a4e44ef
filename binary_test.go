package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sdkClientMethod matches the generated per-API methods of the ECS and Auto Scaling SDK
// clients in a symbol table.
var sdkClientMethod = regexp.MustCompile(`alibaba-cloud-sdk-go/services/(ecs|ess)\.\(\*Client\)\.`)

// TestBinaryKeepsNoSDKClientMethods builds the function as make build does (with its symbol
// table) and fails when it holds any method of *ecs.Client or *ess.Client. The MNS SDK's
// text/template error messages make the linker keep every exported method of every type an
// interface can reach; one such client held by the adapters kept over 4,000 methods, making
// the binary 30 MiB instead of 12 and every instance's resident memory larger (see
// alicloud's ecsAPI).
func TestBinaryKeepsNoSDKClientMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "main")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	var kept []string
	for line := range strings.Lines(string(out)) {
		if sdkClientMethod.MatchString(line) {
			kept = append(kept, strings.TrimSpace(line))
		}
	}
	if len(kept) > 0 {
		t.Fatalf("the binary keeps %d SDK client methods, such as %s", len(kept), kept[0])
	}
}
