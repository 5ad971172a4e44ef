package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/record"
)

// Binaries are the functions the cold-start scenario runs, built in the same run with the
// same flags (testbed.BuildFunction's: `go build -trimpath -ldflags=-s -w`, CGO_ENABLED=0,
// as make build).
type Binaries struct {
	// Enipool, Hello and Floor are the binaries' paths, in a temporary folder: not results,
	// so not written out.
	Enipool string `json:"-"`
	Hello   string `json:"-"`
	Floor   string `json:"-"`
	// EnipoolBytes, HelloBytes and FloorBytes are the binaries' sizes.
	EnipoolBytes int64 `json:"enipoolBytes"`
	HelloBytes   int64 `json:"helloBytes"`
	FloorBytes   int64 `json:"sdkFloorBytes"`
	// BuildTime is how long the builds took.
	BuildTime Duration `json:"buildMs"`
}

// Build builds the function (testbed.BuildFunction), the hello-world baseline
// (localcloud/fcrt/testdata/hello) and the SDK floor (testdata/sdkfloor of this package)
// into dir.
func Build(ctx context.Context, dir string) (Binaries, error) {
	start := time.Now()
	var b Binaries
	var err error
	if b.Enipool, err = testbed.BuildFunction(ctx, dir); err != nil {
		return b, err
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return b, fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return b, errors.New("harness: not inside the enipool module")
	}
	b.Hello, b.Floor = filepath.Join(dir, "hello"), filepath.Join(dir, "sdkfloor")
	for _, f := range []struct{ out, pkg string }{
		{b.Hello, "./localcloud/fcrt/testdata/hello"},
		{b.Floor, "./bench/internal/harness/testdata/sdkfloor"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", f.out, f.pkg)
		cmd.Dir = filepath.Dir(mod)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("harness: building %s: %w\n%s", f.pkg, err, msg)
		}
	}
	b.BuildTime = Duration(time.Since(start))
	for _, f := range []struct {
		path string
		size *int64
	}{{b.Enipool, &b.EnipoolBytes}, {b.Hello, &b.HelloBytes}, {b.Floor, &b.FloorBytes}} {
		st, err := os.Stat(f.path)
		if err != nil {
			return b, err
		}
		*f.size = st.Size()
	}
	return b, nil
}

// ColdStartParams configure the cold-start and memory scenario.
type ColdStartParams struct {
	// Cloud is the world the function's events act on. Each run of the function attaches
	// two instances (its cold invocation's and a warm one's after it), so it needs 2*Runs
	// instances and pool ENIs.
	Cloud CloudParams `json:"cloud"`
	// Runs cold starts of each series are made, the order of the series rotating run by run.
	Runs int `json:"runs"`
	// BatchCloud is the world of the large batch, which is one invocation carrying Batch
	// direct events over HTTPS (Batch = 0 skips it).
	BatchCloud CloudParams `json:"batchCloud"`
	Batch      int         `json:"batch"`
}

// The series of the cold-start scenario: the hello-world baseline; the SDK floor (the SDKs'
// clients and one ECS call, nothing of enipool) over HTTPS; the function calling a local
// cloud that serves HTTPS as production's endpoints do (the function's default scheme); and
// the same binary against a plain-HTTP cloud, which shows what TLS costs.
const (
	SeriesHello = "hello"
	SeriesFloor = "SDK floor over https"
	SeriesHTTPS = "enipool over https"
	SeriesHTTP  = "enipool over http"
)

