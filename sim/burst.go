package sim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// BurstParams describe a burst: one scaling activity launches Launches instances, whose
// Running events reach the function as FC delivers them (asynchronously, each invocation on
// a function instance of its own, no memory shared between instances), against an account
// whose ECS rate limits are AttachQPS and DescribeQPS.
type BurstParams struct {
	Seed     int64
	Launches int
	// Arrival spreads the events' delivery uniformly over this span from the start.
	Arrival time.Duration
	// AttachQPS and AttachBurst are ECS's token bucket for AttachNetworkInterface per account;
	// DescribeQPS (a bucket of a second's worth) each describe API's. 0: not limited.
	AttachQPS   float64
	AttachBurst int
	DescribeQPS float64
	// Latency is each call's time on the way there, and again on the way back once served.
	Latency time.Duration
	// AttachMedian and AttachP99 draw each attach's duration from a log-normal.
	AttachMedian, AttachP99 time.Duration
	// StaleReads lets ECS reads lag writes by up to this much (0: never).
	StaleReads time.Duration

	// FCInstances is the most function instances FC runs at once: the function's
	// reservedConcurrency, or the account's per-region instance limit (100 by default). An
	// invocation beyond it is refused and retried by FC after 0.5 s, then 1 s, 2 s, 4 s, ...
	// (FC's documented binary exponential backoff for asynchronous invocations throttled by
	// the instance limit).
	FCInstances int
	// Batch > 1 sends the events through the work queue instead: messages of up to Batch
	// events per invocation (the trigger's CountBasedWindow), each batch sent once it is full
	// or BatchWindow after its first event.
	Batch       int
	BatchWindow time.Duration
	// Timeout is each invocation's deadline (s.yaml's timeout).
	Timeout time.Duration

	// RateControl and ClientQPS are the function's ENIPOOL_RATE_CONTROL and ENIPOOL_ATTACH_QPS.
	RateControl engine.RateControl
	ClientQPS   float64
}

// DefaultBurst is issue 13's burst: 500 launches, a 20/s attach quota, attach times of a
// median of 2 s and a p99 of 8 s, 20 ms each way, stale reads, FC's default instance limit.
// The figures that no public source gives (the describe quota, how fast a scaling activity's
// events arrive, how long reads lag) are assumptions.
func DefaultBurst(seed int64) BurstParams {
	return BurstParams{Seed: seed, Launches: 500, Arrival: 5 * time.Second, AttachQPS: 20, AttachBurst: 20,
		DescribeQPS: 100, Latency: 10 * time.Millisecond, AttachMedian: 2 * time.Second, AttachP99: 8 * time.Second,
		StaleReads: 2 * time.Second, FCInstances: 100, BatchWindow: 2 * time.Second, Timeout: 120 * time.Second,
		RateControl: engine.RateAdaptive}
}

// String names the parameters a variant changes.
func (p BurstParams) String() string {
	s := fmt.Sprintf("fc-instances=%d rate=%s", p.FCInstances, p.RateControl)
	if p.ClientQPS > 0 {
		s += fmt.Sprintf(" attach-qps=%g", p.ClientQPS)
	}
	if p.Batch > 1 {
		s += fmt.Sprintf(" batch=%d", p.Batch)
	}
	return s
}

// BurstResult is what a burst did.
type BurstResult struct {
	Params BurstParams
	// Attached counts the launched instances holding exactly one pool ENI at the end, Twice
	// those holding more, Missing those holding none.
	Attached, Twice, Missing int
	DeadLetters              int
	// Wall is from the first event's delivery to the last invocation's return; Floor is what
	// the attach quota allows at best, Launches / AttachQPS.
	Wall, Floor time.Duration
	// ECSCalls counts every ECS call, Attaches the AttachNetworkInterface calls, Throttled
	// the calls ECS answered Throttling.
	ECSCalls, Attaches, Throttled int
	// ThrottledBy counts the throttled calls per API.
	ThrottledBy map[string]int
	// LostRaces counts the attaches ECS refused because another had taken the ENI
	// (InvalidOperation.InvalidEniState): each spent a unit of the attach quota.
	LostRaces int
	// Invocations counts the invocations that ran, FCRefused those FC refused at its
	// instance limit (and retried), PeakInstances the most function instances alive.
	Invocations, FCRefused, PeakInstances int
	// Seconds are, per second from the start, the attaches ECS accepted and the calls it
	// answered Throttling.
	Seconds []Second
}

