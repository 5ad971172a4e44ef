package fcrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestInvoke: a synchronous invocation returns what the function returned, or FC's error body
// for a returned error or a recovered panic. The SDK recovers handler panics, so the instance
// survives them and serves every case.
func TestInvoke(t *testing.T) {
	rt, _ := startProbe(t, Function{})
	tests := []struct {
		name        string
		req         map[string]any
		wantPayload string
		wantType    string // errorType; empty for success
		wantMessage string
		wantStack   bool
	}{
		{name: "echo object", req: map[string]any{"op": "echo", "data": map[string]int{"a": 1}}, wantPayload: `{"a":1}`},
		{name: "echo string", req: map[string]any{"op": "echo", "data": "i-abc"}, wantPayload: `"i-abc"`},
		{name: "returned error", req: map[string]any{"op": "fail", "message": "boom"}, wantType: "errorString", wantMessage: "boom"},
		{name: "returned custom error", req: map[string]any{"op": "fail", "message": "bad", "custom": true}, wantType: "customError", wantMessage: "bad"},
		{name: "handler panic", req: map[string]any{"op": "panic", "message": "kaput"}, wantType: "string", wantMessage: "kaput", wantStack: true},
		{name: "echo after panic", req: map[string]any{"op": "echo", "data": 7}, wantPayload: `7`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := invoke(t, rt, tc.req)
			if tc.wantType == "" {
				if res.Error != nil {
					t.Fatalf("Error = %v, want success", res.Error)
				}
				if string(res.Payload) != tc.wantPayload {
					t.Errorf("Payload = %s, want %s", res.Payload, tc.wantPayload)
				}
				return
			}
			fe := res.Error
			if fe == nil {
				t.Fatalf("succeeded with %s, want error", res.Payload)
			}
			if fe.Cause != CauseFunction || fe.ErrorType != tc.wantType || fe.ErrorMessage != tc.wantMessage {
				t.Errorf("Error = {cause %s, type %q, message %q}, want {function, %q, %q}", fe.Cause, fe.ErrorType, fe.ErrorMessage, tc.wantType, tc.wantMessage)
			}
			if got := len(fe.StackTrace) > 0; got != tc.wantStack {
				t.Errorf("stack trace present = %v, want %v", got, tc.wantStack)
			}
			var body map[string]any
			if err := json.Unmarshal(res.Payload, &body); err != nil || body["errorMessage"] != tc.wantMessage || body["errorType"] != tc.wantType {
				t.Errorf("Payload = %s (%v), want FC's error body", res.Payload, err)
			}
		})
	}
	if n := len(rt.Instances()); n != 1 {
		t.Errorf("%d instances, want 1: errors and recovered panics keep the instance", n)
	}
	if inv := rt.Invocations(); len(inv) != len(tests) || !inv[0].ColdStart || slices.ContainsFunc(inv[1:], func(i Invocation) bool { return i.ColdStart }) {
		t.Errorf("invocations %+v: want the first cold and the others warm", inv)
	}
}

