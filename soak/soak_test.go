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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deploy"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/internal/testenv"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// defaultSeed is the soak's seed when ENIPOOL_SOAK_SEED is unset outside CI.
const defaultSeed = 1

// platformRetries is FC's asyncInvokeConfig.maxAsyncRetryAttempts for every function of the
// soak, and the function's ENIPOOL_PLATFORM_RETRIES: the two must agree (s.yaml's value).
const platformRetries = 2

// realisticWorld is the demo world with production's unkindness on. The soak takes its
// realism from there (attach and detach spreads, instance start and stop times, stale
// reads, faults after the action, latency on both halves of a call), so that the soak and
// `make run WORLD=...` stand on the same assumptions.
const realisticWorld = "../localcloud/worlds/demo.yaml"

// pollCap is the longest wait of the function between two looks at an attach it waits
// for (engine/attach.go caps its poll back-off at 2 s). "One poll" in the bound on how
// long an instance may hold more than N is this wait.
const pollCap = 2 * time.Second

// soakConfig sizes a soak.
type soakConfig struct {
	seed        uint64
	instances   int             // ECS instances, all launching during the run
	events      int             // asynchronous invocations, duplicates included
	pools       []string        // pool names; instances and ENIs are spread evenly over them
	spare       float64         // pool ENIs beyond instances × N, as a share
	untagged    float64         // share of instances without the pool tag
	perInstance int             // N
	launches    time.Duration   // launches spread over [0, launches)
	gap         time.Duration   // the unit of the gaps between stops and starts, and of event delays
	outageAt    time.Duration   // when the MNS outage starts
	outage      time.Duration   // how long it lasts
	timeouts    []time.Duration // one function per timeout: invocations get these deadlines
	perFunction int             // MaxInstances of each function
	idle        time.Duration   // FC reclaims an instance idle this long; the next need cold-starts
	short       bool
}

// soakSeed returns the seed: ENIPOOL_SOAK_SEED when set, a fresh one from the clock when it
// is "random" or when CI runs the soak (any seed must pass, and each CI run tries a new one),
// else defaultSeed, so that runs on a developer's machine repeat. fresh reports a seed picked
// from the clock.
func soakSeed(t *testing.T) (seed uint64, fresh bool) {
	s := os.Getenv("ENIPOOL_SOAK_SEED")
	switch {
	case s == "" && !testenv.CI():
		return defaultSeed, false
	case s == "" || s == "random":
		return uint64(time.Now().UnixNano()) % 1_000_000_000, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("ENIPOOL_SOAK_SEED=%q: want an unsigned integer or random", s)
	}
	return v, false
}

// shortSoak reports whether the shrunken soak runs: under -short only when
// ENIPOOL_SOAK_SHORT is set (make unit runs no soak).
func shortSoak() bool { return testing.Short() && os.Getenv("ENIPOOL_SOAK_SHORT") != "" }