// Second is one second of a burst.
type Second struct{ Accepted, Throttled int }

// Timeline prints the seconds as accepted/throttled pairs.
func (r *BurstResult) Timeline() string {
	var b strings.Builder
	for i, s := range r.Seconds {
		fmt.Fprintf(&b, "%d:%d/%d ", i, s.Accepted, s.Throttled)
	}
	return b.String()
}

// PerAttach returns n per launched instance.
func (r *BurstResult) PerAttach(n int) float64 { return float64(n) / float64(r.Params.Launches) }

// String is one line of the burst's figures.
func (r *BurstResult) String() string {
	return fmt.Sprintf("seed=%d %s: attached %d twice %d missing %d letters %d | wall %.1fs = %.2fx floor | ECS calls/attach %.2f attach calls/attach %.2f throttled/attach %.3f lost races %d | invocations %d fc-refused %d instances %d | throttled %v",
		r.Params.Seed, r.Params, r.Attached, r.Twice, r.Missing, r.DeadLetters, r.Wall.Seconds(), float64(r.Wall)/float64(r.Floor),
		r.PerAttach(r.ECSCalls), r.PerAttach(r.Attaches), r.PerAttach(r.Throttled), r.LostRaces, r.Invocations, r.FCRefused, r.PeakInstances, r.ThrottledBy)
}

// burstWorld is an account with p.Launches Running instances tagged for the pool over two
// zones, and a pool with 10% to spare in each.
func burstWorld(p BurstParams) *world.World {
	const zones = 2
	w := baseWorld(zones, 2)
	keep := false
	for i := range p.Launches {
		z := i % zones
		w.Instances = append(w.Instances, world.Instance{ID: burstInstance(i), Type: "ecs.g7.sim", VSwitch: vswitchName(z),
			Status: world.StatusRunning, StartTime: world.Ago(time.Minute), CreationTime: world.Ago(time.Minute),
			SecurityGroups: []string{"sg-sim1"}, Tags: map[string]string{TagKey: Pool}})
	}
	perZone := (p.Launches + zones - 1) / zones
	for z := range zones {
		for i := range perZone + perZone/10 {
			w.ENIs = append(w.ENIs, world.ENI{ID: fmt.Sprintf("eni-burst%d%04d", z, i), VSwitch: vswitchName(z),
				SecurityGroups: []string{"sg-sim1"}, Tags: map[string]string{TagKey: Pool}, CreationTime: world.Ago(time.Hour),
				DeleteOnRelease: &keep})
		}
	}
	w.Timing.AttachSpread = fault.Spread{Median: fault.Duration(p.AttachMedian), P99: fault.Duration(p.AttachP99), Max: fault.Duration(40 * time.Second)}
	w.Timing.Detach = fault.Duration(300 * time.Millisecond)
	w.Faults.Seed = p.Seed
	if p.Latency > 0 {
		w.Faults.Latency = []fault.Latency{{Service: "ecs", Base: fault.Duration(p.Latency / 2), Jitter: fault.Duration(p.Latency)}}
		w.Faults.ResponseLatency = []fault.Latency{{Service: "ecs", Base: fault.Duration(p.Latency / 2), Jitter: fault.Duration(p.Latency)}}
	}
	if p.StaleReads > 0 {
		w.Faults.Staleness = []fault.Staleness{{Service: "ecs", Max: fault.Duration(p.StaleReads), Rate: 0.5}}
	}
	if p.AttachQPS > 0 {
		w.Throttling = append(w.Throttling, world.Throttle{Service: "ecs", Action: "AttachNetworkInterface", QPS: p.AttachQPS, Burst: p.AttachBurst})
	}
	if p.DescribeQPS > 0 {
		b := int(p.DescribeQPS)
		for _, a := range []string{"DescribeInstances", "DescribeNetworkInterfaces", "DescribeInstanceTypes"} {
			w.Throttling = append(w.Throttling, world.Throttle{Service: "ecs", Action: a, QPS: p.DescribeQPS, Burst: b})
		}
	}
	return w
}