// TestContext: the function sees, through fccontext and its environment, everything FC gives
// it, including a fresh STS triple per invocation, and no secret reaches the logs.
func TestContext(t *testing.T) {
	var issued []Credentials
	var mu sync.Mutex
	creds := func(context.Context) (Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		n := len(issued) + 1
		c := Credentials{
			AccessKeyID:     fmt.Sprintf("STS.key-%d", n),
			AccessKeySecret: fmt.Sprintf("secret-%d-%x", n, time.Now().UnixNano()),
			SecurityToken:   fmt.Sprintf("token-%d-%x", n, time.Now().UnixNano()),
			Expiration:      time.Now().Add(time.Hour),
		}
		issued = append(issued, c)
		return c, nil
	}
	cas := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cas, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fn := Function{
		TrustedCAs:  cas,
		Name:        "eni-attacher",
		Region:      "cn-hangzhou",
		AccountID:   "1234567890",
		Qualifier:   "prod",
		Env:         map[string]string{"PROBE_VAR": "pool-a"},
		Timeout:     7 * time.Second,
		MemoryMB:    256,
		Credentials: creds,
	}
	rt, logs := startProbe(t, fn)

	type seen struct {
		RequestID       string            `json:"requestId"`
		DeadlineMs      int64             `json:"deadlineMs"`
		FunctionName    string            `json:"functionName"`
		Handler         string            `json:"handler"`
		Memory          string            `json:"memory"`
		Timeout         int               `json:"timeout"`
		Qualifier       string            `json:"qualifier"`
		Region          string            `json:"region"`
		AccountID       string            `json:"accountId"`
		RetryCount      int               `json:"retryCount"`
		AccessKeyID     string            `json:"accessKeyId"`
		SecretSHA256    string            `json:"secretSha256"`
		TokenSHA256     string            `json:"tokenSha256"`
		EnvAccessKeyID  string            `json:"envAccessKeyId"`
		EnvSecretSHA256 string            `json:"envSecretSha256"`
		EnvTokenSHA256  string            `json:"envTokenSha256"`
		Env             map[string]string `json:"env"`
	}
	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}

	for i := range 2 {
		before := time.Now().Truncate(time.Millisecond)
		res := invoke(t, rt, map[string]any{"op": "context"})
		after := time.Now()
		if res.Error != nil {
			t.Fatalf("invocation %d: %v", i, res.Error)
		}
		var got seen
		if err := json.Unmarshal(res.Payload, &got); err != nil {
			t.Fatalf("payload %s: %v", res.Payload, err)
		}
		want := issued[i] // one fresh triple per invocation
		checks := []struct {
			name      string
			got, want any
		}{
			{"request id", got.RequestID, res.RequestID},
			{"function name", got.FunctionName, "eni-attacher"},
			{"handler", got.Handler, "main"},
			{"memory", got.Memory, "256"},
			{"timeout", got.Timeout, 7},
			{"qualifier", got.Qualifier, "prod"},
			{"region", got.Region, "cn-hangzhou"},
			{"account id", got.AccountID, "1234567890"},
			{"retry count", got.RetryCount, 0},
			{"access key id", got.AccessKeyID, want.AccessKeyID},
			{"secret", got.SecretSHA256, digest(want.AccessKeySecret)},
			{"token", got.TokenSHA256, digest(want.SecurityToken)},
			// The instance started for the first invocation, with its triple in the environment.
			{"env access key id", got.EnvAccessKeyID, issued[0].AccessKeyID},
			{"env secret", got.EnvSecretSHA256, digest(issued[0].AccessKeySecret)},
			{"env token", got.EnvTokenSHA256, digest(issued[0].SecurityToken)},
			{"FC_FUNCTION_NAME", got.Env["FC_FUNCTION_NAME"], "eni-attacher"},
			{"FC_FUNCTION_HANDLER", got.Env["FC_FUNCTION_HANDLER"], "main"},
			{"FC_FUNCTION_MEMORY_SIZE", got.Env["FC_FUNCTION_MEMORY_SIZE"], "256"},
			{"FC_REGION", got.Env["FC_REGION"], "cn-hangzhou"},
			{"FC_ACCOUNT_ID", got.Env["FC_ACCOUNT_ID"], "1234567890"},
			{"FC_INSTANCE_ID", got.Env["FC_INSTANCE_ID"], res.Instance},
			{"function env", got.Env["PROBE_VAR"], "pool-a"},
			{"trusted CAs", got.Env["SSL_CERT_FILE"], cas},
			{"cold start", res.ColdStart, i == 0},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("invocation %d: %s = %v, want %v", i, c.name, c.got, c.want)
			}
		}
		// The deadline is when the instance got the invocation plus the timeout.
		lo, hi := before.Add(fn.Timeout).UnixMilli(), after.Add(fn.Timeout).UnixMilli()
		if got.DeadlineMs < lo || got.DeadlineMs > hi {
			t.Errorf("invocation %d: deadline %d outside [%d, %d]", i, got.DeadlineMs, lo, hi)
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "FC Invoke Start RequestId:") {
		t.Errorf("logs lack the SDK's lines:\n%s", out)
	}
	for _, c := range issued {
		if strings.Contains(out, c.AccessKeySecret) || strings.Contains(out, c.SecurityToken) {
			t.Errorf("a secret reached the logs:\n%s", out)
		}
		if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, c.AccessKeySecret) || strings.Contains(s, c.SecurityToken) {
			t.Errorf("Credentials formats its secret: %s", s)
		}
	}
}

