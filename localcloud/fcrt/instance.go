package fcrt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The runtime API, as fc-runtime-go-sdk v0.3.1 calls it (fc/runtime_api_client.go).
const (
	apiNext     = "GET /2020-11-11/runtime/invocation/next"
	apiResponse = "POST /2020-11-11/runtime/invocation/{id}/response"
	apiError    = "POST /2020-11-11/runtime/invocation/{id}/error"
)

// instance is one process of the function binary and its runtime API listener.
type instance struct {
	rt        *Runtime
	id        string
	cmd       *exec.Cmd
	srv       *http.Server
	assigned  chan *attempt // assigned, not yet fetched; capacity InstanceConcurrency
	stopped   chan struct{} // closed once the process has exited and been accounted for
	stdout    *lineWriter
	stderr    *lineWriter
	peak      atomic.Int64 // VmHWM in bytes
	startedAt time.Time

	// Guarded by Runtime.mu.
	load       int // assigned + in flight
	inflight   map[string]*attempt
	ready      bool // it has asked for work: a warm instance
	readyAfter time.Duration
	served     int
	dying      bool // killed or being killed: takes no more work
	exited     bool
	exitReason string
	idleGen    int // bumped whenever the instance gets work, so a stale idle timer does nothing
}

// exitIdle is the ExitReason of an instance reclaimed after IdleTimeout.
const exitIdle = "idle"

// idleLocked starts the idle clock of an instance that has just run out of work.
func (r *Runtime) idleLocked(in *instance) {
	if r.fn.IdleTimeout <= 0 || in.load > 0 || in.dying || in.exited {
		return
	}
	gen := in.idleGen
	time.AfterFunc(r.fn.IdleTimeout, func() { r.reclaim(in, gen) })
}

// reclaim stops an instance that has stayed idle since generation gen, as FC reclaims idle
// instances: the next invocation that needs one starts a fresh process.
func (r *Runtime) reclaim(in *instance, gen int) {
	r.mu.Lock()
	if r.closed || in.idleGen != gen || in.load > 0 || in.dying || in.exited {
		r.mu.Unlock()
		return
	}
	in.dying = true
	in.exitReason = exitIdle
	r.live = slices.DeleteFunc(r.live, func(x *instance) bool { return x == in })
	r.mu.Unlock()
	in.kill()
}

// startInstanceLocked starts a process of the binary with its own runtime API listener. creds
// are those of the invocation that needs the instance: FC injects the role's STS triple into
// every instance's environment.
func (r *Runtime) startInstanceLocked(creds Credentials) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fcrt: runtime API listener: %w", err)
	}
	in := &instance{
		rt:       r,
		id:       newInstanceID(),
		assigned: make(chan *attempt, r.fn.InstanceConcurrency),
		stopped:  make(chan struct{}),
		inflight: make(map[string]*attempt),
	}
	prefix := "[" + r.fn.Name + " " + in.id + "] "
	in.stdout = &lineWriter{sink: r.logs, prefix: prefix}
	in.stderr = &lineWriter{sink: r.logs, prefix: prefix}

	cmd := exec.Command(r.fn.Binary)
	cmd.Dir = filepath.Dir(r.fn.Binary)
	cmd.Env = r.environ(in.id, ln.Addr().String(), creds)
	cmd.Stdout = in.stdout
	cmd.Stderr = in.stderr
	cmd.WaitDelay = 2 * time.Second // a grandchild holding the pipes cannot stall Wait
	configureProcess(cmd)
	in.cmd = cmd
	in.startedAt = time.Now()
	if err := cmd.Start(); err != nil {
		_ = ln.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc(apiNext, in.handleNext)
	mux.HandleFunc(apiResponse, in.handleResponse)
	mux.HandleFunc(apiError, in.handleError)
	in.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	r.all = append(r.all, in)
	r.live = append(r.live, in)
	r.running++
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		_ = in.srv.Serve(ln)
	}()
	go in.wait()
	return in, nil
}

// environ is an instance's whole environment. Nothing is inherited from the test process. A
// function without a role (no credentials) gets no ALIBABA_CLOUD_* variables, so that the
// credentials-go default chain moves past them instead of using empty keys.
func (r *Runtime) environ(instanceID, api string, creds Credentials) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"}
	for _, k := range slices.Sorted(maps.Keys(r.fn.Env)) {
		env = append(env, k+"="+r.fn.Env[k])
	}
	env = append(env,
		"FC_RUNTIME_API="+api,
		"FC_FUNCTION_NAME="+r.fn.Name,
		"FC_FUNCTION_HANDLER="+r.fn.Handler,
		"FC_FUNCTION_MEMORY_SIZE="+strconv.Itoa(r.fn.MemoryMB),
		"FC_REGION="+r.fn.Region,
		"FC_ACCOUNT_ID="+r.fn.AccountID,
		"FC_INSTANCE_ID="+instanceID,
	)
	if r.fn.TrustedCAs != "" {
		env = append(env, sslCertFile+"="+r.fn.TrustedCAs)
	}
	for _, kv := range [][2]string{
		{"ALIBABA_CLOUD_ACCESS_KEY_ID", creds.AccessKeyID},
		{"ALIBABA_CLOUD_ACCESS_KEY_SECRET", creds.AccessKeySecret},
		{"ALIBABA_CLOUD_SECURITY_TOKEN", creds.SecurityToken},
	} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

// wait reaps the process, fails what it had in flight and stops its listener.
func (in *instance) wait() {
	r := in.rt
	defer r.wg.Done()
	err := in.cmd.Wait() // returns once stdout and stderr are drained
	in.stdout.flush()
	in.stderr.flush()
	r.instanceExited(in, err)
	close(in.stopped)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if in.srv.Shutdown(ctx) != nil {
		_ = in.srv.Close()
	}
}

