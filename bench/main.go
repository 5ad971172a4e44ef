// Command bench is enipool's benchmark, behind `make bench`. It measures the function
// through the production code path (the handler built as main.go builds it, with the real
// SDKs, over loopback against localcloud; the built binary under localcloud's FC runtime for
// cold start and memory), prints one table in which every figure sits beside its target, its
// floor and the command that reproduces it, and writes the same figures, the machine and the
// exact parameters as JSON.
//
//	go run ./bench -out bench/results.json      # everything (a few minutes)
//	go run ./bench -quick                       # smoke sizes, seconds
//	go run ./bench -only burst,contention       # some scenarios
//
// Scenarios: single (one event at a time: latency against 3L + T + L), burst (500 launches
// at once against an attach rate limit, paced, unpaced and as MNS batches), contention (a
// pool smaller than the burst) and coldstart (process start, the first invocation and peak
// RSS over HTTPS against a hello-world function, the same over plain HTTP, and a 1000-event
// batch).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/enipool/enipool/bench/internal/harness"
	"github.com/enipool/enipool/bench/internal/report"
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
)

// scenarios returns the names -only accepts, in the order they run.
func scenarios() []string { return []string{"single", "burst", "contention", "coldstart"} }

func main() {
	out := flag.String("out", "", "write the results as JSON to this file (make bench writes bench/results.json)")
	quick := flag.Bool("quick", false, "smoke-run sizes (seconds, not minutes); the figures are not comparable with the targets")
	only := flag.String("only", "", "run only these scenarios, comma-separated: "+strings.Join(scenarios(), ", "))
	flag.Parse()
	sel, err := selectScenarios(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, config{out: *out, quick: *quick, only: sel}, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func selectScenarios(only string) ([]string, error) {
	if only == "" {
		return scenarios(), nil
	}
	var sel []string
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(scenarios(), s) {
			return nil, fmt.Errorf("-only: unknown scenario %q (want %s)", s, strings.Join(scenarios(), ", "))
		}
		if !slices.Contains(sel, s) {
			sel = append(sel, s)
		}
	}
	return sel, nil
}

type config struct {
	out   string
	quick bool
	only  []string
}

// Parameters are the exact settings of a run.
type Parameters struct {
	LatencyMs        float64 `json:"latencyLMs"`
	LatencyJitterMs  float64 `json:"latencyJitterMs"`
	AttachTimeMs     float64 `json:"attachTimeTMs"`
	AttachJitterMs   float64 `json:"attachJitterMs"`
	Zones            int     `json:"zones"`
	Seed             int64   `json:"seed"`
	ThrottleQPS      float64 `json:"throttleQps"`
	ThrottleBurst    int     `json:"throttleBurst"`
	AttachQPS        float64 `json:"attachQps"`
	Concurrency      int     `json:"concurrency"`
	BatchSize        int     `json:"batchSize"`
	SingleWarmup     int     `json:"singleWarmup"`
	SingleEvents     int     `json:"singleEvents"`
	SingleWorld      int     `json:"singleWorld"`
	BurstEvents      int     `json:"burstEvents"`
	BurstPool        int     `json:"burstPool"`
	ContentionPool   int     `json:"contentionPool"`
	ColdRuns         int     `json:"coldRuns"`
	BigBatch         int     `json:"bigBatch"`
	FirstGuessMs     float64 `json:"firstGuessDefaultMs"`
	FunctionTimeoutS float64 `json:"functionTimeoutS"`
	FunctionMemoryMB int     `json:"functionMemoryMB"`
	// Randomness says what is not fixed by the seed.
	Randomness string `json:"randomness"`
}

func parameters(quick bool) Parameters {
	p := Parameters{
		LatencyMs: 20, AttachTimeMs: 300, Zones: 2, Seed: 1,
		ThrottleQPS: 20, ThrottleBurst: 20, AttachQPS: 20, Concurrency: 32, BatchSize: 10,
		SingleWarmup: 5, SingleEvents: 50, SingleWorld: 500,
		BurstEvents: 500, BurstPool: 500, ContentionPool: 450,
		ColdRuns: 20, BigBatch: 1000,
		FirstGuessMs:     harness.Ms(handler.DefaultOptions().AttachTime),
		FunctionTimeoutS: harness.FunctionTimeout.Seconds(),
		FunctionMemoryMB: 256,
		Randomness: "the cloud's latency and attach time have no jitter and no fault is drawn; the handler's retry " +
			"backoff jitter (math/rand/v2) is not seeded, so runs with retries differ in their timing",
	}
	if quick {
		p.SingleWarmup, p.SingleEvents, p.SingleWorld = 2, 8, 20
		p.BurstEvents, p.BurstPool, p.ContentionPool, p.Concurrency = 40, 40, 36, 8
		p.ColdRuns, p.BigBatch = 2, 100
	}
	return p
}

// T is the attach time as a duration.
func (p Parameters) T() harness.Duration {
	return harness.Duration(time.Duration(p.AttachTimeMs * float64(time.Millisecond)))
}

func (p Parameters) cloud(instances, pool int) harness.CloudParams {
	return harness.CloudParams{
		Instances: instances, Pool: pool, Zones: p.Zones, Seed: p.Seed,
		Latency:    harness.Duration(time.Duration(p.LatencyMs * float64(time.Millisecond))),
		AttachTime: p.T(),
	}
}

func (p Parameters) throttled(instances, pool int) harness.CloudParams {
	c := p.cloud(instances, pool)
	c.ThrottleQPS, c.ThrottleBurst = p.ThrottleQPS, p.ThrottleBurst
	return c
}

// Results is what -out writes.
type Results struct {
	Date       time.Time                        `json:"date"`
	Command    string                           `json:"command"`
	Quick      bool                             `json:"quick"`
	Scenarios  []string                         `json:"scenarios"`
	Machine    report.Machine                   `json:"machine"`
	Parameters Parameters                       `json:"parameters"`
	RunTimeS   float64                          `json:"runTimeS"`
	Figures    []report.Figure                  `json:"figures"`
	Notes      []string                         `json:"notes"`
	Single     map[string]*harness.SingleResult `json:"single,omitempty"`
	Bursts     map[string]*harness.BurstResult  `json:"bursts,omitempty"`
	ColdStart  *harness.ColdStartResult         `json:"coldStart,omitempty"`
}

// bench holds a run in progress.
type bench struct {
	cfg   config
	p     Parameters
	res   *Results
	start time.Time
	log   io.Writer
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	b := &bench{cfg: cfg, p: parameters(cfg.quick), start: time.Now(), log: stderr}
	b.res = &Results{
		Date: b.start.UTC(), Command: strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " "),
		Quick: cfg.quick, Scenarios: cfg.only, Machine: report.ReadMachine(), Parameters: b.p,
		Single: map[string]*harness.SingleResult{}, Bursts: map[string]*harness.BurstResult{},
	}
	steps := map[string]func(context.Context) error{
		"single": b.single, "burst": b.burst, "contention": b.contention, "coldstart": b.coldstart,
	}
	for _, s := range cfg.only {
		if err := steps[s](ctx); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	for i := range b.res.Figures {
		b.res.Figures[i].Evaluate()
	}
	b.res.RunTimeS = time.Since(b.start).Seconds()

	if cfg.quick {
		fmt.Fprintln(stdout, "QUICK RUN: smoke sizes; the figures are not comparable with the targets.")
	}
	m := b.res.Machine
	fmt.Fprintf(stdout, "enipool bench, %s: %s, %d cores, %.1f GiB, %s, %s\n", b.res.Date.Format(time.RFC3339), m.CPU, m.Cores,
		float64(m.MemoryBytes)/(1<<30), m.Go, m.OS)
	fmt.Fprintf(stdout, "L = %g ms on every ECS call, T = %g ms (no jitter on either); attach limit %g/s, bucket %d; seed %d\n\n",
		b.p.LatencyMs, b.p.AttachTimeMs, b.p.ThrottleQPS, b.p.ThrottleBurst, b.p.Seed)
	if err := report.WriteTable(stdout, b.res.Figures); err != nil {
		return err
	}
	if len(b.res.Notes) > 0 {
		fmt.Fprintln(stdout, "\nNotes (from the call records and the cloud's state):")
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
	if b.cfg.quick {
		c += " -quick"
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

func fmtMs(d harness.Duration) string { return fmt.Sprintf("%.0f ms", ms(d)) }

// single: scenario 1, with the production first guess and, as a diagnostic, with T.
func (b *bench) single(ctx context.Context) error {
	p := b.p
	for _, guess := range []harness.Duration{0, p.T()} {
		id, label := "1", fmt.Sprintf("first guess %s (default)", time.Duration(p.FirstGuessMs*float64(time.Millisecond)))
		if guess > 0 {
			id, label = "1/T", fmt.Sprintf("diagnostic: first guess = T (ENIPOOL_ATTACH_TIME=%s)", guess.D())
		}
		b.progress("%s single events: %d warm-up + %d sampled, one at a time, %s", id, p.SingleWarmup, p.SingleEvents, label)
		r, err := harness.Single(ctx, harness.SingleParams{Cloud: b.p.cloud(p.SingleWorld, p.SingleWorld),
			Warmup: p.SingleWarmup, Events: p.SingleEvents, FirstGuess: guess})
		if err != nil {
			return err
		}
		b.res.Single[id] = r
		cmd, floor := b.command("single"), ms(r.Floor)
		n := len(r.Sample)
		group := fmt.Sprintf("single events, one at a time, each a new instance; %d sampled after %d warm-up on the same process; %s",
			n, len(r.Warmup), label)
		fig := func(name string, v float64, unit string) report.Figure {
			return report.Figure{ID: id, Group: group, Name: name, Value: v, Unit: unit, Command: cmd}
		}
		b.add(
			fig("p50 event -> ENI confirmed InUse", ms(r.P50), "ms").Goal("<=", 1.15*floor, "1.15x floor").WithFloor(floor, "(3L+T+L)"),
			fig(fmt.Sprintf("p99 (nearest rank: %s of %d)", largest(n-ceilPct(99, n)+1), n), ms(r.P99), "ms").WithFloor(floor, "(3L+T+L)"),
			fig("ECS calls per event", r.ECSCallsPerEvent, "calls/event").Goal("<=", 4, "").WithFloor(4, "(describe, list, attach, confirm)"),
			fig("attached, confirmed InUse", float64(r.Audit.Attached), "count").Goal("==", float64(n), ""),
		)
		if len(r.Warmup) > 0 {
			w := r.Warmup[0]
			f := fig("warm-up #1: the process's first event", ms(w.Latency), "ms").WithFloor(floor+p.LatencyMs, "(+L: type lookup)")
			f.Note = fmt.Sprintf("%d ECS calls, DescribeInstanceTypes among them; not in the sample", w.ECSCalls)
			b.add(f)
		}
		var waits, over []float64
		var lastWaits []float64
		for i, s := range r.Sample {
			waits = append(waits, ms(s.PollWait))
			over = append(over, ms(s.Latency-s.CloudTime-s.PollWait))
			if i >= n-min(10, n) {
				lastWaits = append(lastWaits, ms(s.PollWait))
			}
		}
		b.note("%s: the first confirmation poll reached the cloud %.0f ms (p50) after the attach was answered; first guess %s, T %g ms; over the last %d sampled events the p50 was %.0f ms.",
			id, harness.Median(waits), r.FirstGuess.D(), p.AttachTimeMs, len(lastWaits), harness.Median(lastWaits))
		b.note("%s: per event, %.1f ms (p50) of the latency is neither the cloud's time on the %.0f calls (L included) nor that wait: handler, SDKs and loopback, with a %d-ENI pool listing.",
			id, harness.Median(over), r.ECSCallsPerEvent, p.SingleWorld)
		b.note("%s: DescribeInstanceTypes calls: %d in warm-up #1 (the process's first event), %d in the sample.",
			id, countAction(r.Warmup[:min(1, len(r.Warmup))], "DescribeInstanceTypes"), r.TypeLookupsInSample)
	}
	return nil
}

func countAction(ss []harness.EventSample, action string) int {
	n := 0
	for _, s := range ss {
		for _, c := range s.Calls {
			if c.Action == action {
				n++
			}
		}
	}
	return n
}

func ceilPct(p, n int) int { return (p*n + 99) / 100 }

// largest names the k-th largest value of a sample.
func largest(k int) string {
	switch k {
	case 1:
		return "the largest"
	case 2:
		return "the 2nd largest"
	case 3:
		return "the 3rd largest"
	}
	return fmt.Sprintf("the %dth largest", k)
}

// burstRun runs one burst (or reuses it when it already ran) and records it.
func (b *bench) burstRun(ctx context.Context, id, label string, bp harness.BurstParams) (*harness.BurstResult, error) {
	if r, ok := b.res.Bursts[id]; ok {
		return r, nil
	}
	b.progress("%s %s: %d events, %d in flight, pool %d", id, label, bp.Events, bp.Concurrency, bp.Cloud.Pool)
	r, err := harness.Burst(ctx, bp)
	if err != nil {
		return nil, err
	}
	b.progress("%s done: wall %.1f s", id, ms(r.Wall)/1000)
	b.res.Bursts[id] = r
	return r, nil
}

// burstParams returns scenario 2's parameters.
func (b *bench) burstParams(pool int, pace float64, batch int, guess harness.Duration) harness.BurstParams {
	p := b.p
	return harness.BurstParams{Cloud: p.throttled(p.BurstEvents, pool), Events: p.BurstEvents, Concurrency: p.Concurrency,
		AttachQPS: pace, BatchSize: batch, FirstGuess: guess}
}

// burst: scenario 2, (a) paced, (b) unpaced, (c) MNS batches, and (a) and (b) again with the
// first guess at T as a diagnostic.
func (b *bench) burst(ctx context.Context) error {
	p := b.p
	T := p.T()
	runs := []struct {
		id, label string
		bp        harness.BurstParams
	}{
		{"2a", fmt.Sprintf("paced: ENIPOOL_ATTACH_QPS=%g", p.AttachQPS), b.burstParams(p.BurstPool, p.AttachQPS, 0, 0)},
		{"2b", "unpaced: ENIPOOL_ATTACH_QPS=0", b.burstParams(p.BurstPool, 0, 0, 0)},
		{"2c", fmt.Sprintf("MNS batches of %d, paced at %g/s", p.BatchSize, p.AttachQPS), b.burstParams(p.BurstPool, p.AttachQPS, p.BatchSize, 0)},
		{"2a/T", fmt.Sprintf("diagnostic: as 2a, first guess = T (ENIPOOL_ATTACH_TIME=%s)", T.D()), b.burstParams(p.BurstPool, p.AttachQPS, 0, T)},
		{"2b/T", fmt.Sprintf("diagnostic: as 2b, first guess = T (ENIPOOL_ATTACH_TIME=%s)", T.D()), b.burstParams(p.BurstPool, 0, 0, T)},
	}
	for _, run := range runs {
		r, err := b.burstRun(ctx, run.id, run.label, run.bp)
		if err != nil {
			return err
		}
		callsTarget, callsFloor := 4.0, 4.0
		if run.bp.BatchSize > 1 {
			callsTarget, callsFloor = 1.6, 1+3/float64(run.bp.BatchSize)
		}
		b.add(b.burstFigures(run.id, run.label, r, b.command("burst"), callsTarget, callsFloor, true)...)
		b.burstNotes(run.id, r)
	}
	return nil
}

func (b *bench) burstFigures(id, label string, r *harness.BurstResult, cmd string, callsTarget, callsFloor float64, wallTarget bool) []report.Figure {
	a := r.Audit
	need := r.Params.Events - r.Exhausted.Shortfall // the instances the pool can serve
	events := r.Params.Events
	inv := fmt.Sprintf("%d invocations of 1 event", r.Invocations)
	if r.Params.BatchSize > 1 {
		inv = fmt.Sprintf("%d invocations of %d events", r.Invocations, r.Params.BatchSize)
	}
	group := fmt.Sprintf("%s: %d launches at once, pool %d over %d zones, %d invocations in flight (%s)",
		label, events, r.Params.Cloud.Pool, r.Params.Cloud.Zones, r.Params.Concurrency, inv)
	fig := func(name string, v float64, unit string) report.Figure {
		return report.Figure{ID: id, Group: group, Name: name, Value: v, Unit: unit, Command: cmd}
	}
	double := fig("ENIs attached twice (final world and call records)", float64(a.DoubleAttaches()), "count").Goal("==", 0, "")
	double.Note = fmt.Sprintf("pool ENIs bound to two instances %d, pool ENIs with two successful attaches %d, instances given two ENIs %d, instances holding more than one %d",
		a.SharedENIs, a.ENIsAttachedTwice, a.InstancesAttachedTwice, len(a.Multi))
	calls := fig(fmt.Sprintf("ECS calls per launch (%d / %d)", a.ECSCalls, events), r.ECSCallsPerAttach, "calls/attach").
		Goal("<=", callsTarget, "").WithFloor(callsFloor, "")
	wall := fig("wall time, first invocation to last return", ms(r.Wall)/1000, "s")
	if r.Floor > 0 {
		floor := ms(r.Floor) / 1000
		wall = wall.WithFloor(floor, fmt.Sprintf("(%d-%d)/%g/s + 3L+T+L", need, r.Params.Cloud.ThrottleBurst, r.Params.Cloud.ThrottleQPS))
		if wallTarget {
			wall = wall.Goal("<=", 1.15*floor, "1.15x floor")
		}
	}
	return []report.Figure{
		fig("attached (exactly 1 pool ENI, InUse)", float64(a.Attached), "count").Goal("==", float64(need), ""),
		double,
		calls,
		fig("throttled calls (Throttling.User)", float64(a.Throttled), "count").WithFloor(0, ""),
		fig("lost races (InvalidEniState)", float64(a.LostRaces), "count").WithFloor(0, ""),
		fig("dead letters", float64(len(a.DeadLetters)), "count").Goal("==", float64(r.Exhausted.Shortfall), ""),
		wall,
	}
}

func (b *bench) burstNotes(id string, r *harness.BurstResult) {
	a := r.Audit
	b.note("%s: DescribeInstanceTypes %d, DescribeInstances %d, DescribeNetworkInterfaces %d, successful attaches %d; invocations p50 %s, p99 %s.",
		id, a.ByAction["DescribeInstanceTypes"], a.ByAction["DescribeInstances"], a.ByAction["DescribeNetworkInterfaces"],
		a.ByAction["AttachNetworkInterface"], fmtMs(r.InvocationP50), fmtMs(r.InvocationP99))
	b.note("%s: successful attaches reached the cloud at %.1f/s over %.1f s (limit %g/s, bucket %d); %d in flight / invocation p50 = %.1f invocations/s.",
		id, r.AttachRate, ms(r.AttachSpan)/1000, r.Params.Cloud.ThrottleQPS, r.Params.Cloud.ThrottleBurst,
		r.Params.Concurrency, float64(r.Params.Concurrency)/(ms(r.InvocationP50)/1000))
	if a.Throttled > 0 {
		var at []string
		for _, d := range a.ThrottledAt {
			at = append(at, fmt.Sprintf("%.0f", ms(d)))
		}
		b.note("%s: %d throttled; the first at %s ms after the run's first ECS call.", id, a.Throttled, strings.Join(at, ", "))
	}
}

// contention: scenario 3, a pool exactly the burst's size (run 2a) and one smaller.
func (b *bench) contention(ctx context.Context) error {
	p := b.p
	a, err := b.burstRun(ctx, "2a", fmt.Sprintf("paced: ENIPOOL_ATTACH_QPS=%g", p.AttachQPS), b.burstParams(p.BurstPool, p.AttachQPS, 0, 0))
	if err != nil {
		return err
	}
	cmd := b.command("contention")
	group := fmt.Sprintf("contention: pool exactly the burst's size (%d) is the run 2a", p.BurstPool)
	b.add(
		report.Figure{ID: "3a", Group: group, Name: "dead letters", Value: float64(len(a.Audit.DeadLetters)), Unit: "count", Command: cmd}.Goal("==", 0, ""),
		report.Figure{ID: "3a", Group: group, Name: "ENIs attached twice (final world and call records)", Value: float64(a.Audit.DoubleAttaches()), Unit: "count", Command: cmd}.Goal("==", 0, ""),
	)
	r, err := b.burstRun(ctx, "3b", fmt.Sprintf("contention: pool smaller than the burst, paced at %g/s", p.AttachQPS), b.burstParams(p.ContentionPool, p.AttachQPS, 0, 0))
	if err != nil {
		return err
	}
	figs := b.burstFigures("3b", fmt.Sprintf("contention, pool %d < burst %d, paced at %g/s", p.ContentionPool, p.BurstEvents, p.AttachQPS), r, cmd, 4, 4, false)
	valid := report.Figure{ID: "3b", Group: figs[0].Group, Name: "letters naming the exhausted pool and zone", Value: float64(r.Exhausted.Valid), Unit: "count", Command: cmd}.
		Goal("==", float64(r.Exhausted.Shortfall), "the shortfall")
	valid.Note = fmt.Sprintf("code %s, pool %q, zone set and named in the reason, a burst instance left bare, one letter each; by zone %v",
		cloud.CodePoolExhausted, harness.PoolName, r.Exhausted.ByZone)
	b.add(append(figs, valid)...)
	for _, pr := range r.Exhausted.Problems {
		b.note("3b: dead letter not as expected: %s", pr)
	}
	b.burstNotes("3b", r)
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