func burstInstance(i int) string { return fmt.Sprintf("i-burst%04d", i) }

// Burst plays a burst and measures it. Call it inside a synctest bubble.
func Burst(p BurstParams) (*BurstResult, error) {
	w := burstWorld(p)
	if err := w.Validate("."); err != nil {
		return nil, fmt.Errorf("sim: burst world: %w", err)
	}
	cloud, err := NewCloud(w)
	if err != nil {
		return nil, err
	}
	opts := handler.DefaultOptions()
	opts.Region = Region
	opts.Pools = []string{Pool}
	opts.Clock = simClock{}
	opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	opts.RateControl = p.RateControl
	opts.AttachQPS = p.ClientQPS
	f := &fc{p: p, cloud: cloud, opts: opts}

	r := rand.New(rand.NewPCG(uint64(p.Seed), 0xb0257))
	arrive := make([]time.Duration, p.Launches)
	for i := range arrive {
		arrive[i] = time.Duration(r.Int64N(int64(p.Arrival) + 1))
	}
	start := Now()
	var wg sync.WaitGroup
	if p.Batch > 1 {
		f.queue(&wg, arrive)
	} else {
		for i, at := range arrive {
			wg.Go(func() {
				time.Sleep(at)
				f.deliver(runningEvent(i))
			})
		}
	}
	wg.Wait()
	res := &BurstResult{Params: p, Wall: f.lastEnd.Sub(start), Floor: time.Duration(float64(p.Launches) / p.AttachQPS * float64(time.Second)),
		Invocations: f.invocations, FCRefused: f.refused, PeakInstances: f.peak, ThrottledBy: map[string]int{}}
	if err := f.err; err != nil {
		return nil, err
	}
	for _, c := range cloud.Calls.All() {
		if c.Service != "ecs" {
			continue
		}
		res.ECSCalls++
		sec := int(c.At.Sub(start) / time.Second)
		for len(res.Seconds) <= sec {
			res.Seconds = append(res.Seconds, Second{})
		}
		if c.API == "AttachNetworkInterface" {
			res.Attaches++
			if c.Code == "InvalidOperation.InvalidEniState" {
				res.LostRaces++
			}
			if !c.Failed {
				res.Seconds[sec].Accepted++
			}
		}
		if strings.HasPrefix(c.Code, "Throttling") {
			res.Throttled++
			res.ThrottledBy[c.API]++
			res.Seconds[sec].Throttled++
		}
	}
	time.Sleep(settle) // every attach ECS accepted has ended
	held := map[string]int{}
	for _, e := range cloud.Store.ENIs() {
		if e.Tags[TagKey] == Pool && e.InstanceID != "" {
			held[e.InstanceID]++
		}
	}
	for i := range p.Launches {
		switch n := held[burstInstance(i)]; {
		case n == 1:
			res.Attached++
		case n > 1:
			res.Twice++
		default:
			res.Missing++
		}
	}
	res.DeadLetters = len(cloud.MNS.Messages(DeadLetterQueue))
	return res, nil
}

// runningEvent is the EventBridge ECS event of launch i reaching Running.
func runningEvent(i int) []byte {
	id := burstInstance(i)
	return fmt.Appendf(nil, `{"id":"ev-burst-%d","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:%s:%s:instance/%s","aliyunaccountid":%q,"aliyunregionid":%q,`+
		`"data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`,
		i, Region, Account, id, Account, Region, id)
}

