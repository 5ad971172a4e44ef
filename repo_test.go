package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"

	"os"

	"github.com/enipool/enipool/internal/testenv"
)

// Users clone this repository alone: nothing in it may lean on a folder beside it or on a
// path of the machine it was written on. These patterns find such references in text.
var (
	// climb is a relative path that goes up; it leaves the repository when it climbs more
	// levels than its file sits below the root. ".../" (an ellipsis) is not a path.
	climb = regexp.MustCompile(`(?:^|[^.\w])((?:\.\./)+)`)
	// machinePath is an absolute path into a home, a work area or a temporary folder.
	machinePath = regexp.MustCompile(`(?:^|[\s"'(\x60=:])(/(?:work|home|root|Users|tmp|mnt|opt|srv)/[\w.-]+)`)
	// shelf names the reference folder the project was written beside, whose files users
	// do not have.
	shelf = regexp.MustCompile(`\bshared[/](?:seed|reference|schemas|hooks)\b|\bDESIGN\.md\b`)
)

// outside returns the references in text (the content of the file at rel, a slash-separated
// path from the repository root) to paths outside the repository.
func outside(rel string, text []byte) []string {
	depth := 0
	if dir := path.Dir(rel); dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	var found []string
	for n, line := range bytes.Split(text, []byte("\n")) {
		at := fmt.Sprintf("%s:%d: ", rel, n+1)
		for _, m := range climb.FindAllSubmatch(line, -1) {
			if up := bytes.Count(m[1], []byte(".."+"/")); up > depth {
				found = append(found, fmt.Sprintf("%sclimbs %d levels from %d below the root: %s", at, up, depth, bytes.TrimSpace(line)))
			}
		}
		for _, m := range machinePath.FindAllSubmatch(line, -1) {
			found = append(found, fmt.Sprintf("%sabsolute path %s", at, m[1]))
		}
		if m := shelf.Find(line); m != nil {
			found = append(found, fmt.Sprintf("%snames a file outside the repository: %s", at, m))
		}
	}
	return found
}

// TestNothingReachesOutsideTheRepository reads every tracked file (code, tests, Makefile,
// documents, data) and fails on any reference to a path outside the repository.
func TestNothingReachesOutsideTheRepository(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		testenv.CannotCheck(t, "git ls-files: %v (the check needs a git checkout and git on PATH)", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 50 {
		t.Fatalf("git ls-files listed %d files; this is not the repository", len(files))
	}
	for _, rel := range files {
		text, err := os.ReadFile(rel)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet committed
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(text, 0) >= 0 {
			continue // binary
		}
		for _, f := range outside(rel, text) {
			t.Error(f)
		}
	}
}

func TestOutsideFindsEveryKind(t *testing.T) {
	up := func(n int) string { return strings.Repeat("..", n) + "/" }
	tests := []struct {
		rel, text string
		want      int
	}{
		{"handler/x_test.go", `os.ReadFile("` + up(1) + up(1) + "shared" + `/seed/x.md")`, 2}, // climbs out, and names the shelf
		{"deploy/x_test.go", `os.ReadFile("` + up(1) + `testdata/schema.json")`, 0},
		{"e2e/testdata/base.yaml", `file: ` + up(1) + up(1) + `deploy/ram-policy.json`, 0},
		{"e2e/testdata/base.yaml", `file: ` + up(1) + up(1) + up(1) + `policy.json`, 1},
		{"Makefile", `include ` + up(1) + `common.mk`, 1},
		{"localcloud/fcrt/doc.go", `// POST ..` + "./{requestId}/response", 0},
		{"README.md", "see `/" + "work/notes/x`", 1},
		{"bench/results.json", `"enipool": "/` + `tmp/enipool-bench-1/main"`, 1},
		{"localcloud/fcrt/doc.go", `// peak RSS, VmHWM from /proc/<pid>/status`, 0},
		{"soak/doc.go", "// the invariants of " + "DESIGN" + ".md", 1},
		{"cloud/cloud.go", "// another account's ENI shared with this one", 0},
	}
	for _, tt := range tests {
		if got := outside(tt.rel, []byte(tt.text)); len(got) != tt.want {
			t.Errorf("outside(%s, %q) = %q, want %d findings", tt.rel, tt.text, got, tt.want)
		}
	}
}
