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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
)

// Binaries are the two functions the cold-start scenario runs, built in the same run with
// the same command (testbed.BuildFunction: `go build -trimpath -ldflags=-s -w`, CGO_ENABLED=0, as make build).
type Binaries struct {
	// Enipool and Hello are the binaries' paths, in a temporary folder: not results, so not
	// written out.
	Enipool string `json:"-"`
	Hello   string `json:"-"`
	// EnipoolBytes and HelloBytes are the binaries' sizes.
	EnipoolBytes int64 `json:"enipoolBytes"`
	HelloBytes   int64 `json:"helloBytes"`
	// BuildTime is how long both builds took.
	BuildTime Duration `json:"buildMs"`
}

// Build builds the function (testbed.BuildFunction) and the hello-world baseline
// (localcloud/fcrt/testdata/hello) into dir.
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
	b.Hello = filepath.Join(dir, "hello")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", b.Hello, "./localcloud/fcrt/testdata/hello")
	cmd.Dir = filepath.Dir(mod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return b, fmt.Errorf("harness: building hello: %w\n%s", err, msg)
	}
	b.BuildTime = Duration(time.Since(start))
	for _, f := range []struct {
		path string
		size *int64
	}{{b.Enipool, &b.EnipoolBytes}, {b.Hello, &b.HelloBytes}} {
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
	// Cloud is the world the function's events act on; it needs Runs instances.
	Cloud CloudParams `json:"cloud"`
	// Runs cold starts of each binary are made, alternating which goes first.
	Runs int `json:"runs"`
	// BatchCloud is the world of the large batch, which is one invocation carrying Batch
	// direct events (Batch = 0 skips it).
	BatchCloud CloudParams `json:"batchCloud"`
	Batch      int         `json:"batch"`
}

// ColdSample is one cold start: a new process of the binary and its first invocation.
type ColdSample struct {
	// ColdStart is fcrt's InstanceStats.ColdStart: from the exec of the binary to its first
	// GET /next on the runtime API (Go runtime and package init, main's setup, fc.Start).
	ColdStart Duration `json:"coldStartMs"`
	// First is the first invocation's Result.Duration: from the instance taking it (its
	// first GET /next) to its result. Served = ColdStart + First: exec to first result.
	First  Duration `json:"firstMs"`
	Served Duration `json:"servedMs"`
	// PeakRSS is VmHWM in bytes as fcrt sampled it when the first result was posted: the
	// peak of the process up to and including handling one event.
	PeakRSS int64 `json:"peakRssBytes"`
	// RSSAnon and RSSFile split the process's resident memory, read from /proc/<pid>/status
	// right after the first result: anonymous memory (heap, stacks, runtime) and pages of
	// mapped files (the binary's code and data).
	RSSAnon int64 `json:"rssAnonBytes"`
	RSSFile int64 `json:"rssFileBytes"`
	// ColdFlag is the first Result's ColdStart flag (it must be true).
	ColdFlag bool   `json:"coldFlag"`
	Outcome  string `json:"outcome"`
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
	Enipool  []ColdSample    `json:"enipool"`
	Hello    []ColdSample    `json:"hello"`
	// Medians of the samples and their ratios (enipool / hello).
	EnipoolStartP50  Duration `json:"enipoolColdStartP50Ms"`
	HelloStartP50    Duration `json:"helloColdStartP50Ms"`
	StartRatio       float64  `json:"coldStartRatio"`
	EnipoolRSSP50    float64  `json:"enipoolPeakRssP50Bytes"`
	HelloRSSP50      float64  `json:"helloPeakRssP50Bytes"`
	RSSRatio         float64  `json:"peakRssRatio"`
	EnipoolServedP50 Duration `json:"enipoolServedP50Ms"`
	HelloServedP50   Duration `json:"helloServedP50Ms"`
	// EnipoolStartMin and HelloStartMin are the fastest cold starts: the least disturbed by
	// the machine's noise.
	EnipoolStartMin Duration `json:"enipoolColdStartMinMs"`
	HelloStartMin   Duration `json:"helloColdStartMinMs"`
	// Medians of the resident memory split after the first result.
	EnipoolAnonP50 float64 `json:"enipoolRssAnonP50Bytes"`
	EnipoolFileP50 float64 `json:"enipoolRssFileP50Bytes"`
	HelloAnonP50   float64 `json:"helloRssAnonP50Bytes"`
	HelloFileP50   float64 `json:"helloRssFileP50Bytes"`
	// EnipoolInit and HelloInit are the binaries' package initialisation costs.
	EnipoolInit InitTrace    `json:"enipoolInit"`
	HelloInit   InitTrace    `json:"helloInit"`
	Batch       *BatchMemory `json:"batch,omitempty"`
}