// queueMessage is one work-queue message naming launch i, as the event stream delivers it.
func queueMessage(i int) string {
	return fmt.Sprintf(`{"id":"msg-burst-%d","source":"MNS-enipool-work-queue","specversion":"1.0","type":"mns:Queue:SendMessage",`+
		`"subject":"acs:mns:%s:%s:queues/enipool-work","aliyunaccountid":%q,"aliyunregionid":%q,`+
		`"data":{"requestId":"req-%d","messageId":"m-%d","messageBody":"{\"instanceId\":\"%s\",\"regionId\":\"%s\"}"}}`,
		i, Region, Account, Account, Region, i, i, burstInstance(i), Region)
}

// queue delivers the launches through the work queue: batches of up to p.Batch messages,
// each sent once full or p.BatchWindow after its first message.
func (f *fc) queue(wg *sync.WaitGroup, arrive []time.Duration) {
	order := make([]int, len(arrive))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(arrive[a], arrive[b]) })
	var batch []int
	var opened time.Duration
	flush := func(at time.Duration) {
		b := batch
		batch = nil
		wg.Go(func() {
			time.Sleep(at)
			msgs := make([]string, len(b))
			for k, i := range b {
				msgs[k] = queueMessage(i)
			}
			f.deliver([]byte("[" + strings.Join(msgs, ",") + "]"))
		})
	}
	for _, i := range order {
		if len(batch) > 0 && arrive[i] > opened+f.p.BatchWindow {
			flush(opened + f.p.BatchWindow)
		}
		if len(batch) == 0 {
			opened = arrive[i]
		}
		batch = append(batch, i)
		if len(batch) == f.p.Batch {
			flush(arrive[i])
		}
	}
	if len(batch) > 0 {
		flush(opened + f.p.BatchWindow)
	}
}

// fc is Function Compute in a burst: function instances that run one request each at a
// time and share no memory, at most p.FCInstances of them, and the asynchronous retries.
type fc struct {
	p     BurstParams
	cloud *Cloud
	opts  handler.Options

	mu          sync.Mutex
	idle        []*handler.Handler
	alive       int
	peak        int
	invocations int
	refused     int
	lastEnd     time.Time
	err         error
}

// take returns an idle instance, or a new one below the limit; nil at the limit.
func (f *fc) take() (*handler.Handler, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.idle); n > 0 {
		h := f.idle[n-1]
		f.idle = f.idle[:n-1]
		return h, nil
	}
	if f.p.FCInstances > 0 && f.alive >= f.p.FCInstances {
		f.refused++
		return nil, nil
	}
	f.alive++
	f.peak = max(f.peak, f.alive)
	return handler.New(f.opts, connector{f.cloud})
}

// deliver invokes the function with payload until it succeeds or FC's retries are spent.
func (f *fc) deliver(payload []byte) {
	for retry := 0; ; retry++ {
		// FC's retries of an invocation refused at the instance limit: 0.5 s, then doubling.
		var h *handler.Handler
		for wait := 500 * time.Millisecond; ; wait *= 2 {
			var err error
			if h, err = f.take(); err != nil {
				f.fail(err)
				return
			}
			if h != nil {
				break
			}
			time.Sleep(wait)
		}
		failed := f.invoke(h, retry, payload)
		if !failed || retry >= f.opts.PlatformRetries {
			return
		}
		time.Sleep(time.Duration(1<<retry) * 5 * time.Second) // as player.deliver assumes
	}
}

func (f *fc) invoke(h *handler.Handler, retry int, payload []byte) bool {
	f.mu.Lock()
	idx := f.invocations
	f.invocations++
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(withInvocation(context.Background(), idx), f.p.Timeout)
	defer cancel()
	_, err := h.Invoke(ctx, handler.Invocation{RequestID: fmt.Sprintf("req-%d", idx), FunctionName: "enipool",
		Region: Region, AccountID: Account, RetryCount: retry}, payload)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idle = append(f.idle, h)
	if now := Now(); now.After(f.lastEnd) {
		f.lastEnd = now
	}
	return err != nil
}

func (f *fc) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}
