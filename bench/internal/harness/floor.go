package harness

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// Floors sets each event's floor from the cloud's record of the attaches it accepted (ops,
// world.Store.Operations) and its ratio, Latency / Floor.
//
// An event's floor is the least time any policy could have taken for it in this world: a
// describe of the instance and a listing of the pool (L each: a request's way there and its
// answer's way back), the attach's request half, the attach's own duration T (the cloud's
// draw for it, recorded when ECS accepted it), and the answer's way back of a poll that
// arrives the moment the ENI is InUse: 3L + T.
//
// With quota, the events share the account's attach rate limit (a token bucket of
// AttachBurst tokens refilled at AttachQPS, full when the burst starts): the attach ECS
// accepted k-th (0-based, in the order it accepted them) cannot have been accepted before
// (k+1-AttachBurst)/AttachQPS after the first, whatever the policy did, so that wait
// (QuotaWait) is added to its event's floor. The order is the run's own: a policy that let
// the long attaches in first would have had other floors, and the burst's wall-time floor
// (WallFloor) takes the best order instead.
func Floors(events []*Event, ops []world.Operation, p CloudParams, quota bool) {
	var attaches []world.Operation
	for _, op := range ops {
		if op.Op == "attach" {
			attaches = append(attaches, op)
		}
	}
	sort.SliceStable(attaches, func(i, j int) bool { return attaches[i].Accepted.Before(attaches[j].Accepted) })
	rank := map[string]int{} // eni|instance -> rank in acceptance order
	byInstance := map[string][]world.Operation{}
	for k, op := range attaches {
		rank[op.ENI+"|"+op.Instance] = k
		byInstance[op.Instance] = append(byInstance[op.Instance], op)
	}
	L := p.L()
	for _, ev := range events {
		if ev == nil {
			continue
		}
		mine := byInstance[ev.Instance]
		ev.Attaches = len(mine)
		i := slices.IndexFunc(mine, func(op world.Operation) bool { return op.Outcome == world.ENIInUse })
		if i < 0 {
			continue
		}
		op := mine[i]
		ev.ENI, ev.AttachTime, ev.Accepted = op.ENI, Duration(op.Duration), op.Accepted
		if quota {
			ev.QuotaWait = Duration(quotaWait(rank[op.ENI+"|"+op.Instance], p))
		}
		ev.Floor = Duration(3*L) + ev.AttachTime + ev.QuotaWait
		if ev.Latency > 0 && ev.Floor > 0 {
			ev.Ratio = float64(ev.Latency) / float64(ev.Floor)
		}
	}
}

// Polls sets each event's Polls and FirstPoll from the cloud's call records: the
// DescribeNetworkInterfaces calls naming its ENI (NetworkInterfaceId.N) or its instance
// (InstanceId) that arrived after ECS accepted its attach. Call it after Floors.
func Polls(events []*Event, calls []record.Call) {
	byENI, byInstance := map[string]*Event{}, map[string]*Event{}
	for _, ev := range events {
		if ev != nil && ev.ENI != "" {
			byENI[ev.ENI], byInstance[ev.Instance] = ev, ev
		}
	}
	for _, c := range calls {
		if c.Service != "ecs" || c.Action != "DescribeNetworkInterfaces" {
			continue
		}
		ev := byInstance[c.Params["InstanceId"]]
		if ev == nil {
			for k, v := range c.Params {
				if strings.HasPrefix(k, "NetworkInterfaceId.") && byENI[v] != nil {
					ev = byENI[v]
				}
			}
		}
		if ev == nil || c.Time.Before(ev.Accepted) {
			continue
		}
		if at := Duration(c.Time.Sub(ev.Accepted)); ev.Polls == 0 || at < ev.FirstPoll {
			ev.FirstPoll = at
		}
		ev.Polls++
	}
}

// quotaWait is the least the attach quota delays the k-th accepted attach (0-based).
func quotaWait(k int, p CloudParams) time.Duration {
	if p.AttachQPS <= 0 || k+1 <= p.AttachBurst {
		return 0
	}
	return time.Duration(float64(k+1-p.AttachBurst) / p.AttachQPS * float64(time.Second))
}

// WallFloor is the least wall time in which every attach of ops could have been confirmed,
// from the burst's start: each accepted attach k (0-based) waits quotaWait(k) for its token,
// then its duration, and the longest attaches are best let in first, so the floor pairs the
// durations, longest first, with the slots in order: 3L + max over k of (quotaWait(k) + the
// k-th longest duration).
func WallFloor(ops []world.Operation, p CloudParams) time.Duration {
	var ds []time.Duration
	for _, op := range ops {
		if op.Op == "attach" && op.Outcome == world.ENIInUse {
			ds = append(ds, op.Duration)
		}
	}
	slices.SortFunc(ds, func(a, b time.Duration) int { return int(b - a) })
	var worst time.Duration
	for k, d := range ds {
		worst = max(worst, quotaWait(k, p)+d)
	}
	return 3*p.L() + worst
}

// PercentileF is Percentile for floats (nearest rank).
func PercentileF(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Summary sums up the ratios of a set of events.
type Summary struct {
	// N counts the events; Failed those that did not end with the ENI InUse on their
	// instance (no ratio).
	N      int `json:"n"`
	Failed int `json:"failed"`
	// P50, P99 and Max are latency / floor; LatencyP50 and LatencyP99 the latencies, FloorP50
	// the floors.
	P50        float64  `json:"ratioP50"`
	P99        float64  `json:"ratioP99"`
	Max        float64  `json:"ratioMax"`
	LatencyP50 Duration `json:"latencyP50Ms"`
	LatencyP99 Duration `json:"latencyP99Ms"`
	FloorP50   Duration `json:"floorP50Ms"`
}

// Summarize sums up events.
func Summarize(events []*Event) Summary {
	var s Summary
	var ratios []float64
	var lat, floors []time.Duration
	for _, ev := range events {
		s.N++
		if ev == nil || ev.Ratio == 0 || ev.Status != fcrt.StatusSucceeded {
			s.Failed++
			continue
		}
		ratios = append(ratios, ev.Ratio)
		lat = append(lat, ev.Latency.D())
		floors = append(floors, ev.Floor.D())
	}
	s.P50, s.P99, s.Max = PercentileF(ratios, 50), PercentileF(ratios, 99), PercentileF(ratios, 100)
	s.LatencyP50, s.LatencyP99 = Duration(Percentile(lat, 50)), Duration(Percentile(lat, 99))
	s.FloorP50 = Duration(Percentile(floors, 50))
	return s
}
