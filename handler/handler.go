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

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/event"
)

// Handler handles invocations. Make one per process with New and share it: it is safe for
// concurrent use, and it keeps what is worth keeping between invocations (instance types,
// how long attaches and detaches take, which ENIs this process is attaching).
type Handler struct {
	opts       Options
	conn       Connector
	log        *slog.Logger
	types      *typeCache
	claims     *claims
	attachTime *estimator
	detachTime *estimator
	attachPace *limiter
}

// New returns a Handler that reaches the cloud through conn.
func New(opts Options, conn Connector) (*Handler, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("handler: invalid options: %w", err)
	}
	if conn == nil {
		return nil, errors.New("handler: nil Connector")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	return &Handler{
		opts:       opts,
		conn:       conn,
		log:        log,
		types:      &typeCache{m: map[string]InstanceType{}},
		claims:     newClaims(time.Minute, opts.Now),
		attachTime: newEstimator(opts.AttachTime),
		detachTime: newEstimator(opts.DetachTime),
		attachPace: newLimiter(opts.AttachQPS, opts.Now),
	}, nil
}

// Invocation is what the platform says about one invocation.
type Invocation struct {
	RequestID    string
	FunctionName string
	Region       string
	AccountID    string
	Credentials  Credentials
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
	check  string // opRelease from a state event: release only if the instance is in this state (or gone)
	target *target
	rel    *release
	res    Result
	err    error // the error behind a non-success outcome
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
	start := h.opts.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.opts.DefaultTimeout)
		defer cancel()
	}
	var calls atomic.Int64
	ctx = WithCallObserver(ctx, func(Call) { calls.Add(1) })
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
		case OutcomeRetry:
			ierr.Retry = append(ierr.Retry, it.res.InstanceID+": "+it.res.Reason)
		case OutcomeFailed:
			ierr.Failed = append(ierr.Failed, it.res.InstanceID+": "+it.res.Reason)
		}
		h.logResult(inv, it.res)
	}
	resp.APICalls = int(calls.Load())
	resp.DurationMs = h.opts.Now().Sub(start).Milliseconds()
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
	byRegion := map[string][]*item{}
	var actions []*item
	for _, it := range items {
		h.plan(it, inv)
		switch it.op {
		case opAttach, opRelease:
			byRegion[it.region] = append(byRegion[it.region], it)
		case opAction:
			actions = append(actions, it)
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
	items = append(items, h.completeLifecycles(finish, inv, items)...)
	for _, it := range h.oneAction(actions) {
		// Calls are reported from the action's concurrent attach goroutines.
		var calls atomic.Int64
		actx := WithCallObserver(ctx, func(Call) { calls.Add(1) })
		items = append(items, h.runAction(actx, finish, inv, it, resp)...)
		it.res.APICalls += int(calls.Load())
	}
	return items
}

// plan decides what an event needs, settling right away what needs no cloud call, and what
// its channel may not ask for (see authorise).
func (h *Handler) plan(it *item, inv Invocation) {
	r := it.req
	if r.Err != nil {
		code := CodeBadEvent
		if errors.Is(r.Err, event.ErrUnsupported) {
			code = CodeUnsupported
		}
		h.decide(it, OutcomeDeadLettered, &Problem{Code: code, Msg: "cannot handle the payload", Err: r.Err})
		return
	}
	it.region = firstNonEmpty(inv.Region, h.opts.Region, r.Region)
	switch r.Kind {
	case event.KindLifecycleTest:
		h.decide(it, OutcomeSkipped, problem(CodeStaleEvent, "lifecycle hook test event acknowledged"))
		return
	case event.KindECSStateChange, event.KindECSNotification:
		switch {
		case r.State == "Running":
			it.op = opAttach
		case slices.Contains(h.opts.ReleaseOn, r.State):
			it.op, it.check = opRelease, r.State
		default:
			h.decide(it, OutcomeSkipped, problem(CodeStaleEvent, "instance %s is %s: nothing to do", r.InstanceID, r.State))
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
		h.decide(it, OutcomeDeadLettered, problem(CodeUnsupported, "event kind %q is not handled", r.Kind))
		return
	}
	if it.region == "" {
		it.op = opDecided
		h.decide(it, OutcomeDeadLettered, problem(CodeBadEvent, "no region: the event names none and ENIPOOL_REGION is unset"))
		return
	}
	h.authorise(it, inv)
}

func (h *Handler) decide(it *item, o Outcome, err error) {
	it.res.Outcome, it.err = o, err
}

// runRegion does the attaches and releases of one region: attaches first, then releases,
// each checking the instance's current state, so out-of-order events settle on what the
// instance is now.
func (h *Handler) runRegion(ctx context.Context, inv Invocation, region string, items []*item) {
	clients, err := h.connect(ctx, inv, region)
	if err != nil {
		for _, it := range items {
			h.decide(it, OutcomeRetry, &Problem{Code: CodeTransport, Msg: "cannot connect to region " + region, Err: err})
			it.op = opDecided
		}
		return
	}
	h.verifyLifecycles(ctx, clients.Lifecycle, items)
	h.heartbeatRetries(ctx, inv, clients, items)
	byID := map[string]*target{}
	var ts []*target
	rels := map[string]*release{}
	var rs []*release
	for _, it := range items {
		switch it.op {
		case opAttach:
			t, ok := byID[it.req.InstanceID]
			if !ok {
				direct := it.req.Kind != event.KindECSStateChange && it.req.Kind != event.KindECSNotification
				t = newTarget(it.req.InstanceID, it.req.ENIID, direct)
				byID[t.id] = t
				ts = append(ts, t)
			}
			it.target = t
		case opRelease:
			key := it.req.InstanceID + "|" + it.check
			r, ok := rels[key]
			if !ok {
				r = &release{id: it.req.InstanceID, check: it.check}
				rels[key] = r
				rs = append(rs, r)
			}
			if it.req.Time.After(r.since) {
				r.since = it.req.Time
			}
			it.rel = r
		}
	}
	if len(ts) > 0 {
		(&engine{h: h, ecs: clients.ECS, account: inv.AccountID, targets: ts}).run(ctx)
	}
	if len(rs) > 0 {
		h.releaseAll(ctx, clients.ECS, rs)
	}
}

func newTarget(id, hint string, allowStopped bool) *target {
	return &target{id: id, hint: hint, allowStopped: allowStopped,
		tried: map[string]bool{}, pending: map[string]time.Time{}, polled: map[string]bool{}, ours: map[string]bool{}, uncertain: map[string]bool{},
		contested: map[string]time.Time{},
		retry:     backoff{base: 200 * time.Millisecond, max: 3 * time.Second}}
}

// conclude turns transient failures the platform will not retry into dead letters, sends
// the dead letters, and fills every result.
func (h *Handler) conclude(ctx context.Context, inv Invocation, items []*item, start time.Time) {
	single := singleEvent(items)
	for _, it := range items {
		h.fill(it, start)
		if it.reportOnly && (it.res.Outcome == OutcomeRetry || it.res.Outcome == OutcomeDeadLettered) {
			it.res.Outcome = OutcomeUnresolved
			continue
		}
		if it.held {
			if it.res.Outcome == OutcomeRetry || it.res.Outcome == OutcomeDeadLettered {
				it.res.Outcome, it.res.DeadLetterID = OutcomeDeadLettered, it.message
				it.res.Reason = "kept in the dead-letter queue: " + it.res.Reason
			}
			continue
		}
		if it.res.Outcome == OutcomeRetry && !(single && inv.RetryCount < h.opts.PlatformRetries) {
			// The platform will not retry this one (part of a batch, or its retries are
			// spent): dead-letter it with its own reason, so nothing is lost.
			it.res.Outcome = OutcomeDeadLettered
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

// fill copies the end of an item's work into its result.
func (h *Handler) fill(it *item, start time.Time) {
	res := &it.res
	if res.DurationMs == 0 {
		res.DurationMs = h.opts.Now().Sub(start).Milliseconds()
	}
	if t := it.target; t != nil {
		res.Outcome, it.err = t.outcome, t.err
		res.Attempts, res.APICalls, res.RequestIDs = t.attempts, t.calls, t.requestIDs
		res.Pool, res.Detached = t.pool, t.dropped
		if t.inst != nil {
			res.Zone = t.inst.Zone
		}
		res.ENIs = nil
		for _, k := range t.kept {
			res.ENIs = append(res.ENIs, ENIRef{ID: k.ID, PrivateIP: k.PrivateIP})
		}
	}
	if r := it.rel; r != nil {
		res.Outcome, it.err = r.outcome, r.err
		res.Attempts, res.APICalls, res.Detached, res.Zone, res.Pool = r.attempts, r.calls, r.detached, r.zone, r.pool
	}
	if len(res.ENIs) > 0 {
		res.NetworkInterfaceID, res.PrivateIP = res.ENIs[0].ID, res.ENIs[0].PrivateIP
		if len(res.ENIs) == 1 {
			res.ENIs = nil
		}
	}
	if it.err != nil {
		action, rule := Classify(it.err)
		res.Code, res.Action = rule.Code, action
		if code, _ := codeOf(it.err); code != "" {
			res.Code = code
		}
		res.Reason = reason(it.err, rule)
	}
}

// reason is the human sentence for an outcome: what happened, then what to do.
func reason(err error, rule Rule) string {
	var p *Problem
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
		if it.res.Outcome == OutcomeDeadLettered && !it.held {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return
	}
	letters := h.letters(inv, todo)
	fail := func(l *letter, why string) {
		for _, it := range l.items {
			it.res.Outcome = OutcomeFailed
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

func (h *Handler) sendDeadLetter(ctx context.Context, dlq DeadLetters, env *deadletter.Envelope) (string, error) {
	body, err := deadletter.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("encode envelope: %w", err)
	}
	var id string
	err = retry(ctx, func(ctx context.Context) (err error) {
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
		Action:            string(res.Action),
		InstanceID:        res.InstanceID,
		Region:            firstNonEmpty(it.region, inv.Region, h.opts.Region),
		Pool:              res.Pool,
		Zone:              res.Zone,
		Attempts:          res.Attempts,
		ENIsTried:         []string{},
		FunctionName:      inv.FunctionName,
		FunctionRequestID: inv.RequestID,
		FCRetryCount:      inv.RetryCount,
		Time:              h.opts.Now().UTC(),
		Source:            r.Source, // the carrier it really came on, never what a letter inside claims
		Channel:           string(r.Channel),
		EventID:           r.EventID,
		Event:             r.Raw,
	}
	if t := it.target; t != nil {
		if t.inst != nil {
			env.VPCID = t.inst.VpcID
		}
		tried := map[string]bool{}
		for id := range t.tried {
			tried[id] = true
		}
		for id := range t.ours {
			tried[id] = true
		}
		for id := range tried {
			env.ENIsTried = append(env.ENIsTried, id)
		}
		sort.Strings(env.ENIsTried)
	}
	if rd := r.Redrive; rd != nil {
		env.RedriveCount = rd.RedriveCount
		env.EventID = firstNonEmpty(rd.EnvelopeEventID, env.EventID)
	}
	// The result's code is the one the error table decided on; the API error behind it, if
	// any, adds where it came from.
	env.Error = &deadletter.Error{Code: res.Code, Message: res.Reason}
	var ae *APIError
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
	case OutcomeDeadLettered, OutcomeRetry, OutcomeUnresolved:
		level = slog.LevelWarn
	case OutcomeFailed:
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

// typeCache keeps instance types for the life of the process: they do not change. Lookups of
// the same type at the same time share one call, so a burst of first invocations does not
// ask ECS for the same type over and over.
type typeCache struct {
	mu       sync.Mutex
	m        map[string]InstanceType
	inflight map[string]chan struct{}
}

func (c *typeCache) get(id string) (InstanceType, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[id]
	return t, ok
}

// lookup makes sure the types are cached, calling fetch for those no one is fetching yet and
// waiting for the others.
func (c *typeCache) lookup(ctx context.Context, ids []string, fetch func(context.Context, []string) ([]InstanceType, error)) error {
	c.mu.Lock()
	if c.inflight == nil {
		c.inflight = map[string]chan struct{}{}
	}
	var mine []string
	var wait []chan struct{}
	for _, id := range ids {
		if _, ok := c.m[id]; ok {
			continue
		}
		if ch, ok := c.inflight[id]; ok {
			wait = append(wait, ch)
			continue
		}
		c.inflight[id] = make(chan struct{})
		mine = append(mine, id)
	}
	c.mu.Unlock()

	var err error
	if len(mine) > 0 {
		var got []InstanceType
		got, err = fetch(ctx, mine)
		c.mu.Lock()
		for _, t := range got {
			c.m[t.ID] = t
		}
		for _, id := range mine {
			close(c.inflight[id])
			delete(c.inflight, id)
		}
		c.mu.Unlock()
	}
	for _, ch := range wait {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}
