// Package handler turns one Function Compute invocation into results: it decodes the payload,
// plans each event (what it asks, what its channel may ask, what Auto Scaling confirms of a
// lifecycle claim), runs the engine, and concludes: the response, one log line per result,
// the dead letters, and the lifecycle actions completed or extended.
package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// Handler handles invocations. Make one per process with New and share it: it is safe for
// concurrent use, and it keeps what is worth keeping between invocations (instance types,
// how long attaches and detaches take, which ENIs this process is attaching).
type Handler struct {
	opts   Options
	clock  clock.Clock
	conn   cloud.Connector
	log    *slog.Logger
	engine *engine.Engine
}

// New returns a Handler that reaches the cloud through conn.
func New(opts Options, conn cloud.Connector) (*Handler, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("handler: invalid options: %w", err)
	}
	if conn == nil {
		return nil, errors.New("handler: nil Connector")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	return &Handler{
		opts:   opts,
		clock:  opts.Clock,
		conn:   conn,
		log:    log,
		engine: engine.New(opts.engineConfig(log)),
	}, nil
}

// Invocation is what the platform says about one invocation.
type Invocation struct {
	RequestID    string
	FunctionName string
	Region       string
	AccountID    string
	Credentials  cloud.Credentials
	// RetryCount is how many times the platform already retried this event.
	RetryCount int
}

// InvocationError is returned when the platform must keep the event: a transient failure
// it should retry, or a dead letter that could not be sent.
type InvocationError struct {
	Retry  []string // "instance: reason" of events to retry
	Failed []string // events whose dead letter could not be sent
}

// Error lists the events to retry and the dead letters not sent.
func (e *InvocationError) Error() string {
	var parts []string
	if len(e.Retry) > 0 {
		parts = append(parts, fmt.Sprintf("%d event(s) to retry: %s", len(e.Retry), strings.Join(e.Retry, "; ")))
	}
	if len(e.Failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d dead letter(s) not sent: %s", len(e.Failed), strings.Join(e.Failed, "; ")))
	}
	return "enipool: " + strings.Join(parts, "; ")
}

// op is what an event asks for.
type op int

const (
	opDecided op = iota // its outcome was decided while planning
	opAttach            // give the instance its pool ENIs
	opRelease           // send the instance's pool ENIs back to the pool
	opAction            // an ad hoc operation
)

// item is one decoded event (or one instance of an event naming several) and its end.
type item struct {
	req    event.Request
	op     op
	region string
	check  engine.Check // what ECS must say of the instance before a release
	// res is the item's result, its outcome included: planning, the engine's result
	// (settle) and conclude write it, and nothing else holds an outcome.
	res Result
	err error // the error behind a non-success outcome
	// tried and vpc are what the engine's work tells a dead letter.
	tried []string
	vpc   string
	// held marks an event that already sits in the dead-letter queue (a redrive): it is
	// never dead-lettered again; it stays where it is until it succeeds.
	held    bool
	message string // the dead letter's message id, when held
	// reportOnly marks what a reconcile found and could not fix: reported and logged, not
	// dead-lettered (the next reconcile meets it again; its own event was dead-lettered).
	reportOnly bool
	// beatErr is a failed heartbeat of the item's lifecycle action before the work.
	beatErr error
	// proof is what Auto Scaling said of the item's lifecycle claim (verifyLifecycles).
	proof proof
}

// Invoke handles one invocation's payload. It returns one result per event. The error is
// non-nil only when the platform must keep the event (see InvocationError).
func (h *Handler) Invoke(ctx context.Context, inv Invocation, payload []byte) (*Response, error) {
	start := h.clock.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = clock.Deadline(ctx, h.clock, h.opts.DefaultTimeout)
		defer cancel()
	}
	var calls atomic.Int64
	ctx = cloud.WithCallObserver(ctx, func(cloud.Call) { calls.Add(1) })
	ctx = withBudget(ctx, h.opts.MaxCalls)
	deadline, _ := ctx.Deadline()
	work, cancelWork := context.WithDeadline(ctx, deadline.Add(-h.opts.DeadLetterReserve))
	defer cancelWork()

	// Dead letters and lifecycle completions go out in the reserve, and give up a little
	// before the platform's own deadline, so the invocation can still return its error
	// instead of being killed.
	final, cancelFinal := context.WithDeadline(ctx, deadline.Add(-min(500*time.Millisecond, h.opts.DeadLetterReserve/2)))
	defer cancelFinal()

	resp := &Response{RequestID: inv.RequestID}
	items := h.newItems(event.Decode(payload, event.Options{}))
	items = h.process(work, final, inv, items, resp)
	h.conclude(final, inv, items, start)

	var ierr InvocationError
	resp.Results = make([]Result, len(items))
	for i, it := range items {
		resp.Results[i] = it.res
		switch it.res.Outcome {
		case engine.OutcomeRetry:
			ierr.Retry = append(ierr.Retry, it.res.InstanceID+": "+it.res.Reason)
		case engine.OutcomeFailed:
			ierr.Failed = append(ierr.Failed, it.res.InstanceID+": "+it.res.Reason)
		}
		h.logResult(inv, it.res)
	}
	resp.APICalls = int(calls.Load())
	resp.DurationMs = h.clock.Now().Sub(start).Milliseconds()
	if len(ierr.Retry)+len(ierr.Failed) > 0 {
		return resp, &ierr
	}
	return resp, nil
}