// TestInstanceFailure: a crash or a timeout fails the invocation with its cause, the
// instance's process is gone, and the next invocation gets a new instance.
func TestInstanceFailure(t *testing.T) {
	tests := []struct {
		name        string
		timeout     time.Duration
		req         map[string]any
		wantCause   Cause
		wantMessage string
		wantExit    string
	}{
		{"goroutine panic", 0, map[string]any{"op": "goroutinePanic", "message": "lost"}, CauseCrash, "Process exited unexpectedly", "exit status 2"},
		{"os.Exit", 0, map[string]any{"op": "exit", "code": 3}, CauseCrash, "Process exited unexpectedly", "exit status 3"},
		{"timeout", time.Second, map[string]any{"op": "sleep", "ms": 60000}, CauseTimeout, "Function timed out after 1 seconds", "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt, _ := startProbe(t, Function{Timeout: tc.timeout, MaxInstances: 1})
			res := invoke(t, rt, tc.req)
			if res.Error == nil || res.Error.Cause != tc.wantCause || !strings.Contains(res.Error.ErrorMessage, tc.wantMessage) {
				t.Fatalf("Error = %v, want cause %s with %q", res.Error, tc.wantCause, tc.wantMessage)
			}
			if !strings.Contains(string(res.Payload), tc.wantMessage) {
				t.Errorf("Payload = %s, want FC's error body", res.Payload)
			}
			waitFor(t, "the failed instance to exit", func() bool { return rt.Instances()[0].Exited })
			failed := rt.Instances()[0]
			if failed.ID != res.Instance || failed.ExitReason != tc.wantExit || !processGone(failed.PID) {
				t.Errorf("failed instance %+v: want %s, exit reason %q, process gone", failed, res.Instance, tc.wantExit)
			}

			next := invoke(t, rt, map[string]any{"op": "echo", "data": "again"})
			if next.Error != nil || string(next.Payload) != `"again"` {
				t.Fatalf("next invocation: %s, %v", next.Payload, next.Error)
			}
			if next.Instance == failed.ID || !next.ColdStart {
				t.Errorf("next invocation ran on %s (cold %v), want a new instance", next.Instance, next.ColdStart)
			}
		})
	}
}

