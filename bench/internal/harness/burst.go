package harness

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/localcloud/record"
)

// BurstParams configure a burst: Events instances launch at once and their events are
// delivered to one handler (one process) with Concurrency invocations in flight.
type BurstParams struct {
	Cloud CloudParams `json:"cloud"`
	// Events is how many instances launch (the first Events instances of the world).
	Events int `json:"events"`
	// Concurrency is how many invocations are in flight at once.
	Concurrency int `json:"concurrency"`
	// AttachQPS sets ENIPOOL_ATTACH_QPS, the function's own pacing; 0 means none.
	AttachQPS float64 `json:"attachQps"`
	// BatchSize 0 or 1 sends one EventBridge ECS Running event per invocation; more sends
	// MNS queue batches of that many messages per invocation.
	BatchSize int `json:"batchSize"`
	// FirstGuess sets ENIPOOL_ATTACH_TIME; 0 leaves it unset (the production default).
	FirstGuess Duration `json:"firstGuessMs"`
}

// BurstResult is what a burst measured.
type BurstResult struct {
	Params BurstParams `json:"params"`
	// Wall is from the first invocation's start to the last one's return.
	Wall Duration `json:"wallMs"`
	// RateFloor is the least time the cloud's attach rate limit allows for the attaches the
	// pool can satisfy: (min(events, pool) - burst) / qps. Floor adds the single-event floor
	// (3L + T + L): the first attach cannot start before a describe and a listing, and the
	// last is confirmed only T + L after it is admitted. Zero when there is no rate limit.
	RateFloor Duration `json:"rateFloorMs"`
	Floor     Duration `json:"floorMs"`
	// Invocations is how many invocations were made; InvocationP50/P99/Max their durations.
	Invocations   int      `json:"invocations"`
	InvocationP50 Duration `json:"invocationP50Ms"`
	InvocationP99 Duration `json:"invocationP99Ms"`
	InvocationMax Duration `json:"invocationMaxMs"`
	// AttachSpan is from the first successful attach's arrival to the last one's; AttachRate
	// the successful attaches per second over it.
	AttachSpan Duration `json:"attachSpanMs"`
	AttachRate float64  `json:"attachRatePerS"`
	// ECSCallsPerAttach is every ECS call of the run divided by Events.
	ECSCallsPerAttach float64 `json:"ecsCallsPerAttach"`
	// Exhausted checks the dead letters against the shortfall (events beyond the pool).
	Exhausted ExhaustedCheck `json:"exhausted"`
	Audit     Audit          `json:"audit"`
	Outcomes  Outcomes       `json:"outcomes"`
}

// ExhaustedCheck compares the dead-letter queue with what a pool smaller than the burst must
// produce: one letter per instance beyond the pool, each naming the exhausted pool and zone.
type ExhaustedCheck struct {
	// Shortfall is max(0, events - pool) per zone, summed: the instances that cannot get an ENI.
	Shortfall int `json:"shortfall"`
	// Letters counts enipool envelopes; Valid those with code enipool.PoolExhausted, the pool
	// and a zone set, a reason naming both, for an instance of the burst that holds no pool
	// ENI, one letter per instance.
	Letters int `json:"letters"`
	Valid   int `json:"valid"`
	// ByZone counts the valid letters per zone.
	ByZone map[string]int `json:"byZone,omitempty"`
	// Problems describes letters that are not valid (at most 10).
	Problems []string `json:"problems,omitempty"`
}

