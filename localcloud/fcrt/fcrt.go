package fcrt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FC's limits and the defaults of the fc3 component (schema of devsapp/fc3 props), used where a
// Function leaves a field zero.
const (
	DefaultTimeout             = 3 * time.Second
	DefaultMemoryMB            = 512
	DefaultMaxInstances        = 100 // FC's default per-region instance quota of an account
	DefaultInstanceConcurrency = 1
	DefaultMaxRetryAttempts    = 3
	DefaultMaxEventAge         = 18000 * time.Second

	maxTimeout             = 86400 * time.Second
	maxInstanceConcurrency = 200
	maxRetryAttempts       = 8
	maxEventAge            = 2592000 * time.Second
	defaultQualifier       = "LATEST"
	defaultHandler         = "main"
)

// NoRetries, as AsyncConfig.MaxRetryAttempts, runs a failed asynchronous invocation once. It
// exists because the zero value means FC's default of 3 retries.
const NoRetries = -1

// Credentials is the STS triple of the function's role. FC 3.0 hands a fresh one to every
// invocation and injects one into every instance's environment.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
	// Expiration is when the triple stops working. The runtime API has no header for it, so
	// the function never sees it.
	Expiration time.Time
}

// String shows the key id only, so that printing Credentials cannot leak the secret or token.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AccessKeyID: %s, AccessKeySecret: <redacted>, SecurityToken: <redacted>}", c.AccessKeyID)
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// Destination receives a destination record (see DestinationRecord) for an asynchronous
// invocation: the localcloud MNS queue, another function, or a test's recorder. Deliver should
// honour ctx: Close cancels it.
type Destination interface {
	Deliver(ctx context.Context, body []byte) error
}

// DestinationFunc adapts a function to Destination.
type DestinationFunc func(ctx context.Context, body []byte) error

// Deliver calls f.
func (f DestinationFunc) Deliver(ctx context.Context, body []byte) error { return f(ctx, body) }

// AsyncConfig is the function's asyncInvokeConfig.
type AsyncConfig struct {
	// MaxRetryAttempts is how many times a failed asynchronous invocation is retried, 0..8.
	// Zero means FC's default, 3; use NoRetries for none.
	MaxRetryAttempts int
	// MaxEventAge is how long an event may wait for an attempt (maxAsyncEventAgeInSeconds).
	// Zero means the fc3 default, 18000 s.
	MaxEventAge time.Duration
	// Backoff is the wait before retry n (n = 1 for the first retry), and before redelivery n of
	// a destination record. Nil means FCBackoff.
	Backoff func(n int) time.Duration
	// OnSuccess and OnFailure are the destinations; nil means none, as in FC, where a failed
	// event without an onFailure destination is discarded.
	OnSuccess, OnFailure Destination
}

// FCBackoff is FC's documented binary exponential backoff: the first retry 0.5 s after the
// failure, then 1 s, 2 s, 4 s, ... (capped here at 5 minutes). FC documents it for throttled
// and system errors; it does not document the interval for function errors.
func FCBackoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 10 {
		return 5 * time.Minute
	}
	return min(500*time.Millisecond<<(n-1), 5*time.Minute)
}

// Function is what FC knows about a function: its configuration and the built binary.
type Function struct {
	// Name is the function name (FC_FUNCTION_NAME, x-fc-function-name). Required.
	Name string
	// Handler is the go1 handler, the executable's name; default "main".
	Handler string
	// Region and AccountID are passed as FC_REGION / FC_ACCOUNT_ID and in every invocation.
	Region, AccountID string
	// Qualifier is the version or alias invoked; default "LATEST".
	Qualifier string
	// Binary is the path of the built function binary (GOOS=linux). Required. Instances run
	// in its directory, as FC runs them in /code.
	Binary string
	// Env is the function's environment variables. It may not set the variables FC reserves.
	Env map[string]string
	// Timeout is the invocation timeout; default 3 s, at most 86400 s.
	Timeout time.Duration
	// MemoryMB is the configured memory size; default 512. Reported, not enforced.
	MemoryMB int
	// MaxInstances caps the number of instance processes; default 100.
	MaxInstances int
	// InstanceConcurrency is how many invocations one instance runs at once; default 1, at most
	// 200. FC 3.0's standard runtimes, go1 included, run one: leave it at 1 for them.
	InstanceConcurrency int
	// IdleTimeout reclaims an instance that has had no invocation for that long: its process is
	// stopped (ExitReason "idle") and the next invocation that needs it cold-starts another.
	// Zero keeps instances until Close. FC does not document its idle time.
	IdleTimeout time.Duration
	// Credentials returns the role's STS triple for an invocation. Nil means the function has no
	// role: the headers and variables are sent empty, as FC does.
	Credentials func(ctx context.Context) (Credentials, error)
	// Async configures asynchronous invocations.
	Async AsyncConfig
	// Logs receives every line the instances print, prefixed per instance. Nil discards them.
	// It is written from one goroutine at a time.
	Logs io.Writer
	// TrustedCAs, when set, is a PEM file of CA certificates the instances trust: it is their
	// SSL_CERT_FILE, which Go's crypto/x509 reads on Linux instead of the system's bundle
	// file (the system's certificate directories, such as /etc/ssl/certs, are still read).
	// It stands for the trust store of FC's runtime image, which trusts the real endpoints'
	// CAs, so that a function reaches a local HTTPS endpoint with verification on.
	TrustedCAs string
}

