package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// defaultSeed is the soak's seed when ENIPOOL_SOAK_SEED is unset.
const defaultSeed = 1

// platformRetries is FC's asyncInvokeConfig.maxAsyncRetryAttempts for every function of the
// soak, and the function's ENIPOOL_PLATFORM_RETRIES: the two must agree (s.yaml's value).
const platformRetries = 2

// soakConfig sizes a soak.
type soakConfig struct {
	seed        uint64
	instances   int             // ECS instances, all launching during the run
	events      int             // asynchronous invocations, duplicates included
	pools       []string        // pool names; instances and ENIs are spread evenly over them
	poolENIs    int             // Available pool ENIs, all pools, over two zones
	untagged    float64         // share of instances without the pool tag
	perInstance int             // N
	launches    time.Duration   // launches spread over [0, launches)
	gap         time.Duration   // the unit of the gaps between stops and starts, and of event delays
	outageAt    time.Duration   // when the MNS outage starts
	outage      time.Duration   // how long it lasts
	timeouts    []time.Duration // one function per timeout: invocations get these deadlines
	perFunction int             // MaxInstances of each function
}

func newSoakConfig(t *testing.T) soakConfig {
	seed := uint64(defaultSeed)
	if s := os.Getenv("ENIPOOL_SOAK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ENIPOOL_SOAK_SEED=%q: want an unsigned integer", s)
		}
		seed = v
	}
	c := soakConfig{
		seed: seed, instances: 1000, events: 2000, poolENIs: 1100, untagged: 0.05, perInstance: 1,
		// Four pools of 275: the local cloud renders DescribeNetworkInterfaces under its
		// store lock (~80 µs per ENI under -race), and the function lists its whole pool
		// once per event, so one pool of 1100 (three pages) would make the emulator, not
		// the function, the bottleneck of the soak (~100 ms of store lock per event).
		pools:    []string{"web", "api", "db", "batch"},
		launches: 50 * time.Second, gap: time.Second, outageAt: 50 * time.Second, outage: 10 * time.Second,
		// Function timeouts, shortest first: the shortest leaves 1.5 s of work (barely an
		// attach), and its three attempts end inside the MNS outage; the longest rides out
		// most faults.
		timeouts:    []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second},
		perFunction: 12,
	}
	if testing.Short() {
		c.instances, c.events, c.poolENIs, c.pools = 100, 200, 110, []string{"web", "api"}
		// A shorter outage: the function hands dead letters back, but FC's retries outlast it.
		c.launches, c.gap, c.outageAt, c.outage = 4*time.Second, 200*time.Millisecond, 3*time.Second, 3*time.Second
		c.perFunction = 4
	}
	return c
}

// Event forms.
const (
	formCloudEvent = "eventbridge"
	formDirect     = "direct"
	// formJunk is what a misconfigured rule or a broken producer sends: a truncated event, or
	// an event of a type enipool does not handle. It can only be dead-lettered, which makes
	// the MNS outage bite: the function must then hand it back to the platform.
	formJunk = "junk"
)

// soakEvent is one event the platform delivers (possibly several times).
type soakEvent struct {
	idx      int
	instance string
	state    string // Running or Stopped
	form     string
	fn       int // the function (timeout) that receives it
	payload  []byte
}

// step is one thing the schedule does at its time.
type step struct {
	at     time.Duration
	status string // set the instance's status (a real stop or start), when not empty
	inst   string
	ev     *soakEvent // invoke asynchronously, when not nil
	kind   string     // "first", "duplicate", "concurrent-duplicate"
	outage bool
}

// schedule is a whole run, derived from the seed alone.
type schedule struct {
	untagged map[string]bool
	events   []*soakEvent
	steps    []step
	cycled   int // instances really stopped and started
}

