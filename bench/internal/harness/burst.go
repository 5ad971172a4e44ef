package harness

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/enipool/enipool/localcloud/record"
)

// BurstParams configure a burst: Events instances of one scaling activity launch at once and
// their ECS Running events reach one policy's function together, as EventBridge delivers
// them to FC (asynchronous invocations; FC runs at most MaxInstances instances and queues
// the rest).
type BurstParams struct {
	Cloud        CloudParams `json:"cloud"`
	Policy       string      `json:"policy"`
	Events       int         `json:"events"`
	MaxInstances int         `json:"maxInstances"`
	PeerScale    float64     `json:"peerScale,omitempty"`
	// QueueTasks, for a burst through the work queue (BurstQueue), replaces the trigger's
	// runOptions.maximumTasks, the batches it pushes at once; 0 keeps s.yaml's.
	QueueTasks int `json:"queueTasks,omitempty"`
}

// BurstResult is what a burst measured.
type BurstResult struct {
	Params BurstParams `json:"params"`
	Events []*Event    `json:"events"`
	// Summary sums up the events' ratios (each floor with its quota wait, see Floors).
	Summary Summary `json:"summary"`
	// Wall is from the delivery to the last event's end; WallFloor the least it could be
	// (see WallFloor).
	Wall      Duration `json:"wallMs"`
	WallFloor Duration `json:"wallFloorMs"`
	// FirstAttach is when ECS accepted the burst's first attach, from the delivery: FC's cold
	// starts of the instances, then a describe and a listing.
	FirstAttach Duration `json:"firstAttachMs"`
	// ECSCallsPerAttach is every ECS call over Events; ThrottledPerAttach likewise for the
	// throttled ones.
	ECSCallsPerAttach  float64 `json:"ecsCallsPerAttach"`
	ThrottledPerAttach float64 `json:"throttledPerAttach"`
	// Instances counts the FC instances started; ColdStarts the attempts that waited for one.
	Instances  int `json:"fcInstances"`
	ColdStarts int `json:"coldStarts"`
	// Invocations counts the function's invocations, FC's retries and the stream's included.
	Invocations int `json:"invocations"`
	// Queue is what the work-queue stream did, for a burst delivered through it
	// (BurstQueue); nil for one delivered by EventBridge.
	Queue    *QueueStats    `json:"queue,omitempty"`
	Outcomes map[string]int `json:"outcomes"`
	Audit    Audit          `json:"audit"`
	Timeline Timeline       `json:"timeline"`
}

// Timeline counts, per second of the burst, what happened in it.
type Timeline struct {
	// Attaches ECS accepted, calls answered Throttling, FC instances alive (started and not
	// ended) and busy (running an attempt at some moment of the second).
	Attaches  []int `json:"attaches"`
	Throttled []int `json:"throttled"`
	Instances []int `json:"instances"`
	Busy      []int `json:"busy"`
}

// Burst runs one burst in a world of its own and audits it.
func Burst(ctx context.Context, bins Functions, p BurstParams) (*BurstResult, error) {
	if p.Cloud.Instances < p.Events || p.Cloud.Pool < p.Events {
		return nil, fmt.Errorf("harness: burst: %d events need as many instances and pool ENIs (have %d, %d)", p.Events, p.Cloud.Instances, p.Cloud.Pool)
	}
	b, err := NewBed(p.Cloud)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := b.Start(p.Policy, bins, FunctionOptions{MaxInstances: p.MaxInstances, PeerScale: p.PeerScale}); err != nil {
		return nil, err
	}
	ids := make([]string, p.Events)
	tickets := make([]Ticket, p.Events)
	start := time.Now()
	for i := range ids {
		ids[i] = InstanceID(i)
		tickets[i] = b.Submit(p.Policy, ids[i])
	}
	if err := b.WaitAll(ctx); err != nil {
		return nil, err
	}
	events := b.Collect(tickets)
	return b.burstResult(p, start, ids, events, b.Audit(ctx, ids, 0)), nil
}

// burstResult measures a finished burst that started at start: its events' floors and
// ratios, the wall against its floor, the audit's costs per attach, the FC instances and
// invocations, and the timeline.
func (b *Bed) burstResult(p BurstParams, start time.Time, ids []string, events []*Event, audit Audit) *BurstResult {
	res := &BurstResult{Params: p, Events: events}
	var last time.Time
	for _, ev := range res.Events {
		if ev.end.After(last) {
			last = ev.end
		}
	}
	res.Wall = Duration(last.Sub(start))
	ops := b.Cloud.Store.Operations()
	Floors(res.Events, ops, p.Cloud, true)
	Polls(res.Events, b.Cloud.Calls.Calls(record.Match("ecs", "DescribeNetworkInterfaces")))
	res.WallFloor = Duration(WallFloor(ops, p.Cloud))
	res.Summary = Summarize(res.Events)
	res.Outcomes = tallyEvents(res.Events)
	res.Audit = audit
	res.ECSCallsPerAttach = float64(res.Audit.ECSCalls) / float64(p.Events)
	res.ThrottledPerAttach = float64(res.Audit.Throttled) / float64(p.Events)
	rt := b.Runtime(p.Policy)
	st := rt.Stats()
	res.Instances, res.ColdStarts = st.InstancesStarted, st.ColdStarts
	invocations := rt.Invocations()
	res.Invocations = len(invocations)

	sec := func(t time.Time) int { return max(0, int(t.Sub(start)/time.Second)) }
	n := int(math.Ceil(res.Wall.D().Seconds())) + 1
	tl := Timeline{Attaches: make([]int, n), Throttled: make([]int, n), Instances: make([]int, n), Busy: make([]int, n)}
	for _, op := range ops {
		if op.Op == "attach" && (res.FirstAttach == 0 || Duration(op.Accepted.Sub(start)) < res.FirstAttach) {
			res.FirstAttach = Duration(op.Accepted.Sub(start))
		}
		if op.Op == "attach" && sec(op.Accepted) < n {
			tl.Attaches[sec(op.Accepted)]++
		}
	}
	for _, c := range b.Cloud.Calls.Calls(record.Match("ecs", "")) {
		if c.Code == CodeThrottled && sec(c.Time) < n {
			tl.Throttled[sec(c.Time)]++
		}
	}
	for _, in := range rt.Instances() {
		for s := sec(in.Started); s < n; s++ {
			tl.Instances[s]++ // none ends within a burst: no idle timeout, no crash expected
		}
	}
	busy := make([]map[string]bool, n)
	for _, inv := range invocations {
		for s := sec(inv.Start); s <= sec(inv.Start.Add(inv.Duration)) && s < n; s++ {
			if busy[s] == nil {
				busy[s] = map[string]bool{}
			}
			busy[s][inv.Instance] = true
		}
	}
	for s := range busy {
		tl.Busy[s] = len(busy[s])
	}
	res.Timeline = tl
	return res
}

// tallyEvents counts events by outcome.
func tallyEvents(events []*Event) map[string]int {
	out := map[string]int{}
	for _, ev := range events {
		out[ev.Outcome]++
	}
	return out
}