// sslCertFile is the variable that names the CA file Go's crypto/x509 trusts on Linux.
const sslCertFile = "SSL_CERT_FILE"

// reservedEnv reports whether FC sets the variable itself, so that a function may not.
func reservedEnv(name string) bool {
	switch name {
	case "FC_RUNTIME_API", "FC_FUNCTION_NAME", "FC_FUNCTION_HANDLER", "FC_FUNCTION_MEMORY_SIZE",
		"FC_REGION", "FC_ACCOUNT_ID", "FC_INSTANCE_ID",
		"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN":
		return true
	}
	return false
}

// withDefaults validates fn and fills FC's defaults in.
func (fn Function) withDefaults() (Function, error) {
	bad := func(format string, a ...any) (Function, error) {
		return Function{}, fmt.Errorf("%w: %s", ErrInvalidFunction, fmt.Sprintf(format, a...))
	}
	if fn.Name == "" {
		return bad("Name is empty")
	}
	if fn.Binary == "" {
		return bad("Binary is empty")
	}
	bin, err := filepath.Abs(fn.Binary)
	if err != nil {
		return bad("Binary: %v", err)
	}
	fn.Binary = bin
	st, err := os.Stat(fn.Binary)
	if err != nil {
		return bad("Binary: %v", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return bad("Binary %s is not an executable file", fn.Binary)
	}
	if fn.TrustedCAs != "" {
		// Instances run in the binary's directory: a relative path would name another file.
		if fn.TrustedCAs, err = filepath.Abs(fn.TrustedCAs); err != nil {
			return bad("TrustedCAs: %v", err)
		}
		if _, err := os.Stat(fn.TrustedCAs); err != nil {
			return bad("TrustedCAs: %v", err)
		}
	}
	for k := range fn.Env {
		if reservedEnv(k) {
			return bad("Env sets %s, which FC reserves", k)
		}
		if k == sslCertFile && fn.TrustedCAs != "" {
			return bad("Env sets %s and TrustedCAs sets it too", k)
		}
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("Env has an invalid name %q", k)
		}
	}
	if fn.Handler == "" {
		fn.Handler = defaultHandler
	}
	if fn.Qualifier == "" {
		fn.Qualifier = defaultQualifier
	}
	switch {
	case fn.Timeout == 0:
		fn.Timeout = DefaultTimeout
	case fn.Timeout < 0 || fn.Timeout > maxTimeout:
		return bad("Timeout %v is outside (0, %v]", fn.Timeout, maxTimeout)
	}
	switch {
	case fn.MemoryMB == 0:
		fn.MemoryMB = DefaultMemoryMB
	case fn.MemoryMB < 0:
		return bad("MemoryMB %d is negative", fn.MemoryMB)
	}
	switch {
	case fn.MaxInstances == 0:
		fn.MaxInstances = DefaultMaxInstances
	case fn.MaxInstances < 0:
		return bad("MaxInstances %d is negative", fn.MaxInstances)
	}
	switch {
	case fn.InstanceConcurrency == 0:
		fn.InstanceConcurrency = DefaultInstanceConcurrency
	case fn.InstanceConcurrency < 0 || fn.InstanceConcurrency > maxInstanceConcurrency:
		return bad("InstanceConcurrency %d is outside 1..%d", fn.InstanceConcurrency, maxInstanceConcurrency)
	}
	if fn.IdleTimeout < 0 {
		return bad("IdleTimeout %v is negative", fn.IdleTimeout)
	}
	a := &fn.Async
	switch {
	case a.MaxRetryAttempts == 0:
		a.MaxRetryAttempts = DefaultMaxRetryAttempts
	case a.MaxRetryAttempts == NoRetries:
		a.MaxRetryAttempts = 0
	case a.MaxRetryAttempts < 0 || a.MaxRetryAttempts > maxRetryAttempts:
		return bad("Async.MaxRetryAttempts %d is outside 0..%d", a.MaxRetryAttempts, maxRetryAttempts)
	}
	switch {
	case a.MaxEventAge == 0:
		a.MaxEventAge = DefaultMaxEventAge
	case a.MaxEventAge < 0 || a.MaxEventAge > maxEventAge:
		return bad("Async.MaxEventAge %v is outside (0, %v]", a.MaxEventAge, maxEventAge)
	}
	if a.Backoff == nil {
		a.Backoff = FCBackoff
	}
	if fn.Logs == nil {
		fn.Logs = io.Discard
	}
	return fn, nil
}

