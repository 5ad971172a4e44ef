package fcrt

import (
	"slices"
	"time"
)

// attempt is one run of an invocation: a synchronous invocation, or one try of an
// asynchronous one. It is queued, assigned to an instance, fetched by the instance's GET /next
// and finished exactly once (finishLocked), which closes done.
type attempt struct {
	requestID  string
	payload    []byte
	retryCount int
	attemptNo  int
	async      bool
	creds      Credentials

	// Guarded by Runtime.mu.
	inst     *instance // assigned instance; nil while queued
	cold     bool      // assigned to an instance that was still starting
	fetched  bool      // the instance has it (GET /next answered)
	start    time.Time // when fetched
	timer    *time.Timer
	finished bool

	done   chan struct{}
	result *Result
	err    error
}

// pumpLocked hands queued attempts, oldest first, to instances with capacity, starting
// instances while fewer than MaxInstances processes run. It is called whenever capacity may
// have appeared: an attempt queued or finished, an instance gone.
func (r *Runtime) pumpLocked() {
	for len(r.queue) > 0 && !r.closed {
		a := r.queue[0]
		in := r.freeInstanceLocked()
		if in == nil {
			if r.running >= r.fn.MaxInstances {
				return
			}
			var err error
			in, err = r.startInstanceLocked(a.creds)
			if err != nil {
				r.queue = r.queue[1:]
				r.finishLocked(a, &Result{Error: startError(r.fn.Binary, err.Error())}, nil)
				continue
			}
		}
		r.queue = r.queue[1:]
		in.load++
		in.idleGen++
		a.inst = in
		a.cold = !in.ready
		in.assigned <- a // never blocks: load, which counts what is in the channel, is at most its capacity
	}
}

// freeInstanceLocked returns a live instance with spare capacity, preferring warm ones (those
// that have asked for work) to those still starting.
func (r *Runtime) freeInstanceLocked() *instance {
	var starting *instance
	for _, in := range r.live {
		if in.load >= r.fn.InstanceConcurrency {
			continue
		}
		if in.ready {
			return in
		}
		if starting == nil {
			starting = in
		}
	}
	return starting
}

// finishLocked ends an attempt: with a result (recorded in the history) or with a platform
// error (not recorded: the function never ran). It does not pump; callers do, after freeing
// capacity.
func (r *Runtime) finishLocked(a *attempt, res *Result, err error) {
	if a.finished {
		return
	}
	a.finished = true
	if a.timer != nil {
		a.timer.Stop()
	}
	in := a.inst
	if in != nil {
		in.load--
		if in.inflight[a.requestID] == a {
			delete(in.inflight, a.requestID)
		}
		r.idleLocked(in)
	}
	if res != nil {
		res.RequestID = a.requestID
		if res.Error != nil && res.Payload == nil {
			res.Payload = res.Error.body()
		}
		res.ColdStart = a.cold
		if in != nil {
			res.Instance = in.id
		}
		if a.fetched {
			res.Duration = time.Since(a.start)
		}
		r.history = append(r.history, Invocation{
			RequestID:  a.requestID,
			Async:      a.async,
			Attempt:    a.attemptNo,
			RetryCount: a.retryCount,
			Instance:   res.Instance,
			ColdStart:  a.cold,
			Start:      a.start,
			Duration:   res.Duration,
			Error:      res.Error,
		})
	}
	a.result, a.err = res, err
	close(a.done)
}

// orphanLocked deals with an attempt assigned to an instance that died before running it. It
// never ran, so it goes back to the front of the queue, unless the instance never became
// ready: then the start failed and so does the attempt, as on FC (and so a binary that cannot
// start does not loop).
func (r *Runtime) orphanLocked(in *instance, a *attempt) {
	switch {
	case a.finished:
	case r.closed:
		r.finishLocked(a, nil, ErrClosed)
	case !in.ready:
		r.finishLocked(a, &Result{Error: startError(r.fn.Binary, in.exitReason)}, nil)
	default:
		a.inst, a.cold = nil, false
		r.queue = slices.Insert(r.queue, 0, a)
	}
}

// onTimeout fails an attempt that ran past the function's timeout and kills its instance, as
// FC does.
func (r *Runtime) onTimeout(a *attempt) {
	r.mu.Lock()
	if a.finished || a.inst == nil {
		r.mu.Unlock()
		return
	}
	in := a.inst
	r.mu.Unlock()

	in.samplePeak()

	r.mu.Lock()
	if a.finished {
		r.mu.Unlock()
		return
	}
	in.dying = true
	if in.exitReason == "" {
		in.exitReason = "timeout"
	}
	r.live = slices.DeleteFunc(r.live, func(x *instance) bool { return x == in })
	r.finishLocked(a, &Result{Error: timeoutError(r.fn.Timeout, in.peak.Load())}, nil)
	r.pumpLocked()
	r.mu.Unlock()

	in.kill()
}
