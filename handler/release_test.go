package handler

import (
	"strings"
	"testing"
	"time"
)

// A Stopped event while the instance's ENI is still Attaching: ECS refuses to detach an
// Attaching ENI, so the release waits for it to be InUse and then detaches it. Fails on
// ca38816: the refused detach was taken for a detach under way, the release waited for an
// Available that never came, and ended at the deadline with the ENI still on the instance.
func TestStoppedDuringAttach(t *testing.T) {
	const inst = "i-bp1stopatt00001"
	c := newFakeCloud()
	c.addInstance(inst, "ecs.g7.large")
	enis := c.addENIs("t", 1)
	c.put(enis[0], StatusAttaching, inst, 300*time.Millisecond)
	c.setStatus(inst, "Stopped")
	h, _ := fakeHandler(t, c, nil)
	resp, _ := invoke(t, h, stateEvent(inst, "Stopped"), 2*time.Second)
	r := resultFor(t, resp, inst)
	if r.Outcome != OutcomeDetached || len(r.Detached) != 1 || r.Detached[0] != enis[0] {
		t.Errorf("outcome %s %s (%s) detached %v, want %s detached", r.Outcome, r.Code, r.Reason, r.Detached, enis[0])
	}
	if e := c.state(enis[0]); e.Status != StatusAvailable || e.InstanceID != "" {
		t.Errorf("ENI is %s on %q, want Available", e.Status, e.InstanceID)
	}

	// An attach that does not settle within the deadline: handed back, saying why.
	c2 := newFakeCloud()
	c2.addInstance(inst, "ecs.g7.large")
	enis = c2.addENIs("u", 1)
	c2.put(enis[0], StatusAttaching, inst, time.Minute)
	c2.setStatus(inst, "Stopped")
	h2, _ := fakeHandler(t, c2, nil)
	resp, _ = invoke(t, h2, stateEvent(inst, "Stopped"), time.Second)
	r = resultFor(t, resp, inst)
	if r.Outcome != OutcomeDeadLettered || !strings.Contains(r.Reason, StatusAttaching) {
		t.Errorf("outcome %s (%s), want dead-lettered naming the Attaching ENI", r.Outcome, r.Reason)
	}
}
