// Command bench is enipool's benchmark, behind `make bench`. It runs the function as Function
// Compute runs it (the built binary under the local FC runtime, one process per concurrent
// invocation, cold when new, reused when warm, configured as s.yaml deploys it) against a
// local cloud as unkind as production (long-tailed attach times, stale reads, latency on both
// halves of every call, ECS's rate limits), side by side with the peers' confirmation
// policies run the same way. It prints one table in which every figure sits beside its
// target, its floor and the command that reproduces it, writes the same figures, the
// machine and the exact parameters as JSON, and draws the charts.
//
//	go run ./bench -out bench/results.json -charts docs/bench   # everything (make bench)
//	go run ./bench -quick                                       # smoke sizes
//	go run ./bench -only burst -policies enipool                # some of it
//	go run ./bench -only burstqueue                             # the burst through the work queue
//
// Scenarios: single (events one at a time per lane, every policy side by side in one world:
// latency against each event's own floor, 3L + its attach time), burst (500 launches at once
// against the attach quota, each policy in a fresh copy of the world, delivered as EventBridge
// delivers them: one asynchronous invocation each), burstqueue (the same burst for enipool
// alone, sent to the work queue and handed to the function in batches by s.yaml's work-queue
// trigger; the peers have no batch path) and coldstart (process
// start, the first invocation and peak RSS over HTTPS against a hello-world function, the
// same over plain HTTP, and a 1000-event batch).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/enipool/enipool/bench/internal/chart"
	"github.com/enipool/enipool/bench/internal/harness"
	"github.com/enipool/enipool/bench/internal/peer"
	"github.com/enipool/enipool/bench/internal/report"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/fault"
)

// scenarios returns the names -only accepts, in the order they run.
func scenarios() []string { return []string{"single", "burst", "burstqueue", "coldstart"} }

