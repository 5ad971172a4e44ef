package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// Names of the scenario worlds.
const (
	Region  = "cn-hangzhou"
	Account = "1234567890123456"
	TagKey  = "enipool"
	Pool    = "web"
	// OtherPool is a pool this deployment does not serve: its ENIs must never be touched.
	OtherPool = "db"
)

// Scenario is one seeded fleet: a world, the function's settings and what happens to the
// fleet (events delivered, instances stopped or released), all drawn from Seed.
type Scenario struct {
	Seed        int64
	PerInstance int
	World       *world.World
	// Timeout is each invocation's deadline (FC's function timeout).
	Timeout time.Duration
	// PlatformRetries is how often FC retries a failed asynchronous invocation.
	PlatformRetries int
	// Events are the state-change events FC delivers, by when (from the start).
	Events []Event
	// Disturbances stop or release instances mid-work; each one's state-change event is
	// delivered when the instance gets there.
	Disturbances []Disturbance
	// Features names what the scenario switched on, for failure messages.
	Features []string
	// Clean says no fault can make a correct handler fail an event: no injected errors, no
	// lost answers, no rollbacks, no throttling, no short deadlines. In a clean scenario
	// an eligible, undisturbed instance whose zone's pool suffices must get its ENIs.
	Clean bool
	// Fleet describes each instance as the scenario made it.
	Fleet []Member
}

// Member is one instance of the fleet and what is true of it.
type Member struct {
	ID   string
	Zone string
	// Pool is the instance's pool tag value ("" untagged).
	Pool string
	// Fits says the instance type has room for the primary ENI and N pool ENIs.
	Fits bool
}

// Event is one delivery of an ECS Instance:StateChange event.
type Event struct {
	At       time.Duration
	ID       string // dup deliveries share it
	Instance string
	State    string // Running, Stopped, Deleted
}

// Disturbance is something done to an instance from outside: a stop or a release.
type Disturbance struct {
	At       time.Duration
	Instance string
	Kind     string // "stop" or "release"
	// Notify is how long after the instance gets there its event is delivered.
	Notify time.Duration
}

// New draws the scenario of seed.
func New(seed int64) *Scenario {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	s := &Scenario{Seed: seed, PerInstance: 1 + r.IntN(3), Timeout: 60 * time.Second, PlatformRetries: 2, Clean: true}
	chance := func(p float64, feature string) bool {
		if r.Float64() < p {
			s.Features = append(s.Features, feature)
			return true
		}
		return false
	}
	zones := 1 + r.IntN(2)
	n := s.PerInstance
	quota := 1 + n + r.IntN(2)
	if chance(0.03, "type-too-small") {
		quota = n // the primary and N do not fit
	}
	w := baseWorld(zones, quota)

	instances := 1 + r.IntN(4)
	need := make([]int, zones)
	for i := range instances {
		z := r.IntN(zones)
		m := Member{ID: fmt.Sprintf("i-sim%04d", i+1), Zone: zoneName(z), Pool: Pool, Fits: quota >= 1+n}
		switch {
		case chance(0.04, "untagged-instance"):
			m.Pool = ""
		case chance(0.04, "other-pool-instance"):
			m.Pool = OtherPool
		}
		if m.Pool == Pool {
			need[z] += n
		}
		s.Fleet = append(s.Fleet, m)
		in := world.Instance{ID: m.ID, Type: "ecs.g7.sim", VSwitch: vswitchName(z), Status: world.StatusRunning,
			StartTime: world.Ago(time.Minute), CreationTime: world.Ago(time.Minute), SecurityGroups: []string{"sg-sim1"}}
		if m.Pool != "" {
			in.Tags = map[string]string{TagKey: m.Pool}
		}
		w.Instances = append(w.Instances, in)
	}
	keep := false
	eni := 0
	addENI := func(z int, tags map[string]string) {
		eni++
		w.ENIs = append(w.ENIs, world.ENI{ID: fmt.Sprintf("eni-sim%04d", eni), VSwitch: vswitchName(z),
			SecurityGroups: []string{"sg-sim1"}, Tags: tags, CreationTime: world.Ago(time.Hour), DeleteOnRelease: &keep})
	}
	for z := range zones {
		size := need[z]
		switch p := r.Float64(); {
		case p < 0.2:
			size = max(need[z]-1-r.IntN(2), 0)
			s.Features = append(s.Features, "pool-too-small")
		case p < 0.6:
			s.Features = append(s.Features, "pool-exact")
		default:
			size += 1 + r.IntN(2)
		}
		for range size {
			addENI(z, map[string]string{TagKey: Pool})
		}
		// ENIs that are not the pool's, beside it: never to be touched.
		addENI(z, map[string]string{TagKey: OtherPool})
		addENI(z, nil)
	}

	// The cloud's manners.
	median := time.Duration(300+r.IntN(1700)) * time.Millisecond
	w.Timing.AttachSpread = fault.Spread{Median: fault.Duration(median), P99: fault.Duration(median * time.Duration(2+r.IntN(12))),
		Max: fault.Duration(40 * time.Second)}
	w.Timing.Detach = fault.Duration(300 * time.Millisecond)
	w.Timing.Jitter = fault.Duration(400 * time.Millisecond)
	w.Timing.Stop = fault.Duration(time.Duration(500+r.IntN(2500)) * time.Millisecond)
	plan := &w.Faults
	plan.Seed = seed
	if chance(0.6, "latency") {
		plan.Latency = append(plan.Latency, fault.Latency{Service: "ecs", Base: fault.Duration(10 * time.Millisecond),
			Jitter: fault.Duration(90 * time.Millisecond), SpikeRate: 0.05, Spike: fault.Duration(2 * time.Second)})
	}
	if chance(0.4, "stale-reads") {
		plan.Staleness = append(plan.Staleness, fault.Staleness{Service: "ecs",
			Max: fault.Duration(time.Duration(200+r.IntN(3800)) * time.Millisecond), Rate: 0.3 + 0.7*r.Float64()})
	}
	if chance(0.2, "errors-before") {
		codes := []fault.Rule{{Code: "InternalError", HTTPStatus: 500}, {Code: "ServiceUnavailable", HTTPStatus: 503},
			{Code: "Throttling.User", HTTPStatus: 400}, {Reset: true}}
		rule := codes[r.IntN(len(codes))]
		rule.Service, rule.Rate = "ecs", 0.05+0.2*r.Float64()
		if r.IntN(2) == 0 {
			rule.Action = "AttachNetworkInterface"
		}
		plan.Errors = append(plan.Errors, rule)
		s.Clean = false
	}
	if chance(0.2, "errors-after") {
		kinds := []string{fault.AfterReset, fault.AfterError, fault.AfterTimeout}
		plan.AfterAction = append(plan.AfterAction, fault.AfterRule{Service: "ecs", Action: "AttachNetworkInterface",
			Rate: 0.1 + 0.4*r.Float64(), Kind: kinds[r.IntN(len(kinds))], Hold: fault.Duration(15 * time.Second)})
		s.Clean = false
	}
	if chance(0.2, "rollbacks") {
		plan.AttachRollback = 0.1 + 0.4*r.Float64()
		s.Clean = false
	}
	if chance(0.15, "throttling") {
		w.Throttling = append(w.Throttling, world.Throttle{Service: "ecs", QPS: 2 + 8*r.Float64(), Burst: 2 + r.IntN(4)})
		s.Clean = false
	}
	if chance(0.15, "short-deadline") {
		s.Timeout = time.Duration(4+r.IntN(8)) * time.Second
		s.Clean = false
	}

	// What happens to the fleet.
	for i, m := range s.Fleet {
		at := time.Duration(r.IntN(1000)) * time.Millisecond
		id := fmt.Sprintf("ev-%d-run", i)
		s.Events = append(s.Events, Event{At: at, ID: id, Instance: m.ID, State: "Running"})
		if chance(0.2, "duplicate-event") {
			s.Events = append(s.Events, Event{At: at + time.Duration(r.IntN(4000))*time.Millisecond, ID: id, Instance: m.ID, State: "Running"})
		}
		switch p := r.Float64(); {
		case p < 0.08:
			s.Features = append(s.Features, "stop-mid-attach")
			s.Disturbances = append(s.Disturbances, Disturbance{At: at + time.Duration(r.IntN(5000))*time.Millisecond,
				Instance: m.ID, Kind: "stop", Notify: time.Duration(r.IntN(1500)) * time.Millisecond})
		case p < 0.14:
			s.Features = append(s.Features, "release-mid-attach")
			s.Disturbances = append(s.Disturbances, Disturbance{At: at + time.Duration(r.IntN(5000))*time.Millisecond,
				Instance: m.ID, Kind: "release", Notify: time.Duration(r.IntN(1500)) * time.Millisecond})
		}
	}
	if err := w.Validate("."); err != nil {
		panic(fmt.Sprintf("sim: seed %d: the generated world is invalid: %v", seed, err))
	}
	s.World = w
	return s
}

