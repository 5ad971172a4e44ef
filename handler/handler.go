package handler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
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
		it.res.APICalls += int(calls.Load())
	}
	return items
}

// runEvents does the attaches and releases of planned items, region by region, then
// completes their lifecycle actions; it returns the items with one item per completion.
// Actions are not its business: process runs them, and redrive, which runs the letters of
// the dead-letter queue through here, never runs one.
func (h *Handler) runEvents(ctx, finish context.Context, inv Invocation, items []*item) []*item {
	byRegion := map[string][]*item{}
	for _, it := range items {
		if it.op == opAttach || it.op == opRelease {
			byRegion[it.region] = append(byRegion[it.region], it)
		}
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions) // one in practice: authorise refuses every region but the function's own
	for _, region := range regions {
		h.runRegion(ctx, inv, region, byRegion[region])
	}
	return append(items, h.completeLifecycles(finish, inv, items)...)
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

// runRegion does the attaches and releases of one region: attaches first, then releases,
// each checking the instance's current state, so out-of-order events settle on what the
// instance is now.
func (h *Handler) runRegion(ctx context.Context, inv Invocation, region string, items []*item) {
	clients, err := h.connect(ctx, inv, region)
	if err != nil {
		for _, it := range items {
			h.decide(it, engine.OutcomeRetry, &cloud.Problem{Code: cloud.CodeTransport, Msg: "cannot connect to region " + region, Err: err})
			it.op = opDecided
		}
		return
	}
	h.verifyLifecycles(ctx, clients.Lifecycle, items)
	h.heartbeatRetries(ctx, inv, clients, items)
	// One attach per instance and one release per instance and check, whatever the number
	// of events asking: the engine's result settles every item that asked.
	var attaches []engine.AttachRequest
	attachers := map[string][]*item{}
	var releases []engine.ReleaseRequest
	releasers := map[engine.ReleaseRequest][]*item{}
	for _, it := range items {
		switch it.op {
		case opAttach:
			id := it.req.InstanceID
			if _, ok := attachers[id]; !ok {
				direct := it.req.Kind != event.KindECSStateChange && it.req.Kind != event.KindECSNotification
				attaches = append(attaches, engine.AttachRequest{InstanceID: id, ENIID: it.req.ENIID, AllowStopped: direct})
			}
			attachers[id] = append(attachers[id], it)
		case opRelease:
			q := engine.ReleaseRequest{InstanceID: it.req.InstanceID, Check: it.check}
			if _, ok := releasers[q]; !ok {
				releases = append(releases, q)
			}
			releasers[q] = append(releasers[q], it)
		}
	}
	if len(attaches) > 0 {
		for _, r := range h.engine.Attach(ctx, clients.ECS, inv.AccountID, attaches) {
			for _, it := range attachers[r.InstanceID] {
				settle(it, r)
			}
		}
	}
	if len(releases) > 0 {
		for i, r := range h.engine.Release(ctx, clients.ECS, releases) {
			for _, it := range releasers[releases[i]] {
				settle(it, r)
			}
		}
	}
}

// settle writes the engine's result for the item's instance into the item's result.
func settle(it *item, r engine.Result) {
	res := &it.res
	res.Outcome, it.err = r.Outcome, r.Err
	res.Attempts, res.APICalls, res.RequestIDs = r.Attempts, r.Calls, r.RequestIDs
	res.Pool, res.Zone, res.Detached = r.Pool, r.Zone, r.Detached
	res.ENIs = nil
	for _, k := range r.ENIs {
		res.ENIs = append(res.ENIs, ENIRef{ID: k.ID, PrivateIP: k.PrivateIP})
	}
	it.tried, it.vpc = r.Tried, r.VpcID
}

// conclude turns transient failures the platform will not retry into dead letters, sends
// the dead letters, and fills every result.
func (h *Handler) conclude(ctx context.Context, inv Invocation, items []*item, start time.Time) {
	single := singleEvent(items)
	for _, it := range items {
		h.fill(it, start)
		if it.reportOnly && (it.res.Outcome == engine.OutcomeRetry || it.res.Outcome == engine.OutcomeDeadLettered) {
			it.res.Outcome = engine.OutcomeUnresolved
			continue
		}
		if it.held {
			if it.res.Outcome == engine.OutcomeRetry || it.res.Outcome == engine.OutcomeDeadLettered {
				it.res.Outcome, it.res.DeadLetterID = engine.OutcomeDeadLettered, it.message
				it.res.Reason = "kept in the dead-letter queue: " + it.res.Reason
			}
			continue
		}
		if it.res.Outcome == engine.OutcomeRetry && !(single && inv.RetryCount < h.opts.PlatformRetries) {
			// The platform will not retry this one (part of a batch, or its retries are
			// spent): dead-letter it with its own reason, so nothing is lost.
			it.res.Outcome = engine.OutcomeDeadLettered
			it.res.Reason = "gave up retrying: " + it.res.Reason
		}
	}
	h.deadLetter(ctx, inv, items)
}

// singleEvent reports whether every item comes from one event that the platform retries
// with a retry count: then a transient failure can go back to the platform. Events from an
// MNS queue are not: the queue trigger invokes synchronously (no retry count to know the last
// attempt by) and its own dead-letter queue would get the raw event instead of an envelope,
// so their transient failures are dead-lettered at once, with action "retry".
func singleEvent(items []*item) bool {
	if len(items) == 0 || items[0].req.Channel == event.ChannelQueue {
		return false
	}
	for _, it := range items[1:] {
		if !bytes.Equal(it.req.Raw, items[0].req.Raw) {
			return false
		}
	}
	return true
}

// fill completes an item's result from its outcome: the ENI it names first, the code, the
// verdict and the reason.
func (h *Handler) fill(it *item, start time.Time) {
	res := &it.res
	if res.DurationMs == 0 {
		res.DurationMs = h.clock.Now().Sub(start).Milliseconds()
	}
	if len(res.ENIs) > 0 {
		res.NetworkInterfaceID, res.PrivateIP = res.ENIs[0].ID, res.ENIs[0].PrivateIP
		if len(res.ENIs) == 1 {
			res.ENIs = nil
		}
	}
	if it.err != nil {
		verdict, rule := cloud.Classify(it.err)
		res.Code, res.Verdict = rule.Code, verdict
		if code, _ := cloud.CodeOf(it.err); code != "" {
			res.Code = code
		}
		res.Reason = reason(it.err, rule)
	}
}

// reason is the human sentence for an outcome: what happened, then what to do.
func reason(err error, rule cloud.Rule) string {
	var p *cloud.Problem
	if errors.As(err, &p) {
		if p.Err == nil {
			return p.Msg
		}
		return p.Msg + ": " + p.Err.Error()
	}
	msg := err.Error()
	if rule.Meaning != "" {
		msg += ". " + rule.Meaning
	}
	return msg
}

// deadLetter sends the dead letters of the dead-lettered items (see letters). A send that
// fails leaves its events failed, so the invocation returns an error and the platform keeps
// them.
func (h *Handler) deadLetter(ctx context.Context, inv Invocation, items []*item) {
	var todo []*item
	for _, it := range items {
		if it.res.Outcome == engine.OutcomeDeadLettered && !it.held {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return
	}
	letters := h.letters(inv, todo)
	fail := func(l *letter, why string) {
		for _, it := range l.items {
			it.res.Outcome = engine.OutcomeFailed
			it.res.Reason += " (" + why + ")"
		}
	}
	clients, err := h.connect(ctx, inv, firstNonEmpty(inv.Region, h.opts.Region))
	if err != nil {
		for _, l := range letters {
			fail(l, "dead-letter queue unreachable: "+err.Error())
		}
		return
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, l := range letters {
		if i >= h.opts.MaxDeadLetters {
			// Folding left more carrier messages than letters allowed: the platform keeps
			// these (the invocation fails), none is lost.
			fail(l, fmt.Sprintf("not dead-lettered: the invocation's %d dead letters are sent", h.opts.MaxDeadLetters))
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, err := h.sendDeadLetter(ctx, clients.DeadLetters, l.env)
			if err != nil {
				fail(l, "dead letter not sent: "+err.Error())
				return
			}
			for _, it := range l.items {
				it.res.DeadLetterID = id
			}
		}()
	}
	wg.Wait()
}

func (h *Handler) sendDeadLetter(ctx context.Context, dlq cloud.DeadLetters, env *deadletter.Envelope) (string, error) {
	body, err := deadletter.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("encode envelope: %w", err)
	}
	var id string
	err = h.engine.Retry(ctx, func(ctx context.Context) (err error) {
		id, err = dlq.Send(ctx, body)
		return err
	})
	return id, err
}

// envelope builds the dead letter of an item: the original event verbatim and all that is
// needed to act on it or replay it.
func (h *Handler) envelope(inv Invocation, it *item) *deadletter.Envelope {
	r, res := it.req, it.res
	env := &deadletter.Envelope{
		Reason:            res.Reason,
		Verdict:           string(res.Verdict),
		InstanceID:        res.InstanceID,
		Region:            firstNonEmpty(it.region, inv.Region, h.opts.Region),
		Pool:              res.Pool,
		Zone:              res.Zone,
		Attempts:          res.Attempts,
		ENIsTried:         []string{},
		FunctionName:      inv.FunctionName,
		FunctionRequestID: inv.RequestID,
		FCRetryCount:      inv.RetryCount,
		Time:              h.clock.Now().UTC(),
		Source:            r.Source, // the carrier it really came on, never what a letter inside claims
		Channel:           string(r.Channel),
		EventID:           r.EventID,
		Event:             r.Raw,
	}
	if it.tried != nil {
		env.VPCID, env.ENIsTried = it.vpc, it.tried
	}
	if rd := r.Redrive; rd != nil {
		env.RedriveCount = rd.RedriveCount
		env.EventID = firstNonEmpty(rd.EnvelopeEventID, env.EventID)
	}
	// The result's code is the one the error table decided on; the API error behind it, if
	// any, adds where it came from.
	env.Error = &deadletter.Error{Code: res.Code, Message: res.Reason}
	var ae *cloud.APIError
	if errors.As(it.err, &ae) {
		env.Error.Service, env.Error.API, env.Error.HTTPStatus, env.Error.RequestID = ae.Service, ae.API, ae.HTTPStatus, ae.RequestID
		env.Error.Message = ae.Message
		if ae.Code == "" && ae.Err != nil {
			env.Error.Message = ae.Err.Error()
		}
	}
	return env
}

// logResult writes the one structured line of an outcome.
func (h *Handler) logResult(inv Invocation, res Result) {
	level := slog.LevelInfo
	switch res.Outcome {
	case engine.OutcomeDeadLettered, engine.OutcomeRetry, engine.OutcomeUnresolved:
		level = slog.LevelWarn
	case engine.OutcomeFailed:
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("outcome", string(res.Outcome)),
		slog.String("instanceId", res.InstanceID),
		slog.String("networkInterfaceId", res.NetworkInterfaceID),
		slog.String("privateIpAddress", res.PrivateIP),
		slog.String("pool", res.Pool),
		slog.String("zone", res.Zone),
		slog.String("code", res.Code),
		slog.String("reason", res.Reason),
		slog.Int("attempts", res.Attempts),
		slog.Int("apiCalls", res.APICalls),
		slog.Int64("durationMs", res.DurationMs),
		slog.String("fcRequestId", inv.RequestID),
		slog.Any("requestIds", res.RequestIDs),
		slog.String("source", res.Source),
		slog.String("eventId", res.EventID),
	}
	if res.DeadLetterID != "" {
		attrs = append(attrs, slog.String("deadLetterMessageId", res.DeadLetterID))
	}
	// Every pool ENI the instance holds at the end (networkInterfaceId is the first of them).
	if holds := res.holds(); len(holds) > 0 {
		attrs = append(attrs, slog.Any("holds", holds))
	}
	if len(res.Detached) > 0 {
		attrs = append(attrs, slog.Any("detached", res.Detached))
	}
	h.log.LogAttrs(context.Background(), level, "enipool."+string(res.Outcome), attrs...)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