// Result is the outcome of one invocation, as a synchronous caller sees it.
type Result struct {
	RequestID string
	// Payload is the function's response body; for a failed invocation, FC's error body
	// {"errorMessage","errorType","stackTrace"}.
	Payload []byte
	// Error is nil when the invocation succeeded.
	Error *FunctionError
	// Duration is the execution time: from handing the invocation to the instance to its
	// result (the timeout, for a timed-out invocation).
	Duration time.Duration
	// ColdStart is true when the invocation waited for its instance to start.
	ColdStart bool
	// Instance is the instance id (FC_INSTANCE_ID) that ran it.
	Instance string
}

// Invocation records one attempt of an invocation.
type Invocation struct {
	RequestID string
	Async     bool
	// Attempt is 1 for the first attempt of a request, 2 for its first retry, ...
	Attempt int
	// RetryCount is the x-fc-retry-count the attempt carried: retries before it.
	RetryCount int
	Instance   string
	ColdStart  bool
	// Start is when the instance got the invocation (zero if it never did).
	Start    time.Time
	Duration time.Duration
	Error    *FunctionError
}

// InstanceStats describes one instance process.
type InstanceStats struct {
	ID      string
	PID     int
	Started time.Time
	// ColdStart is the time from process start to its first GET /next; zero if it never asked.
	ColdStart time.Duration
	// PeakRSS is the peak resident set size in bytes (VmHWM), sampled at every runtime API call
	// and before a kill; zero where /proc is not available.
	PeakRSS int64
	// Invocations counts the invocations the instance was handed.
	Invocations int
	Exited      bool
	// ExitReason says why the instance ended: "timeout", "idle" (reclaimed after IdleTimeout),
	// "closed", or the process's exit status for a crash or a failed start.
	ExitReason string
}

// Stats count a Runtime's instances and invocations, for a scenario's report.
type Stats struct {
	// InstancesStarted counts instance processes started.
	InstancesStarted int
	// ColdStarts counts finished invocations that waited for their instance to start.
	ColdStarts int
	// Reclaimed counts instances stopped after IdleTimeout.
	Reclaimed int
	// Invocations counts finished attempts, synchronous and asynchronous.
	Invocations int
	// Live counts instances that can take invocations now.
	Live int
}

// Runtime runs one Function. Its methods are safe for concurrent use.
type Runtime struct {
	fn   Function
	arn  string
	logs *logSink

	clock  func() time.Time // time.Now; tests move it to age events deterministically
	ctx    context.Context  // canceled by Close: bounds Credentials and Deliver calls
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: wakes backoff waits
	wg     sync.WaitGroup

	closeDone chan struct{} // closed when the first Close has finished

	mu       sync.Mutex
	closed   bool
	live     []*instance // accepting invocations
	running  int         // processes not yet exited (live and dying)
	all      []*instance
	queue    []*attempt
	history  []Invocation
	tasks    []*task
	pending  int           // asynchronous tasks not settled
	idle     chan struct{} // closed while pending == 0
	closeErr error
}

// Start validates fn and returns its Runtime. No process starts until the first invocation.
func Start(fn Function) (*Runtime, error) {
	fn, err := fn.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &Runtime{
		fn:     fn,
		arn:    fmt.Sprintf("acs:fc:%s:%s:functions/%s", fn.Region, fn.AccountID, fn.Name),
		clock:  time.Now,
		logs:   &logSink{w: fn.Logs},
		ctx:    ctx,
		cancel: cancel,
		stop:   make(chan struct{}),
		idle:   idle,

		closeDone: make(chan struct{}),
	}, nil
}