// String is the one-line summary a failure prints.
func (s *Scenario) String() string {
	return fmt.Sprintf("N=%d instances=%d timeout=%v features=[%s]", s.PerInstance, len(s.Fleet), s.Timeout, strings.Join(s.Features, " "))
}

func zoneName(z int) string    { return fmt.Sprintf("%s-%c", Region, 'h'+z) }
func vswitchName(z int) string { return fmt.Sprintf("vsw-sim%d", z+1) }

// baseWorld is the account, network and function role every scenario shares.
func baseWorld(zones, quota int) *world.World {
	w := &world.World{
		Account: world.Account{ID: Account, Type: world.AccountEnterprise},
		Principals: []world.Principal{
			{Name: "root", Kind: auth.KindAccount, AccessKeys: []world.AccessKey{{ID: "LTAIsimroot", Secret: "sim-root-secret"}}},
			{Name: "enipool-fn", Kind: auth.KindRole, Policies: []string{"enipool-fn"}},
		},
		// Not the rendered policy: some scenarios hold untagged instances (and the invariants
		// check that the function leaves them alone), which the rendered policy's tag
		// conditions would protect before the function's own check was reached.
		Policies:       []world.PolicyDoc{{Name: "enipool-fn", Document: world.UnrestrictedPolicy}},
		VPCs:           []world.VPC{{ID: "vpc-sim1", Region: Region, CIDR: "10.0.0.0/8"}},
		SecurityGroups: []world.SecurityGroup{{ID: "sg-sim1", VPC: "vpc-sim1", MaxInstances: 65536}},
		InstanceTypes: []world.InstanceType{{ID: "ecs.g7.sim", Family: "ecs.g7", Generation: "ecs-6", CPU: 2, MemoryGiB: 8,
			ENIQuantity: quota, ENIPrivateIPQuantity: 10, ENIIPv6Quantity: 10}},
		Queues: []string{DeadLetterQueue},
	}
	region := world.Region{ID: Region}
	for z := range zones {
		region.Zones = append(region.Zones, zoneName(z))
		w.VSwitches = append(w.VSwitches, world.VSwitch{ID: vswitchName(z), VPC: "vpc-sim1", Zone: zoneName(z),
			CIDR: fmt.Sprintf("10.%d.0.0/16", z+1)})
	}
	w.Regions = []world.Region{region}
	return w
}