// uniform returns a duration in [lo, hi).
func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// plan draws the run: launches (Pending -> Running, then the Running event), real stop and
// start cycles whose events arrive after the change with a delay long enough to reorder
// them, 10% sequential and 5% concurrent duplicates, and the MNS outage.
func plan(cfg soakConfig, ids []string) *schedule {
	r := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	s := &schedule{untagged: map[string]bool{}}
	for _, i := range r.Perm(len(ids))[:int(float64(len(ids))*cfg.untagged)] {
		s.untagged[ids[i]] = true
	}
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	newEvent := func(inst, state string, at time.Duration, form string) *soakEvent {
		e := &soakEvent{idx: len(s.events), instance: inst, state: state, form: form, fn: r.IntN(len(cfg.timeouts))}
		switch form {
		case formDirect:
			e.payload = fmt.Appendf(nil, `{"instanceId":%q,"regionId":%q}`, inst, region)
		case formJunk:
			e.instance, e.state = "", ""
			e.payload = cloudEvent(r, inst, state, base.Add(at))
			if r.IntN(2) == 0 {
				e.payload = e.payload[:len(e.payload)/2]
			} else {
				e.payload = bytes.Replace(e.payload, []byte("ecs:Instance:StateChange"), []byte("ecs:Disk:StateChange"), 1)
			}
		default:
			e.payload = cloudEvent(r, inst, state, base.Add(at))
		}
		s.events = append(s.events, e)
		return e
	}
	delay := func() time.Duration { return uniform(r, cfg.gap/20, 4*cfg.gap) }

	dups := cfg.events / 10
	concurrent := cfg.events / 20
	junk := cfg.events / 50
	budget := cfg.events - dups - concurrent - junk // first deliveries of real events
	for i := range junk {
		at := uniform(r, 0, cfg.launches+10*cfg.gap)
		early := i < junk/4
		if early { // as the dead-letter queue goes out: the shortest function's retries end before it is back
			at = uniform(r, cfg.outageAt, cfg.outageAt+cfg.outage/5)
		}
		e := newEvent(ids[r.IntN(len(ids))], "Running", at, formJunk)
		if early {
			e.fn = 0
		}
		s.steps = append(s.steps, step{at: at, ev: e, kind: "first"})
	}
	launchAt := map[string]time.Duration{}
	for _, id := range ids {
		at := uniform(r, 0, cfg.launches)
		launchAt[id] = at
		s.steps = append(s.steps, step{at: at, status: world.StatusRunning, inst: id})
		form := formCloudEvent
		if r.Float64() < 0.03 {
			form = formDirect // an operator's kick, or a script
		}
		d := at + delay()
		s.steps = append(s.steps, step{at: d, ev: newEvent(id, "Running", d, form), kind: "first"})
		budget--
	}
	// Real stops and starts: stop, start, and half the time stop again (ending Stopped).
	for _, i := range r.Perm(len(ids)) {
		if budget <= 0 {
			break
		}
		id := ids[i]
		t := launchAt[id] + uniform(r, 2*cfg.gap, 10*cfg.gap)
		states := []string{world.StatusStopped, world.StatusRunning}
		if r.IntN(2) == 0 {
			states = append(states, world.StatusStopped)
		}
		if len(states) > budget {
			states = states[:budget]
		}
		for _, st := range states {
			s.steps = append(s.steps, step{at: t, status: st, inst: id})
			d := t + delay()
			s.steps = append(s.steps, step{at: d, ev: newEvent(id, st, d, formCloudEvent), kind: "first"})
			budget--
			t += uniform(r, cfg.gap, 6*cfg.gap)
		}
		s.cycled++
	}
	// Duplicates: EventBridge delivers at least once.
	firsts := slices.Clone(s.steps)
	pick := func() step {
		for {
			if st := firsts[r.IntN(len(firsts))]; st.ev != nil {
				return st
			}
		}
	}
	for range dups {
		st := pick()
		st.at += uniform(r, cfg.gap/2, 15*cfg.gap)
		st.kind = "duplicate"
		s.steps = append(s.steps, st)
	}
	for range concurrent {
		st := pick()
		st.kind = "concurrent-duplicate" // at the very instant of the first delivery
		s.steps = append(s.steps, st)
	}
	s.steps = append(s.steps, step{at: cfg.outageAt, outage: true})
	sort.SliceStable(s.steps, func(i, j int) bool { return s.steps[i].at < s.steps[j].at })
	return s
}

// cloudEvent is an EventBridge ecs:Instance:StateChange event, as the samples in events/.
func cloudEvent(r *rand.Rand, inst, state string, at time.Time) []byte {
	id := fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, 0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
	return fmt.Appendf(nil, `{"id":%q,"source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:%s:1234567890123456:instance/%s","time":%q,"datacontenttype":"application/json;charset=utf-8",`+
		`"aliyunaccountid":"1234567890123456","aliyunpublishtime":%q,"aliyuneventbusname":"default","aliyunregionid":%q,`+
		`"aliyunpublishaddr":"100.104.12.7","data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":%q}}`,
		id, region, inst, at.Format(time.RFC3339), at.Format("2006-01-02T15:04:05.000")+"PRC", region, inst, state)
}

// faultPlan is the chaos: 10% throttling (three codes), 2% server errors, 1% connection
// resets on every ECS call, some latency with a tail, 1% resets and errors on MNS (the
// function's dead letters and FC's own deliveries alike), 2% of accepted attaches rolled back.
func faultPlan(seed uint64) fault.Plan {
	ecs := func(rate float64, code string, status int) fault.Rule {
		return fault.Rule{Service: "ecs", Rate: rate, Code: code, HTTPStatus: status, Message: "injected by the soak"}
	}
	return fault.Plan{
		Seed: int64(seed),
		Errors: []fault.Rule{
			ecs(0.05, "Throttling.User", 400), ecs(0.03, "Throttling", 400), ecs(0.02, "Throttling.Api", 400),
			ecs(0.01, "ServiceUnavailable", 503), ecs(0.01, "InternalError", 500),
			{Service: "ecs", Rate: 0.01, Reset: true},
			{Service: "mns", Rate: 0.01, Reset: true},
			{Service: "mns", Rate: 0.01, Code: "InternalError", HTTPStatus: 500},
		},
		Latency: []fault.Latency{{Service: "ecs", Base: fault.Duration(5 * time.Millisecond), Jitter: fault.Duration(25 * time.Millisecond),
			SpikeRate: 0.01, Spike: fault.Duration(time.Second)}},
		AttachRollback: 0.02,
	}
}

