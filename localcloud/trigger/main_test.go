package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
)

// binDir is where TestMain builds the echo function: derived from the pid, so that it needs no
// package-level variable.
func binDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("trigger-test-%d", os.Getpid()))
}

func echoBinary() string { return filepath.Join(binDir(), "echo") }

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir := binDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Static and trimmed, as the fcrt tests build their probes (and make build the function):
	// one build-cache key for every non-race build.
	cmd := exec.Command("go", "build", "-trimpath", "-o", echoBinary(), "../fcrt/testdata/echo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the echo function: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

const testAccount = "1234567890123456"

// project loads the repository's own s.yaml with a clean shell, as a deploy would render it.
func project(t *testing.T) FunctionSpec {
	t.Helper()
	p, err := LoadProject("../../s.yaml", RenderOptions{AccountID: testAccount})
	if err != nil {
		t.Fatal(err)
	}
	fn, ok := p.Function("enipool")
	if !ok {
		t.Fatalf("s.yaml has no function enipool: %+v", p.Functions)
	}
	return fn
}

// recorder is a destination that keeps what it receives.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) Deliver(_ context.Context, body []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, slices.Clone(body))
	return nil
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// echoFunction runs the echo function with the s.yaml function's async settings. fail, when
// not empty, makes every invocation whose payload contains it fail. It returns the runtime
// and the directory where each invocation's payload lands.
func echoFunction(t *testing.T, spec FunctionSpec, fail string, onFailure fcrt.Destination) (*fcrt.Runtime, string) {
	t.Helper()
	dir := t.TempDir()
	async := fcrt.AsyncConfig{
		Backoff:   func(int) time.Duration { return time.Millisecond },
		OnFailure: onFailure,
	}
	if a := spec.Async; a != nil && a.MaxAsyncRetryAttempts != nil {
		async.MaxRetryAttempts = *a.MaxAsyncRetryAttempts
		if async.MaxRetryAttempts == 0 {
			async.MaxRetryAttempts = fcrt.NoRetries
		}
	}
	env := map[string]string{"ECHO_DIR": dir}
	if fail != "" {
		env["ECHO_FAIL"] = fail
	}
	rt, err := fcrt.Start(fcrt.Function{
		Name: spec.Name, Region: spec.Region, AccountID: testAccount,
		Binary: echoBinary(), Env: env, Timeout: 10 * time.Second, Async: async,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt, dir
}

// received returns the payloads the echo function received, oldest first.
func received(t *testing.T, dir string) [][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		mod  time.Time
		body []byte
	}
	var files []file
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{info.ModTime(), b})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	out := make([][]byte, len(files))
	for i, f := range files {
		out[i] = f.body
	}
	return out
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// shapeDiff says how got differs from sample in keys and JSON types, "" if it does not.
// Arrays are compared element by element with the sample's first element.
func shapeDiff(path string, sample, got any) string {
	switch s := sample.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, got %T", path, got)
		}
		var diffs []string
		for k := range s {
			if _, ok := g[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
			}
		}
		for k := range g {
			if _, ok := s[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: not in the sample", path, k))
			}
		}
		for k, sv := range s {
			if gv, ok := g[k]; ok {
				if d := shapeDiff(path+"."+k, sv, gv); d != "" {
					diffs = append(diffs, d)
				}
			}
		}
		sort.Strings(diffs)
		return strings.Join(diffs, "; ")
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: want an array, got %T", path, got)
		}
		if len(s) == 0 {
			return ""
		}
		for i, gv := range g {
			if d := shapeDiff(fmt.Sprintf("%s[%d]", path, i), s[0], gv); d != "" {
				return d
			}
		}
		return ""
	}
	if fmt.Sprintf("%T", sample) != fmt.Sprintf("%T", got) {
		return fmt.Sprintf("%s: want %T, got %T", path, sample, got)
	}
	return ""
}

func TestShapeDiffCatchesDifferences(t *testing.T) {
	sample := `{"a":"x","b":{"c":1},"d":[{"e":true}]}`
	tests := []struct {
		got  string
		want string
	}{
		{`{"a":"y","b":{"c":2},"d":[{"e":false},{"e":true}]}`, ""},
		{`{"a":1,"b":{"c":2},"d":[]}`, "$.a: want string, got float64"},
		{`{"a":"y","b":{"c":2}}`, "$.d: missing"},
		{`{"a":"y","b":{"c":2},"d":[],"z":0}`, "$.z: not in the sample"},
		{`{"a":"y","b":{"c":2},"d":[{"e":"no"}]}`, "$.d[0].e: want bool, got string"},
		{`{"a":"y","b":"c","d":[]}`, "$.b: want an object, got string"},
	}
	for _, tt := range tests {
		if got := shapeDiff("$", decode(t, []byte(sample)), decode(t, []byte(tt.got))); got != tt.want {
			t.Errorf("shapeDiff(%s) = %q, want %q", tt.got, got, tt.want)
		}
	}
}

// waitFor polls cond until it holds or the test's patience ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