// TestAsync: asynchronous invocations retry function errors with x-fc-retry-count, give up at
// MaxRetryAttempts or MaxEventAge, and deliver FC's destination record, retrying a failing
// destination until it takes the record.
func TestAsync(t *testing.T) {
	fast := func(int) time.Duration { return time.Millisecond }
	tests := []struct {
		name          string
		req           map[string]any
		retries       int
		ageOut        bool // events are aged past MaxEventAge during the first backoff
		failDelivery  int  // the destination fails this many tries first
		noDestination bool
		skipDest      bool  // destinations configured, but the invocation skips them (AsyncOptions)
		wantRetries   []int // x-fc-retry-count of each attempt
		wantCondition string
		wantStatus    string
		wantResponse  string // part of responsePayload
	}{
		{
			name: "retries exhausted", req: map[string]any{"op": "fail", "message": "boom"}, retries: 2,
			wantRetries: []int{0, 1, 2}, wantCondition: ConditionRetriesExhausted, wantStatus: StatusFailed, wantResponse: `"errorMessage":"boom"`,
		},
		{
			name: "fails twice then succeeds", req: map[string]any{"op": "failUntil", "n": 2}, retries: 3,
			wantRetries: []int{0, 1, 2}, wantCondition: ConditionSuccess, wantStatus: StatusSucceeded, wantResponse: `{"retryCount":2}`,
		},
		{
			name: "succeeds at once", req: map[string]any{"op": "echo", "data": "ok"},
			wantRetries: []int{0}, wantCondition: ConditionSuccess, wantStatus: StatusSucceeded, wantResponse: `"ok"`,
		},
		{
			name: "no retries", req: map[string]any{"op": "fail", "message": "once"}, retries: NoRetries,
			wantRetries: []int{0}, wantCondition: ConditionRetriesExhausted, wantStatus: StatusFailed, wantResponse: `"errorMessage":"once"`,
		},
		{
			name: "event age exceeded", req: map[string]any{"op": "fail", "message": "old"}, retries: 3, ageOut: true,
			wantRetries: []int{0}, wantCondition: ConditionEventAgeExceeded, wantStatus: StatusExpired, wantResponse: `"errorMessage":"old"`,
		},
		{
			name: "destination fails twice", req: map[string]any{"op": "fail", "message": "dlq"}, retries: NoRetries, failDelivery: 2,
			wantRetries: []int{0}, wantCondition: ConditionRetriesExhausted, wantStatus: StatusFailed, wantResponse: `"errorMessage":"dlq"`,
		},
		{
			name: "no destination", req: map[string]any{"op": "fail", "message": "gone"}, retries: NoRetries, noDestination: true,
			wantRetries: []int{0}, wantCondition: ConditionRetriesExhausted, wantStatus: StatusFailed,
		}, {
			name: "destinations skipped, failure", req: map[string]any{"op": "fail", "message": "timer"}, retries: 1, skipDest: true,
			wantRetries: []int{0, 1}, wantCondition: ConditionRetriesExhausted, wantStatus: StatusFailed,
		},
		{
			name: "destinations skipped, success", req: map[string]any{"op": "echo", "data": "ok"}, skipDest: true,
			wantRetries: []int{0}, wantCondition: ConditionSuccess, wantStatus: StatusSucceeded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			onSuccess, onFailure := &recorder{failFirst: tc.failDelivery}, &recorder{failFirst: tc.failDelivery}
			var clockShift atomic.Int64
			cfg := AsyncConfig{MaxRetryAttempts: tc.retries, MaxEventAge: time.Hour, Backoff: fast, OnSuccess: onSuccess, OnFailure: onFailure}
			if tc.ageOut {
				cfg.Backoff = func(int) time.Duration {
					clockShift.Store(int64(2 * time.Hour)) // the event waits two hours for its retry
					return time.Millisecond
				}
			}
			if tc.noDestination {
				cfg.OnSuccess, cfg.OnFailure = nil, nil
			}
			rt, _ := startProbe(t, Function{Name: "eni-attacher", Region: "cn-shanghai", AccountID: "42", Async: cfg})
			rt.clock = func() time.Time { return time.Now().Add(time.Duration(clockShift.Load())) }

			payload := mustJSON(t, tc.req)
			id := rt.InvokeAsyncWith(payload, AsyncOptions{NoDestinations: tc.skipDest})
			waitAsync(t, rt)

			var retries []int
			for _, inv := range rt.Invocations() {
				if inv.RequestID != id || !inv.Async || inv.Attempt != inv.RetryCount+1 {
					t.Errorf("invocation %+v: want request %s, async, attempt = retry count + 1", inv, id)
				}
				retries = append(retries, inv.RetryCount)
			}
			if !slices.Equal(retries, tc.wantRetries) {
				t.Errorf("retry counts %v, want %v", retries, tc.wantRetries)
			}

			task := rt.AsyncTasks()[0]
			if task.RequestID != id || task.Status != tc.wantStatus || task.Condition != tc.wantCondition || task.AlreadyRetriedTimes != len(tc.wantRetries)-1 {
				t.Errorf("task %+v: want status %s, condition %s, %d retries", task, tc.wantStatus, tc.wantCondition, len(tc.wantRetries)-1)
			}

			dest, other := onFailure, onSuccess
			target := TargetOnFailure
			if tc.wantCondition == ConditionSuccess {
				dest, other, target = onSuccess, onFailure, TargetOnSuccess
			}
			if tc.noDestination || tc.skipDest {
				if task.DestinationStatus != DestinationNone || len(task.Deliveries) != 0 || len(onFailure.received())+len(onSuccess.received()) != 0 {
					t.Errorf("task %+v: want no delivery", task)
				}
				return
			}
			if n := len(other.received()); n != 0 {
				t.Errorf("the other destination got %d records", n)
			}
			got := dest.received()
			if len(got) != 1 {
				t.Fatalf("destination got %d records, want 1", len(got))
			}
			if task.DestinationStatus != DestinationSucceeded || len(task.Deliveries) != tc.failDelivery+1 {
				t.Errorf("task %+v: want delivered after %d failed tries", task, tc.failDelivery)
			}
			for i, d := range task.Deliveries {
				if d.Target != target || d.Attempt != i+1 || (d.Err != nil) != (i < tc.failDelivery) || string(d.Body) != string(got[0]) {
					t.Errorf("delivery %d = %+v", i, d)
				}
			}

			var rec DestinationRecord
			if err := json.Unmarshal(got[0], &rec); err != nil {
				t.Fatalf("record %s: %v", got[0], err)
			}
			wantFunctionError := UnhandledInvocationError
			if tc.wantCondition == ConditionSuccess {
				wantFunctionError = ""
			}
			if rec.RequestContext != (RequestContext{
				RequestID:              id,
				FunctionArn:            "acs:fc:cn-shanghai:42:functions/eni-attacher",
				Condition:              tc.wantCondition,
				ApproximateInvokeCount: len(tc.wantRetries),
			}) || rec.RequestPayload != string(payload) || rec.ResponseContext != (ResponseContext{StatusCode: 200, FunctionError: wantFunctionError}) ||
				!strings.Contains(rec.ResponsePayload, tc.wantResponse) {
				t.Errorf("record %s", got[0])
			}
			if _, err := time.Parse(time.RFC3339, rec.Timestamp); err != nil {
				t.Errorf("timestamp %q: %v", rec.Timestamp, err)
			}
			// The raw JSON carries FC's field names.
			for _, key := range []string{`"timestamp"`, `"requestContext"`, `"requestId"`, `"functionArn"`, `"condition"`, `"approximateInvokeCount"`, `"requestPayload"`, `"responseContext"`, `"statusCode"`, `"responsePayload"`} {
				if !strings.Contains(string(got[0]), key) {
					t.Errorf("record lacks %s: %s", key, got[0])
				}
			}
		})
	}
}