// Burst runs one burst and audits it.
func Burst(ctx context.Context, p BurstParams) (*BurstResult, error) {
	if p.Cloud.Instances < p.Events {
		return nil, fmt.Errorf("harness: burst: %d events need as many instances (have %d)", p.Events, p.Cloud.Instances)
	}
	env := map[string]string{}
	if p.AttachQPS > 0 {
		env["ENIPOOL_ATTACH_QPS"] = fmt.Sprint(p.AttachQPS)
	}
	if p.FirstGuess > 0 {
		env["ENIPOOL_ATTACH_TIME"] = p.FirstGuess.D().String()
	}
	b, err := NewBed(p.Cloud, env)
	if err != nil {
		return nil, err
	}
	defer b.Close()

	ids := make([]string, p.Events)
	for i := range ids {
		ids[i] = InstanceID(i)
	}
	var payloads [][]byte
	if p.BatchSize > 1 {
		payloads = MNSBatches(ids, p.BatchSize, b.Cloud.Region, b.Cloud.AccountID)
	} else {
		for _, id := range ids {
			payloads = append(payloads, ECSRunning(id, b.Cloud.Region, b.Cloud.AccountID))
		}
	}
	done, wall := b.Drive(ctx, payloads, p.Concurrency)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &BurstResult{Params: p, Wall: Duration(wall), Invocations: len(done)}
	var durs []time.Duration
	for _, d := range done {
		durs = append(durs, d.Duration)
	}
	res.InvocationP50, res.InvocationP99 = Duration(Percentile(durs, 50)), Duration(Percentile(durs, 99))
	res.InvocationMax = Duration(Percentile(durs, 100))
	res.Audit = b.Audit(ctx, ids, 0)
	res.Outcomes = Tally(done)
	res.ECSCallsPerAttach = float64(res.Audit.ECSCalls) / float64(p.Events)

	var attaches []time.Time
	for _, c := range b.Cloud.Calls.Calls(record.Match("ecs", "AttachNetworkInterface")) {
		if c.OK() {
			attaches = append(attaches, c.Time)
		}
	}
	sort.Slice(attaches, func(i, j int) bool { return attaches[i].Before(attaches[j]) })
	if n := len(attaches); n > 1 {
		span := attaches[n-1].Sub(attaches[0])
		res.AttachSpan = Duration(span)
		res.AttachRate = float64(n-1) / span.Seconds()
	}

	res.Exhausted = checkExhausted(res.Audit, ids, p.Cloud)
	need := p.Events - res.Exhausted.Shortfall // the attaches the pool can satisfy
	if q := p.Cloud.ThrottleQPS; q > 0 {
		res.RateFloor = Duration(time.Duration(float64(max(0, need-p.Cloud.ThrottleBurst)) / q * float64(time.Second)))
		L, T := p.Cloud.Latency.D(), p.Cloud.AttachTime.D()
		res.Floor = res.RateFloor + Duration(3*L+T+L)
	}
	return res, nil
}

// checkExhausted validates the dead letters of a burst against the pool's shortfall.
func checkExhausted(a Audit, ids []string, c CloudParams) ExhaustedCheck {
	// Instances and ENIs go round-robin over the zones (world.Generate).
	zones := c.Zones
	instPerZone, poolPerZone := make([]int, zones), make([]int, zones)
	for i := range ids {
		instPerZone[i%zones]++
	}
	for i := range c.Pool {
		poolPerZone[i%zones]++
	}
	x := ExhaustedCheck{Letters: len(a.DeadLetters), ByZone: map[string]int{}}
	for z := range zones {
		x.Shortfall += max(0, instPerZone[z]-poolPerZone[z])
	}
	burst := map[string]bool{}
	for _, id := range ids {
		burst[id] = true
	}
	bare := map[string]bool{}
	for _, id := range a.Bare {
		bare[id] = true
	}
	seen := map[string]bool{}
	problem := func(format string, args ...any) {
		if len(x.Problems) < 10 {
			x.Problems = append(x.Problems, fmt.Sprintf(format, args...))
		}
	}
	for _, env := range a.DeadLetters {
		code := ""
		if env.Error != nil {
			code = env.Error.Code
		}
		switch {
		case code != cloud.CodePoolExhausted:
			problem("%s: code %q: %s", env.InstanceID, code, env.Reason)
		case env.Pool != PoolName || env.Zone == "":
			problem("%s: pool %q zone %q", env.InstanceID, env.Pool, env.Zone)
		case !strings.Contains(env.Reason, `"`+PoolName+`"`) || !strings.Contains(env.Reason, env.Zone):
			problem("%s: reason %q names neither the pool nor the zone", env.InstanceID, env.Reason)
		case !burst[env.InstanceID] || !bare[env.InstanceID]:
			problem("%s: not an instance of the burst left without an ENI", env.InstanceID)
		case seen[env.InstanceID]:
			problem("%s: dead-lettered twice", env.InstanceID)
		default:
			seen[env.InstanceID] = true
			x.Valid++
			x.ByZone[env.Zone]++
		}
	}
	return x
}
