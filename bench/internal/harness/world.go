// Package harness runs enipool's benchmark scenarios the way Function Compute runs the
// function: every concurrent invocation in its own process (the built binary under the local
// FC runtime, localcloud/fcrt, one request per instance as FC 3.0's go1 runtime serves them),
// new instances cold with a fresh deployment's configuration (s.yaml's environment, no
// ENIPOOL_ATTACH_TIME hint), instances reused as FC reuses them, against a local cloud as
// unkind as production: attach times drawn per attach from a long-tailed distribution, stale
// reads, latency on both halves of every call, ECS's rate limits. The peers' confirmation
// policies (package peer) run the same way, as a function binary of their own, in the same
// world.
//
// Every figure it returns is measured: the runtime's records of each invocation, the
// cloud's own call records, its record of each attach's true duration
// (world.Store.Operations), its final state and the dead-letter queue. Nothing is derived
// from what a policy is expected to do.
package harness

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// Names every generated world uses.
const (
	// DeadLetterQueue is the queue the function dead-letters to.
	DeadLetterQueue = testbed.DeadLetterQueue
	// PoolTagKey and PoolName are the pool tag world.Generate puts on instances and ENIs.
	PoolTagKey = "enipool"
	PoolName   = "web"
	// Role is the world principal enipool runs as.
	Role = testbed.Role
	// FunctionTimeout is s.yaml's timeout, the invocation deadline of the cold-start runs.
	FunctionTimeout = 120 * time.Second
	// WorkQueueVisibility is the VisibilityTimeout deploy/README.md has the work queue
	// created with, longer than FunctionTimeout: the stream deletes a batch's messages only
	// when its synchronous push returned, so they must stay invisible for as long as the
	// batch can take (its window, a wait for a free push, its own push and retries).
	WorkQueueVisibility = 600 * time.Second
)

// CloudParams shape a generated local cloud (world.Generate) and its timing and limits.
type CloudParams struct {
	Instances int `json:"instances"` // Running instances, all tagged for the pool
	Pool      int `json:"pool"`      // Available pool ENIs
	Zones     int `json:"zones"`     // instances and ENIs go round-robin over the zones
	// Seed seeds the cloud's draws: the n-th attach of a run takes as long in every run with
	// the same seed, and each read's staleness is drawn from it.
	Seed int64 `json:"seed"`
	// RequestLatency is paid by every ECS call before the cloud serves it (throttling
	// included), ResponseLatency after it was served, on the answer's way back; L is their
	// sum. Neither has jitter, so that every event's floor (3L + its attach time) is exact.
	RequestLatency  Duration `json:"requestLatencyMs"`
	ResponseLatency Duration `json:"responseLatencyMs"`
	// AttachSpread is the log-normal each attach's duration is drawn from (median, p99, cap);
	// DetachSpread the same for detaches.
	AttachSpread fault.Spread `json:"attachSpread"`
	DetachSpread fault.Spread `json:"detachSpread"`
	// Staleness is how far behind the writes an ECS read may be served: each read draws its
	// lag uniform in [0, Staleness]. Zero serves the truth.
	Staleness Duration `json:"stalenessMaxMs"`
	// AttachQPS and AttachBurst rate-limit AttachNetworkInterface per account with a token
	// bucket (Throttling.User when empty); OtherQPS and OtherBurst every other ECS action, a
	// bucket per action. QPS 0 means no limit.
	AttachQPS   float64 `json:"attachQps,omitempty"`
	AttachBurst int     `json:"attachBurst,omitempty"`
	OtherQPS    float64 `json:"otherQps,omitempty"`
	OtherBurst  int     `json:"otherBurst,omitempty"`
	// Roles are more function roles, with enipool's policy (the peers run as their own roles,
	// so the call records say whose each call was).
	Roles []string `json:"roles,omitempty"`
	// PoolOf, when set, tags the i-th instance and the i-th pool ENI with PoolOf(i) instead of
	// PoolName (independent pools for lanes that must not meet).
	PoolOf func(i int) string `json:"-"`
}