// TestConcurrency: instances scale out to MaxInstances and no further, queue beyond, are
// reused warm, and each runs at most InstanceConcurrency invocations at once. The probe's gate
// op holds invocations until the test has seen them all arrive.
func TestConcurrency(t *testing.T) {
	tests := []struct {
		name          string
		maxInstances  int
		concurrency   int
		calls         int
		arrivals      int // invocations that run at once, before the gate opens
		wantInstances int
		wantPeak      int64 // peak concurrency one instance saw
		wantCold      int   // -1: not deterministic
	}{
		{"scale out then queue", 2, 1, 4, 2, 2, 1, 2},
		{"one per instance", 3, 1, 3, 3, 3, 1, 3},
		{"two per instance", 1, 2, 2, 2, 1, 2, -1},
		{"serial reuse", 1, 1, 3, 1, 1, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt, _ := startProbe(t, Function{MaxInstances: tc.maxInstances, InstanceConcurrency: tc.concurrency})
			gate := t.TempDir()
			arrived := func() int {
				entries, err := os.ReadDir(gate)
				if err != nil {
					t.Fatal(err)
				}
				return len(entries)
			}
			results := make([]*Result, tc.calls)
			errs := make([]error, tc.calls)
			var wg sync.WaitGroup
			for i := range tc.calls {
				wg.Go(func() {
					results[i], errs[i] = rt.Invoke(context.Background(), mustJSON(t, map[string]any{"op": "gate", "dir": gate}))
				})
			}
			waitFor(t, fmt.Sprintf("%d invocations to arrive", tc.arrivals), func() bool { return arrived() >= tc.arrivals })
			if n := arrived(); n != tc.arrivals {
				t.Errorf("%d invocations ran at once, want %d", n, tc.arrivals)
			}
			if err := os.WriteFile(filepath.Join(gate, "open"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			instances := map[string]bool{}
			cold := 0
			for i, res := range results {
				if errs[i] != nil || res.Error != nil {
					t.Fatalf("invocation %d: %+v, %v", i, res, errs[i])
				}
				var out struct{ Peak int64 }
				if err := json.Unmarshal(res.Payload, &out); err != nil {
					t.Fatal(err)
				}
				if out.Peak > tc.wantPeak {
					t.Errorf("an instance ran %d invocations at once, want at most %d", out.Peak, tc.wantPeak)
				}
				instances[res.Instance] = true
				if res.ColdStart {
					cold++
				}
			}
			if len(instances) != tc.wantInstances || len(rt.Instances()) != tc.wantInstances {
				t.Errorf("ran on %d instances (%d started), want %d", len(instances), len(rt.Instances()), tc.wantInstances)
			}
			if tc.wantCold >= 0 && cold != tc.wantCold {
				t.Errorf("%d cold starts, want %d", cold, tc.wantCold)
			}
		})
	}
}

// TestLogs: every line an instance prints reaches Logs once, whole and prefixed with its
// instance, however long, and a last line without a newline is kept.
func TestLogs(t *testing.T) {
	rt, logs := startProbe(t, Function{})
	res := invoke(t, rt, map[string]any{"op": "log", "lines": 2000, "long": 200000, "partial": "tail-without-newline"})
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	prefix := "[probe " + res.Instance + "] "
	lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
	count := map[string]int{}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, prefix)
		if !ok {
			t.Fatalf("line without the instance prefix: %.100q", l)
		}
		count[rest]++
	}
	want := []string{"tail-without-newline", "long-" + strings.Repeat("x", 200000)}
	for i := range 2000 {
		want = append(want, fmt.Sprintf("line-%d", i))
	}
	for _, w := range want {
		if count[w] != 1 {
			t.Errorf("line %.40q logged %d times, want once", w, count[w])
		}
	}
}