// newItems makes an item per request. A dead letter names the one instance it is about: of an
// event naming several (a lifecycle hook), its redrive acts on that instance only.
func (h *Handler) newItems(reqs []event.Request) []*item {
	items := make([]*item, 0, len(reqs))
	for _, r := range reqs {
		if rd := r.Redrive; rd != nil && rd.InstanceID != "" && r.InstanceID != "" && r.InstanceID != rd.InstanceID {
			continue
		}
		items = append(items, &item{req: r, res: Result{InstanceID: r.InstanceID, Source: r.Source, EventID: r.EventID}})
	}
	if len(items) == 0 && len(reqs) > 0 { // the letter's instance is not in its event: keep it all
		for _, r := range reqs {
			items = append(items, &item{req: r, res: Result{InstanceID: r.InstanceID, Source: r.Source, EventID: r.EventID}})
		}
	}
	return items
}

// process does what the items ask, and returns them with any items the work added
// (lifecycle completions, instances a reconcile acted on, redriven events). The work runs
// under ctx; lifecycle actions are completed (or kept alive) under finish, which lasts into
// the reserve at the end of the invocation: the work may have used all of ctx, and an action
// left neither completed nor extended would time out on Auto Scaling's default result.
func (h *Handler) process(ctx, finish context.Context, inv Invocation, items []*item, resp *Response) []*item {
	var actions []*item
	for _, it := range items {
		h.plan(it, inv)
		if it.op == opAction {
			actions = append(actions, it)
		}
	}
	items = h.runEvents(ctx, finish, inv, items)
	for _, it := range h.oneAction(actions) {
		// Calls are reported from the action's concurrent attach goroutines.
		var calls atomic.Int64
		actx := cloud.WithCallObserver(ctx, func(cloud.Call) { calls.Add(1) })
		items = append(items, h.runAction(actx, finish, inv, it, resp)...)
		if it.res.APICalls == 0 {
			// An action the engine settled (detach) carries the engine's count of its
			// calls; the others count every call they made.
			it.res.APICalls = int(calls.Load())
		}
	}
	return items
}

// plan decides what an event needs, settling right away what needs no cloud call, and what
// its channel may not ask for (see authorise).
func (h *Handler) plan(it *item, inv Invocation) {
	r := it.req
	if r.Err != nil {
		code := cloud.CodeBadEvent
		if errors.Is(r.Err, event.ErrUnsupported) {
			code = cloud.CodeUnsupported
		}
		h.decide(it, engine.OutcomeDeadLettered, &cloud.Problem{Code: code, Msg: "cannot handle the payload", Err: r.Err})
		return
	}
	it.region = firstNonEmpty(inv.Region, h.opts.Region, r.Region)
	switch r.Kind {
	case event.KindLifecycleTest:
		h.decide(it, engine.OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "lifecycle hook test event acknowledged"))
		return
	case event.KindECSStateChange, event.KindECSNotification:
		switch {
		case r.State == "Running":
			it.op = opAttach
		case slices.Contains(h.opts.ReleaseOn, r.State):
			it.op, it.check = opRelease, engine.Check(r.State)
		default:
			h.decide(it, engine.OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s is %s: nothing to do", r.InstanceID, r.State))
			return
		}
	case event.KindDirect:
		it.op = opAttach
	case event.KindLifecycle:
		it.op = opAttach
		if r.Lifecycle.Transition == event.TransitionScaleIn {
			it.op = opRelease
		}
	case event.KindAction:
		it.op = opAction
	default:
		h.decide(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeUnsupported, "event kind %q is not handled", r.Kind))
		return
	}
	if it.region == "" {
		it.op = opDecided
		h.decide(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeBadEvent, "no region: the event names none and ENIPOOL_REGION is unset"))
		return
	}
	h.authorise(it, inv)
}

func (h *Handler) decide(it *item, o engine.Outcome, err error) {
	it.res.Outcome, it.err = o, err
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
