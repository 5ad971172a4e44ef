package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// TestAttachOutcomes runs one event per case against a fresh cloud and checks the outcome,
// the instance's pool ENIs afterwards, and the dead-letter queue.
func TestAttachOutcomes(t *testing.T) {
	t.Parallel()
	const a = "i-bp1case0000000001"
	untagged := inst(a, zoneH)
	untagged.Tags = nil
	stoppedOnly := inst(a, zoneH)
	stoppedOnly.Type = "ecs.t6-c1m1.large"
	stoppedOnlyStopped := stoppedOnly
	stoppedOnlyStopped.Status = "Stopped"
	old := inst(a, zoneH)
	old.StartTime = world.At(time.Date(2017, 6, 1, 0, 0, 0, 0, time.UTC))
	stopped := inst(a, zoneH)
	stopped.Status = "Stopped"
	small := inst(a, zoneH)
	small.Type = "ecs.g7.small" // primary + 1
	otherVPC := poolENIs("otherv", zoneH, 2)
	for i := range otherVPC {
		otherVPC[i].VSwitch, otherVPC[i].SecurityGroups = "vsw-otherh001", []string{"sg-testother1"}
	}
	plain := world.ENI{ID: "eni-plain00001", VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"}}

	tests := []struct {
		name       string
		spec       spec
		event      string
		outcome    engine.Outcome
		code       string
		held       int    // pool ENIs InUse on the instance afterwards
		dead       int    // envelopes in the dead-letter queue
		reasonHas  string // words the reason must carry
		attachCall int    // AttachNetworkInterface calls, -1 to skip the check
	}{
		{"running event attaches", spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 3)},
			running(a), engine.OutcomeAttached, "", 1, 0, "", 1},
		{"direct invocation attaches", spec{instances: []world.Instance{inst(a, zoneI)}, enis: poolENIs("p", zoneI, 2)},
			direct(a), engine.OutcomeAttached, "", 1, 0, "", 1},
		{"untagged instance is not ours", spec{instances: []world.Instance{untagged}, enis: poolENIs("p", zoneH, 2)},
			running(a), engine.OutcomeSkipped, cloud.CodeNotEligible, 0, 0, "no enipool tag", 0},
		{"instance gone", spec{enis: poolENIs("p", zoneH, 2)},
			running(a), engine.OutcomeSkipped, cloud.CodeNotFound, 0, 0, "does not exist", 0},
		{"pool empty in the instance's zone", spec{instances: []world.Instance{inst(a, zoneI)}, enis: poolENIs("p", zoneH, 3)},
			running(a), engine.OutcomeDeadLettered, cloud.CodePoolExhausted, 0, 1, `pool "web" has no Available ENI in zone cn-hangzhou-i`, 0},
		{"pool ENIs of another VPC are never used", spec{instances: []world.Instance{inst(a, zoneH)}, enis: otherVPC},
			running(a), engine.OutcomeDeadLettered, cloud.CodePoolExhausted, 0, 1, "vpc-test0001", 0},
		{"type that needs Stopped, Running", spec{instances: []world.Instance{stoppedOnly}, enis: poolENIs("p", zoneH, 2)},
			running(a), engine.OutcomeDeadLettered, cloud.CodeRequiresStopped, 0, 1, "requires the instance to be Stopped", 0},
		{"type that needs Stopped, Stopped, direct", spec{instances: []world.Instance{stoppedOnlyStopped}, enis: poolENIs("p", zoneH, 2)},
			direct(a), engine.OutcomeAttached, "", 1, 0, "", 1},
		{"last start before 2018-04-01", spec{instances: []world.Instance{old}, enis: poolENIs("p", zoneH, 2)},
			running(a), engine.OutcomeDeadLettered, cloud.CodeRebootRequired, 0, 1, "reboot it", 0},
		{"Running event for a Stopped instance is stale", spec{instances: []world.Instance{stopped}, enis: poolENIs("p", zoneH, 2)},
			running(a), engine.OutcomeSkipped, cloud.CodeStaleEvent, 0, 0, "out of date", 0},
		{"no room for another ENI", spec{instances: []world.Instance{small},
			enis: append(poolENIs("p", zoneH, 2), world.ENI{ID: "eni-busy000001", VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
				Status: "InUse", InstanceID: a})},
			running(a), engine.OutcomeDeadLettered, cloud.CodeENILimit, 0, 1, "allows 2 ENIs and holds 2", 0},
		{"requested ENI outside the pool is refused", spec{instances: []world.Instance{inst(a, zoneH)}, enis: append(poolENIs("p", zoneH, 2), plain)},
			fmt.Sprintf(`{"instanceId":%q,"regionId":%q,"networkInterfaceId":"eni-plain00001"}`, a, region),
			engine.OutcomeDeadLettered, cloud.CodeNotInPool, 0, 1, "eni-plain00001 is not in pool", 0},
		{"requested pool ENI is honoured", spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 5)},
			fmt.Sprintf(`{"instanceId":%q,"regionId":%q,"networkInterfaceId":"eni-p04"}`, a, region),
			engine.OutcomeAttached, "", 1, 0, "", 1},
		{"malformed payload is dead-lettered with its bytes", spec{},
			`{"instanceId": "i-bp1case0000000001", oops}`, engine.OutcomeDeadLettered, cloud.CodeBadEvent, 0, 1, "cannot handle", 0},
		{"unknown event type is dead-lettered", spec{},
			`{"id":"x","source":"acs.oss","specversion":"1.0","type":"oss:ObjectCreated:PutObject","data":{}}`,
			engine.OutcomeDeadLettered, cloud.CodeUnsupported, 0, 1, "oss:ObjectCreated:PutObject", 0},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, newWorld(t, tt.spec), bedOptions{})
			resp := b.mustInvoke(tt.event)
			if len(resp.Results) != 1 {
				t.Fatalf("%d results, want 1: %+v", len(resp.Results), resp.Results)
			}
			r := resp.Results[0]
			if r.Outcome != tt.outcome || r.Code != tt.code {
				t.Fatalf("outcome %s code %q, want %s %q (reason: %s)", r.Outcome, r.Code, tt.outcome, tt.code, r.Reason)
			}
			if !strings.Contains(r.Reason, tt.reasonHas) {
				t.Errorf("reason %q lacks %q", r.Reason, tt.reasonHas)
			}
			if got := len(b.inUse(a)); got != tt.held {
				t.Errorf("instance holds %d pool ENIs InUse, want %d", got, tt.held)
			}
			if tt.outcome == engine.OutcomeAttached && (len(b.inUse(a)) != 1 || b.inUse(a)[0] != r.NetworkInterfaceID || r.PrivateIP == "") {
				t.Errorf("result names %s (%s), the cloud says %v", r.NetworkInterfaceID, r.PrivateIP, b.inUse(a))
			}
			dl := b.deadLetters()
			if len(dl) != tt.dead {
				t.Fatalf("%d dead letters, want %d", len(dl), tt.dead)
			}
			if tt.dead == 1 {
				env := dl[0]
				if env.Error == nil || env.Error.Code != tt.code || env.Reason != r.Reason || r.DeadLetterID == "" {
					t.Errorf("envelope %+v does not match result %+v", env, r)
				}
				if string(env.Event) != tt.event {
					t.Errorf("envelope event %q is not the original %q", env.Event, tt.event)
				}
			}
			if tt.attachCall >= 0 {
				if got := b.calls("ecs", "AttachNetworkInterface"); got != tt.attachCall {
					t.Errorf("%d AttachNetworkInterface calls, want %d", got, tt.attachCall)
				}
			}
		})
	}
}

