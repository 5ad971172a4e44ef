package e2e

import (
	"fmt"
	"testing"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// A Stopped event sends the instance's pool ENIs back to the pool, Available again, when the
// instance really is Stopped; a Stopped event that arrives after the instance started again
// changes nothing.
func TestStoppedEventReleases(t *testing.T) {
	t.Parallel()
	const a = "i-bp1stop000000001"
	held := world.ENI{ID: "eni-heldstop0001", VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
		Tags: map[string]string{"enipool": pool}, Status: "InUse", InstanceID: a}
	tests := []struct {
		name    string
		status  string
		release string
		outcome engine.Outcome
		avail   bool // the ENI is Available afterwards
	}{
		{"instance stopped", "Stopped", "", engine.OutcomeDetached, true},
		{"instance running again: the event is stale", "Running", "", engine.OutcomeSkipped, false},
		{"Stopped instances keep their ENIs when so configured", "Stopped", "Deleted", engine.OutcomeSkipped, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := inst(a, zoneH)
			in.Status = tt.status
			env := map[string]string{}
			if tt.release != "" {
				env["ENIPOOL_RELEASE_ON"] = tt.release
			}
			b := newBed(t, newWorld(t, spec{instances: []world.Instance{in}, enis: []world.ENI{held}}), bedOptions{env: env})
			r := result(t, b.mustInvoke(stateEvent(a, "Stopped")), a)
			if r.Outcome != tt.outcome {
				t.Fatalf("outcome %s (%s), want %s", r.Outcome, r.Reason, tt.outcome)
			}
			e, _ := b.cloud.Store.ENI(held.ID)
			if got := e.Status == "Available" && e.InstanceID == ""; got != tt.avail {
				t.Fatalf("ENI is %s on %q afterwards", e.Status, e.InstanceID)
			}
			if tt.avail && (len(r.Detached) != 1 || r.Detached[0] != held.ID) {
				t.Fatalf("result says detached %v", r.Detached)
			}
		})
	}
}

// Every event ends in one structured log line carrying the outcome, ids, code, counts and
// duration, and the function's request id.
func TestOneLogLinePerOutcome(t *testing.T) {
	t.Parallel()
	const a, c = "i-bp1logs000000001", "i-bp1logs000000003"
	untagged := inst("i-bp1logs000000002", zoneH)
	untagged.Tags = nil
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH), untagged, inst(c, zoneI)},
		enis: poolENIs("p", zoneH, 2)}), bedOptions{})
	batch := fmt.Sprintf("[%s,%s,%s]", direct(a), direct(untagged.ID), direct(c))
	resp := b.mustInvoke(batch)
	lines := b.waitLines(3, "")
	if len(lines) != len(resp.Results) || len(lines) != 3 {
		t.Fatalf("%d outcome lines for %d results", len(lines), len(resp.Results))
	}
	want := map[string]string{a: "attached", untagged.ID: "skipped", c: "dead-lettered"}
	for _, l := range lines {
		id := fmt.Sprint(l["instanceId"])
		if l["outcome"] != want[id] {
			t.Errorf("%s: outcome %v, want %s", id, l["outcome"], want[id])
		}
		for _, k := range []string{"networkInterfaceId", "code", "reason", "attempts", "apiCalls", "durationMs", "fcRequestId", "requestIds", "pool", "zone"} {
			if _, ok := l[k]; !ok {
				t.Errorf("%s: line lacks %q: %v", id, k, l)
			}
		}
		if l["fcRequestId"] != resp.RequestID {
			t.Errorf("%s: fcRequestId %v, want %s", id, l["fcRequestId"], resp.RequestID)
		}
	}
}

// A Deleted event for a released instance has nothing left to give back (ECS detaches a
// released instance's ENIs): it is acknowledged, not dead-lettered, and detaches nothing.
func TestDeletedEventOfReleasedInstance(t *testing.T) {
	t.Parallel()
	const a = "i-bp1deleted00001"
	gone := inst(a, zoneH)
	gone.Released = true
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{gone}, enis: poolENIs("p", zoneH, 1)}), bedOptions{})
	r := result(t, b.mustInvoke(stateEvent(a, "Deleted")), a)
	if r.Outcome != engine.OutcomeSkipped || len(b.deadLetters()) != 0 || b.calls("ecs", "DetachNetworkInterface") != 0 {
		t.Fatalf("got %s %s, %d dead letters, %d detaches", r.Outcome, r.Reason, len(b.deadLetters()), b.calls("ecs", "DetachNetworkInterface"))
	}
}
