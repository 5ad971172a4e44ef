package fcrt

import (
	"encoding/json"
	"slices"
	"time"
)

// Conditions of a destination record (requestContext.condition). FC's documentation shows the
// field with the example value "FunctionResourceExhausted" but does not list its values; these
// are AWS Lambda's, which FC's record mirrors.
const (
	ConditionSuccess          = "Success"
	ConditionRetriesExhausted = "RetriesExhausted"
	ConditionEventAgeExceeded = "EventAgeExceeded"
)

// Statuses of an AsyncTask: the names FC gives the states of an asynchronous task
// (API 2023-03-30, struct AsyncTask / AsyncTaskEvent).
const (
	StatusEnqueued  = "Enqueued"
	StatusRunning   = "Running"
	StatusRetrying  = "Retrying"
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
	StatusExpired   = "Expired" // older than MaxEventAge: not run again
	StatusStopped   = "Stopped" // the Runtime closed first
)

// Destination statuses of an AsyncTask.
const (
	DestinationNone       = ""           // none configured for the outcome, or not there yet
	DestinationDelivering = "Delivering" // delivering, or waiting to retry a failed delivery
	DestinationSucceeded  = "Succeeded"
	DestinationFailed     = "Failed" // the Runtime closed before a delivery succeeded
)

// Targets of a Delivery.
const (
	TargetOnSuccess = "onSuccess"
	TargetOnFailure = "onFailure"
)

// DestinationRecord is the JSON document FC sends to an asynchronous invocation's destination.
//
// Sources. Alibaba Cloud, Function Compute, "Result callback" / "异步调用目标的事件内容"
// (https://www.alibabacloud.com/help/zh/doc-detail/181866.htm,
// https://www.alibabacloud.com/help/en/fc/user-guide/result-callback) shows:
//
//	{"timestamp": "2020-08-20T12:00:00.000Z",
//	 "requestContext": {"requestId": "xxx",
//	                    "functionArn": "acs:fc:::services/{serviceName}/functions/{functionName}",
//	                    "condition": "FunctionResourceExhausted", ...
//
// and a copy of that page (China Telecom's FC, ctyun.cn/document/10006234/10534167) completes it
// with requestContext.approximateInvokeCount ("the number of times the asynchronous invocation
// ran"), "requestPayload": "", "responseContext": {"statusCode": 200}, "responsePayload": "".
// The field names below are those. Where the documents are silent this package follows AWS
// Lambda's invocation record, which FC's mirrors
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html): the condition values,
// responseContext.functionError set when the function failed (here FC's error type,
// UnhandledInvocationError), and the timestamp taken when the record is made. The payloads are
// strings, as in FC's example (and so any payload, JSON or not, survives); the function ARN has
// FC 3.0's form, acs:fc:{region}:{accountId}:functions/{name}.
type DestinationRecord struct {
	Timestamp       string          `json:"timestamp"`
	RequestContext  RequestContext  `json:"requestContext"`
	RequestPayload  string          `json:"requestPayload"`
	ResponseContext ResponseContext `json:"responseContext"`
	ResponsePayload string          `json:"responsePayload"`
}

// RequestContext is DestinationRecord.requestContext.
type RequestContext struct {
	RequestID   string `json:"requestId"`
	FunctionArn string `json:"functionArn"`
	Condition   string `json:"condition"`
	// ApproximateInvokeCount is how many times the function ran for the event (0 when the
	// event expired before it ever ran).
	ApproximateInvokeCount int `json:"approximateInvokeCount"`
}

// ResponseContext is DestinationRecord.responseContext.
type ResponseContext struct {
	// StatusCode is FC's: 200 whenever the function ran, failed or not. Absent if it never ran.
	StatusCode    int    `json:"statusCode,omitempty"`
	FunctionError string `json:"functionError,omitempty"`
}

// Delivery is one try at delivering a destination record.
type Delivery struct {
	Target  string // TargetOnSuccess or TargetOnFailure
	Attempt int    // 1 for the first try
	Time    time.Time
	Body    []byte
	Err     error // nil when the destination took it
}

// AsyncTask is an asynchronous invocation, as FC's asynchronous task API shows one.
type AsyncTask struct {
	RequestID           string
	Payload             []byte
	Enqueued            time.Time
	Status              string // StatusEnqueued, StatusRunning, ...
	AlreadyRetriedTimes int
	// Condition is the destination record's condition once the invocation ended.
	Condition         string
	DestinationStatus string // DestinationNone, DestinationDelivering, ...
	Deliveries        []Delivery
}

// task is the runtime's state of an AsyncTask. Fields after payload are guarded by Runtime.mu.
type task struct {
	id       string
	payload  []byte
	enqueued time.Time

	status     string
	retried    int
	condition  string
	destStatus string
	deliveries []Delivery
	final      bool // settled: run, and delivered where a destination is configured
	noDest     bool // AsyncOptions.NoDestinations
}

func (t *task) settled() bool { return t.final }

// AsyncOptions qualify one asynchronous invocation.
type AsyncOptions struct {
	// NoDestinations skips the onSuccess and onFailure destinations for this invocation while
	// keeping the retries and the event age: what a trigger whose invocations the
	// destinations do not cover needs (see package trigger on timer triggers).
	NoDestinations bool
}