// A re-delivered event for a done instance costs describe calls only, and no attach.
func TestRedeliveryIsCheap(t *testing.T) {
	t.Parallel()
	const a = "i-bp1redo000000001"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 4)}), bedOptions{})
	first := result(t, b.mustInvoke(running(a)), a)
	before := len(b.cloud.Calls.Calls())
	second := result(t, b.mustInvoke(running(a)), a)
	calls := b.cloud.Calls.Calls()[before:]
	if second.Outcome != engine.OutcomeAlreadyAttached || second.NetworkInterfaceID != first.NetworkInterfaceID {
		t.Fatalf("redelivery: %s %s, want already-attached %s", second.Outcome, second.NetworkInterfaceID, first.NetworkInterfaceID)
	}
	if len(calls) > 2 {
		t.Errorf("redelivery made %d calls, want at most 2: %v", len(calls), calls)
	}
	for _, c := range calls {
		if !strings.HasPrefix(c.Action, "Describe") {
			t.Errorf("redelivery called %s", c.Action)
		}
	}
}

// Duplicates, sequential and concurrent, leave exactly N pool ENIs on the instance.
func TestDuplicatesLeaveExactlyN(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			t.Parallel()
			const a = "i-bp1dupe000000001"
			b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 6)}),
				bedOptions{env: map[string]string{"ENIPOOL_ENIS_PER_INSTANCE": fmt.Sprint(n)}, max: 10})
			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b.mustInvoke(running(a))
				}()
			}
			wg.Wait()
			b.mustInvoke(running(a)) // and one more after the storm
			time.Sleep(300 * time.Millisecond)
			if got := b.inUse(a); len(got) != n {
				t.Fatalf("instance holds %v, want exactly %d pool ENIs", got, n)
			}
			if len(b.held(a)) != n {
				t.Fatalf("instance holds %d pool ENIs in any state, want %d", len(b.held(a)), n)
			}
			if len(b.deadLetters()) != 0 {
				t.Fatalf("duplicates produced dead letters: %+v", b.deadLetters())
			}
		})
	}
}

// 50 instances launch at once on a pool of 50: all 50 attached, no ENI twice, nothing
// dead-lettered.
func TestSimultaneousLaunches(t *testing.T) {
	t.Parallel()
	const n = 50
	var insts []world.Instance
	for i := range n {
		zone := zoneH
		if i%2 == 1 {
			zone = zoneI
		}
		insts = append(insts, inst(fmt.Sprintf("i-bp1burst%09d", i), zone))
	}
	enis := append(poolENIs("h", zoneH, n/2), poolENIs("i", zoneI, n/2)...)
	b := newBed(t, newWorld(t, spec{instances: insts, enis: enis}), bedOptions{max: 25})
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result(t, b.mustInvoke(running(in.ID)), in.ID)
			if r.Outcome != engine.OutcomeAttached {
				t.Errorf("%s: %s %s %s", in.ID, r.Outcome, r.Code, r.Reason)
			}
		}()
	}
	wg.Wait()
	owner := map[string]string{}
	for _, in := range insts {
		got := b.inUse(in.ID)
		if len(got) != 1 {
			t.Errorf("%s holds %v, want one pool ENI", in.ID, got)
			continue
		}
		if prev, dup := owner[got[0]]; dup {
			t.Errorf("%s is attached to both %s and %s", got[0], prev, in.ID)
		}
		owner[got[0]] = in.ID
	}
	if len(b.deadLetters()) != 0 {
		t.Errorf("%d dead letters", len(b.deadLetters()))
	}
	t.Logf("%d attaches for %d instances (%d lost races)", b.calls("ecs", "AttachNetworkInterface"), n,
		b.calls("ecs", "AttachNetworkInterface")-n)
}
