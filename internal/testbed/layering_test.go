package testbed

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/internal/testenv"
)

const module = "github.com/enipool/enipool"

// deps returns the module's own packages that pkgs import, directly or not (go list -deps;
// test files are not counted).
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		testenv.CannotCheck(t, "go list -deps %v: %v", pkgs, err)
	}
	var own []string
	for p := range strings.FieldsSeq(string(out)) {
		if p == module || strings.HasPrefix(p, module+"/") {
			own = append(own, p)
		}
	}
	return own
}

// The local cloud is a plain emulator: none of the function's packages, nor this test bed,
// is in its build. What it may use of the module is listed: world files carry the RAM policy
// that deploy renders, and trigger reads s.yaml with syaml.
func TestLocalcloudIsPlain(t *testing.T) {
	allowed := map[string]bool{module + "/deploy": true, module + "/internal/syaml": true}
	for _, p := range deps(t, "./localcloud/...") {
		if !strings.HasPrefix(p, module+"/localcloud") && !allowed[p] {
			t.Errorf("localcloud's build includes %s", p)
		}
	}
}

// The function's build includes neither the local cloud nor the test bed.
func TestFunctionBuildHasNoTestBed(t *testing.T) {
	for _, p := range deps(t, ".") {
		if strings.HasPrefix(p, module+"/localcloud") || strings.HasPrefix(p, module+"/internal/testbed") ||
			strings.HasPrefix(p, module+"/internal/cmd") {
			t.Errorf("the function's build includes %s", p)
		}
	}
}
