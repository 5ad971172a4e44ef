package harness

import (
	"context"
	"sort"
	"time"

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// Error codes the audit counts in the call records.
const (
	CodeThrottled = "Throttling.User"                  // the cloud's rate limit said no
	CodeLostRace  = "InvalidOperation.InvalidEniState" // an attach of an ENI that was no longer Available
)

// Audit is what the cloud says after a run: its final state, its call records and the
// dead-letter queue. It is the ground truth the handler's own results are checked against.
type Audit struct {
	// Instances is how many instances the run's events named.
	Instances int `json:"instances"`
	// Attached counts those instances holding exactly one pool ENI, InUse, at the end.
	Attached int `json:"attached"`
	// Bare lists instances holding no pool ENI; Multi those holding more than one.
	Bare  []string `json:"bare,omitempty"`
	Multi []string `json:"multi,omitempty"`
	// SharedENIs counts pool ENIs bound to more than one instance in the final state.
	SharedENIs int `json:"sharedEnis"`
	// ENIsAttachedTwice counts pool ENIs with more than one successful AttachNetworkInterface
	// in the call records; InstancesAttachedTwice counts instances that were given more than
	// one ENI by successful attaches. Both are double attaches, and both must be 0.
	ENIsAttachedTwice      int `json:"enisAttachedTwice"`
	InstancesAttachedTwice int `json:"instancesAttachedTwice"`
	// Detaches counts successful DetachNetworkInterface calls (a surplus being converged).
	Detaches int `json:"detaches"`

	// ECSCalls counts every ECS request the cloud answered, failures included.
	ECSCalls int `json:"ecsCalls"`
	// ByAction counts ECS requests per action ("Action" or "Action:Code" for failures).
	ByAction map[string]int `json:"byAction"`
	// Throttled counts ECS requests answered Throttling.User.
	Throttled int `json:"throttled"`
	// ThrottledAt are the arrival times of the first throttled requests (at most 10), from
	// the first ECS request of the run.
	ThrottledAt []Duration `json:"throttledAtMs,omitempty"`
	// LostRaces counts attaches answered InvalidOperation.InvalidEniState.
	LostRaces int `json:"lostRaces"`
	// MNSSends counts MNS SendMessage requests (dead letters).
	MNSSends int `json:"mnsSends"`

	// DeadLetters are the enipool envelopes in the dead-letter queue.
	DeadLetters []*deadletter.Envelope `json:"-"`
	// DeadLetterCodes counts the envelopes by error code.
	DeadLetterCodes map[string]int `json:"deadLetterCodes,omitempty"`
	// OtherDLQMessages counts dead-letter queue messages that are not enipool envelopes.
	OtherDLQMessages int `json:"otherDlqMessages"`
}

// DoubleAttaches sums the audit's double-attach counts (one incident may show in several);
// it is 0 exactly when every one of them is.
func (a Audit) DoubleAttaches() int {
	return a.SharedENIs + a.ENIsAttachedTwice + a.InstancesAttachedTwice + len(a.Multi)
}

// pooled selects the pool ENIs: every ENI tagged with the pool tag key, whatever its pool.
func pooled(e *world.ENI) bool { _, ok := e.Tags[PoolTagKey]; return ok }

// Settle waits until no pool ENI is Attaching or Detaching (an invocation that returned may
// have left a surplus detach in flight), for at most 30 s.
func (b *Bed) Settle(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		moving := b.Cloud.Store.ENIs(pooled, world.WithStatus(world.ENIAttaching, world.ENIDetaching))
		if len(moving) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Audit settles the cloud, then checks the instances' pool ENIs, the call records from seq
// on (record.Call.Seq; 0 for all) and the dead-letter queue.
func (b *Bed) Audit(ctx context.Context, instances []string, fromSeq int64) Audit {
	return b.audit(ctx, instances, func(c record.Call) bool { return c.Seq > fromSeq })
}

// AuditOf is Audit of the calls made as role (RoleOf a policy): in a world the policies
// share, each one's calls.
func (b *Bed) AuditOf(ctx context.Context, instances []string, role string) Audit {
	return b.audit(ctx, instances, func(c record.Call) bool { return c.Principal == role })
}

func (b *Bed) audit(ctx context.Context, instances []string, keep func(record.Call) bool) Audit {
	b.Settle(ctx)
	a := Audit{Instances: len(instances), ByAction: map[string]int{}, DeadLetterCodes: map[string]int{}}
	owners := map[string]int{}
	for _, id := range instances {
		held := b.Cloud.Store.ENIs(world.OnInstance(id), pooled)
		for _, e := range held {
			owners[e.ID]++
		}
		switch {
		case len(held) == 0:
			a.Bare = append(a.Bare, id)
		case len(held) > 1:
			a.Multi = append(a.Multi, id)
		case held[0].Status == world.ENIInUse:
			a.Attached++
		}
	}
	for _, n := range owners {
		if n > 1 {
			a.SharedENIs++
		}
	}

	perENI, perInstance := map[string]int{}, map[string]int{}
	var first time.Time
	var throttled []time.Time
	for _, c := range b.Cloud.Calls.Calls(keep) {
		switch c.Service {
		case "mns":
			if c.Action == "SendMessage" {
				a.MNSSends++
			}
			continue
		case "ecs":
		default:
			continue
		}
		a.ECSCalls++
		if first.IsZero() || c.Time.Before(first) {
			first = c.Time
		}
		key := c.Action
		if c.Code != "" {
			key += ":" + c.Code
		}
		a.ByAction[key]++
		switch {
		case c.Code == CodeThrottled:
			a.Throttled++
			throttled = append(throttled, c.Time)
		case c.Action == "AttachNetworkInterface" && c.Code == CodeLostRace:
			a.LostRaces++
		case c.Action == "AttachNetworkInterface" && c.OK():
			perENI[c.Params["NetworkInterfaceId"]]++
			perInstance[c.Params["InstanceId"]]++
		case c.Action == "DetachNetworkInterface" && c.OK():
			a.Detaches++
		}
	}
	sort.Slice(throttled, func(i, j int) bool { return throttled[i].Before(throttled[j]) })
	for _, at := range throttled[:min(10, len(throttled))] {
		a.ThrottledAt = append(a.ThrottledAt, Duration(at.Sub(first)))
	}
	for _, n := range perENI {
		if n > 1 {
			a.ENIsAttachedTwice++
		}
	}
	for _, n := range perInstance {
		if n > 1 {
			a.InstancesAttachedTwice++
		}
	}

	for _, l := range testbed.DeadLetters(b.Cloud, DeadLetterQueue) {
		env := l.Envelope
		if env == nil {
			a.OtherDLQMessages++
			continue
		}
		a.DeadLetters = append(a.DeadLetters, env)
		code := ""
		if env.Error != nil {
			code = env.Error.Code
		}
		a.DeadLetterCodes[code]++
	}
	sort.Strings(a.Bare)
	sort.Strings(a.Multi)
	return a
}

// Outcomes tallies the handler's results by outcome (and code, for failures), and counts
// invocations that returned an error to the platform.
type Outcomes struct {
	ByOutcome map[string]int `json:"byOutcome"`
	Errors    int            `json:"invocationErrors"`
}

// Done is one invocation's answer, as Tally counts it.
type Done struct {
	Resp *handler.Response
	Err  error
}

// Tally counts the results of invocations.
func Tally(done []Done) Outcomes {
	o := Outcomes{ByOutcome: map[string]int{}}
	for _, d := range done {
		if d.Err != nil {
			o.Errors++
		}
		if d.Resp == nil {
			continue
		}
		for _, r := range d.Resp.Results {
			key := string(r.Outcome)
			if r.Outcome != engine.OutcomeAttached && r.Code != "" {
				key += ":" + r.Code
			}
			o.ByOutcome[key]++
		}
	}
	return o
}