// invocation is one asynchronous invocation the schedule made.
type invocation struct {
	id   string
	ev   *soakEvent
	fn   int
	kind string
}

// TestSoak is the chaos soak described in the package documentation.
func TestSoak(t *testing.T) {
	skipShort(t)
	cfg := newSoakConfig(t)
	began := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("soak seed %d failed; replay it with:\n  ENIPOOL_SOAK_SEED=%d go test -race -count=1 -v -run '^TestSoak$' ./soak/%s",
				cfg.seed, cfg.seed, map[bool]string{true: " -short"}[testing.Short()])
		}
	})

	policy, err := os.ReadFile("../deploy/ram-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.Generate(world.GenerateOptions{
		Instances: cfg.instances, Pool: cfg.poolENIs, Zones: 2,
		Attach: 800 * time.Millisecond, Detach: 300 * time.Millisecond, Jitter: 200 * time.Millisecond,
		Faults: faultPlan(cfg.seed), FunctionPolicy: string(policy),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range w.Instances {
		ids = append(ids, in.ID)
	}
	sched := plan(cfg, ids)
	// Zones alternate with the index, so pools by pairs of indexes spread evenly over both.
	poolOf := func(i int) string { return cfg.pools[(i/2)%len(cfg.pools)] }
	for i := range w.Instances {
		w.Instances[i].Status = world.StatusPending // launching: Running comes with the schedule
		w.Instances[i].Tags = map[string]string{tagKey: poolOf(i)}
		if sched.untagged[w.Instances[i].ID] {
			w.Instances[i].Tags = map[string]string{"team": "other"}
		}
	}
	for i := range w.ENIs {
		w.ENIs[i].Tags = map[string]string{tagKey: poolOf(i)}
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	baseline := baselineOf(c)

	logs := &localcloud.LogBuffer{}
	env := map[string]string{
		"ENIPOOL_ATTACH_TIME":       w.Timing.Attach.D().String(),
		"ENIPOOL_DETACH_TIME":       w.Timing.Detach.D().String(),
		"ENIPOOL_PLATFORM_RETRIES":  strconv.Itoa(platformRetries),
		"ENIPOOL_ENIS_PER_INSTANCE": strconv.Itoa(cfg.perInstance),
	}
	start := func(timeout time.Duration, max int) *fcrt.Runtime {
		// The dead-letter reserve is tuned with the timeout, as s.yaml says to: a quarter
		// of it, at most 1 s.
		fenv := maps.Clone(env)
		fenv["ENIPOOL_DLQ_RESERVE"] = min(timeout/4, time.Second).String()
		fn, err := c.StartFunction(localcloud.Function{Binary: functionBinary(), DeadLetterQueue: dlq, Env: fenv,
			Timeout: timeout, MaxInstances: max, Async: fcrt.AsyncConfig{MaxRetryAttempts: platformRetries}, Logs: logs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fn.Close() })
		return fn
	}
	var fns []*fcrt.Runtime
	for _, to := range cfg.timeouts {
		fns = append(fns, start(to, cfg.perFunction))
	}
	watch := watchRollbacks(c.Store, 20*time.Millisecond, w.Timing.Attach.D())

	// Run the schedule: one timeline per instance, so that a stop or start waiting for the
	// cloud delays only that instance's own events, which must come after it.
	t0 := time.Now()
	invs, lag, err := runSchedule(sched, t0, c, fns, cfg.outage)
	if err != nil {
		t.Fatal(err)
	}
	scheduled := time.Since(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, fn := range fns {
		if err := fn.Wait(ctx); err != nil {
			t.Fatalf("asynchronous invocations did not settle: %v", err)
		}
	}
	settled := time.Since(t0)
	// Invariant 3 over the run, before the upkeep takes dead letters off the queue. The
	// instances' output reaches the log through pipes: wait for a line per answered attempt.
	lines := awaitLines(logs, fns, 10*time.Second)
	dlqBefore := readDLQ(c)
	acc := account(fns, invs, lines, dlqBefore)
	// What the events alone left, before any upkeep: reported, not failed (the reconcile
	// exists for what races between events leave; the report says which).
	settle(c, 5*time.Second)
	before := restViolations(c, cfg.perInstance)
	beforeDetail := explainRest(before, sched, invs, acc, c, fns, cfg.timeouts, t0)

	// The upkeep, as production runs it: an operator's redrive of the dead-letter queue and
	// the reconcile timer, until they find nothing more to do.
	upFn := start(120*time.Second, 1) // s.yaml's timeout
	junk := map[string]bool{}
	for _, e := range sched.events {
		if e.form == formJunk {
			junk[string(e.payload)] = true
		}
	}
	up := upkeep(t, c, upFn, cfg.instances, func(m dlqMessage) bool {
		switch {
		case m.Envelope != nil:
			return m.Envelope.Error != nil && (m.Envelope.Error.Code == handler.CodeBadEvent || m.Envelope.Error.Code == handler.CodeUnsupported)
		case m.Record != nil:
			return junk[string(m.Record.RequestPayload)]
		}
		return false
	})
	upkept := time.Since(t0)

	// Invariants 1 and 2 at rest, over the whole world and the whole history.
	moving := settle(c, 10*time.Second)
	rb := watch.close()
	var violations []string
	violations = append(violations, acc.violations...)
	for _, m := range moving {
		violations = append(violations, "not at rest after the upkeep: "+m)
	}
	violations = append(violations, restViolations(c, cfg.perInstance)...)
	violations = append(violations, placementViolations(c, baseline)...)
	history, unverified := historyViolations(c, rb)
	violations = append(violations, history...)
	violations = append(violations, up.violations...)

	// Invariant 4: no secret in any log line, result, queue message or destination record.
	texts := []string{logs.String(), allQueueText(c), up.text}
	for _, m := range dlqBefore {
		texts = append(texts, string(m.Body))
	}
	for _, fn := range fns {
		for _, task := range fn.AsyncTasks() {
			for _, d := range task.Deliveries {
				texts = append(texts, string(d.Body))
			}
		}
	}
	if n := secretsIn(c, texts...); n > 0 {
		violations = append(violations, fmt.Sprintf("%d secret(s) or security token(s) the cloud issued appear in logs, results or messages", n))
	}

	report(t, cfg, sched, invs, acc, up, c, fns, rb, unverified, beforeDetail, map[string]time.Duration{
		"schedule": scheduled, "lag": lag, "settled": settled, "upkept": upkept, "total": time.Since(began)})
	if len(violations) > 0 {
		t.Errorf("%d invariant violation(s):\n  %s", len(violations), firstN(violations, 40))
	}
}

// runSchedule plays the schedule from t0 and returns the invocations it made and how far
// behind its plan it fell.
func runSchedule(s *schedule, t0 time.Time, c *localcloud.Cloud, fns []*fcrt.Runtime, outage time.Duration) ([]*invocation, time.Duration, error) {
	timelines := map[string][]step{}
	for i, st := range s.steps {
		key := st.inst
		switch {
		case st.outage:
			key = "outage"
		case st.ev != nil && st.ev.form == formJunk:
			key = fmt.Sprintf("junk %d", i)
		case st.ev != nil:
			key = st.ev.instance
		}
		timelines[key] = append(timelines[key], st) // steps are sorted by time
	}
	var (
		mu   sync.Mutex
		invs []*invocation
		lag  time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	for _, steps := range timelines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, st := range steps {
				if d := time.Until(t0.Add(st.at)); d > 0 {
					time.Sleep(d)
				}
				late := time.Since(t0) - st.at
				var made []*invocation
				var err error
				switch {
				case st.outage:
					c.Faults.StartOutage("mns", outage)
				case st.status != "":
					err = setStatus(c, st.inst, st.status)
				default:
					id := fns[st.ev.fn].InvokeAsync(st.ev.payload)
					made = append(made, &invocation{id: id, ev: st.ev, fn: st.ev.fn, kind: st.kind})
				}
				mu.Lock()
				invs = append(invs, made...)
				lag = max(lag, late)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return invs, lag, errors.Join(errs...)
}

// awaitLines returns the outcome lines once there are as many as attempts the function
// answered (each logs one line per event, and the soak's events name one instance each), or
// when limit has passed.
func awaitLines(logs *localcloud.LogBuffer, fns []*fcrt.Runtime, limit time.Duration) []outcomeLine {
	want := 0
	for _, fn := range fns {
		for _, inv := range fn.Invocations() {
			if inv.Error == nil || inv.Error.Cause == fcrt.CauseFunction {
				want++
			}
		}
	}
	deadline := time.Now().Add(limit)
	for {
		lines := outcomeLines(logs.String())
		if len(lines) >= want || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setStatus changes an instance's status as ECS does when it stops or starts one.
func setStatus(c *localcloud.Cloud, id, status string) error {
	return c.Store.Update(func(st *world.State) error {
		in, ok := st.Instances[id]
		if !ok {
			return fmt.Errorf("no instance %s", id)
		}
		in.Status = status
		if status == world.StatusRunning {
			in.StartTime = world.At(st.Now())
		}
		return nil
	})
}

// accounting is what invariant 3 found.
type accounting struct {
	final      map[string]int // how events ended: outcome (with code), or "fc-destination"
	deadByCode map[string]int // dead letters the function sent, by code
	fcRecords  int
	attempts   int
	retried    int
	unsent     int                // attempts that returned an error because a dead letter could not be sent
	killed     map[fcrt.Cause]int // attempts that ended without the function's answer
	ends       map[string]string  // request id -> how it ended
	// codeDiffers counts dead letters whose envelope names another error code than the
	// outcome line and the result do.
	codeDiffers map[string]int
	violations  []string
}

// account matches every asynchronous invocation with its end: one terminal outcome line
// (and, when dead-lettered, the envelope in the queue the line names, carrying the event
// verbatim), or FC's destination record in the queue after the retries. Every attempt that
// answered logged one line; every message in the dead-letter queue is explained once.
func account(fns []*fcrt.Runtime, invs []*invocation, lines []outcomeLine, dlqMsgs []dlqMessage) *accounting {
	a := &accounting{final: map[string]int{}, deadByCode: map[string]int{}, killed: map[fcrt.Cause]int{}, ends: map[string]string{},
		codeDiffers: map[string]int{}}
	bad := func(format string, args ...any) { a.violations = append(a.violations, fmt.Sprintf(format, args...)) }

	tasks := map[string]fcrt.AsyncTask{}
	attempts := map[string][]fcrt.Invocation{}
	for _, fn := range fns {
		for _, task := range fn.AsyncTasks() {
			tasks[task.RequestID] = task
		}
		for _, inv := range fn.Invocations() {
			attempts[inv.RequestID] = append(attempts[inv.RequestID], inv)
		}
	}
	byReq := map[string][]outcomeLine{}
	for _, l := range lines {
		byReq[l.FCRequestID] = append(byReq[l.FCRequestID], l)
	}
	byMsg := map[string]*dlqMessage{}
	records := map[string][]*dlqMessage{}
	for i := range dlqMsgs {
		m := &dlqMsgs[i]
		byMsg[m.ID] = m
		switch {
		case m.Envelope != nil:
			code := "(none)"
			if m.Envelope.Error != nil && m.Envelope.Error.Code != "" {
				code = m.Envelope.Error.Code
			}
			a.deadByCode[code]++
		case m.Record != nil:
			a.fcRecords++
			records[m.Record.RequestID] = append(records[m.Record.RequestID], m)
		default:
			bad("dead-letter queue message %s is neither an envelope nor an FC record: %s", m.ID, clip(string(m.Body), 200))
		}
	}
	explained := map[string]string{} // message id -> request id

	for _, inv := range invs {
		task, ok := tasks[inv.id]
		if !ok {
			bad("%s (%s of event %d): FC has no such task", inv.id, inv.kind, inv.ev.idx)
			continue
		}
		runs := attempts[inv.id]
		answered := 0
		for _, r := range runs {
			if r.Error != nil && r.Error.Cause != fcrt.CauseFunction {
				a.killed[r.Error.Cause]++
				continue
			}
			answered++
		}
		a.attempts += len(runs)
		a.retried += max(0, len(runs)-1)
		ls := byReq[inv.id]
		what := fmt.Sprintf("%s (%s, %s %s of %s, event %d, %s)", inv.id, inv.kind, inv.ev.form, inv.ev.state, inv.ev.instance, inv.ev.idx, task.Status)
		if len(ls) != answered {
			bad("%s: %d outcome lines for %d answered attempts (%d attempts)", what, len(ls), answered, len(runs))
		}
		var ends []outcomeLine
		for _, l := range ls {
			if l.Outcome == "failed" {
				a.unsent++
			}
			if l.InstanceID != inv.ev.instance {
				bad("%s: outcome line about %s", what, l.InstanceID)
			}
			if terminal(l.Outcome) {
				ends = append(ends, l)
			}
		}
		switch task.Status {
		case fcrt.StatusSucceeded:
			if len(ends) != 1 {
				bad("%s: succeeded with %d terminal outcome lines, want 1: %+v", what, len(ends), ls)
				continue
			}
			end := ends[0]
			key := end.Outcome
			if end.Code != "" {
				key += " " + end.Code
			}
			a.final[key]++
			a.ends[inv.id] = key
			if end.Outcome != "dead-lettered" {
				if end.DeadLetterID != "" {
					bad("%s: %s names dead letter %s", what, end.Outcome, end.DeadLetterID)
				}
				continue
			}
			m := byMsg[end.DeadLetterID]
			switch {
			case end.DeadLetterID == "" || m == nil:
				bad("%s: dead-lettered, but message %q is not in the dead-letter queue", what, end.DeadLetterID)
			case m.Envelope == nil:
				bad("%s: dead letter %s is not an envelope", what, m.ID)
			case m.Envelope.FunctionRequestID != inv.id || m.Envelope.InstanceID != inv.ev.instance:
				bad("%s: dead letter %s is about %s from %s", what, m.ID, m.Envelope.InstanceID, m.Envelope.FunctionRequestID)
			case !bytes.Equal(m.Envelope.Event, inv.ev.payload):
				bad("%s: dead letter %s does not carry the event verbatim", what, m.ID)
			case explained[m.ID] != "":
				bad("%s: dead letter %s already explained by %s", what, m.ID, explained[m.ID])
			default:
				explained[m.ID] = inv.id
				if m.Envelope.Error == nil || m.Envelope.Error.Code != end.Code {
					code := "(none)"
					if m.Envelope.Error != nil && m.Envelope.Error.Code != "" {
						code = m.Envelope.Error.Code
					}
					a.codeDiffers["outcome "+end.Code+" -> envelope "+code]++
				}
			}
		case fcrt.StatusFailed:
			a.final["fc-destination"]++
			a.ends[inv.id] = "fc-destination"
			if len(ends) != 0 {
				bad("%s: FC gave up, yet the function logged a terminal outcome: %+v", what, ends)
			}
			if task.DestinationStatus != fcrt.DestinationSucceeded {
				bad("%s: onFailure destination %q", what, task.DestinationStatus)
			}
			rs := records[inv.id]
			if len(rs) != 1 {
				bad("%s: %d FC records in the dead-letter queue, want 1", what, len(rs))
				continue
			}
			m := rs[0]
			if !bytes.Equal(m.Record.RequestPayload, inv.ev.payload) || m.Record.ApproximateInvokeCount != len(runs) {
				bad("%s: FC record %s: payload verbatim %v, invoke count %d of %d", what, m.ID,
					bytes.Equal(m.Record.RequestPayload, inv.ev.payload), m.Record.ApproximateInvokeCount, len(runs))
			}
			explained[m.ID] = inv.id
		default:
			bad("%s: task ended %s (%s)", what, task.Status, task.Condition)
		}
	}
	for _, m := range dlqMsgs {
		if explained[m.ID] != "" {
			continue
		}
		desc := clip(string(m.Body), 300)
		if m.Envelope != nil {
			desc = fmt.Sprintf("envelope for %s from %s (fcRetryCount %d): %s: %s", m.Envelope.InstanceID, m.Envelope.FunctionRequestID,
				m.Envelope.FCRetryCount, m.Envelope.Error.Code, m.Envelope.Reason)
		}
		bad("dead-letter queue message %s explained by no event's end: %s", m.ID, desc)
	}
	return a
}

// upkeepRun is what the upkeep did.
type upkeepRun struct {
	rounds     int
	redriven   int
	received   int
	kept       int
	reconciles []handler.ReconcileReport
	left       []dlqMessage // dead letters still in the queue at the end
	text       string       // every result, for the secret check
	violations []string
}

// upkeep redrives the dead-letter queue and reconciles until a round finds nothing to do.
// This is what production does: FC's reconcile timer runs every five minutes, and an
// operator redrives the dead letters once the cause is gone (here, the faults keep going,
// as they would). Redrive runs first so that replayed events act before the reconcile
// repairs what they leave; a round is quiet when the queue has nothing visible left and the
// reconcile attached, released and failed nothing.
//
// permanent says which dead letters can never succeed (the junk of the schedule): they stay.
func upkeep(t *testing.T, c *localcloud.Cloud, fn *fcrt.Runtime, instances int, permanent func(dlqMessage) bool) *upkeepRun {
	u := &upkeepRun{}
	var text strings.Builder
	invoke := func(payload string, report any) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		res, err := fn.Invoke(ctx, []byte(payload))
		if err != nil {
			t.Fatalf("upkeep %s: %v", payload, err)
		}
		text.Write(res.Payload)
		if res.Error != nil {
			u.violations = append(u.violations, fmt.Sprintf("upkeep %s failed: %s", payload, res.Error.ErrorMessage))
			return false
		}
		var resp struct {
			Report json.RawMessage `json:"report"`
		}
		if err := json.Unmarshal(res.Payload, &resp); err != nil || json.Unmarshal(resp.Report, report) != nil {
			u.violations = append(u.violations, fmt.Sprintf("upkeep %s: unreadable response %s", payload, clip(string(res.Payload), 300)))
			return false
		}
		return true
	}
	for u.rounds = 1; u.rounds <= 8; u.rounds++ {
		redriven := 0
		for range 50 {
			var rep handler.RedriveReport
			if !invoke(`{"action":"redrive","max":200}`, &rep) {
				break
			}
			u.received += rep.Received
			u.redriven += rep.Redriven
			u.kept += rep.Kept
			redriven += rep.Redriven
			if rep.Received == 0 {
				break
			}
		}
		var rec handler.ReconcileReport
		invoke(fmt.Sprintf(`{"action":"reconcile","max":%d}`, instances+100), &rec)
		u.reconciles = append(u.reconciles, rec)
		// A dead letter kept by the redrive comes back after the queue's visibility
		// timeout; only those that can still succeed are worth waiting for.
		var wait time.Time
		transient := false
		for _, m := range readDLQ(c) {
			if permanent(m) {
				continue
			}
			transient = true
			if at := c.MNS.Messages(dlq); len(at) > 0 {
				for _, x := range at {
					if x.ID == m.ID && x.NextVisibleTime.After(wait) {
						wait = x.NextVisibleTime
					}
				}
			}
		}
		if redriven == 0 && !transient && rec.Attached == 0 && rec.Released == 0 && rec.Failed == 0 {
			break
		}
		if d := time.Until(wait); d > 0 {
			time.Sleep(d + 100*time.Millisecond)
		}
	}
	if u.rounds > 8 {
		u.violations = append(u.violations, "the upkeep did not become quiet in 8 rounds")
	}
	for _, m := range readDLQ(c) {
		if !permanent(m) {
			u.violations = append(u.violations, fmt.Sprintf("dead letter %s left after the upkeep, yet it could succeed: %s", m.ID, clip(string(m.Body), 300)))
		}
	}
	u.left = readDLQ(c)
	u.text = text.String()
	return u
}

// restViolations checks invariant 2 at rest: every instance eligible for a pool and Running
// holds exactly n ENIs of that pool, InUse; every other instance (Stopped, untagged) holds
// no pool ENI at all.
func restViolations(c *localcloud.Cloud, n int) []string {
	var v []string
	held := map[string][]world.ENI{}
	for _, e := range c.Store.ENIs() {
		if e.Tags[tagKey] != "" && e.InstanceID != "" {
			held[e.InstanceID] = append(held[e.InstanceID], e)
		}
	}
	for _, in := range c.Store.Instances() {
		want := 0
		if eligibility(in) != "" && in.Status == world.StatusRunning {
			want = n
		}
		got := held[in.ID]
		ok := 0
		for _, e := range got {
			if e.Status == world.ENIInUse && e.Tags[tagKey] == eligibility(in) {
				ok++
			}
		}
		if len(got) != want || ok != want {
			var desc []string
			for _, e := range got {
				desc = append(desc, e.ID+" "+e.Status+" pool "+e.Tags[tagKey])
			}
			v = append(v, fmt.Sprintf("%s (%s, pool %q) holds %d pool ENIs %v, want exactly %d", in.ID, in.Status, eligibility(in), len(got), desc, want))
		}
	}
	return v
}

// explainRest describes each instance the events left off rest, as a timeline from the
// start of the schedule: its real stops and starts, the attempts of every invocation about
// it (the function's timeout, and how the invocation ended in the end), and the attaches
// and detaches the cloud accepted for it.
func explainRest(off []string, s *schedule, invs []*invocation, acc *accounting, c *localcloud.Cloud, fns []*fcrt.Runtime,
	timeouts []time.Duration, t0 time.Time) []string {
	type entry struct {
		at   time.Duration
		what string
	}
	attempts := map[string][]fcrt.Invocation{}
	for _, fn := range fns {
		for _, x := range fn.Invocations() {
			attempts[x.RequestID] = append(attempts[x.RequestID], x)
		}
	}
	calls := c.Calls.Calls(record.Match("ecs", ""))
	var out []string
	for _, v := range off {
		id, _, _ := strings.Cut(v, " ")
		var es []entry
		for _, st := range s.steps {
			if st.status != "" && st.inst == id {
				es = append(es, entry{st.at, "instance " + st.status})
			}
		}
		for _, inv := range invs {
			if inv.ev.instance != id {
				continue
			}
			for _, x := range attempts[inv.id] {
				what := fmt.Sprintf("%s %s event %d (%s) attempt %d on the %v function, %v long",
					inv.ev.form, inv.ev.state, inv.ev.idx, inv.kind, x.Attempt, timeouts[inv.fn], x.Duration.Round(time.Millisecond))
				if x.Attempt == len(attempts[inv.id]) {
					what += ", ended " + acc.ends[inv.id]
				}
				es = append(es, entry{x.Start.Sub(t0), what})
			}
		}
		for _, call := range calls {
			if call.Params["InstanceId"] == id && call.HTTPStatus == 200 &&
				(call.Action == "AttachNetworkInterface" || call.Action == "DetachNetworkInterface") {
				es = append(es, entry{call.Time.Sub(t0), call.Action + " " + call.Params["NetworkInterfaceId"] + " accepted"})
			}
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].at < es[j].at })
		var b strings.Builder
		b.WriteString(v)
		for _, e := range es {
			fmt.Fprintf(&b, "\n      %7.3fs %s", e.at.Seconds(), e.what)
		}
		out = append(out, b.String())
	}
	return out
}

// report prints what the soak did.
func report(t *testing.T, cfg soakConfig, s *schedule, invs []*invocation, acc *accounting, up *upkeepRun,
	c *localcloud.Cloud, fns []*fcrt.Runtime, rb rollbacks, unverified int, before []string, wall map[string]time.Duration) {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	kinds := map[string]int{}
	forms := map[string]int{}
	for _, inv := range invs {
		kinds[inv.kind]++
	}
	for _, e := range s.events {
		forms[e.form+" "+e.state]++
	}
	perFn := make([]int, len(fns))
	for _, inv := range invs {
		perFn[inv.fn]++
	}
	line("seed %d: %d instances (%d untagged, %d really stopped/started), %d pool ENIs in pools %v over 2 zones, N=%d",
		cfg.seed, cfg.instances, len(s.untagged), s.cycled, cfg.poolENIs, cfg.pools, cfg.perInstance)
	line("events: %d distinct %s; %d invocations %s", len(s.events), sorted(forms), len(invs), sorted(kinds))
	var tos []string
	for i, to := range cfg.timeouts {
		tos = append(tos, fmt.Sprintf("%v:%d", to, perFn[i]))
	}
	line("function timeouts (invocations): %s; FC retries %d, function ENIPOOL_PLATFORM_RETRIES %d", strings.Join(tos, " "), platformRetries, platformRetries)
	line("attempts %d, platform retries %d, attempts ended by the platform %v; attempts handing back a dead letter MNS refused: %d",
		acc.attempts, acc.retried, acc.killed, acc.unsent)
	line("how invocations ended: %s", sorted(acc.final))
	line("dead letters sent by the function: %d %s", sum(acc.deadByCode), sorted(acc.deadByCode))
	line("dead letters whose envelope code differs from the outcome's: %d %s", sum(acc.codeDiffers), sorted(acc.codeDiffers))
	line("FC onFailure destination records: %d", acc.fcRecords)

	calls := c.Calls.Calls()
	count := func(f func(record.Call) bool) int {
		n := 0
		for _, call := range calls {
			if f(call) {
				n++
			}
		}
		return n
	}
	ecs := func(call record.Call) bool { return call.Service == "ecs" }
	throttled := count(func(x record.Call) bool { return strings.HasPrefix(x.Code, "Throttling") })
	server := count(func(x record.Call) bool { return x.HTTPStatus >= 500 && !strings.Contains(x.Fault, "outage") })
	resets := count(func(x record.Call) bool { return strings.Contains(x.Fault, "reset") })
	outage := count(func(x record.Call) bool { return strings.Contains(x.Fault, "outage") })
	attachCalls := count(func(x record.Call) bool { return ecs(x) && x.Action == "AttachNetworkInterface" })
	attachOK := count(func(x record.Call) bool {
		return ecs(x) && x.Action == "AttachNetworkInterface" && x.HTTPStatus == 200 && x.Code == ""
	})
	detachOK := count(func(x record.Call) bool {
		return ecs(x) && x.Action == "DetachNetworkInterface" && x.HTTPStatus == 200 && x.Code == ""
	})
	rolled := rb.count()
	line("cloud calls %d (ecs %d): throttled %d, 5xx %d, resets %d, refused by the MNS outage %d, attaches rolled back %d",
		len(calls), count(ecs), throttled, server, resets, outage, rolled)
	line("AttachNetworkInterface: %d calls, %d accepted, %.2f calls per accepted attach; %d detaches accepted",
		attachCalls, attachOK, float64(attachCalls)/float64(max(attachOK, 1)), detachOK)
	line("rollback watch: %d blind gap(s), %d re-attach(es) unverifiable because of them", len(rb.blind), unverified)
	line("left by the events alone, before the upkeep: %d instance(s) not at rest", len(before))
	for i, d := range before {
		if i == 10 {
			line("  ... and %d more", len(before)-10)
			break
		}
		line("  %s", d)
	}
	line("upkeep: %d round(s); redrive received %d, redrove %d, kept %d; %d dead letter(s) left", up.rounds, up.received, up.redriven, up.kept, len(up.left))
	for i, r := range up.reconciles {
		line("  reconcile %d: %d instances, attached %d, already %d, released %d, failed %d, foreign %d", i+1,
			r.Instances, r.Attached, r.AlreadyAttached, r.Released, r.Failed, len(r.Foreign))
	}
	left := map[string]int{}
	for _, m := range up.left {
		switch {
		case m.Envelope != nil && m.Envelope.Error != nil:
			left["envelope "+m.Envelope.Error.Code]++
		case m.Record != nil:
			left["FC record "+m.Record.Condition]++
		default:
			left["other"]++
		}
	}
	line("  left in the dead-letter queue: %s", sorted(left))
	line("wall time: schedule %v (fell behind by up to %v), all settled %v, upkeep done %v, test total %v",
		wall["schedule"].Round(time.Millisecond), wall["lag"].Round(time.Millisecond), wall["settled"].Round(time.Millisecond), wall["upkept"].Round(time.Millisecond), wall["total"].Round(time.Millisecond))
	t.Log("\n" + b.String())
}

func sorted(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