// ColdStart builds both binaries into dir and measures them under the local FC runtime.
func ColdStart(ctx context.Context, p ColdStartParams, dir string) (*ColdStartResult, error) {
	bins, err := Build(ctx, dir)
	if err != nil {
		return nil, err
	}
	res := &ColdStartResult{Params: p, Binaries: bins}
	if res.EnipoolInit, err = TraceInit(ctx, bins.Enipool); err != nil {
		return nil, err
	}
	if res.HelloInit, err = TraceInit(ctx, bins.Hello); err != nil {
		return nil, err
	}
	if p.Runs < 1 || p.Cloud.Instances < p.Runs {
		return nil, fmt.Errorf("harness: coldstart: %d runs need as many instances (have %d)", p.Runs, p.Cloud.Instances)
	}
	c, err := newCloud(p.Cloud)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	for i := range p.Runs {
		order := []bool{false, true} // hello first on even runs, enipool first on odd ones
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, enipool := range order {
			// Collect now, so that the benchmark's own collector does not run during a start.
			runtime.GC()
			var s ColdSample
			if enipool {
				s, err = coldEnipool(ctx, c, bins.Enipool, InstanceID(i))
			} else {
				s, err = coldHello(ctx, c, bins.Hello)
			}
			if err != nil {
				return nil, err
			}
			if enipool {
				res.Enipool = append(res.Enipool, s)
			} else {
				res.Hello = append(res.Hello, s)
			}
		}
	}
	med := func(ss []ColdSample, f func(ColdSample) float64) float64 {
		var xs []float64
		for _, s := range ss {
			xs = append(xs, f(s))
		}
		return Median(xs)
	}
	start := func(s ColdSample) float64 { return float64(s.ColdStart) }
	rss := func(s ColdSample) float64 { return float64(s.PeakRSS) }
	res.EnipoolStartP50, res.HelloStartP50 = Duration(med(res.Enipool, start)), Duration(med(res.Hello, start))
	res.StartRatio = float64(res.EnipoolStartP50) / float64(res.HelloStartP50)
	res.EnipoolRSSP50, res.HelloRSSP50 = med(res.Enipool, rss), med(res.Hello, rss)
	res.RSSRatio = res.EnipoolRSSP50 / res.HelloRSSP50
	res.EnipoolServedP50 = Duration(med(res.Enipool, func(s ColdSample) float64 { return float64(s.Served) }))
	res.HelloServedP50 = Duration(med(res.Hello, func(s ColdSample) float64 { return float64(s.Served) }))
	least := func(ss []ColdSample) Duration {
		m := ss[0].ColdStart
		for _, s := range ss {
			m = min(m, s.ColdStart)
		}
		return m
	}
	res.EnipoolStartMin, res.HelloStartMin = least(res.Enipool), least(res.Hello)
	anon := func(s ColdSample) float64 { return float64(s.RSSAnon) }
	file := func(s ColdSample) float64 { return float64(s.RSSFile) }
	res.EnipoolAnonP50, res.EnipoolFileP50 = med(res.Enipool, anon), med(res.Enipool, file)
	res.HelloAnonP50, res.HelloFileP50 = med(res.Hello, anon), med(res.Hello, file)

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

// coldEnipool starts the real function on a fresh runtime (one instance) and sends it the
// ECS Running event of an instance.
func coldEnipool(ctx context.Context, c *localcloud.Cloud, bin, instance string) (ColdSample, error) {
	rt, err := testbed.StartFunction(c, testbed.Function{Binary: bin, DeadLetterQueue: DeadLetterQueue, MaxInstances: 1, Timeout: FunctionTimeout})
	if err != nil {
		return ColdSample{}, err
	}
	defer rt.Close()
	return coldRun(ctx, rt, ECSRunning(instance, c.Region, c.AccountID), true)
}

// coldHello starts the hello-world function the same way and invokes it once.
func coldHello(ctx context.Context, c *localcloud.Cloud, bin string) (ColdSample, error) {
	rt, err := fcrt.Start(fcrt.Function{
		Name: "hello", Handler: "main", Region: c.Region, AccountID: c.AccountID, Binary: bin,
		Timeout: FunctionTimeout, MemoryMB: 256, MaxInstances: 1,
		Credentials: func(context.Context) (fcrt.Credentials, error) {
			k, err := c.AssumeRole(Role, time.Hour)
			if err != nil {
				return fcrt.Credentials{}, err
			}
			return fcrt.Credentials{AccessKeyID: k.ID, AccessKeySecret: k.Secret, SecurityToken: k.Token, Expiration: k.Expires}, nil
		},
	})
	if err != nil {
		return ColdSample{}, err
	}
	defer rt.Close()
	return coldRun(ctx, rt, []byte(`{}`), false)
}

func coldRun(ctx context.Context, rt *fcrt.Runtime, payload []byte, enipool bool) (ColdSample, error) {
	r, err := rt.Invoke(ctx, payload)
	if err != nil {
		return ColdSample{}, err
	}
	if r.Error != nil {
		return ColdSample{}, fmt.Errorf("harness: cold start: function error %s: %s", r.Error.ErrorType, r.Error.ErrorMessage)
	}
	insts := rt.Instances()
	if len(insts) != 1 {
		return ColdSample{}, fmt.Errorf("harness: cold start: %d instances, want 1", len(insts))
	}
	st := insts[0]
	s := ColdSample{ColdStart: Duration(st.ColdStart), First: Duration(r.Duration), PeakRSS: st.PeakRSS,
		ColdFlag: r.ColdStart, Outcome: "ok"}
	s.Served = s.ColdStart + s.First
	s.RSSAnon, s.RSSFile = procStatusBytes(st.PID, "RssAnon"), procStatusBytes(st.PID, "RssFile")
	if enipool {
		s.Outcome = outcomeOf(r.Payload)
	}
	return s, nil
}

// outcomeOf reads the one outcome of a handler.Response payload.
func outcomeOf(payload []byte) string {
	var resp handler.Response
	if err := json.Unmarshal(payload, &resp); err != nil || len(resp.Results) != 1 {
		return "unreadable response"
	}
	return string(resp.Results[0].Outcome)
}

// batchMemory sends one invocation carrying n direct events to a fresh process and reads
// its peak RSS.
func batchMemory(ctx context.Context, p CloudParams, n int, bin string) (*BatchMemory, error) {
	if p.Instances < n || p.Pool < n {
		return nil, fmt.Errorf("harness: batch of %d needs as many instances and pool ENIs", n)
	}
	c, err := newCloud(p)
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