func main() {
	out := flag.String("out", "", "write the results as JSON to this file (make bench writes bench/results.json)")
	charts := flag.String("charts", "", "write the SVG charts into this folder (make bench writes docs/bench)")
	quick := flag.Bool("quick", false, "smoke-run sizes; the figures are not comparable with the targets")
	only := flag.String("only", "", "run only these scenarios, comma-separated: "+strings.Join(scenarios(), ", "))
	policies := flag.String("policies", "", "compare only these policies, comma-separated: "+strings.Join(harness.Policies(), ", "))
	stale := flag.Duration("stale", time.Second, "how far behind the writes ECS reads may be served (the realistic world's 1s); 0 serves fresh reads, "+
		"which separates what a confirmation schedule costs from what the reads' lag costs")
	queueTasks := flag.Int("queue-tasks", 0, "burstqueue: batches the work-queue trigger pushes at once (its runOptions.maximumTasks); 0 keeps s.yaml's")
	flag.Parse()
	sel, err := pick("-only", *only, scenarios())
	if err == nil {
		var pols []string
		if pols, err = pick("-policies", *policies, harness.Policies()); err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			err = run(ctx, config{out: *out, charts: *charts, quick: *quick, only: sel, policies: pols, stale: *stale, queueTasks: *queueTasks}, os.Stdout, os.Stderr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// pick returns the names of list that flag value names, in list's order (all for "").
func pick(flag, value string, list []string) ([]string, error) {
	if value == "" {
		return list, nil
	}
	var sel []string
	for _, s := range strings.Split(value, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(list, s) {
			return nil, fmt.Errorf("%s: unknown name %q (want %s)", flag, s, strings.Join(list, ", "))
		}
		sel = append(sel, s)
	}
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return !slices.Contains(sel, s) }), nil
}

type config struct {
	out, charts string
	quick       bool
	only        []string
	policies    []string
	stale       time.Duration
	queueTasks  int
}

// Parameters are the exact settings of a run.
type Parameters struct {
	// Cloud is the world every scenario starts from (each sets its own instances and pool).
	Cloud harness.CloudParams `json:"cloud"`
	// Policies are the policies compared; Peers the peers' published parameters.
	Policies []string      `json:"policies"`
	Peers    []peer.Policy `json:"peers"`
	// SingleLanes lanes per policy send SinglePerLane events each, one at a time.
	SingleLanes   int `json:"singleLanes"`
	SinglePerLane int `json:"singlePerLane"`
	// BurstEvents launches at once; FC runs at most BurstMaxInstances instances of a function.
	BurstEvents       int `json:"burstEvents"`
	BurstMaxInstances int `json:"burstMaxInstances"`
	ColdRuns          int `json:"coldRuns"`
	BigBatch          int `json:"bigBatch"`
	// Deployment says how the functions are configured.
	Deployment       string  `json:"deployment"`
	FunctionTimeoutS float64 `json:"functionTimeoutS"`
	FunctionMemoryMB int     `json:"functionMemoryMB"`
	// Randomness says what is not fixed by the seed.
	Randomness string `json:"randomness"`
}

func parameters(quick bool, policies []string, stale time.Duration) Parameters {
	d := func(v time.Duration) fault.Duration { return fault.Duration(v) }
	p := Parameters{
		// The realistic world's figures (localcloud/worlds/demo.yaml, as the soak and the
		// scenarios run it): attach median 2 s, p99 8 s; reads up to 1 s stale; the account's
		// attach quota 20/s (bucket 40), every other ECS action 200/s (bucket 400). Latency
		// is that world's base on each half, without its jitter and spikes, so that every
		// event's floor is exact; no answers are lost after the action (a lost answer is a
		// 15 s hold in that world, a fault rather than a speed).
		Cloud: harness.CloudParams{Zones: 2, Seed: 1,
			RequestLatency: harness.Duration(15 * time.Millisecond), ResponseLatency: harness.Duration(5 * time.Millisecond),
			AttachSpread: fault.Spread{Median: d(2 * time.Second), P99: d(8 * time.Second), Max: d(30 * time.Second)},
			DetachSpread: fault.Spread{Median: d(time.Second), P99: d(4 * time.Second), Max: d(15 * time.Second)},
			Staleness:    harness.Duration(stale),
			AttachQPS:    20, AttachBurst: 40, OtherQPS: 200, OtherBurst: 400},
		Policies: policies, Peers: peer.Policies(),
		SingleLanes: 8, SinglePerLane: 6,
		BurstEvents: 500, BurstMaxInstances: 100,
		ColdRuns: 20, BigBatch: 1000,
		Deployment: "s.yaml rendered with every default (environment, timeout, asyncInvokeConfig); no ENIPOOL_ATTACH_TIME; " +
			"the peers run the same way as a function of their own (bench/peerfn), BENCH_PEER_POLICY naming the policy; " +
			"events are EventBridge ECS Running events delivered as asynchronous invocations; " +
			"burstqueue sends direct requests as messages to the work queue, which s.yaml's work-queue trigger (package trigger's MNS event stream) pushes in batches",
		FunctionTimeoutS: harness.FunctionTimeout.Seconds(),
		FunctionMemoryMB: 256,
		Randomness: "the cloud's attach durations and stale reads are drawn from the seed (the n-th attach of a world takes as long in every run); " +
			"which attach is the n-th, the peers' jitter and ENI choice, enipool's backoff jitter and the machine's scheduling are not seeded",
	}
	if quick {
		p.SingleLanes, p.SinglePerLane = 2, 3
		p.BurstEvents, p.BurstMaxInstances = 60, 30
		p.ColdRuns, p.BigBatch = 2, 100
	}
	return p
}

// cloud is the cold-start scenario's world: the run's latency, a fixed 300 ms attach, no
// stale reads and no rate limits, as that scenario has always had. It measures a process
// (start, memory, a 1000-event batch within the function's timeout), not the cloud.
func (p Parameters) cloud(instances, pool int) harness.CloudParams {
	c := p.Cloud
	c.Instances, c.Pool = instances, pool
	c.AttachSpread = fault.Spread{Median: fault.Duration(300 * time.Millisecond)}
	c.Staleness, c.AttachQPS, c.AttachBurst, c.OtherQPS, c.OtherBurst = 0, 0, 0, 0, 0
	return c
}

// Results is what -out writes.
type Results struct {
	Date       time.Time             `json:"date"`
	Command    string                `json:"command"`
	Quick      bool                  `json:"quick"`
	Scenarios  []string              `json:"scenarios"`
	Machine    report.Machine        `json:"machine"`
	Parameters Parameters            `json:"parameters"`
	RunTimeS   float64               `json:"runTimeS"`
	Figures    []report.Figure       `json:"figures"`
	Notes      []string              `json:"notes"`
	Charts     []string              `json:"charts,omitempty"`
	Single     *harness.SingleResult `json:"single,omitempty"`
	// Bursts are by policy; their events are summed up (the ratios are in BurstRatios).
	Bursts      map[string]*harness.BurstResult `json:"bursts,omitempty"`
	BurstRatios map[string][]float64            `json:"burstRatios,omitempty"`
	// BurstQueue is enipool's burst through the work queue, summed up likewise.
	BurstQueue       *harness.BurstResult     `json:"burstQueue,omitempty"`
	BurstQueueRatios []float64                `json:"burstQueueRatios,omitempty"`
	ColdStart        *harness.ColdStartResult `json:"coldStart,omitempty"`
}

// bench holds a run in progress.
type bench struct {
	cfg   config
	p     Parameters
	res   *Results
	start time.Time
	log   io.Writer
	bins  harness.Functions
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	b := &bench{cfg: cfg, p: parameters(cfg.quick, cfg.policies, cfg.stale), start: time.Now(), log: stderr}
	b.res = &Results{
		Date: b.start.UTC(), Command: strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " "),
		Quick: cfg.quick, Scenarios: cfg.only, Machine: report.ReadMachine(), Parameters: b.p,
		Bursts: map[string]*harness.BurstResult{}, BurstRatios: map[string][]float64{},
	}
	if slices.ContainsFunc(cfg.only, func(s string) bool { return s == "single" || s == "burst" || s == "burstqueue" }) {
		dir, err := os.MkdirTemp("", "enipool-bench-fn-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		b.progress("building enipool and the peers' function")
		if b.bins, err = harness.BuildFunctions(ctx, dir); err != nil {
			return err
		}
	}
	steps := map[string]func(context.Context) error{"single": b.single, "burst": b.burst, "burstqueue": b.burstQueue, "coldstart": b.coldstart}
	for _, s := range cfg.only {
		if err := steps[s](ctx); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if cfg.charts != "" {
		if err := b.drawCharts(); err != nil {
			return err
		}
	}
	for i := range b.res.Figures {
		b.res.Figures[i].Evaluate()
	}
	b.res.RunTimeS = time.Since(b.start).Seconds()

	if cfg.quick {
		fmt.Fprintln(stdout, "QUICK RUN: smoke sizes; the figures are not comparable with the targets.")
	}
	m, c := b.res.Machine, b.p.Cloud
	fmt.Fprintf(stdout, "enipool bench, %s: %s, %d cores, %.1f GiB, %s, %s\n", b.res.Date.Format(time.RFC3339), m.CPU, m.Cores,
		float64(m.MemoryBytes)/(1<<30), m.Go, m.OS)
	fmt.Fprintf(stdout, "L = %v + %v on every ECS call; attach time per attach: median %v, p99 %v; reads up to %v stale; attach quota %g/s (bucket %d), other ECS actions %g/s; seed %d\n\n",
		c.RequestLatency.D(), c.ResponseLatency.D(), c.AttachSpread.Median.D(), c.AttachSpread.P99.D(), c.Staleness.D(),
		c.AttachQPS, c.AttachBurst, c.OtherQPS, c.Seed)
	if err := report.WriteTable(stdout, b.res.Figures); err != nil {
		return err
	}
	if len(b.res.Notes) > 0 {
		fmt.Fprintln(stdout, "\nNotes (from the runtime's and the cloud's records):")
		for _, n := range b.res.Notes {
			fmt.Fprintln(stdout, "  - "+n)
		}
	}
	missed := 0
	for _, f := range b.res.Figures {
		if f.Status == report.StatusMissed {
			missed++
		}
	}
	fmt.Fprintf(stdout, "\n%d figures, %d MISSED; bench ran %.0f s\n", len(b.res.Figures), missed, b.res.RunTimeS)
	if cfg.out != "" {
		if err := writeJSON(cfg.out, b.res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.out)
	}
	return nil
}

func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "->" and "<=" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// command is what reproduces a scenario's figures.
func (b *bench) command(scenario string) string {
	c := "go run ./bench -only " + scenario
	if len(b.cfg.policies) < len(harness.Policies()) {
		c += " -policies " + strings.Join(b.cfg.policies, ",")
	}
	if b.cfg.quick {
		c += " -quick"
	}
	if b.cfg.stale != time.Second {
		c += " -stale " + b.cfg.stale.String()
	}
	if scenario == "burstqueue" && b.cfg.queueTasks > 0 {
		c += " -queue-tasks " + strconv.Itoa(b.cfg.queueTasks)
	}
	return c
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "[%5.0fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) add(f ...report.Figure) { b.res.Figures = append(b.res.Figures, f...) }

func (b *bench) note(format string, args ...any) {
	b.res.Notes = append(b.res.Notes, fmt.Sprintf(format, args...))
}

func ms(d harness.Duration) float64 { return harness.Ms(d.D()) }

// ratio is a figure of latency ÷ floor.
func ratio(id, group, name string, v float64, cmd string) report.Figure {
	return report.Figure{ID: id, Group: group, Name: name, Value: v, Unit: "x floor", Command: cmd}.WithFloor(1, "(the event's own floor)")
}

// single: scenario 1, every policy side by side.
func (b *bench) single(ctx context.Context) error {
	p := b.p
	b.progress("1 single events: %s side by side, %d lanes each, %d events per lane one at a time (the first of each lane cold)",
		strings.Join(p.Policies, ", "), p.SingleLanes, p.SinglePerLane)
	r, err := harness.Single(ctx, b.bins, harness.SingleParams{Cloud: p.Cloud, Policies: p.Policies, Lanes: p.SingleLanes, PerLane: p.SinglePerLane})
	if err != nil {
		return err
	}
	b.progress("1 done: %.0f s", ms(r.Wall)/1000)
	b.res.Single = r
	cmd := b.command("single")
	cheapest := math.Inf(1)
	bestP50, bestP99 := math.Inf(1), math.Inf(1)
	for _, pol := range p.Policies {
		if sp := r.Policies[pol]; pol != harness.Enipool {
			cheapest = min(cheapest, sp.ECSCallsPerEvent)
			bestP50, bestP99 = min(bestP50, sp.Warm.P50), min(bestP99, sp.Warm.P99)
		}
	}
	for _, pol := range p.Policies {
		sp := r.Policies[pol]
		id := "1/" + pol
		group := fmt.Sprintf("single events, %s: %d lanes x %d events one at a time, each for a new instance; %d warm, %d cold (a new FC instance's first); %s",
			pol, p.SingleLanes, p.SinglePerLane, sp.Warm.N, sp.Cold.N, describe(pol))
		fig := func(name string, v float64, unit string) report.Figure {
			return report.Figure{ID: id, Group: group, Name: name, Value: v, Unit: unit, Command: cmd}
		}
		w50 := ratio(id, group, "warm: p50 latency ÷ floor", sp.Warm.P50, cmd)
		w50.Note = fmt.Sprintf("latency p50 %.0f ms, floor p50 %.0f ms", ms(sp.Warm.LatencyP50), ms(sp.Warm.FloorP50))
		w99 := ratio(id, group, fmt.Sprintf("warm: p99 latency ÷ floor (nearest rank of %d)", sp.Warm.N-sp.Warm.Failed), sp.Warm.P99, cmd)
		w99.Note = fmt.Sprintf("latency p99 %.0f ms", ms(sp.Warm.LatencyP99))
		c := ratio(id, group, fmt.Sprintf("cold: worst latency ÷ floor (of %d; p50 %.2f)", sp.Cold.N-sp.Cold.Failed, sp.Cold.P50), sp.Cold.Max, cmd)
		calls := fig("ECS calls per event", sp.ECSCallsPerEvent, "calls/event").WithFloor(4, "(describe, list, attach, one poll)")
		att := fig("attached, confirmed InUse (the cloud's state)", float64(sp.Audit.Attached), "count").Goal("==", float64(len(sp.Events)), "")
		thr := fig("throttled calls", float64(sp.Audit.Throttled), "count")
		if pol == harness.Enipool {
			w50 = w50.Goal("<=", 1.15, "")
			w99 = w99.Goal("<=", 1.5, "")
			c = c.Goal("<=", 1.5, "")
			if !math.IsInf(cheapest, 1) {
				calls = calls.Goal("<=", 2*cheapest, "2x the cheapest peer")
			}
		}
		b.add(w50, w99, c, calls, thr, att)
		if pol == harness.Enipool && !math.IsInf(bestP50, 1) {
			ahead50 := ratio(id, group, "warm p50 ÷ floor, against the best peer's", sp.Warm.P50, cmd).Goal("<=", bestP50, "the best peer")
			ahead99 := ratio(id, group, "warm p99 ÷ floor, against the best peer's", sp.Warm.P99, cmd).Goal("<=", bestP99, "the best peer")
			b.add(ahead50, ahead99)
		}
		b.note("1/%s: outcomes %v; %d FC instances; ECS calls by action %v.", pol, sp.Outcomes, sp.Instances, sp.Audit.ByAction)
		b.pollNote("1/"+pol, sp.Events)
	}
	return nil
}

// pollNote says when a policy's polls reached the cloud, against the attach times.
func (b *bench) pollNote(id string, events []*harness.Event) {
	var first, attach []float64
	polls := 0
	for _, ev := range events {
		if ev.Polls > 0 {
			first = append(first, ms(ev.FirstPoll))
			attach = append(attach, ms(ev.AttachTime))
			polls += ev.Polls
		}
	}
	if len(first) == 0 {
		return
	}
	b.note("%s: the first poll of the attached ENI reached the cloud %.0f ms (p50; p10 %.0f, p90 %.0f) after ECS accepted the attach, whose time was %.0f ms (p50; p10 %.0f, p90 %.0f); %.2f polls per event.",
		id, harness.PercentileF(first, 50), harness.PercentileF(first, 10), harness.PercentileF(first, 90),
		harness.PercentileF(attach, 50), harness.PercentileF(attach, 10), harness.PercentileF(attach, 90), float64(polls)/float64(len(first)))
}

// describe says what a policy does.
func describe(policy string) string {
	if p, ok := peer.ByName(policy); ok {
		return p.Source
	}
	return "enipool as deployed"
}

// burst: scenario 2, each policy in a fresh copy of the world.
func (b *bench) burst(ctx context.Context) error {
	p := b.p
	for _, pol := range p.Policies {
		b.progress("2/%s burst: %d launches at once, at most %d FC instances", pol, p.BurstEvents, p.BurstMaxInstances)
		c := p.Cloud
		c.Instances, c.Pool = p.BurstEvents, p.BurstEvents
		r, err := harness.Burst(ctx, b.bins, harness.BurstParams{Cloud: c, Policy: pol,
			Events: p.BurstEvents, MaxInstances: p.BurstMaxInstances})
		if err != nil {
			return err
		}
		b.progress("2/%s done: wall %.1f s (floor %.1f s)", pol, ms(r.Wall)/1000, ms(r.WallFloor)/1000)
		b.res.Bursts[pol] = r
		for _, ev := range r.Events {
			b.res.BurstRatios[pol] = append(b.res.BurstRatios[pol], math.Round(ev.Ratio*100)/100)
		}
		b.pollNote("2/"+pol, r.Events)
		r.Events = nil // summed up above and in the ratios
		group := fmt.Sprintf("burst, %s: %d launches at once, pool %d over %d zones, attach quota %g/s (bucket %d), at most %d FC instances; %s",
			pol, p.BurstEvents, p.BurstEvents, c.Zones, c.AttachQPS, c.AttachBurst, p.BurstMaxInstances, describe(pol))
		b.burstFigures(pol, r, "2/"+pol, group, b.command("burst"), "delivery", 4, "")
	}
	return nil
}

// burstQueue: scenario 2 through the work queue, enipool only.
func (b *bench) burstQueue(ctx context.Context) error {
	p := b.p
	if !slices.Contains(p.Policies, harness.Enipool) {
		b.note("2q: not run: -policies leaves out enipool, and the peers have no batch path (their function takes one event per invocation).")
		return nil
	}
	b.progress("2q/enipool burst through the work queue: %d launches sent at once to s.yaml's work-queue trigger, at most %d FC instances",
		p.BurstEvents, p.BurstMaxInstances)
	c := p.Cloud
	c.Instances, c.Pool = p.BurstEvents, p.BurstEvents
	r, err := harness.BurstQueue(ctx, b.bins, harness.BurstParams{Cloud: c, Policy: harness.Enipool,
		Events: p.BurstEvents, MaxInstances: p.BurstMaxInstances, QueueTasks: b.cfg.queueTasks})
	if err != nil {
		return err
	}
	b.progress("2q/enipool done: wall %.1f s (floor %.1f s), batches %v", ms(r.Wall)/1000, ms(r.WallFloor)/1000, r.Queue.Batches)
	b.res.BurstQueue = r
	for _, ev := range r.Events {
		b.res.BurstQueueRatios = append(b.res.BurstQueueRatios, math.Round(ev.Ratio*100)/100)
	}
	r.Events = nil // summed up above and in the ratios
	q := r.Queue
	tasks, whose := q.MaximumTasks, "s.yaml's maximumTasks"
	switch {
	case b.cfg.queueTasks > 0:
		whose = "maximumTasks from -queue-tasks"
	case tasks == 0:
		tasks, whose = 1, "s.yaml sets no maximumTasks; the local stream's default"
	}
	group := fmt.Sprintf("burst through the work queue, enipool: %d launches sent at once to the queue of s.yaml's %s trigger, which pushes batches of up to %d messages "+
		"or %d s, %d push(es) at a time (%s), the queue's visibility timeout %d s (deploy/README.md); pool %d over %d zones, attach quota %g/s (bucket %d), at most %d FC instances; the peers have no batch path",
		p.BurstEvents, q.Trigger, q.CountBasedWindow, q.TimeBasedWindowS, tasks, whose, q.VisibilityTimeoutS, p.BurstEvents, c.Zones, c.AttachQPS, c.AttachBurst, p.BurstMaxInstances)
	b.burstFigures(harness.Enipool, r, "2q/"+harness.Enipool, group, b.command("burstqueue"), "first send",
		1, "(the attach: a batch shares its describes and listings)")
	b.add(report.Figure{ID: "2q/" + harness.Enipool, Group: group, Name: fmt.Sprintf("invocations (batches of %v, %d stream retries)", q.Batches, q.Retries),
		Value: float64(r.Invocations), Unit: "count", Command: b.command("burstqueue")})
	b.note("2q/enipool: the stream took %d messages for %d sent; %d events reached the function again (a message taken again after its visibility timeout, or a batch retried), handled then as %v; "+
		"the queue drained %.1f s after the first send; %d errors outside the function%s.",
		q.MessagesTaken, p.BurstEvents, q.Again, q.AgainOutcomes, ms(q.Drained)/1000, q.Errors, firstErrors(q.FirstErrors))
	b.note("2q/enipool: events count from their message's send; the floors are the EventBridge burst's, with nothing for the batch window (harness.BurstQueue).")
	return nil
}

// firstErrors shows the first errors of a list, if any.
func firstErrors(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return ", the first: " + strings.Join(errs, "; ")
}

// burstFigures adds a burst's figures under id and group; from names what its wall counts
// from, and callsFloor (with its reason) is the fewest ECS calls an attach can cost.
func (b *bench) burstFigures(pol string, r *harness.BurstResult, id, group, cmd, from string, callsFloor float64, callsWhy string) {
	p, a, c := b.p, r.Audit, b.p.Cloud
	fig := func(name string, v float64, unit string) report.Figure {
		return report.Figure{ID: id, Group: group, Name: name, Value: v, Unit: unit, Command: cmd}
	}
	floor := ms(r.WallFloor) / 1000
	wall := fig("wall time, "+from+" to the last event's end", ms(r.Wall)/1000, "s").
		WithFloor(floor, fmt.Sprintf("(3L + the quota's least schedule of the %d attach times)", p.BurstEvents))
	thr := fig(fmt.Sprintf("throttled calls per attach (%d)", a.Throttled), r.ThrottledPerAttach, "calls/attach").WithFloor(0, "")
	calls := fig(fmt.Sprintf("ECS calls per attach (%d / %d)", a.ECSCalls, p.BurstEvents), r.ECSCallsPerAttach, "calls/attach").WithFloor(callsFloor, callsWhy)
	// OtherDLQMessages are FC's onFailure records and the stream's dead-lettered events.
	dead := fig("dead letters", float64(len(a.DeadLetters)+a.OtherDLQMessages), "count")
	if pol == harness.Enipool {
		wall = wall.Goal("<=", 1.2*floor, "1.2x floor")
		thr = thr.Goal("<=", 0.2, "")
		calls = calls.Goal("<=", 6, "")
		dead = dead.Goal("==", 0, "")
	}
	r50 := ratio(id, group, "p50 latency ÷ floor (each event's floor with its quota wait)", r.Summary.P50, cmd)
	r50.Note = fmt.Sprintf("latency p50 %.1f s", ms(r.Summary.LatencyP50)/1000)
	r99 := ratio(id, group, "p99 latency ÷ floor", r.Summary.P99, cmd)
	r99.Note = fmt.Sprintf("latency p99 %.1f s", ms(r.Summary.LatencyP99)/1000)
	b.add(
		fig("attached (exactly 1 pool ENI, InUse)", float64(a.Attached), "count").Goal("==", float64(p.BurstEvents), ""),
		fig("ENIs attached twice (final world and call records)", float64(a.DoubleAttaches()), "count").Goal("==", 0, ""),
		wall, thr, calls, r50, r99, dead,
		fig(fmt.Sprintf("FC instances started (%d cold starts)", r.ColdStarts), float64(r.Instances), "count"),
	)
	b.note("%s: outcomes %v; lost races %d; ECS calls by action %v.", id, r.Outcomes, a.LostRaces, a.ByAction)
	b.note("%s: the first attach was accepted %.1f s after the %s (%d FC instances cold-starting on this machine, then a describe and a listing); the floor counts 3L = %.0f ms for that.",
		id, ms(r.FirstAttach)/1000, from, r.Instances, harness.Ms(3*c.L()))
}

// drawCharts writes the charts of what ran.
func (b *bench) drawCharts() error {
	dir := b.cfg.charts
	var written []string
	if r := b.res.Single; r != nil {
		var warm []chart.Series
		for _, pol := range b.p.Policies {
			var v []float64
			for _, ev := range r.Policies[pol].Events {
				if !ev.Cold && ev.Ratio > 0 {
					v = append(v, ev.Ratio)
				}
			}
			warm = append(warm, chart.Series{Name: pol, Values: v})
		}
		path := filepath.Join(dir, "single-ratio.svg")
		if err := chart.RatioCDF(path, "Single events on warm FC instances: latency ÷ the event's floor (3L + its attach time)", warm); err != nil {
			return err
		}
		written = append(written, path)
	}
	if len(b.res.Bursts) > 0 || b.res.BurstQueue != nil {
		positive := func(v []float64) []float64 {
			return slices.DeleteFunc(slices.Clone(v), func(x float64) bool { return x <= 0 })
		}
		var all []chart.Series
		for _, pol := range b.p.Policies {
			if v, ok := b.res.BurstRatios[pol]; ok {
				all = append(all, chart.Series{Name: pol, Values: positive(v)})
			}
		}
		if b.res.BurstQueue != nil {
			all = append(all, chart.Series{Name: harness.Enipool + ", work queue", Values: positive(b.res.BurstQueueRatios)})
		}
		path := filepath.Join(dir, "burst-ratio.svg")
		if err := chart.RatioCDF(path, fmt.Sprintf("%d launches at once: latency ÷ the event's floor (with its quota wait)", b.p.BurstEvents), all); err != nil {
			return err
		}
		written = append(written, path)
		for _, pol := range b.p.Policies {
			r, ok := b.res.Bursts[pol]
			if !ok {
				continue
			}
			t := r.Timeline
			path := filepath.Join(dir, "burst-timeline-"+pol+".svg")
			title := fmt.Sprintf("%s: %d launches at once, per second", pol, b.p.BurstEvents)
			if err := chart.BurstTimeline(path, title, chart.Timeline{Attaches: t.Attaches, Throttled: t.Throttled, Instances: t.Instances, Busy: t.Busy}, b.p.Cloud.AttachQPS); err != nil {
				return err
			}
			written = append(written, path)
		}
		if r := b.res.BurstQueue; r != nil {
			t := r.Timeline
			path := filepath.Join(dir, "burst-timeline-"+harness.Enipool+"-workqueue.svg")
			title := fmt.Sprintf("%s: %d launches through the work queue, per second", harness.Enipool, b.p.BurstEvents)
			if err := chart.BurstTimeline(path, title, chart.Timeline{Attaches: t.Attaches, Throttled: t.Throttled, Instances: t.Instances, Busy: t.Busy}, b.p.Cloud.AttachQPS); err != nil {
				return err
			}
			written = append(written, path)
		}
	}
	b.res.Charts = written
	return nil
}

// coldstart: scenario 4.
func (b *bench) coldstart(ctx context.Context) error {
	p := b.p
	dir, err := os.MkdirTemp("", "enipool-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.progress("4 cold start: building the binaries, then %d cold starts each of hello, the SDK floor, enipool over https and enipool over http, rotating; then one %d-event batch",
		p.ColdRuns, p.BigBatch)
	r, err := harness.ColdStart(ctx, harness.ColdStartParams{
		Cloud: p.cloud(2*p.ColdRuns, 2*p.ColdRuns), Runs: p.ColdRuns,
		BatchCloud: p.cloud(p.BigBatch, p.BigBatch), Batch: p.BigBatch,
	}, dir)
	if err != nil {
		return err
	}
	b.res.ColdStart = r
	cmd := b.command("coldstart")
	mib := func(v float64) float64 { return v / (1 << 20) }
	hello, floor, https, http := r.Hello, r.Floor, r.HTTPS, r.HTTP
	group := fmt.Sprintf("cold start and memory: the built binary under the local FC runtime vs hello-world built the same way, %d cold starts each, "+
		"the function calling ECS and MNS over HTTPS as in production (a local CA its instances trust)", len(https.Samples))
	fig := func(name string, v float64, unit string) report.Figure {
		return report.Figure{ID: "4", Group: group, Name: name, Value: v, Unit: unit, Command: cmd}
	}
	start := fig("cold start p50: exec -> first GET /next", https.ColdStart.P50, "ms").Goal("<=", 1.3*hello.ColdStart.P50, "1.3x hello").WithFloor(hello.ColdStart.P50, "(hello p50)")
	start.Note = "fcrt InstanceStats.ColdStart: Go runtime and package init, main's configuration, connector and handler, fc.Start's first request"
	start90 := fig("cold start p90", https.ColdStart.P90, "ms").WithFloor(hello.ColdStart.P90, "(hello p90)")
	startFloor := fig("cold start p50 of the SDK floor", floor.ColdStart.P50, "ms").WithFloor(hello.ColdStart.P50, "(hello p50)")
	startFloor.Note = "bench/internal/harness/testdata/sdkfloor: the SDKs' clients and one ECS call over https, nothing of enipool"
	rss := fig("peak RSS p50 (VmHWM), one event handled over https", mib(https.PeakRSS.P50), "MiB").
		Goal("<=", 1.5*mib(hello.PeakRSS.P50), "1.5x hello").WithFloor(mib(hello.PeakRSS.P50), "(hello p50)")
	rss.Note = "sampled by fcrt when the first result is posted"
	rss90 := fig("peak RSS p90", mib(https.PeakRSS.P90), "MiB").WithFloor(mib(hello.PeakRSS.P90), "(hello p90)")
	rssFloor := fig("peak RSS p50 of the SDK floor, one call over https", mib(floor.PeakRSS.P50), "MiB").WithFloor(mib(hello.PeakRSS.P50), "(hello p50)")
	rssFloor.Note = "the required SDKs and TLS without enipool: what no change inside enipool can remove"
	rssHTTP := fig("peak RSS p50, the same over plain http", mib(http.PeakRSS.P50), "MiB").WithFloor(mib(hello.PeakRSS.P50), "(hello p50)")
	rssHTTP.Note = "the same binary against a cloud without TLS: the difference to the https figure is what TLS costs"
	first := fig("first invocation p50: taken -> first ECS call at the cloud, https", https.FirstCall.P50, "ms").
		WithFloor(https.WarmFirstCall.P50, "(2nd invocation p50)")
	first.Note = "the handler's work before its first call on a cold process: SDK clients, trusted roots, TLS handshake"
	first90 := fig("first invocation p90: taken -> first ECS call, https", https.FirstCall.P90, "ms").WithFloor(https.WarmFirstCall.P90, "(2nd invocation p90)")
	firstFloor := fig("first invocation p50: taken -> first ECS call, SDK floor over https", floor.FirstCall.P50, "ms").WithFloor(floor.WarmFirstCall.P50, "(2nd invocation p50)")
	firstHTTP := fig("first invocation p50: taken -> first ECS call, plain http", http.FirstCall.P50, "ms").WithFloor(http.WarmFirstCall.P50, "(2nd invocation p50)")
	served := fig("exec -> first result p50, https", https.Served.P50, "ms").WithFloor(hello.Served.P50, "(hello p50)")
	served.Note = "ColdStart + the first Result.Duration; the first invocation includes the attach and its confirmation"
	fastest := fig(fmt.Sprintf("fastest cold start of %d (hello's fastest %.1f ms)", len(https.Samples), hello.ColdStart.Min), https.ColdStart.Min, "ms").
		WithFloor(hello.ColdStart.Min, "(hello)")
	fastest.Note = "the least disturbed by the machine's noise; the target applies to the median"
	b.add(start, start90, fastest, startFloor, rss, rss90, rssFloor, rssHTTP, first, first90, firstFloor, firstHTTP, served)
	if m := r.Batch; m != nil {
		big := fig(fmt.Sprintf("peak RSS, one %d-event batch invocation over https", m.Events), mib(float64(m.PeakRSS)), "MiB").WithFloor(mib(https.PeakRSS.P50), "(one event)")
		big.Note = fmt.Sprintf("world of %d instances, pool %d; s.yaml memorySize %d MB", p.BigBatch, p.BigBatch, p.FunctionMemoryMB)
		att := fig(fmt.Sprintf("that batch: attached (%.1f s, %d ECS calls)", ms(m.Duration)/1000, m.Audit.ECSCalls), float64(m.Audit.Attached), "count").
			Goal("==", float64(m.Events), "")
		b.add(big, att)
	}
	for _, s := range []harness.ColdSeries{https, http} {
		for _, x := range s.Samples {
			if !x.ColdFlag || x.Outcome != string(engine.OutcomeAttached) || x.WarmOutcome != string(engine.OutcomeAttached) {
				b.note("4: %s: a run was not a cold attach then a warm one: cold=%v outcomes %s, %s", s.Name, x.ColdFlag, x.Outcome, x.WarmOutcome)
			}
		}
	}
	b.note("4: medians (p90) over %d runs: cold start hello %.1f (%.1f) ms, SDK floor %.1f (%.1f) ms, enipool https %.1f (%.1f) ms, http %.1f (%.1f) ms; enipool to hello %.2fx (p90 %.2fx), to the SDK floor %.2fx.",
		len(https.Samples), hello.ColdStart.P50, hello.ColdStart.P90, floor.ColdStart.P50, floor.ColdStart.P90, https.ColdStart.P50, https.ColdStart.P90,
		http.ColdStart.P50, http.ColdStart.P90, r.StartRatio, r.StartRatioP90, https.ColdStart.P50/floor.ColdStart.P50)
	b.note("4: peak RSS hello %.1f (%.1f) MiB, SDK floor %.1f (%.1f) MiB, enipool https %.1f (%.1f) MiB, http %.1f (%.1f) MiB; enipool to hello %.2fx (p90 %.2fx), to the SDK floor %.2fx; TLS adds %.1f MiB to enipool at the median.",
		mib(hello.PeakRSS.P50), mib(hello.PeakRSS.P90), mib(floor.PeakRSS.P50), mib(floor.PeakRSS.P90), mib(https.PeakRSS.P50), mib(https.PeakRSS.P90),
		mib(http.PeakRSS.P50), mib(http.PeakRSS.P90), r.RSSRatio, r.RSSRatioP90, https.PeakRSS.P50/floor.PeakRSS.P50, mib(https.PeakRSS.P50-http.PeakRSS.P50))
	b.note("4: first invocation, taken -> first ECS call, p50 (p90): SDK floor %.1f (%.1f) ms, enipool https %.1f (%.1f) ms, http %.1f (%.1f) ms; on the second invocation %.1f, %.1f and %.1f ms "+
		"(the local FC runtime hands each invocation fresh STS credentials, so the second rebuilds its clients and connects again).",
		floor.FirstCall.P50, floor.FirstCall.P90, https.FirstCall.P50, https.FirstCall.P90, http.FirstCall.P50, http.FirstCall.P90,
		floor.WarmFirstCall.P50, https.WarmFirstCall.P50, http.WarmFirstCall.P50)
	b.note("4: binaries %.1f MiB (enipool), %.1f MiB (SDK floor) and %.1f MiB (hello); package init (GODEBUG=inittrace=1): enipool %.1f ms, %.1f MiB allocated, hello %.1f ms, %.1f MiB.",
		mib(float64(r.Binaries.EnipoolBytes)), mib(float64(r.Binaries.FloorBytes)), mib(float64(r.Binaries.HelloBytes)), r.EnipoolInit.ClockMs, mib(float64(r.EnipoolInit.Bytes)),
		r.HelloInit.ClockMs, mib(float64(r.HelloInit.Bytes)))
	b.note("4: resident memory after the first result (median), anonymous + file-backed: enipool over https %.1f + %.1f MiB, over http %.1f + %.1f, SDK floor %.1f + %.1f, hello %.1f + %.1f MiB.",
		mib(https.RSSAnon.P50), mib(https.RSSFile.P50), mib(http.RSSAnon.P50), mib(http.RSSFile.P50), mib(floor.RSSAnon.P50), mib(floor.RSSFile.P50),
		mib(hello.RSSAnon.P50), mib(hello.RSSFile.P50))
	var top []string
	for _, c := range r.EnipoolInit.Top[:min(5, len(r.EnipoolInit.Top))] {
		top = append(top, fmt.Sprintf("%s %.1f ms", c.Package, c.ClockMs))
	}
	b.note("4: enipool's slowest package inits: %s.", strings.Join(top, "; "))
	return nil
}