// ColdSample is one cold start: a new process of the binary and its first invocation, and,
// for the function, a second (warm) invocation of the same process.
type ColdSample struct {
	// ColdStart is fcrt's InstanceStats.ColdStart: from the exec of the binary to its first
	// GET /next on the runtime API (Go runtime and package init, main's setup, fc.Start).
	ColdStart Duration `json:"coldStartMs"`
	// First is the first invocation's Result.Duration: from the instance taking it (its
	// first GET /next) to its result. Served = ColdStart + First: exec to first result.
	First  Duration `json:"firstMs"`
	Served Duration `json:"servedMs"`
	// FirstCall is from the instance taking its first invocation to the arrival of its first
	// ECS call at the cloud: what the handler does before it can ask anything on a cold
	// process (the connector's SDK clients and, over HTTPS, loading the trusted roots and the
	// TLS handshake). WarmFirstCall is the same on the process's second invocation, whose
	// clients and connections are kept. Zero for hello, which calls nothing.
	FirstCall     Duration `json:"firstCallMs"`
	WarmFirstCall Duration `json:"warmFirstCallMs"`
	// PeakRSS is VmHWM in bytes as fcrt sampled it when the first result was posted: the
	// peak of the process up to and including handling one event.
	PeakRSS int64 `json:"peakRssBytes"`
	// RSSAnon and RSSFile split the process's resident memory, read from /proc/<pid>/status
	// right after the first result: anonymous memory (heap, stacks, runtime) and pages of
	// mapped files (the binary's code and data).
	RSSAnon int64 `json:"rssAnonBytes"`
	RSSFile int64 `json:"rssFileBytes"`
	// ColdFlag is the first Result's ColdStart flag (it must be true).
	ColdFlag bool `json:"coldFlag"`
	// Outcome and WarmOutcome are the outcomes of the function's two events ("ok" for hello).
	Outcome     string `json:"outcome"`
	WarmOutcome string `json:"warmOutcome,omitempty"`
}

// Spread summarises one measure over a series: the median, the nearest-rank 90th
// percentile, the least and the most.
type Spread struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	return Spread{P50: Median(xs), P90: Percentile(xs, 90), Min: slices.Min(xs), Max: slices.Max(xs)}
}

// ColdSeries is one series' samples and their spreads; times in milliseconds, memory in
// bytes.
type ColdSeries struct {
	Name    string       `json:"name"`
	Samples []ColdSample `json:"samples"`
	// Scheme is how the function reached the cloud ("" for hello).
	Scheme        string `json:"scheme,omitempty"`
	ColdStart     Spread `json:"coldStartMs"`
	Served        Spread `json:"servedMs"`
	FirstCall     Spread `json:"firstCallMs"`
	WarmFirstCall Spread `json:"warmFirstCallMs"`
	PeakRSS       Spread `json:"peakRssBytes"`
	RSSAnon       Spread `json:"rssAnonBytes"`
	RSSFile       Spread `json:"rssFileBytes"`
}

func (s *ColdSeries) summarise() {
	pick := func(f func(ColdSample) float64) Spread {
		var xs []float64
		for _, x := range s.Samples {
			xs = append(xs, f(x))
		}
		return spread(xs)
	}
	ms := func(d Duration) float64 { return Ms(d.D()) }
	s.ColdStart = pick(func(x ColdSample) float64 { return ms(x.ColdStart) })
	s.Served = pick(func(x ColdSample) float64 { return ms(x.Served) })
	s.FirstCall = pick(func(x ColdSample) float64 { return ms(x.FirstCall) })
	s.WarmFirstCall = pick(func(x ColdSample) float64 { return ms(x.WarmFirstCall) })
	s.PeakRSS = pick(func(x ColdSample) float64 { return float64(x.PeakRSS) })
	s.RSSAnon = pick(func(x ColdSample) float64 { return float64(x.RSSAnon) })
	s.RSSFile = pick(func(x ColdSample) float64 { return float64(x.RSSFile) })
}

// BatchMemory is the large-batch measurement.
type BatchMemory struct {
	Events   int      `json:"events"`
	PeakRSS  int64    `json:"peakRssBytes"`
	Duration Duration `json:"durationMs"`
	Outcomes Outcomes `json:"outcomes"`
	Audit    Audit    `json:"audit"`
}

// ColdStartResult is what the cold-start scenario measured.
type ColdStartResult struct {
	Params   ColdStartParams `json:"params"`
	Binaries Binaries        `json:"binaries"`
	// Hello, Floor, HTTPS and HTTP are the series (SeriesHello, SeriesFloor, SeriesHTTPS,
	// SeriesHTTP).
	Hello ColdSeries `json:"hello"`
	Floor ColdSeries `json:"sdkFloorHttps"`
	HTTPS ColdSeries `json:"enipoolHttps"`
	HTTP  ColdSeries `json:"enipoolHttp"`
	// StartRatio and RSSRatio are the function's (over HTTPS, the production path) to
	// hello's, of the medians; the P90 ones of the 90th percentiles.
	StartRatio    float64 `json:"coldStartRatio"`
	StartRatioP90 float64 `json:"coldStartRatioP90"`
	RSSRatio      float64 `json:"peakRssRatio"`
	RSSRatioP90   float64 `json:"peakRssRatioP90"`
	// EnipoolInit and HelloInit are the binaries' package initialisation costs.
	EnipoolInit InitTrace    `json:"enipoolInit"`
	HelloInit   InitTrace    `json:"helloInit"`
	Batch       *BatchMemory `json:"batch,omitempty"`
}