func (r *Runtime) instanceExited(in *instance, waitErr error) {
	exit := "exit status 0"
	if waitErr != nil {
		exit = waitErr.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	in.exited = true
	r.running--
	r.live = slices.DeleteFunc(r.live, func(x *instance) bool { return x == in })
	if in.exitReason == "" {
		in.exitReason = exit
	}
	for _, a := range in.inflight {
		if r.closed {
			r.finishLocked(a, nil, ErrClosed)
			continue
		}
		r.finishLocked(a, &Result{Error: crashError(time.Since(a.start), in.peak.Load(), exit)}, nil)
	}
	for drained := false; !drained; {
		select {
		case a := <-in.assigned:
			r.orphanLocked(in, a)
		default:
			drained = true
		}
	}
	r.pumpLocked()
}

// kill ends the process and anything it started.
func (in *instance) kill() {
	in.samplePeak()
	killProcess(in.cmd)
}

// samplePeak records the process's peak RSS. VmHWM only grows, so the last sample is the peak
// up to that moment.
func (in *instance) samplePeak() {
	if in.cmd.Process == nil {
		return
	}
	v := readPeakRSS(in.cmd.Process.Pid)
	for {
		old := in.peak.Load()
		if v <= old || in.peak.CompareAndSwap(old, v) {
			return
		}
	}
}

// readPeakRSS reads VmHWM from /proc/<pid>/status, in bytes; 0 if it cannot.
func readPeakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

func (in *instance) statsLocked() InstanceStats {
	s := InstanceStats{
		ID:          in.id,
		Started:     in.startedAt,
		ColdStart:   in.readyAfter,
		PeakRSS:     in.peak.Load(),
		Invocations: in.served,
		Exited:      in.exited,
		ExitReason:  in.exitReason,
	}
	if in.cmd.Process != nil {
		s.PID = in.cmd.Process.Pid
	}
	return s
}

// handleNext answers the SDK's GET /next with the instance's next invocation, blocking until
// it has one. The SDK asks again as soon as it has an invocation; it gets the next one only
// once the instance has capacity, because only then is one assigned to it.
func (in *instance) handleNext(w http.ResponseWriter, req *http.Request) {
	r := in.rt
	in.samplePeak()
	r.mu.Lock()
	if !in.ready {
		in.ready = true
		in.readyAfter = time.Since(in.startedAt)
	}
	r.mu.Unlock()

	var a *attempt
	select {
	case a = <-in.assigned:
	case <-in.stopped:
		http.Error(w, "instance stopped", http.StatusServiceUnavailable)
		return
	case <-req.Context().Done():
		return
	}

	r.mu.Lock()
	if in.dying || in.exited || a.finished {
		r.orphanLocked(in, a)
		r.pumpLocked()
		r.mu.Unlock()
		http.Error(w, "instance stopping", http.StatusServiceUnavailable)
		return
	}
	a.fetched = true
	a.start = time.Now()
	in.inflight[a.requestID] = a
	in.served++
	a.timer = time.AfterFunc(r.fn.Timeout, func() { r.onTimeout(a) })
	deadline := a.start.Add(r.fn.Timeout)
	r.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("x-fc-request-id", a.requestID)
	h.Set("x-fc-function-deadline", strconv.FormatInt(deadline.UnixMilli(), 10))
	h.Set("x-fc-access-key-id", a.creds.AccessKeyID)
	h.Set("x-fc-access-key-secret", a.creds.AccessKeySecret)
	h.Set("x-fc-security-token", a.creds.SecurityToken)
	h.Set("x-fc-function-name", r.fn.Name)
	h.Set("x-fc-function-handler", r.fn.Handler)
	h.Set("x-fc-function-memory", strconv.Itoa(r.fn.MemoryMB))
	h.Set("x-fc-function-timeout", strconv.Itoa(int((r.fn.Timeout+time.Second-1)/time.Second)))
	h.Set("x-fc-region", r.fn.Region)
	h.Set("x-fc-account-id", r.fn.AccountID)
	h.Set("x-fc-qualifier", r.fn.Qualifier)
	if _, err := strconv.Atoi(r.fn.Qualifier); err == nil {
		h.Set("x-fc-version-id", r.fn.Qualifier) // a qualifier that is a version number
	}
	h.Set("x-fc-retry-count", strconv.Itoa(a.retryCount))
	h.Set("Content-Length", strconv.Itoa(len(a.payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.payload) // a broken connection means a dead process: wait fails the attempt
}

func (in *instance) handleResponse(w http.ResponseWriter, req *http.Request) {
	in.handleResult(w, req, func(body []byte) *Result { return &Result{Payload: body} })
}

func (in *instance) handleError(w http.ResponseWriter, req *http.Request) {
	in.handleResult(w, req, func(body []byte) *Result {
		return &Result{Payload: body, Error: parseFunctionError(body)}
	})
}

func (in *instance) handleResult(w http.ResponseWriter, req *http.Request, result func([]byte) *Result) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return // the process went away mid-request
	}
	in.samplePeak()
	r := in.rt
	r.mu.Lock()
	a := in.inflight[req.PathValue("id")]
	if a == nil {
		r.mu.Unlock()
		// Unknown, or already ended (timed out): FC no longer listens for it.
		http.Error(w, "no invocation in flight with this request id", http.StatusNotFound)
		return
	}
	r.finishLocked(a, result(body), nil)
	r.pumpLocked()
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}
