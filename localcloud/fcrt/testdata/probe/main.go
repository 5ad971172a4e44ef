// Command probe is the function the fcrt tests run: one binary, its behaviour chosen by the
// payload ({"op": ...}), so that TestMain builds it once. Each op proves one runtime behaviour:
// echo (payload round trip), context (what fccontext and the environment carry), fail /
// failUntil (function errors and retries), panic / goroutinePanic / exit (recovered panics and
// crashes), sleep (timeouts), gate (concurrency) and log (log capture).
//
// The context op returns SHA-256 digests of the secret and the token, never the values: the
// tests prove the credentials arrived without the probe ever printing or returning a secret.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

type request struct {
	Op      string          `json:"op"`
	Data    json.RawMessage `json:"data,omitempty"`
	Message string          `json:"message,omitempty"`
	Custom  bool            `json:"custom,omitempty"`
	N       int             `json:"n,omitempty"`
	MS      int             `json:"ms,omitempty"`
	Code    int             `json:"code,omitempty"`
	Dir     string          `json:"dir,omitempty"`
	Lines   int             `json:"lines,omitempty"`
	Long    int             `json:"long,omitempty"`
	Partial string          `json:"partial,omitempty"`
}

// customError proves that errorType is the Go type name of the returned error.
type customError struct{ msg string }

func (e *customError) Error() string { return e.msg }

// probe counts handlers in flight to report the peak concurrency one instance saw, and the
// invocations its process has run, which shows whether two invocations shared memory.
type probe struct {
	inflight atomic.Int64
	peak     atomic.Int64
	calls    atomic.Int64
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (p *probe) handle(ctx context.Context, payload []byte) (any, error) {
	p.calls.Add(1)
	n := p.inflight.Add(1)
	defer p.inflight.Add(-1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}

	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		return nil, fmt.Errorf("probe: bad payload: %w", err)
	}
	lc, ok := fccontext.FromContext(ctx)
	if !ok {
		return nil, errors.New("probe: no fccontext")
	}

	switch req.Op {
	case "echo":
		return req.Data, nil
	case "context":
		deadline, _ := ctx.Deadline()
		return map[string]any{
			"requestId":       lc.RequestID,
			"deadlineMs":      deadline.UnixMilli(),
			"functionName":    lc.Function.Name,
			"handler":         lc.Function.Handler,
			"memory":          lc.Function.Memory,
			"timeout":         lc.Function.Timeout,
			"qualifier":       lc.Service.Qualifier,
			"region":          lc.Region,
			"accountId":       lc.AccountId,
			"retryCount":      lc.RetryCount,
			"accessKeyId":     lc.Credentials.AccessKeyId,
			"secretSha256":    digest(lc.Credentials.AccessKeySecret),
			"tokenSha256":     digest(lc.Credentials.SecurityToken),
			"envAccessKeyId":  os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"),
			"envSecretSha256": digest(os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")),
			"envTokenSha256":  digest(os.Getenv("ALIBABA_CLOUD_SECURITY_TOKEN")),
			"env": map[string]string{
				"FC_FUNCTION_NAME":        os.Getenv("FC_FUNCTION_NAME"),
				"FC_FUNCTION_HANDLER":     os.Getenv("FC_FUNCTION_HANDLER"),
				"FC_FUNCTION_MEMORY_SIZE": os.Getenv("FC_FUNCTION_MEMORY_SIZE"),
				"FC_REGION":               os.Getenv("FC_REGION"),
				"FC_ACCOUNT_ID":           os.Getenv("FC_ACCOUNT_ID"),
				"FC_INSTANCE_ID":          os.Getenv("FC_INSTANCE_ID"),
				"PROBE_VAR":               os.Getenv("PROBE_VAR"),
				"SSL_CERT_FILE":           os.Getenv("SSL_CERT_FILE"),
			},
		}, nil
	case "fail":
		if req.Custom {
			return nil, &customError{msg: req.Message}
		}
		return nil, errors.New(req.Message)
	case "failUntil":
		if lc.RetryCount < req.N {
			return nil, fmt.Errorf("probe: failing attempt with retry count %d", lc.RetryCount)
		}
		return map[string]int{"retryCount": lc.RetryCount}, nil
	case "panic":
		panic(req.Message)
	case "goroutinePanic":
		go func() { panic(req.Message) }()
		select {}
	case "exit":
		os.Exit(req.Code)
	case "sleep":
		time.Sleep(time.Duration(req.MS) * time.Millisecond) // ignores ctx on purpose
		return "slept", nil
	case "gate":
		if err := os.WriteFile(filepath.Join(req.Dir, "arrived-"+lc.RequestID), nil, 0o600); err != nil {
			return nil, err
		}
		for {
			if _, err := os.Stat(filepath.Join(req.Dir, "open")); err == nil {
				return map[string]int64{"peak": p.peak.Load(), "calls": p.calls.Load(), "pid": int64(os.Getpid())}, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	case "log":
		for i := range req.Lines {
			fmt.Printf("line-%d\n", i)
		}
		if req.Long > 0 {
			fmt.Fprintln(os.Stderr, "long-"+strings.Repeat("x", req.Long))
		}
		if req.Partial != "" {
			// No newline: the runtime must still keep it. On stderr, where the SDK writes
			// nothing after a successful invocation, so that no later line is glued to it.
			fmt.Fprint(os.Stderr, req.Partial)
		}
		return "logged", nil
	}
	return nil, fmt.Errorf("probe: unknown op %q", req.Op)
}

func main() {
	p := &probe{}
	fc.Start(p.handle)
}