// ColdStart builds the binaries into dir and measures them under the local FC runtime: Runs
// cold starts of hello, of the SDK floor and of the function against a cloud serving HTTPS,
// and of the function against one serving plain HTTP.
func ColdStart(ctx context.Context, p ColdStartParams, dir string) (*ColdStartResult, error) {
	if p.Runs < 1 || p.Cloud.Instances < 2*p.Runs || p.Cloud.Pool < 2*p.Runs {
		return nil, fmt.Errorf("harness: coldstart: %d runs need %d instances and pool ENIs (have %d, %d)",
			p.Runs, 2*p.Runs, p.Cloud.Instances, p.Cloud.Pool)
	}
	bins, err := Build(ctx, dir)
	if err != nil {
		return nil, err
	}
	res := &ColdStartResult{Params: p, Binaries: bins,
		Hello: ColdSeries{Name: SeriesHello}, Floor: ColdSeries{Name: SeriesFloor},
		HTTPS: ColdSeries{Name: SeriesHTTPS}, HTTP: ColdSeries{Name: SeriesHTTP}}
	if res.EnipoolInit, err = TraceInit(ctx, bins.Enipool); err != nil {
		return nil, err
	}
	if res.HelloInit, err = TraceInit(ctx, bins.Hello); err != nil {
		return nil, err
	}
	secure, err := newTLSCloud(p.Cloud)
	if err != nil {
		return nil, err
	}
	defer secure.Close()
	plain, err := newCloud(p.Cloud)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	res.Floor.Scheme, res.HTTPS.Scheme, res.HTTP.Scheme = secure.Scheme, secure.Scheme, plain.Scheme
	attach := func(instance string, c *localcloud.Cloud) []byte { return ECSRunning(instance, c.Region, c.AccountID) }
	describe := func(instance string, c *localcloud.Cloud) []byte { return Direct(instance, c.Region) }
	series := []func(int) error{
		func(int) error { return coldHello(ctx, secure, bins.Hello, &res.Hello) },
		// The floor describes instances the function attaches in its runs: it changes nothing.
		func(i int) error {
			return coldCaller(ctx, secure, bins.Floor, i, p.Runs, describe, floorOutcome, &res.Floor)
		},
		func(i int) error {
			return coldCaller(ctx, secure, bins.Enipool, i, p.Runs, attach, outcomeOf, &res.HTTPS)
		},
		func(i int) error {
			return coldCaller(ctx, plain, bins.Enipool, i, p.Runs, attach, outcomeOf, &res.HTTP)
		},
	}
	for i := range p.Runs {
		// Each series goes first, second and third in turn, so none always follows the same.
		for k := range series {
			// Collect now, so that the benchmark's own collector does not run during a start.
			runtime.GC()
			if err := series[(i+k)%len(series)](i); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range []*ColdSeries{&res.Hello, &res.Floor, &res.HTTPS, &res.HTTP} {
		s.summarise()
	}
	res.StartRatio = res.HTTPS.ColdStart.P50 / res.Hello.ColdStart.P50
	res.StartRatioP90 = res.HTTPS.ColdStart.P90 / res.Hello.ColdStart.P90
	res.RSSRatio = res.HTTPS.PeakRSS.P50 / res.Hello.PeakRSS.P50
	res.RSSRatioP90 = res.HTTPS.PeakRSS.P90 / res.Hello.PeakRSS.P90

	if p.Batch > 0 {
		if res.Batch, err = batchMemory(ctx, p.BatchCloud, p.Batch, bins.Enipool); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func newCloud(p CloudParams) (*localcloud.Cloud, error) {
	w, err := p.World()
	if err != nil {
		return nil, err
	}
	return localcloud.Start(w, localcloud.Options{})
}

// newTLSCloud is newCloud serving HTTPS; the functions it starts trust its CA.
func newTLSCloud(p CloudParams) (*localcloud.Cloud, error) {
	w, err := p.World()
	if err != nil {
		return nil, err
	}
	return localcloud.Start(w, localcloud.Options{TLS: true})
}

// coldCaller starts a function that calls the cloud (the real one or the SDK floor) on a
// fresh runtime (one instance) against c, with the environment that aims enipool at c,
// invokes it with payload(instance i) (its cold invocation), then with payload(instance
// runs+i) (a warm one), and appends the sample to s.
func coldCaller(ctx context.Context, c *localcloud.Cloud, bin string, i, runs int,
	payload func(string, *localcloud.Cloud) []byte, outcome func([]byte) string, s *ColdSeries) error {
	rt, err := testbed.StartFunction(c, testbed.Function{Binary: bin, DeadLetterQueue: DeadLetterQueue, MaxInstances: 1, Timeout: FunctionTimeout})
	if err != nil {
		return err
	}
	defer rt.Close()
	mark := lastSeq(c)
	x, r, err := coldRun(ctx, rt, payload(InstanceID(i), c))
	if err != nil {
		return err
	}
	x.Outcome = outcome(r.Payload)
	if x.FirstCall, err = firstCall(c, rt, r.RequestID, mark); err != nil {
		return err
	}
	mark = lastSeq(c)
	warm, err := rt.Invoke(ctx, payload(InstanceID(runs+i), c))
	if err != nil {
		return err
	}
	if warm.Error != nil {
		return fmt.Errorf("harness: warm invocation: function error %s: %s", warm.Error.ErrorType, warm.Error.ErrorMessage)
	}
	if warm.ColdStart {
		return errors.New("harness: cold start: the second invocation started another instance")
	}
	x.WarmOutcome = outcome(warm.Payload)
	if x.WarmFirstCall, err = firstCall(c, rt, warm.RequestID, mark); err != nil {
		return err
	}
	s.Samples = append(s.Samples, x)
	return nil
}

// floorOutcome reads the SDK floor's answer, the number of instances described: "described"
// when it is the one asked for.
func floorOutcome(payload []byte) string {
	if string(payload) == "1" {
		return "described"
	}
	return "unexpected answer " + string(payload)
}

// coldHello starts the hello-world function the same way (c's FC runtime, the same role and
// trust store) and invokes it once.
func coldHello(ctx context.Context, c *localcloud.Cloud, bin string, s *ColdSeries) error {
	rt, err := c.StartFunction(localcloud.Function{Name: "hello", Binary: bin, Role: Role, MaxInstances: 1, Timeout: FunctionTimeout})
	if err != nil {
		return err
	}
	defer rt.Close()
	x, _, err := coldRun(ctx, rt, []byte(`{}`))
	if err != nil {
		return err
	}
	x.Outcome = "ok"
	s.Samples = append(s.Samples, x)
	return nil
}

// coldRun invokes a fresh runtime's one instance and reads its start, memory and result.
func coldRun(ctx context.Context, rt *fcrt.Runtime, payload []byte) (ColdSample, *fcrt.Result, error) {
	r, err := rt.Invoke(ctx, payload)
	if err != nil {
		return ColdSample{}, nil, err
	}
	if r.Error != nil {
		return ColdSample{}, r, fmt.Errorf("harness: cold start: function error %s: %s", r.Error.ErrorType, r.Error.ErrorMessage)
	}
	insts := rt.Instances()
	if len(insts) != 1 {
		return ColdSample{}, r, fmt.Errorf("harness: cold start: %d instances, want 1", len(insts))
	}
	st := insts[0]
	s := ColdSample{ColdStart: Duration(st.ColdStart), First: Duration(r.Duration), PeakRSS: st.PeakRSS, ColdFlag: r.ColdStart}
	s.Served = s.ColdStart + s.First
	s.RSSAnon, s.RSSFile = procStatusBytes(st.PID, "RssAnon"), procStatusBytes(st.PID, "RssFile")
	return s, r, nil
}

func lastSeq(c *localcloud.Cloud) int64 {
	calls := c.Calls.Calls()
	if len(calls) == 0 {
		return 0
	}
	return calls[len(calls)-1].Seq
}

// firstCall returns the time from the instance taking the invocation requestID to the
// arrival of the first ECS call the cloud recorded after seq.
func firstCall(c *localcloud.Cloud, rt *fcrt.Runtime, requestID string, seq int64) (Duration, error) {
	var start time.Time
	for _, inv := range rt.Invocations() {
		if inv.RequestID == requestID {
			start = inv.Start
		}
	}
	calls := c.Calls.Calls(func(c record.Call) bool { return c.Seq > seq && c.Service == "ecs" })
	if start.IsZero() || len(calls) == 0 {
		return 0, fmt.Errorf("harness: cold start: invocation %s made no ECS call", requestID)
	}
	first := calls[0].Time
	for _, call := range calls {
		if call.Time.Before(first) {
			first = call.Time
		}
	}
	return Duration(first.Sub(start)), nil
}

// outcomeOf reads the one outcome of a handler.Response payload.
func outcomeOf(payload []byte) string {
	var resp handler.Response
	if err := json.Unmarshal(payload, &resp); err != nil || len(resp.Results) != 1 {
		return "unreadable response"
	}
	return string(resp.Results[0].Outcome)
}

// batchMemory sends one invocation carrying n direct events to a fresh process, over HTTPS,
// and reads its peak RSS.
func batchMemory(ctx context.Context, p CloudParams, n int, bin string) (*BatchMemory, error) {
	if p.Instances < n || p.Pool < n {
		return nil, fmt.Errorf("harness: batch of %d needs as many instances and pool ENIs", n)
	}
	c, err := newTLSCloud(p)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rt, err := testbed.StartFunction(c, testbed.Function{Binary: bin, DeadLetterQueue: DeadLetterQueue, MaxInstances: 1, Timeout: FunctionTimeout})
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = InstanceID(i)
	}
	r, err := rt.Invoke(ctx, DirectBatch(ids, c.Region))
	if err != nil {
		return nil, err
	}
	m := &BatchMemory{Events: n, Duration: Duration(r.Duration)}
	if insts := rt.Instances(); len(insts) == 1 {
		m.PeakRSS = insts[0].PeakRSS
	}
	var resp handler.Response
	if err := json.Unmarshal(r.Payload, &resp); err != nil {
		return nil, fmt.Errorf("harness: batch: response: %w: %.200s", err, r.Payload)
	}
	m.Outcomes = Tally([]Done{{Resp: &resp}})
	if r.Error != nil {
		m.Outcomes.Errors = 1
	}
	m.Audit = (&Bed{Cloud: c}).Audit(ctx, ids, 0)
	return m, nil
}

// InitCost is what one package's init cost, from GODEBUG=inittrace=1.
type InitCost struct {
	Package string  `json:"package"`
	ClockMs float64 `json:"clockMs"`
	Bytes   int64   `json:"bytes"`
	Allocs  int64   `json:"allocs"`
}

// InitTrace is the package initialisation of a binary, as the Go runtime reports it.
type InitTrace struct {
	// ClockMs, Bytes and Allocs are the sums over every package.
	ClockMs float64 `json:"clockMs"`
	Bytes   int64   `json:"bytes"`
	Allocs  int64   `json:"allocs"`
	// Top are the slowest package inits (at most 8).
	Top []InitCost `json:"top"`
}

var initLine = regexp.MustCompile(`^init (\S+) @[\d.]+ ms, ([\d.]+) ms clock, (\d+) bytes, (\d+) allocs`)

// TraceInit runs bin once with GODEBUG=inittrace=1 and no other environment (the function
// exits on its missing configuration, hello on its missing runtime API, both after every
// package init has run) and sums what the runtime reports.
func TraceInit(ctx context.Context, bin string) (InitTrace, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"GODEBUG=inittrace=1", "PATH=/usr/bin:/bin", "HOME=/tmp"}
	out, _ := cmd.CombinedOutput() // both binaries exit non-zero here, by design
	var t InitTrace
	var all []InitCost
	for line := range strings.Lines(string(out)) {
		m := initLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		c := InitCost{Package: m[1]}
		c.ClockMs, _ = strconv.ParseFloat(m[2], 64)
		c.Bytes, _ = strconv.ParseInt(m[3], 10, 64)
		c.Allocs, _ = strconv.ParseInt(m[4], 10, 64)
		t.ClockMs += c.ClockMs
		t.Bytes += c.Bytes
		t.Allocs += c.Allocs
		all = append(all, c)
	}
	if len(all) == 0 {
		return t, fmt.Errorf("harness: %s printed no init trace", bin)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ClockMs > all[j].ClockMs })
	t.Top = all[:min(8, len(all))]
	return t, nil
}

// procStatusBytes reads a "Name: N kB" line of /proc/<pid>/status, in bytes; 0 if it cannot.
func procStatusBytes(pid int, name string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
