// Package testbed is what enipool's own tests and demo need on top of the local cloud
// (package localcloud), which stays a plain emulator of ECS, ESS, MNS and FC: building the
// function binary, the ENIPOOL_* environment that aims it at a local cloud, the function's
// deployment defaults (role enipool-fn, dead-letter queue enipool-dlq), a log buffer, and
// the readings every suite takes of what the function left behind (dead letters, leaked
// secrets).
//
// e2e/, soak/, bench/ and the demo command (internal/cmd/demo) share it; the function's
// build (the module's main package) never imports it.
//
//	bin, _ := testbed.BuildFunction(ctx, dir)
//	c, _ := localcloud.Start(w, localcloud.Options{})
//	logs := &testbed.LogBuffer{}
//	fn, _ := testbed.StartFunction(c, testbed.Function{Binary: bin, Logs: logs})
//	res, _ := fn.Invoke(ctx, payload)
//	letters := testbed.DeadLetters(c, testbed.DeadLetterQueue)
package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
)

// The function's deployment defaults, as s.yaml and the demo world name them.
const (
	// Role is the world principal the function runs as.
	Role = "enipool-fn"
	// DeadLetterQueue is the queue of the function's dead letters and of FC's onFailure
	// records.
	DeadLetterQueue = "enipool-dlq"
	// FunctionName is the function's name under the local FC runtime.
	FunctionName = "enipool"
)

// FunctionEnv returns the environment that aims the function at c: endpoints on loopback in
// the cloud's scheme (HTTPS, the function's default, when c serves TLS; else plain HTTP), the
// MNS dial address (the MNS SDK insists on a realistic endpoint; the function dials the local
// one instead), and the dead-letter queue.
func FunctionEnv(c *localcloud.Cloud, deadLetterQueue string) map[string]string {
	scheme := c.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return map[string]string{
		"ENIPOOL_DLQ_QUEUE":     deadLetterQueue,
		"ENIPOOL_API_SCHEME":    scheme,
		"ENIPOOL_ECS_ENDPOINT":  c.ECSEndpoint,
		"ENIPOOL_ESS_ENDPOINT":  c.ESSEndpoint,
		"ENIPOOL_MNS_ENDPOINT":  scheme + "://{account}.mns.{region}.aliyuncs.com",
		"ENIPOOL_MNS_DIAL_ADDR": c.MNSAddr,
	}
}

// Function describes the function to run under the local FC runtime.
type Function struct {
	// Binary is the built function (see BuildFunction).
	Binary string
	// Role is the world principal the function runs as; default Role.
	Role string
	// DeadLetterQueue is the queue for dead letters and the async onFailure destination;
	// default DeadLetterQueue.
	DeadLetterQueue string
	// Env adds to or overrides FunctionEnv.
	Env map[string]string
	// Timeout is the function timeout; default 60s.
	Timeout time.Duration
	// MaxInstances bounds concurrent instances; default 16.
	MaxInstances int
	// IdleTimeout reclaims an instance idle that long (fcrt.Function.IdleTimeout); zero keeps
	// instances until the function stops.
	IdleTimeout time.Duration
	// Async configures asynchronous invocations; OnFailure defaults to the dead-letter queue.
	Async fcrt.AsyncConfig
	// Logs receives the function's output; nil discards it.
	Logs io.Writer
	// TrustedCAs is the CA file the instances trust (localcloud.Function.TrustedCAs); default
	// the cloud's own when it serves TLS.
	TrustedCAs string
}

// StartFunction runs the function under c's FC runtime with c's endpoints (FunctionEnv), STS
// credentials of its role for every invocation, and the dead-letter queue as its async
// onFailure destination.
func StartFunction(c *localcloud.Cloud, f Function) (*fcrt.Runtime, error) {
	if f.Role == "" {
		f.Role = Role
	}
	if f.DeadLetterQueue == "" {
		f.DeadLetterQueue = DeadLetterQueue
	}
	env := FunctionEnv(c, f.DeadLetterQueue)
	maps.Copy(env, f.Env)
	return c.StartFunction(localcloud.Function{
		Name:           FunctionName,
		Binary:         f.Binary,
		Role:           f.Role,
		Env:            env,
		Timeout:        f.Timeout,
		MaxInstances:   f.MaxInstances,
		IdleTimeout:    f.IdleTimeout,
		Async:          f.Async,
		OnFailureQueue: f.DeadLetterQueue,
		Logs:           f.Logs,
		TrustedCAs:     f.TrustedCAs,
	})
}

// BuildFunction builds the function binary (the module's main package) into dir and returns
// its path, the way `make build` builds what FC runs (static, trimmed paths, no symbol
// tables). It runs `go build` in the module that contains the caller's working directory.
// extra adds go build flags for tests: "-race" builds a race-detecting binary, which needs
// cgo and so is not static (it runs here, never on FC). A race build keeps its file paths
// (no -trimpath): its packages are then compiled exactly as `go test -race` compiles them
// for the test binaries, so the build cache serves them, instead of compiling every
// dependency (the SDKs among them) a second time on a cold cache. Only the binary's file
// names differ; what it does is the same.
func BuildFunction(ctx context.Context, dir string, extra ...string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "main")
	race := slices.Contains(extra, "-race")
	args := []string{"build", "-ldflags=-s -w"}
	if !race {
		args = append(args, "-trimpath")
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, ".")...)
	cmd.Dir = root
	cgo := "CGO_ENABLED=0"
	if race {
		cgo = "CGO_ENABLED=1"
	}
	cmd.Env = append(os.Environ(), cgo)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testbed: building the function: %w\n%s", err, b)
	}
	return out, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testbed: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("testbed: not inside the enipool module")
	}
	return filepath.Dir(mod), nil
}

// LogBuffer collects a function's output for tests: Function.Logs takes it, and String
// returns everything written so far. It is safe for the runtime's concurrent writers.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