func newSoakConfig(seed uint64, perInstance int) soakConfig {
	// Sized to stay a couple of minutes per N under -race on two shared cores: every
	// invocation is a process of its own (FC's go1 model), attaches take seconds (the
	// realistic spread), and the emulator serialises every describe under its store lock.
	c := soakConfig{
		seed: seed, instances: 240, events: 480, spare: 0.15, untagged: 0.05, perInstance: perInstance,
		pools:    []string{"web", "api"},
		launches: 30 * time.Second, gap: time.Second, outageAt: 30 * time.Second, outage: 10 * time.Second,
		// Function timeouts, shortest first: the shortest leaves 2.25 s of work (about one
		// attach at the median, so it meets the long tail often and its three attempts end
		// inside the MNS outage); the longest rides out most faults.
		timeouts:    []time.Duration{3 * time.Second, 8 * time.Second, 20 * time.Second},
		perFunction: 8,
		idle:        5 * time.Second,
	}
	if shortSoak() {
		c.instances, c.events = 40, 80
		c.launches, c.outageAt, c.outage = 5*time.Second, 5*time.Second, 3*time.Second
		c.perFunction, c.short = 4, true
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

// Changes the schedule makes to an instance, as ECS makes them: through Starting or
// Stopping, for the world's start and stop times.
const (
	changeLaunch = "launch" // Pending -> Starting -> Running
	changeStop   = "stop"   // Running -> Stopping -> Stopped
	changeStart  = "start"  // Stopped -> Starting -> Running
)

// soakEvent is one event the platform delivers (possibly several times).
type soakEvent struct {
	idx      int
	instance string
	state    string // Running, Stopping or Stopped
	form     string
	fn       int // the function (timeout) that receives it
	payload  []byte
	// cause is the index of the change the event reports (-1 for none): its first delivery
	// waits until the change has happened (its end, or its start for a Stopping event).
	cause int
}

// step is one thing the schedule does at its time.
type step struct {
	at     time.Duration
	change string // a change of the instance, when not empty
	cause  int    // the change's index, for a change
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
	changes  int // changes planned
	cycled   int // instances really stopped and started
}

// uniform returns a duration in [lo, hi).
func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// plan draws the run: launches (through Starting, then the Running event), real stop and
// start cycles (through Stopping and Starting) whose events arrive after the change with a
// delay long enough to reorder them, 10% sequential and 5% concurrent duplicates, and the
// MNS outage. start and stop are the world's transition times.
func plan(cfg soakConfig, ids []string, start, stop time.Duration) *schedule {
	r := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	s := &schedule{untagged: map[string]bool{}}
	for _, i := range r.Perm(len(ids))[:int(float64(len(ids))*cfg.untagged)] {
		s.untagged[ids[i]] = true
	}
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	newEvent := func(inst, state string, at time.Duration, form string, cause int) *soakEvent {
		e := &soakEvent{idx: len(s.events), instance: inst, state: state, form: form, fn: r.IntN(len(cfg.timeouts)), cause: cause}
		switch form {
		case formDirect:
			e.payload = fmt.Appendf(nil, `{"instanceId":%q,"regionId":%q}`, inst, region)
		case formJunk:
			e.instance, e.state, e.cause = "", "", -1
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
	change := func(inst, what string, at time.Duration) int {
		s.steps = append(s.steps, step{at: at, change: what, cause: s.changes, inst: inst})
		s.changes++
		return s.changes - 1
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
		e := newEvent(ids[r.IntN(len(ids))], "Running", at, formJunk, -1)
		if early {
			e.fn = 0
		}
		s.steps = append(s.steps, step{at: at, ev: e, kind: "first"})
	}
	runningAt := map[string]time.Duration{}
	for _, id := range ids {
		at := uniform(r, 0, cfg.launches)
		cause := change(id, changeLaunch, at)
		runningAt[id] = at + start
		form := formCloudEvent
		if r.Float64() < 0.03 {
			form = formDirect // an operator's kick, or a script
		}
		d := at + start + delay()
		s.steps = append(s.steps, step{at: d, ev: newEvent(id, "Running", d, form, cause), kind: "first"})
		budget--
	}
	// Real stops and starts: stop, start, and half the time stop again (ending Stopped).
	// Each stop is announced twice, as ECS does: Stopping when it begins, Stopped when done.
	for _, i := range r.Perm(len(ids)) {
		if budget <= 0 {
			break
		}
		id := ids[i]
		t := runningAt[id] + uniform(r, 2*cfg.gap, 10*cfg.gap)
		changes := []string{changeStop, changeStart}
		if r.IntN(2) == 0 {
			changes = append(changes, changeStop)
		}
		for _, what := range changes {
			if budget <= 0 {
				break
			}
			cause := change(id, what, t)
			took, state := start, "Running"
			if what == changeStop {
				took, state = stop, "Stopped"
				if r.IntN(2) == 0 && budget > 1 {
					d := t + delay()
					s.steps = append(s.steps, step{at: d, ev: newEvent(id, "Stopping", d, formCloudEvent, cause), kind: "first"})
					budget--
				}
			}
			d := t + took + delay()
			s.steps = append(s.steps, step{at: d, ev: newEvent(id, state, d, formCloudEvent, cause), kind: "first"})
			budget--
			t += took + uniform(r, cfg.gap, 6*cfg.gap)
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

// eventTime matches a CloudEvent's time field (not aliyunpublishtime, whose key ends alike).
var eventTime = regexp.MustCompile(`"time":"[^"]*"`)

// faultPlan is the chaos: the realistic world's staleness, faults after the action and
// latency on both halves of every call, plus the soak's own: 10% throttling (three codes),
// 2% server errors, 1% connection resets on every ECS call, 1% resets and errors on MNS (the
// function's dead letters and FC's own deliveries alike), 2% of accepted attaches rolled back.
func faultPlan(seed uint64, realistic fault.Plan) fault.Plan {
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
		Latency:         realistic.Latency,
		ResponseLatency: realistic.ResponseLatency,
		Staleness:       realistic.Staleness,
		AfterAction:     realistic.AfterAction,
		AttachRollback:  0.02,
	}
}

// policyWithoutTagConditions is the function's policy rendered for the soak's world (its
// region and account, the soak's pools; no warm target, no lifecycle hooks) with every tag
// condition removed: the rendered policy refuses attaches to untagged instances by itself, so a
// soak under it could not tell whether the function's own eligibility check works. Without the
// conditions, RAM lets the function attach anywhere in the region, and only the function
// protects untagged instances.
func policyWithoutTagConditions(t *testing.T, cfg soakConfig) string {
	t.Helper()
	pol, err := deploy.RAMPolicy(deploy.Deployment{Region: "cn-hangzhou", AccountID: "1234567890123456", TagKey: "enipool",
		Pools: cfg.pools, ScalingGroups: []string{deploy.Any}, DeadLetterQueue: "enipool-dlq"}) // the world has no scaling group
	if err != nil {
		t.Fatal(err)
	}
	raw := pol.JSON()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	statements, _ := doc["Statement"].([]any)
	removed := 0
	for _, s := range statements {
		st, _ := s.(map[string]any)
		cond, ok := st["Condition"].(map[string]any)
		if !ok {
			continue
		}
		for op, keys := range cond {
			m, _ := keys.(map[string]any)
			for k := range m {
				if strings.HasPrefix(k, "ecs:tag/") || strings.HasPrefix(k, "acs:ResourceTag/") || strings.HasPrefix(k, "acs:RequestTag/") {
					delete(m, k)
					removed++
				}
			}
			if len(m) == 0 {
				delete(cond, op)
			}
		}
		if len(cond) == 0 {
			delete(st, "Condition")
		}
	}
	if removed == 0 {
		t.Fatal("the rendered policy has no tag condition left to remove: the soak's premise changed")
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// invocation is one asynchronous invocation the schedule made.
type invocation struct {
	id   string
	ev   *soakEvent
	fn   int
	kind string
}

// TestSoak is the chaos soak described in the package documentation: one run with N=1 and
// one with N=2, on the same seed.
func TestSoak(t *testing.T) {
	if testing.Short() && !shortSoak() {
		t.Skip("soak: skipped with -short (make unit); ENIPOOL_SOAK_SHORT=1 runs a shrunken one")
	}
	seed, fresh := soakSeed(t)
	replay := fmt.Sprintf("ENIPOOL_SOAK_SEED=%d go test -race -count=1 -v -run '^TestSoak$' ./soak/", seed)
	if shortSoak() {
		replay = fmt.Sprintf("ENIPOOL_SOAK_SHORT=1 ENIPOOL_SOAK_SEED=%d go test -race -count=1 -short -v -run '^TestSoak$' ./soak/", seed)
	}
	if fresh {
		t.Logf("soak seed %d, picked from the clock; replay it with:\n  %s", seed, replay)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("soak seed %d failed; replay it with:\n  %s", seed, replay)
		}
	})
	// The two runs side by side: each is bound by its schedule's wall time, not by the CPU
	// (a run uses about a quarter of one core), so together they take the time of one.
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			t.Parallel()
			runSoak(t, newSoakConfig(seed, n))
		})
	}
}

// runSoak runs one soak: the events alone, judged; then the upkeep, judged.
func runSoak(t *testing.T, cfg soakConfig) {
	began := time.Now()
	real, err := world.Load(realisticWorld)
	if err != nil {
		t.Fatal(err)
	}
	plan0 := faultPlan(cfg.seed, real.Faults)
	// Pool ENIs for every instance's N, and a spare share, in whole pairs (one per zone).
	poolENIs := 2 * ((int(float64(cfg.instances*cfg.perInstance)*(1+cfg.spare)) + 1) / 2)
	w, err := world.Generate(world.GenerateOptions{
		Instances: cfg.instances, Pool: poolENIs, Zones: 2,
		Faults: plan0, FunctionPolicy: policyWithoutTagConditions(t, cfg),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Attach and detach times from the realistic world's long-tailed spreads, and its start
	// and stop times; the function is told none of them.
	w.Timing.AttachSpread, w.Timing.DetachSpread = real.Timing.AttachSpread, real.Timing.DetachSpread
	w.Timing.Start, w.Timing.Stop = real.Timing.Start, real.Timing.Stop
	if w.Timing.AttachSpread.IsZero() || len(plan0.Staleness) == 0 || len(plan0.AfterAction) == 0 || w.Timing.Stop == 0 {
		t.Fatalf("%s no longer sets attachSpread, staleness, afterAction and stop: the soak would run on a kinder cloud", realisticWorld)
	}
	// Every fourth pair of instances is of a type with room for a third secondary ENI: on
	// the others (a primary and two more) N=2 fills the instance and ECS itself refuses a
	// surplus, so only a larger type lets an N=2 surplus arise and shows whether it converges.
	large := w.InstanceTypes[0]
	xlarge := large
	xlarge.ID, xlarge.CPU, xlarge.MemoryGiB, xlarge.ENIQuantity = "ecs.g7.xlarge", 2*large.CPU, 2*large.MemoryGiB, large.ENIQuantity+1
	w.InstanceTypes = append(w.InstanceTypes, xlarge)
	var ids []string
	for i, in := range w.Instances {
		ids = append(ids, in.ID)
		if (i/2)%4 == 3 {
			w.Instances[i].Type = xlarge.ID
		}
	}
	sched := plan(cfg, ids, w.Timing.Start.D(), w.Timing.Stop.D())
	// Zones alternate with the index, so pools by pairs of indexes spread evenly over both.
	poolOf := func(i int) string { return cfg.pools[(i/2)%len(cfg.pools)] }
	for i := range w.Instances {
		w.Instances[i].Status = world.StatusPending // launching: the schedule starts it
		w.Instances[i].Tags = map[string]string{tagKey: poolOf(i)}
		if sched.untagged[w.Instances[i].ID] {
			w.Instances[i].Tags = map[string]string{"team": "other"}
		}
	}
	for i := range w.ENIs {
		w.ENIs[i].Tags = map[string]string{tagKey: poolOf(i)}
	}
	// The world changed since Generate validated it (a type added, statuses, tags): validate
	// it again, which also indexes the new type.
	if err := w.Validate("."); err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	baseline := baselineOf(c)

	logs := &testbed.LogBuffer{}
	env := map[string]string{
		"ENIPOOL_PLATFORM_RETRIES":  strconv.Itoa(platformRetries),
		"ENIPOOL_ENIS_PER_INSTANCE": strconv.Itoa(cfg.perInstance),
	}
	start := func(timeout time.Duration, max int) *fcrt.Runtime {
		// The dead-letter reserve is tuned with the timeout, as s.yaml says to: a quarter
		// of it, at most 1 s.
		fenv := maps.Clone(env)
		fenv["ENIPOOL_DLQ_RESERVE"] = min(timeout/4, time.Second).String()
		fn, err := testbed.StartFunction(c, testbed.Function{Binary: functionBinary(), DeadLetterQueue: dlq, Env: fenv,
			Timeout: timeout, MaxInstances: max, IdleTimeout: cfg.idle, Async: fcrt.AsyncConfig{MaxRetryAttempts: platformRetries}, Logs: logs})
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

	// Run the schedule: one timeline per instance, so that a change waiting for the cloud
	// delays only that instance's own events, which must come after it.
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
	// The events alone, judged before any upkeep. The instances' output reaches the log
	// through pipes: wait for a line per answered attempt.
	lines := awaitLines(logs, fns, 10*time.Second)
	moving := settle(c, 30*time.Second)
	eventsDone := time.Now()
	dlqBefore := readDLQ(c)
	stale := plan0.MaxStaleness()
	held := heldPoolENIs(c.Store.Changes(1), c)
	acc := account(fns, invs, lines, dlqBefore, newStates(c.Store.Changes(1)), sched.untagged, stale, cfg.perInstance, held)
	named := namedByDeadLetters(dlqBefore, invs)
	rest := judgeRest(c, cfg.perInstance, named)
	placedBefore := placementViolations(c, baseline)

	var violations []string
	violations = append(violations, acc.violations...)
	for _, d := range explainRest(slices.Compact(slices.Sorted(slices.Values(acc.wrongOn))), sched, invs, acc, c, fns, cfg.timeouts, t0) {
		violations = append(violations, "timeline of an instance with a wrong outcome: "+d)
	}
	for _, m := range moving {
		violations = append(violations, "not at rest when the events were done: "+m)
	}
	violations = append(violations, placedBefore...)
	outOfPlace := explainRest(rest.outOfPlace, sched, invs, acc, c, fns, cfg.timeouts, t0)
	for _, d := range outOfPlace {
		violations = append(violations, "out of place when the events were done, and named by no dead letter: "+d)
	}

	// The upkeep, as production runs it: an operator's redrive of the dead-letter queue and
	// the reconcile timer, until they find nothing more to do. Redrive may fix what dead
	// letters named; the reconcile must find nothing else to repair.
	upFn := start(120*time.Second, 1) // s.yaml's timeout
	junk := map[string]bool{}
	for _, e := range sched.events {
		if e.form == formJunk {
			junk[string(e.payload)] = true
		}
	}
	up := upkeep(t, c, upFn, cfg.instances, func(m testbed.Letter) bool {
		switch {
		case m.Envelope != nil:
			return m.Envelope.Error != nil && (m.Envelope.Error.Code == cloud.CodeBadEvent || m.Envelope.Error.Code == cloud.CodeUnsupported)
		case m.Record != nil:
			return junk[string(m.Record.RequestPayload)]
		}
		return false
	})
	upkept := time.Since(t0)
	var repairedUnnamed []string
	for _, id := range up.repaired {
		if named[id] == "" {
			repairedUnnamed = append(repairedUnnamed, id)
		}
	}
	for _, d := range explainRest(repairedUnnamed, sched, invs, acc, c, fns, cfg.timeouts, t0) {
		violations = append(violations, "repaired by the reconcile, yet no dead letter named it: "+d)
	}

	// Invariants 1 and 2 at rest after the upkeep, over the whole world and the whole history.
	moving = settle(c, 30*time.Second)
	for _, m := range moving {
		violations = append(violations, "not at rest after the upkeep: "+m)
	}
	after := judgeRest(c, cfg.perInstance, nil)
	violations = append(violations, after.outOfPlace...)
	violations = append(violations, placementViolations(c, baseline)...)
	history := historyViolations(c)
	double := 0
	for _, h := range history {
		if strings.HasPrefix(h, doubleAttachPrefix) {
			double++
		}
	}
	violations = append(violations, history...)
	violations = append(violations, up.violations...)

	// How long instances held more than N: each interval must end within the attach that
	// made it (its true duration) plus one poll of the function, whose answer may lag by
	// the staleness bound.
	overN := overNIntervals(c.Store.Changes(1), c.Store.Operations(), c, cfg.perInstance, eventsDone)
	var longest time.Duration
	for _, iv := range overN {
		longest = max(longest, iv.length())
		if limit := iv.attach + pollCap + stale; iv.running() >= limit {
			violations = append(violations, fmt.Sprintf("%s held %d pool ENIs (N=%d) for %v while Running (%v in all), beyond its attach (%v) plus one poll (%v) and the staleness bound (%v): %s\n    %s",
				iv.instance, iv.most, cfg.perInstance, iv.running().Round(time.Millisecond), iv.length().Round(time.Millisecond), iv.attach.Round(time.Millisecond), pollCap, stale, iv.describe(t0),
				explainRest([]string{iv.instance}, sched, invs, acc, c, fns, cfg.timeouts, t0)[0]))
		}
	}

	// Invariant 4: no secret in any log line, result, queue message or destination record.
	texts := []string{logs.String(), testbed.QueueText(c), up.text}
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
	if n := testbed.SecretsIn(c, texts...); n > 0 {
		violations = append(violations, fmt.Sprintf("%d secret(s) or security token(s) the cloud issued appear in logs, results or messages", n))
	}

	report(t, cfg, sched, invs, acc, up, c, fns, outOfPlace, overN, t0, map[string]time.Duration{
		"schedule": scheduled, "lag": lag, "settled": settled, "upkept": upkept, "total": time.Since(began)})
	fcInstances, coldStarts := 0, 0
	for _, fn := range fns {
		st := fn.Stats()
		fcInstances += st.InstancesStarted
		coldStarts += st.ColdStarts
	}
	stats := c.Faults.Stats()
	line, err := json.Marshal(summary{
		Seed: cfg.seed, N: cfg.perInstance, Events: len(sched.events), Invocations: len(invs), Instances: cfg.instances,
		Eligible: rest.eligible, ExactlyNBeforeUpkeep: rest.exactlyN, DeadLetteredInstances: len(named),
		OutOfPlaceBeforeUpkeep: len(rest.outOfPlace), RepairedByUpkeep: len(repairedUnnamed), Lost: acc.lost,
		WrongOutcome: acc.wrong, DoubleAttach: double, MaxOverNMillis: longest.Milliseconds(), OverNIntervals: len(overN),
		StaleReads: stats.StaleReads, FaultsAfterAction: stats.FaultsAfterAction, FCInstances: fcInstances, ColdStarts: coldStarts,
		Short: cfg.short, WallSeconds: time.Since(began).Seconds(),
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(string(line))
	if len(violations) > 0 {
		t.Errorf("%d violation(s):\n  %s", len(violations), firstN(violations, 40))
		// The function's own account of a failing run, for whoever fixes it: kept on disk.
		if f, err := os.CreateTemp("", fmt.Sprintf("enipool-soak-seed%d-n%d-*.log", cfg.seed, cfg.perInstance)); err == nil {
			_, werr := f.WriteString(logs.String())
			if cerr := f.Close(); werr == nil && cerr == nil {
				t.Logf("the function's output is kept in %s", f.Name())
			}
		}
	}
}

// summary is the soak's last line, one JSON object per run.
type summary struct {
	Seed                   uint64  `json:"seed"`
	N                      int     `json:"n"`
	Events                 int     `json:"events"`
	Invocations            int     `json:"invocations"`
	Instances              int     `json:"instances"`
	Eligible               int     `json:"eligible"`
	ExactlyNBeforeUpkeep   int     `json:"exactlyNBeforeUpkeep"`
	DeadLetteredInstances  int     `json:"deadLetteredInstances"`
	OutOfPlaceBeforeUpkeep int     `json:"outOfPlaceBeforeUpkeep"`
	RepairedByUpkeep       int     `json:"repairedByUpkeep"`
	Lost                   int     `json:"lost"`
	WrongOutcome           int     `json:"wrongOutcome"`
	DoubleAttach           int     `json:"doubleAttach"`
	MaxOverNMillis         int64   `json:"maxOverNMillis"`
	OverNIntervals         int     `json:"overNIntervals"`
	StaleReads             int     `json:"staleReads"`
	FaultsAfterAction      int     `json:"faultsAfterAction"`
	FCInstances            int     `json:"fcInstances"`
	ColdStarts             int     `json:"coldStarts"`
	Short                  bool    `json:"short,omitempty"`
	WallSeconds            float64 `json:"wallSeconds"`
}

// runSchedule plays the schedule from t0 and returns the invocations it made and how far
// behind its plan it fell. An event's first delivery never comes before the change it
// reports has happened (EventBridge reports changes, it does not foretell them).
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
			// When each change of this timeline began and when it is done.
			began, done := map[int]time.Time{}, map[int]time.Time{}
			for _, st := range steps {
				at := t0.Add(st.at)
				if ev := st.ev; ev != nil && ev.cause >= 0 {
					happened := done[ev.cause]
					if ev.state == "Stopping" {
						happened = began[ev.cause]
					}
					if happened.After(at) {
						at = happened
					}
					if ev.form == formCloudEvent && !happened.IsZero() {
						// The event's time is when its change happened (CloudEvents: the
						// occurrence's timestamp), on the cloud's clock, as ECS would stamp it.
						ev.payload = eventTime.ReplaceAll(ev.payload, fmt.Appendf(nil, `"time":%q`, happened.UTC().Format(time.RFC3339Nano)))
					}
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				late := time.Since(t0) - st.at
				var made []*invocation
				var err error
				switch {
				case st.outage:
					c.Faults.StartOutage("mns", outage)
				case st.change != "":
					began[st.cause] = time.Now()
					done[st.cause], err = makeChange(c, st.inst, st.change)
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

// makeChange starts, stops or launches an instance as ECS does (through Starting or
// Stopping, for the world's times) and returns when the change will be done. An instance
// still in its previous transition (the schedule fell behind) is waited for.
func makeChange(c *localcloud.Cloud, id, what string) (time.Time, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		switch what {
		case changeStop:
			err = c.Store.StopInstance(id, -1)
		default: // launch (from Pending) and start (from Stopped)
			err = c.Store.StartInstance(id, -1)
		}
		if err == nil {
			in, _ := c.Store.Instance(id)
			due := time.Now()
			for tr := in.Transition; tr != nil; tr = tr.Then {
				due = tr.At
			}
			return due, nil
		}
		if !errors.Is(err, world.ErrInstanceState) || time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s %s: %w", what, id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitLines returns the outcome lines once there are as many as attempts the function
// answered (each logs one line per event, and the soak's events name one instance each), or
// when limit has passed.
func awaitLines(logs *testbed.LogBuffer, fns []*fcrt.Runtime, limit time.Duration) []outcomeLine {
	want := 0
	for _, fn := range fns {
		for _, inv := range fn.Invocations() {
			if inv.Error == nil || inv.Error.Cause == fcrt.CauseFunction {
				want++
			}
		}
	}
	// An attempt FC killed may have logged a line too, so the count alone can be reached
	// early: wait until it is reached and the output has stopped growing.
	deadline := time.Now().Add(limit)
	prev := -1
	for {
		lines := outcomeLines(logs.String())
		if (len(lines) >= want && len(lines) == prev) || time.Now().After(deadline) {
			return lines
		}
		prev = len(lines)
		time.Sleep(300 * time.Millisecond)
	}
}

// setStatus changes an instance's status at once, as a test sets a scene.
func setStatus(c *localcloud.Cloud, id, status string) error {
	return c.Store.Update(func(st *world.State) error { return st.SetInstanceStatus(id, status) })
}

// states is every instance's status over time, from the store's log of changes.
type states map[string][]world.Change

func newStates(changes []world.Change) states {
	s := states{}
	for _, ch := range changes {
		if ch.Kind == world.KindInstance {
			s[ch.ID] = append(s[ch.ID], ch)
		}
	}
	for _, chs := range s {
		sort.SliceStable(chs, func(i, j int) bool { return chs[i].At.Before(chs[j].At) })
	}
	return s
}

// during returns the statuses the instance had at some time in [from, to].
func (s states) during(id string, from, to time.Time) map[string]bool {
	out := map[string]bool{}
	cur := world.StatusPending // every instance of the soak starts Pending
	for _, ch := range s[id] {
		if ch.At.After(to) {
			break
		}
		if !ch.At.After(from) {
			cur = ch.To
			continue
		}
		out[ch.To] = true
	}
	out[cur] = true
	return out
}

// accounting is what the events alone did, judged.
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
	lost        int // invocations with no end: no terminal line, no dead letter, no FC record
	// duplicateDeadLetters counts dead letters (envelopes or FC records) of an event
	// already dead-lettered.
	duplicateDeadLetters int
	wrong                int      // invocations whose end is not the right one for the world when they ran
	wrongOn              []string // the instances of those invocations
	violations           []string
}

// account matches every asynchronous invocation with its end: one terminal outcome line
// (and, when dead-lettered, the envelope in the queue the line names, carrying the event
// verbatim), or FC's destination record in the queue after the retries. Every attempt that
// answered logged one line; every message in the dead-letter queue is explained once. Then
// it judges each end against the world while its last attempt ran (see rightEnd): the
// instance's statuses from the attempt's start, less the staleness bound (what a lagging
// read may still show), to its end.
//
// An attach refused because the instance holds as many ENIs as its type allows is no reason
// to dead-letter the event when the instance was full of its own pool's ENIs, its N at least
// (every soak instance takes a primary and two more): it holds what the event asks for, and
// the dead letter's advice (a larger type, fewer ENIs) is false. held says how many pool ENIs
// an instance held (Attaching or InUse) at a time.
func account(fns []*fcrt.Runtime, invs []*invocation, lines []outcomeLine, dlqMsgs []testbed.Letter, st states,
	untagged map[string]bool, stale time.Duration, n int, held func(id string, at time.Time) int) *accounting {
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
	byMsg := map[string]*testbed.Letter{}
	records := map[string][]*testbed.Letter{}
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
			a.lost++
			bad("lost: %s (%s of event %d): FC has no such task", inv.id, inv.kind, inv.ev.idx)
			continue
		}
		runs := attempts[inv.id]
		sort.Slice(runs, func(i, j int) bool { return runs[i].Attempt < runs[j].Attempt })
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
		// Every answered attempt logged one line; an attempt FC killed at its timeout may
		// have logged one before it died.
		if len(ls) < answered || len(ls) > len(runs) {
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
		judge := func(end string) {
			if len(runs) == 0 {
				return
			}
			last := runs[len(runs)-1]
			during := st.during(inv.ev.instance, last.Start.Add(-stale), last.Start.Add(last.Duration))
			why := rightEnd(inv.ev, !untagged[inv.ev.instance], during, end)
			ended := last.Start.Add(last.Duration)
			if code := strings.TrimPrefix(end, "dead-lettered "); why == "" && (code == "EniPerInstanceLimitExceeded" || code == cloud.CodeENILimit) {
				if h := held(inv.ev.instance, ended); h >= n {
					why = fmt.Sprintf("the instance held %d of its pool's ENIs (N=%d) when the attempt ended: the event's work was done", h, n)
				}
			}
			if why != "" {
				a.wrong++
				a.wrongOn = append(a.wrongOn, inv.ev.instance)
				bad("wrong outcome: %s ended %s while the instance was %v: %s", what, end, slices.Sorted(maps.Keys(during)), why)
			}
		}
		switch task.Status {
		case fcrt.StatusSucceeded:
			if len(ends) != 1 {
				if len(ends) == 0 {
					a.lost++
				}
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
			judge(key)
			if end.Outcome != "dead-lettered" {
				if end.DeadLetterID != "" {
					bad("%s: %s names dead letter %s", what, end.Outcome, end.DeadLetterID)
				}
				continue
			}
			m := byMsg[end.DeadLetterID]
			switch {
			case end.DeadLetterID == "" || m == nil:
				a.lost++
				bad("lost: %s: dead-lettered, but message %q is not in the dead-letter queue", what, end.DeadLetterID)
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
			// FC retries a delivery that failed, and MNS may have enqueued one whose answer
			// was lost (a fault after the action): the record may come twice, never zero times.
			rs := records[inv.id]
			if len(rs) == 0 {
				a.lost++
				bad("lost: %s: no FC record in the dead-letter queue", what)
				continue
			}
			a.duplicateDeadLetters += len(rs) - 1
			for _, m := range rs {
				if !bytes.Equal(m.Record.RequestPayload, inv.ev.payload) || m.Record.ApproximateInvokeCount != len(runs) {
					bad("%s: FC record %s: payload verbatim %v, invoke count %d of %d", what, m.ID,
						bytes.Equal(m.Record.RequestPayload, inv.ev.payload), m.Record.ApproximateInvokeCount, len(runs))
				}
				explained[m.ID] = inv.id
			}
		default:
			a.lost++
			bad("lost: %s: task ended %s (%s)", what, task.Status, task.Condition)
		}
	}
	byID := map[string]*invocation{}
	for _, inv := range invs {
		byID[inv.id] = inv
	}
	for _, m := range dlqMsgs {
		if explained[m.ID] != "" {
			continue
		}
		// A second dead letter of one event: a send whose answer was lost after MNS had
		// enqueued it (a fault after the action) was sent again, by the function or by a
		// later attempt. MNS has no idempotency token, so the queue holds the event twice:
		// at least once, not lost; redrive runs it twice, harmlessly.
		if env := m.Envelope; env != nil {
			if inv := byID[env.FunctionRequestID]; inv != nil && env.InstanceID == inv.ev.instance && bytes.Equal(env.Event, inv.ev.payload) {
				a.duplicateDeadLetters++
				continue
			}
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

// contradicting are the dead-letter codes that state a fact about an instance of the soak
// that is false for every one of them (each is tagged or untagged from the start, in a VPC,
// of a type that takes at least three ENIs while Running, and no event names an ENI).
var contradicting = []string{cloud.CodeNotEligible, cloud.CodeNotFound, cloud.CodeNoVPC, cloud.CodeRequiresStopped,
	cloud.CodeENILimit, cloud.CodeNotInPool, cloud.CodeENIUnavailable, cloud.CodeRebootRequired,
	cloud.CodeBadEvent, cloud.CodeUnsupported}

// rightEnd says why end ("outcome code", or "fc-destination") is not a right end for ev
// when the instance was in the statuses during, "" when it is. FC's onFailure record is
// right for any event (the platform keeps it when the function could not). Otherwise:
// junk is dead-lettered as a bad or unsupported event; an untagged instance is skipped as
// not eligible (for a Running event) or as holding nothing (a Stopped one); a Running event
// for a Running instance ends attached or already-attached, or dead-lettered with a reason
// that can be true; a Stopped event for a Stopped (or Stopping) instance releases, or finds
// nothing to release; an event the instance's status contradicts is skipped as stale.
func rightEnd(ev *soakEvent, tagged bool, during map[string]bool, end string) string {
	if end == "fc-destination" {
		return ""
	}
	outcome, code, _ := strings.Cut(end, " ")
	if ev.form == formJunk {
		if outcome == "dead-lettered" && (code == cloud.CodeBadEvent || code == cloud.CodeUnsupported) {
			return ""
		}
		return "junk must be dead-lettered as a bad or unsupported event"
	}
	stopped := during[world.StatusStopped] || during[world.StatusStopping]
	notRunning := stopped || during[world.StatusPending] || during[world.StatusStarting]
	stale := outcome == "skipped" && code == cloud.CodeStaleEvent
	deadOK := outcome == "dead-lettered" && !slices.Contains(contradicting, code)
	switch ev.state {
	case "Stopping":
		if stale {
			return ""
		}
		return "a Stopping event has nothing to do"
	case "Running":
		if !tagged {
			if outcome == "skipped" && code == cloud.CodeNotEligible {
				return ""
			}
			return "an untagged instance must be skipped as not eligible"
		}
		if during[world.StatusRunning] && (outcome == "attached" || outcome == "already-attached" || deadOK) {
			return ""
		}
		if notRunning && (stale || deadOK) {
			return ""
		}
		if !during[world.StatusRunning] && (outcome == "attached" || outcome == "already-attached") {
			return "attached to an instance that was not Running"
		}
		return "a Running event for a Running instance with the pool tag must end with its ENIs, or a dead letter saying why not"
	case "Stopped":
		if !tagged {
			// Every release asks ECS first, and an instance without the pool tag is not
			// enipool's: whatever its state, it is skipped as not eligible.
			if outcome == "skipped" && code == cloud.CodeNotEligible {
				return ""
			}
			return "a Stopped event for an untagged instance must be skipped as not eligible"
		}
		if (during[world.StatusRunning] || during[world.StatusStarting] || during[world.StatusPending]) && stale {
			return "" // started again since: the event is out of date
		}
		if stopped && (outcome == "detached" || stale || deadOK) {
			if outcome == "detached" && !tagged {
				return "released pool ENIs from an untagged instance, which must never have held one"
			}
			return ""
		}
		return "a Stopped event for a Stopped instance releases its ENIs (or finds none); for a Running one it is stale"
	}
	return "unexpected event state " + ev.state
}

// namedByDeadLetters maps each instance named by a dead letter (the function's envelope, or
// FC's record of an event about it) to why.
func namedByDeadLetters(msgs []testbed.Letter, invs []*invocation) map[string]string {
	byReq := map[string]*invocation{}
	for _, inv := range invs {
		byReq[inv.id] = inv
	}
	named := map[string]string{}
	for _, m := range msgs {
		switch {
		case m.Envelope != nil && m.Envelope.InstanceID != "":
			why := m.Envelope.Reason
			if m.Envelope.Error != nil {
				why = m.Envelope.Error.Code + ": " + why
			}
			named[m.Envelope.InstanceID] = why
		case m.Record != nil:
			if inv := byReq[m.Record.RequestID]; inv != nil && inv.ev.instance != "" {
				named[inv.ev.instance] = "FC onFailure: " + m.Record.Condition
			}
		}
	}
	return named
}

// restJudgement is the world at rest, judged.
type restJudgement struct {
	eligible   int      // eligible Running instances
	exactlyN   int      // of which hold exactly N InUse pool ENIs of their pool and nothing else
	outOfPlace []string // instances neither at rest nor named by a dead letter
}

// judgeRest checks invariant 2 at rest: every instance eligible for a pool and Running
// holds exactly n ENIs of that pool, InUse; every other instance (Stopped, untagged) holds
// no pool ENI at all. An instance that does not, and that named does not name, is out of
// place (named nil names none).
func judgeRest(c *localcloud.Cloud, n int, named map[string]string) restJudgement {
	var j restJudgement
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
			j.eligible++
		}
		got := held[in.ID]
		ok := 0
		for _, e := range got {
			if e.Status == world.ENIInUse && e.Tags[tagKey] == eligibility(in) {
				ok++
			}
		}
		if len(got) == want && ok == want {
			if want > 0 {
				j.exactlyN++
			}
			continue
		}
		if named[in.ID] != "" {
			continue
		}
		var desc []string
		for _, e := range got {
			desc = append(desc, e.ID+" "+e.Status+" pool "+e.Tags[tagKey])
		}
		j.outOfPlace = append(j.outOfPlace, fmt.Sprintf("%s (%s, pool %q) holds %d pool ENIs %v, want exactly %d",
			in.ID, in.Status, eligibility(in), len(got), desc, want))
	}
	return j
}

// heldPoolENIs returns how many pool ENIs an instance held (Attaching or InUse) at a time,
// replaying the store's log of ENI status changes.
func heldPoolENIs(changes []world.Change, c *localcloud.Cloud) func(id string, at time.Time) int {
	pool := map[string]bool{}
	for _, e := range c.Store.ENIs() {
		pool[e.ID] = e.Tags[tagKey] != ""
	}
	byInst := map[string][]world.Change{}
	for _, ch := range changes {
		if ch.Kind == world.KindENI && pool[ch.ID] {
			byInst[ch.Instance] = append(byInst[ch.Instance], ch)
		}
	}
	for _, chs := range byInst {
		sort.SliceStable(chs, func(i, j int) bool { return chs[i].At.Before(chs[j].At) })
	}
	return func(id string, at time.Time) int {
		h := map[string]bool{}
		for _, ch := range byInst[id] {
			if ch.At.After(at) {
				break
			}
			if ch.To == world.ENIAttaching || ch.To == world.ENIInUse {
				h[ch.ID] = true
			} else {
				delete(h, ch.ID)
			}
		}
		return len(h)
	}
}

// overN is one interval in which an instance held more than N pool ENIs (Attaching or
// InUse: a Detaching one is on its way back, the function has let it go).
type overN struct {
	instance string
	from, to time.Time // to is when the events were done for an interval still open then
	open     bool
	most     int
	enis     []string
	// attach is the longest true duration among the attaches to the instance that ran
	// during the interval: the function cannot detach a surplus before it is InUse.
	attach time.Duration
	// halted is the part of the interval the instance was not Running: ECS refuses a detach
	// while it is Stopping or Starting, and once Stopped its ENIs are the Stopped event's
	// release, judged as such (invariants 1 and 2 at rest, the events' outcomes).
	halted time.Duration
}

func (o overN) length() time.Duration { return o.to.Sub(o.from) }

// running is how long of the interval the instance was Running: what the bound applies to.
func (o overN) running() time.Duration { return o.length() - o.halted }

func (o overN) describe(t0 time.Time) string {
	state := "closed"
	if o.open {
		state = "still open"
	}
	return fmt.Sprintf("from %.3fs to %.3fs (%s), ENIs %v", o.from.Sub(t0).Seconds(), o.to.Sub(t0).Seconds(), state, o.enis)
}

// overNIntervals replays the store's log of ENI status changes, at their true times, and
// returns every interval in which an eligible instance held more than n pool ENIs; an
// interval still open at end is cut there.
func overNIntervals(changes []world.Change, ops []world.Operation, c *localcloud.Cloud, n int, end time.Time) []overN {
	pool := map[string]bool{}
	for _, e := range c.Store.ENIs() {
		pool[e.ID] = e.Tags[tagKey] != ""
	}
	eligible := map[string]bool{}
	for _, in := range c.Store.Instances() {
		eligible[in.ID] = in.Tags[tagKey] != ""
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].At.Before(changes[j].At) })
	held := map[string]map[string]bool{} // instance -> ENIs it holds
	open := map[string]*overN{}
	var out []overN
	for _, ch := range changes {
		if ch.Kind != world.KindENI || !pool[ch.ID] || !eligible[ch.Instance] || ch.At.After(end) {
			continue
		}
		h := held[ch.Instance]
		if h == nil {
			h = map[string]bool{}
			held[ch.Instance] = h
		}
		if ch.To == world.ENIAttaching || ch.To == world.ENIInUse {
			h[ch.ID] = true
		} else {
			delete(h, ch.ID)
		}
		iv := open[ch.Instance]
		switch {
		case len(h) > n && iv == nil:
			iv = &overN{instance: ch.Instance, from: ch.At}
			open[ch.Instance] = iv
			fallthrough
		case len(h) > n:
			iv.most = max(iv.most, len(h))
			for id := range h {
				if !slices.Contains(iv.enis, id) {
					iv.enis = append(iv.enis, id)
				}
			}
		case iv != nil:
			iv.to = ch.At
			out = append(out, *iv)
			delete(open, ch.Instance)
		}
	}
	for _, iv := range open {
		iv.to, iv.open = end, true
		out = append(out, *iv)
	}
	// The instances' states over time: each change of an instance starts a span of its new
	// state; before its first change an instance was in that change's From state.
	type span struct {
		from   time.Time
		status string
	}
	states := map[string][]span{}
	for _, ch := range changes {
		if ch.Kind != world.KindInstance {
			continue
		}
		if len(states[ch.ID]) == 0 {
			states[ch.ID] = []span{{time.Time{}, ch.From}}
		}
		states[ch.ID] = append(states[ch.ID], span{ch.At, ch.To})
	}
	for i := range out {
		iv := &out[i]
		for _, op := range ops {
			if op.Op == "attach" && op.Instance == iv.instance && op.Accepted.Before(iv.to) && !op.Due.Before(iv.from) {
				iv.attach = max(iv.attach, op.Duration)
			}
		}
		spans := states[iv.instance]
		for k, sp := range spans {
			if sp.status == world.StatusRunning {
				continue
			}
			end := iv.to
			if k+1 < len(spans) && spans[k+1].from.Before(end) {
				end = spans[k+1].from
			}
			start := sp.from
			if start.Before(iv.from) {
				start = iv.from
			}
			if end.After(start) {
				iv.halted += end.Sub(start)
			}
		}
		sort.Strings(iv.enis)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from.Before(out[j].from) })
	return out
}

// upkeepRun is what the upkeep did.
type upkeepRun struct {
	rounds     int
	redriven   int
	received   int
	kept       int
	reconciles []engine.ReconcileReport
	left       []testbed.Letter // dead letters still in the queue at the end
	repaired   []string         // instances the reconcile attached or detached an ENI for
	text       string           // every result, for the secret check
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
func upkeep(t *testing.T, c *localcloud.Cloud, fn *fcrt.Runtime, instances int, permanent func(testbed.Letter) bool) *upkeepRun {
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
		var rec engine.ReconcileReport
		// What the reconcile repaired: every attach or detach the cloud accepted while it
		// ran (nothing else runs then), answered or not.
		from := c.Store.Now()
		invoke(fmt.Sprintf(`{"action":"reconcile","max":%d}`, instances+100), &rec)
		to := c.Store.Now()
		for _, op := range c.Store.Operations() {
			if !op.Accepted.Before(from) && !op.Accepted.After(to) && !slices.Contains(u.repaired, op.Instance) {
				u.repaired = append(u.repaired, op.Instance)
			}
		}
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
	changes := c.Store.Changes(1)
	var out []string
	for _, v := range off {
		id, _, _ := strings.Cut(v, " ")
		var es []entry
		for _, st := range s.steps {
			if st.change != "" && st.inst == id {
				es = append(es, entry{st.at, "planned: " + st.change})
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
		for _, ch := range changes {
			if ch.Instance == id {
				es = append(es, entry{ch.At.Sub(t0), fmt.Sprintf("%s %s %s -> %s", ch.Kind, ch.ID, ch.From, ch.To)})
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
	c *localcloud.Cloud, fns []*fcrt.Runtime, before []string, over []overN, t0 time.Time, wall map[string]time.Duration) {
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
		cfg.seed, cfg.instances, len(s.untagged), s.cycled, len(c.Store.ENIs(func(e *world.ENI) bool { return e.Tags[tagKey] != "" })),
		cfg.pools, cfg.perInstance)
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
	line("FC onFailure destination records: %d; dead letters or records sent twice (an answer lost after MNS enqueued it): %d", acc.fcRecords, acc.duplicateDeadLetters)

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
	rolled := 0
	for _, op := range c.Store.Operations() {
		if op.Outcome == world.OutcomeRolledBack {
			rolled++
		}
	}
	line("cloud calls %d (ecs %d): throttled %d, 5xx %d, resets %d, refused by the MNS outage %d, attaches rolled back %d",
		len(calls), count(ecs), throttled, server, resets, outage, rolled)
	line("AttachNetworkInterface: %d calls, %d accepted, %.2f calls per accepted attach; %d detaches accepted",
		attachCalls, attachOK, float64(attachCalls)/float64(max(attachOK, 1)), detachOK)
	stats := c.Faults.Stats()
	line("realism: stale reads %d %s; answers lost after the action %d %s", stats.StaleReads, sorted(stats.StaleReadsBy),
		stats.FaultsAfterAction, sorted(stats.FaultsAfterActionBy))
	var durs []time.Duration
	for _, op := range c.Store.Operations() {
		if op.Op == "attach" {
			durs = append(durs, op.Duration)
		}
	}
	slices.Sort(durs)
	if len(durs) > 0 {
		line("attach true durations: %d, median %v, p99 %v, longest %v", len(durs), durs[len(durs)/2].Round(time.Millisecond),
			durs[len(durs)*99/100].Round(time.Millisecond), durs[len(durs)-1].Round(time.Millisecond))
	}
	line("FC: %s", fcStats(fns))
	line("instances holding more than N: %d interval(s)", len(over))
	byLen := slices.Clone(over)
	sort.Slice(byLen, func(i, j int) bool { return byLen[i].length() > byLen[j].length() })
	for i, iv := range byLen {
		if i == 5 {
			break
		}
		line("  %s held %d for %v (its attach took %v) %s", iv.instance, iv.most, iv.length().Round(time.Millisecond),
			iv.attach.Round(time.Millisecond), iv.describe(t0))
	}
	line("left by the events alone out of place, named by no dead letter: %d instance(s)", len(before))
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

// fcStats sums what FC's instance model did over the functions.
func fcStats(fns []*fcrt.Runtime) string {
	var st fcrt.Stats
	for _, fn := range fns {
		s := fn.Stats()
		st.InstancesStarted += s.InstancesStarted
		st.ColdStarts += s.ColdStarts
		st.Reclaimed += s.Reclaimed
		st.Invocations += s.Invocations
	}
	return fmt.Sprintf("%d attempts on %d instances (processes), %d cold starts, %d reclaimed idle", st.Invocations, st.InstancesStarted,
		st.ColdStarts, st.Reclaimed)
}