// Invoke runs payload synchronously, like `s invoke`, and returns what the caller would get. A
// function error is a Result with Error set, not an error: error is for invocations the
// platform could not run (ErrClosed, ErrCredentials) and for ctx ending first, in which case
// the invocation still runs to its end, as it does on FC when a client goes away.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) (*Result, error) {
	a, err := r.submit(ctx, newRequestID(), slices.Clone(payload), 0, 1, false)
	if err != nil {
		return nil, err
	}
	select {
	case <-a.done:
		return a.result, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// submit fetches the invocation's credentials and queues it.
func (r *Runtime) submit(ctx context.Context, id string, payload []byte, retryCount, attemptNo int, async bool) (*attempt, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	var creds Credentials
	if r.fn.Credentials != nil {
		c, err := r.fn.Credentials(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrCredentials, id, err)
		}
		creds = c
	}
	a := &attempt{
		requestID:  id,
		payload:    payload,
		retryCount: retryCount,
		attemptNo:  attemptNo,
		async:      async,
		creds:      creds,
		done:       make(chan struct{}),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.queue = append(r.queue, a)
	r.pumpLocked()
	return a, nil
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Invocations returns every finished attempt, in the order they finished.
func (r *Runtime) Invocations() []Invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history)
}

// Instances returns every instance started so far, in start order.
func (r *Runtime) Instances() []InstanceStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]InstanceStats, 0, len(r.all))
	for _, in := range r.all {
		out = append(out, in.statsLocked())
	}
	return out
}

// Stats returns the counters.
func (r *Runtime) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{InstancesStarted: len(r.all), Invocations: len(r.history), Live: len(r.live)}
	for _, h := range r.history {
		if h.ColdStart {
			s.ColdStarts++
		}
	}
	for _, in := range r.all {
		if in.exitReason == exitIdle {
			s.Reclaimed++
		}
	}
	return s
}

// Close kills every instance, stops every listener and asynchronous task, and returns when all
// of the runtime's goroutines have ended. Queued invocations fail with ErrClosed. It returns
// an error wrapping ErrUndelivered if asynchronous invocations had not settled (run and, where
// a destination is configured, delivered). Close is idempotent.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.closeDone
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.closeErr
	}
	r.closed = true
	close(r.stop)
	r.cancel()
	for _, a := range r.queue {
		r.finishLocked(a, nil, ErrClosed)
	}
	r.queue = nil
	var dying []*instance
	for _, in := range r.all {
		if !in.exited {
			in.dying = true
			if in.exitReason == "" {
				in.exitReason = "closed"
			}
			dying = append(dying, in)
		}
	}
	r.live = nil
	r.mu.Unlock()

	for _, in := range dying {
		in.kill()
	}
	r.wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	defer close(r.closeDone)
	var unsettled []string
	for _, t := range r.tasks {
		if !t.settled() {
			unsettled = append(unsettled, t.id+" ("+t.status+")")
		}
	}
	if len(unsettled) > 0 {
		r.closeErr = fmt.Errorf("%w: %s", ErrUndelivered, strings.Join(unsettled, ", "))
	}
	return r.closeErr
}

// Wait blocks until every asynchronous invocation has settled: run, retried, and its
// destination record delivered. It returns ctx.Err() if ctx ends first, and ErrClosed if the
// Runtime closes first.
func (r *Runtime) Wait(ctx context.Context) error {
	for {
		r.mu.Lock()
		idle, pending, closed := r.idle, r.pending, r.closed
		unsettled := closed && slices.ContainsFunc(r.tasks, func(t *task) bool { return !t.settled() })
		r.mu.Unlock()
		if unsettled {
			return ErrClosed
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-r.stop:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sleep waits d or until Close; it reports whether the Runtime is still open.
func (r *Runtime) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	}
}

// newRequestID returns an id shaped like FC 3.0's ("1-<8 hex>-<8 hex>-<12 hex>").
func newRequestID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("1-%08x-%s-%s", uint32(time.Now().Unix()), h[:8], h[8:])
}

// newInstanceID returns an id shaped like FC's FC_INSTANCE_ID ("c-<8 hex>-<12 hex>").
func newInstanceID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("c-%s-%s", h[:8], h[8:])
}
