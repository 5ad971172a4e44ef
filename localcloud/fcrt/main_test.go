package fcrt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir is where TestMain builds the test functions: derived from the test process's pid, so
// that it needs no package-level variable.
func binDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("fcrt-test-%d", os.Getpid()))
}

// testBinary is the path of a function built from testdata/<name>.
func testBinary(name string) string { return filepath.Join(binDir(), name) }

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir := binDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// One go build for both: they share the SDK's compilation. -o <dir>/ names each binary
	// after its directory. Static and trimmed as `make build` builds the function: the same
	// build-cache key as make test's go vet and the tests' other non-race builds, so a cold
	// cache compiles the standard library once for all of them.
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+string(filepath.Separator), "./testdata/probe", "./testdata/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build testdata functions: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// syncBuffer is a Logs writer the tests can read while instances write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProbe starts a Runtime for the probe function; fn's zero fields get test defaults. The
// cleanup closes it and checks that no instance process is left.
func startProbe(t *testing.T, fn Function) (*Runtime, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if fn.Name == "" {
		fn.Name = "probe"
	}
	if fn.Binary == "" {
		fn.Binary = testBinary("probe")
	}
	if fn.Logs == nil {
		fn.Logs = logs
	}
	if fn.Timeout == 0 {
		fn.Timeout = 20 * time.Second
	}
	rt, err := Start(fn)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = rt.Close()
		for _, in := range rt.Instances() {
			if !in.Exited || !processGone(in.PID) {
				t.Errorf("instance %s (pid %d) still running after Close", in.ID, in.PID)
			}
		}
	})
	return rt, logs
}

// processGone reports whether no process has the pid.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// invoke runs a probe op synchronously.
func invoke(t *testing.T, rt *Runtime, req map[string]any) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := rt.Invoke(ctx, mustJSON(t, req))
	if err != nil {
		t.Fatalf("Invoke(%v): %v", req, err)
	}
	return res
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds; it is for waiting on effects, never for asserting time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitAsync(t *testing.T, rt *Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// recorder is a Destination that keeps what it received and fails its first failFirst tries.
type recorder struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	bodies    [][]byte
}

func (d *recorder) Deliver(_ context.Context, body []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls <= d.failFirst {
		return fmt.Errorf("destination unavailable (try %d)", d.calls)
	}
	d.bodies = append(d.bodies, body)
	return nil
}

func (d *recorder) received() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.bodies...)
}