// TestClose: Close kills every instance (busy or not), ends in-flight and queued invocations
// with ErrClosed, reports unsettled asynchronous invocations, and leaves no goroutine behind.
func TestClose(t *testing.T) {
	baseline := runtime.NumGoroutine()
	rt, _ := startProbe(t, Function{MaxInstances: 2, Async: AsyncConfig{Backoff: func(int) time.Duration { return time.Hour }}})
	id := rt.InvokeAsync(mustJSON(t, map[string]any{"op": "fail", "message": "retry in an hour"}))
	waitFor(t, "a retry pending", func() bool { return rt.AsyncTasks()[0].Status == StatusRetrying })
	gate := t.TempDir()
	errs := make([]error, 3) // two in flight, one queued
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = rt.Invoke(context.Background(), mustJSON(t, map[string]any{"op": "gate", "dir": gate}))
		})
	}
	waitFor(t, "two invocations in flight", func() bool {
		entries, _ := os.ReadDir(gate)
		return len(entries) == 2
	})

	err := rt.Close()
	if !errors.Is(err, ErrUndelivered) || !strings.Contains(err.Error(), id) {
		t.Errorf("Close = %v, want ErrUndelivered naming %s", err, id)
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("invocation %d: %v, want ErrClosed", i, err)
		}
	}
	for _, in := range rt.Instances() {
		if !in.Exited || in.ExitReason != "closed" || !processGone(in.PID) {
			t.Errorf("instance %+v still there", in)
		}
	}
	if task := rt.AsyncTasks()[0]; task.Status != StatusStopped {
		t.Errorf("task %+v, want stopped", task)
	}
	if _, err := rt.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close: %v, want ErrClosed", err)
	}
	if err := rt.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Close: %v, want ErrClosed", err)
	}
	if err2 := rt.Close(); err2 != err {
		t.Errorf("second Close = %v, want %v", err2, err)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestHello: the benchmark's baseline function runs, and its instance reports a cold start and
// a peak RSS.
func TestHello(t *testing.T) {
	rt, _ := startProbe(t, Function{Name: "hello", Binary: testBinary("hello")})
	res := invoke(t, rt, nil)
	if res.Error != nil || string(res.Payload) != `"hello"` {
		t.Fatalf("hello: %s, %v", res.Payload, res.Error)
	}
	in := rt.Instances()[0]
	if in.PID <= 0 || in.ColdStart <= 0 || in.Invocations != 1 || in.Started.IsZero() {
		t.Errorf("stats %+v", in)
	}
	if runtime.GOOS == "linux" && in.PeakRSS <= 0 {
		t.Errorf("no peak RSS: %+v", in)
	}
}

// TestStartFailure: a binary that cannot start, or exits before asking for an invocation,
// fails the invocations waiting for it with CauseStart (not looping), and what it printed is
// kept.
func TestStartFailure(t *testing.T) {
	dir := t.TempDir()
	exits := filepath.Join(dir, "exits")
	if err := os.WriteFile(exits, []byte("#!/bin/sh\necho missing configuration >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		binary        string
		wantMessage   string
		wantInstances int // per invocation
		wantLog       string
	}{
		{"exits at start", exits, "exit status 1", 1, "missing configuration"},
		{"cannot exec", garbage, "exec format error", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, logs := startProbe(t, Function{Binary: tc.binary, MaxInstances: 1})
			for i := range 2 {
				res := invoke(t, rt, map[string]any{"op": "echo"})
				if res.Error == nil || res.Error.Cause != CauseStart || !strings.Contains(res.Error.ErrorMessage, tc.wantMessage) {
					t.Errorf("invocation %d: %v, want a start failure with %q", i, res.Error, tc.wantMessage)
				}
			}
			if n := len(rt.Instances()); n != 2*tc.wantInstances {
				t.Errorf("%d instances, want %d", n, 2*tc.wantInstances)
			}
			if tc.wantLog != "" {
				waitFor(t, "the log line", func() bool { return strings.Contains(logs.String(), tc.wantLog) })
			}
		})
	}
}

// TestCredentialsError: an invocation without credentials does not run.
func TestCredentialsError(t *testing.T) {
	sts := errors.New("sts unavailable")
	rt, _ := startProbe(t, Function{Credentials: func(context.Context) (Credentials, error) { return Credentials{}, sts }})
	_, err := rt.Invoke(context.Background(), []byte(`{"op":"echo"}`))
	if !errors.Is(err, ErrCredentials) || !errors.Is(err, sts) {
		t.Errorf("Invoke = %v, want ErrCredentials wrapping the STS error", err)
	}
	if n := len(rt.Instances()); n != 0 {
		t.Errorf("%d instances started", n)
	}
}

// TestStartValidation: Start refuses configurations FC would refuse.
func TestStartValidation(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "main")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	probe := testBinary("probe")
	tests := []struct {
		name string
		fn   Function
	}{
		{"no name", Function{Binary: probe}},
		{"no binary", Function{Name: "f"}},
		{"missing binary", Function{Name: "f", Binary: filepath.Join(t.TempDir(), "none")}},
		{"not executable", Function{Name: "f", Binary: notExec}},
		{"reserved env", Function{Name: "f", Binary: probe, Env: map[string]string{"FC_RUNTIME_API": "x"}}},
		{"reserved credentials env", Function{Name: "f", Binary: probe, Env: map[string]string{"ALIBABA_CLOUD_SECURITY_TOKEN": "x"}}},
		{"bad env name", Function{Name: "f", Binary: probe, Env: map[string]string{"A=B": "x"}}},
		{"missing trusted CAs", Function{Name: "f", Binary: probe, TrustedCAs: filepath.Join(t.TempDir(), "none.pem")}},
		{"SSL_CERT_FILE twice", Function{Name: "f", Binary: probe, TrustedCAs: notExec, Env: map[string]string{"SSL_CERT_FILE": "x"}}},
		{"too many retries", Function{Name: "f", Binary: probe, Async: AsyncConfig{MaxRetryAttempts: 9}}},
		{"negative timeout", Function{Name: "f", Binary: probe, Timeout: -time.Second}},
		{"timeout over a day", Function{Name: "f", Binary: probe, Timeout: 86401 * time.Second}},
		{"concurrency over 200", Function{Name: "f", Binary: probe, InstanceConcurrency: 201}},
		{"negative idle timeout", Function{Name: "f", Binary: probe, IdleTimeout: -time.Second}},
		{"event age over 30 days", Function{Name: "f", Binary: probe, Async: AsyncConfig{MaxEventAge: 2592001 * time.Second}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := Start(tc.fn)
			if !errors.Is(err, ErrInvalidFunction) {
				t.Errorf("Start = %v, %v; want ErrInvalidFunction", rt, err)
			}
		})
	}
}

// TestFCBackoff: FC's documented schedule, 0.5 s then doubling.
func TestFCBackoff(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, 500 * time.Millisecond},
		{1, 500 * time.Millisecond},
		{2, time.Second},
		{3, 2 * time.Second},
		{4, 4 * time.Second},
		{5, 8 * time.Second},
		{10, 256 * time.Second},
		{11, 5 * time.Minute},
		{1000, 5 * time.Minute},
	}
	for _, tc := range tests {
		if got := FCBackoff(tc.n); got != tc.want {
			t.Errorf("FCBackoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