// L is the latency of one ECS call, both halves.
func (p CloudParams) L() time.Duration { return p.RequestLatency.D() + p.ResponseLatency.D() }

// World generates the world the parameters describe.
func (p CloudParams) World() (*world.World, error) {
	if p.Instances < 1 || p.Pool < 1 || p.Zones < 1 || p.AttachSpread.Median <= 0 {
		return nil, fmt.Errorf("harness: instances (%d), pool (%d), zones (%d) and the attach time (%v) must be set",
			p.Instances, p.Pool, p.Zones, p.AttachSpread.Median.D())
	}
	for _, b := range []struct {
		qps   float64
		burst int
	}{{p.AttachQPS, p.AttachBurst}, {p.OtherQPS, p.OtherBurst}} {
		if b.qps > 0 && b.burst < 1 {
			// The cloud's bucket starts with Burst tokens and holds at most Burst: 0 admits nothing.
			return nil, fmt.Errorf("harness: a throttling rule needs a bucket of at least 1, not %d", b.burst)
		}
	}
	plan := fault.Plan{Seed: p.Seed}
	if p.RequestLatency > 0 {
		plan.Latency = []fault.Latency{{Service: "ecs", Base: fault.Duration(p.RequestLatency)}}
	}
	if p.ResponseLatency > 0 {
		plan.ResponseLatency = []fault.Latency{{Service: "ecs", Base: fault.Duration(p.ResponseLatency)}}
	}
	if p.Staleness > 0 {
		plan.Staleness = []fault.Staleness{{Service: "ecs", Max: fault.Duration(p.Staleness)}}
	}
	var throttles []world.Throttle
	if p.AttachQPS > 0 {
		throttles = append(throttles, world.Throttle{Service: "ecs", Action: "AttachNetworkInterface", QPS: p.AttachQPS, Burst: p.AttachBurst})
	}
	if p.OtherQPS > 0 {
		throttles = append(throttles, world.Throttle{Service: "ecs", QPS: p.OtherQPS, Burst: p.OtherBurst})
	}
	// The function's role (and the peers', whose calls are the function's) runs under the
	// policy rendered for the pools the world holds.
	pools := []string{PoolName}
	if p.PoolOf != nil {
		pools = nil
		for i := range max(p.Instances, p.Pool) {
			pools = append(pools, p.PoolOf(i))
		}
		slices.Sort(pools)
		pools = slices.Compact(pools)
	}
	w, err := world.Generate(world.GenerateOptions{
		Instances: p.Instances, Pool: p.Pool, Zones: p.Zones, PoolKey: PoolTagKey, PoolValue: PoolName, Pools: pools,
		Faults: plan, Throttling: throttles,
	})
	if err != nil {
		return nil, err
	}
	w.Timing.AttachSpread, w.Timing.DetachSpread = p.AttachSpread, p.DetachSpread
	for _, r := range p.Roles {
		w.Principals = append(w.Principals, world.Principal{Name: r, Kind: auth.KindRole, Policies: []string{Role}})
	}
	if p.PoolOf != nil {
		for i := range w.Instances {
			w.Instances[i].Tags = map[string]string{PoolTagKey: p.PoolOf(i)}
		}
		for i := range w.ENIs {
			w.ENIs[i].Tags = map[string]string{PoolTagKey: p.PoolOf(i)}
		}
	}
	if err := w.Validate("."); err != nil {
		return nil, err
	}
	return w, nil
}

// InstanceID returns the id world.Generate gives its i-th instance (0-based).
func InstanceID(i int) string { return fmt.Sprintf("i-gen%09d", i+1) }

// Duration is a time.Duration that reads and writes as milliseconds in JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d in milliseconds, to the hundredth.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d)/float64(time.Millisecond), 'f', 2, 64), nil
}