// InvokeAsync queues payload for an asynchronous invocation, like InvokeFunction with
// x-fc-invocation-type: Async, and returns its request id. What happens next (attempts,
// retries, the destination record) is visible through AsyncTasks, Invocations and the
// destinations; Wait returns once it has all happened. After Close the task is recorded as
// StatusStopped and never runs.
func (r *Runtime) InvokeAsync(payload []byte) string {
	return r.InvokeAsyncWith(payload, AsyncOptions{})
}

// InvokeAsyncWith is InvokeAsync with per-invocation options.
func (r *Runtime) InvokeAsyncWith(payload []byte, o AsyncOptions) string {
	t := &task{
		id:       newRequestID(),
		payload:  slices.Clone(payload),
		enqueued: r.clock(),
		status:   StatusEnqueued,
		noDest:   o.NoDestinations,
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks = append(r.tasks, t)
	if r.closed {
		t.status = StatusStopped
		return t.id
	}
	if r.pending == 0 {
		r.idle = make(chan struct{})
	}
	r.pending++
	r.wg.Add(1)
	go r.runTask(t)
	return t.id
}

// AsyncTasks returns every asynchronous invocation, in the order they were made.
func (r *Runtime) AsyncTasks() []AsyncTask {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AsyncTask, 0, len(r.tasks))
	for _, t := range r.tasks {
		out = append(out, AsyncTask{
			RequestID:           t.id,
			Payload:             t.payload,
			Enqueued:            t.enqueued,
			Status:              t.status,
			AlreadyRetriedTimes: t.retried,
			Condition:           t.condition,
			DestinationStatus:   t.destStatus,
			Deliveries:          slices.Clone(t.deliveries),
		})
	}
	return out
}

// update runs f, which changes a task, under the lock.
func (r *Runtime) update(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// runTask runs an asynchronous invocation to its end: attempts, retries, then the destination.
func (r *Runtime) runTask(t *task) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pending--
		if r.pending == 0 {
			close(r.idle)
		}
	}()
	cfg := r.fn.Async
	stopped := func() { r.update(func() { t.status = StatusStopped }) }

	var last *Result
	invoked := 0
	var condition string
	for retry := 0; ; retry++ {
		if r.clock().Sub(t.enqueued) > cfg.MaxEventAge {
			condition = ConditionEventAgeExceeded
			break
		}
		r.update(func() { t.status, t.retried = StatusRunning, retry })
		res, err := r.attemptAsync(t, retry)
		if err != nil {
			if r.isClosed() {
				stopped()
				return
			}
			// No credentials for the attempt: a system error, counted and retried as FC
			// retries system errors.
			fe := &FunctionError{ErrorMessage: err.Error(), Cause: CauseSystem}
			res = &Result{RequestID: t.id, Error: fe, Payload: fe.body()}
		}
		invoked++
		last = res
		if res.Error == nil {
			condition = ConditionSuccess
			break
		}
		if retry >= cfg.MaxRetryAttempts {
			condition = ConditionRetriesExhausted
			break
		}
		r.update(func() { t.status = StatusRetrying })
		if !r.sleep(cfg.Backoff(retry + 1)) {
			stopped()
			return
		}
	}

	target, dest := TargetOnFailure, cfg.OnFailure
	status := StatusFailed
	switch condition {
	case ConditionSuccess:
		target, dest, status = TargetOnSuccess, cfg.OnSuccess, StatusSucceeded
	case ConditionEventAgeExceeded:
		status = StatusExpired
	}
	r.update(func() { t.status, t.condition = status, condition })
	if dest == nil || t.noDest {
		r.update(func() { t.final = true })
		return
	}

	body := r.record(t, condition, invoked, last)
	r.update(func() { t.destStatus = DestinationDelivering })
	for n := 1; ; n++ {
		err := dest.Deliver(r.ctx, body)
		r.update(func() {
			t.deliveries = append(t.deliveries, Delivery{Target: target, Attempt: n, Time: time.Now(), Body: body, Err: err})
			if err == nil {
				t.destStatus, t.final = DestinationSucceeded, true
			}
		})
		if err == nil {
			return
		}
		if !r.sleep(cfg.Backoff(n)) {
			r.update(func() { t.destStatus = DestinationFailed })
			return
		}
	}
}

// attemptAsync runs one attempt of t and waits for it.
func (r *Runtime) attemptAsync(t *task, retry int) (*Result, error) {
	a, err := r.submit(r.ctx, t.id, t.payload, retry, retry+1, true)
	if err != nil {
		return nil, err
	}
	select {
	case <-a.done:
		return a.result, a.err
	case <-r.stop:
		return nil, ErrClosed
	}
}

// record builds the destination record for t's outcome.
func (r *Runtime) record(t *task, condition string, invoked int, last *Result) []byte {
	rec := DestinationRecord{
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: RequestContext{
			RequestID:              t.id,
			FunctionArn:            r.arn,
			Condition:              condition,
			ApproximateInvokeCount: invoked,
		},
		RequestPayload: string(t.payload),
	}
	if last != nil {
		rec.ResponseContext.StatusCode = 200
		if last.Error != nil {
			rec.ResponseContext.FunctionError = UnhandledInvocationError
		}
		rec.ResponsePayload = string(last.Payload)
	}
	b, _ := json.Marshal(rec) // strings and numbers only: it cannot fail
	return b
}
