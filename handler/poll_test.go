package handler

import (
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

// An instance holding a pool ENI that another invocation is still attaching: this invocation
// waits for it with polls spaced out, then reports it. Fails on ca38816: nextWake returned 0
// and observe ran back to back ("hundreds of DescribeNetworkInterfaces in one second").
func TestNoPollWithoutWait(t *testing.T) {
	const inst = "i-bp1poll00000001"
	c := newFakeCloud()
	c.addInstance(inst, "ecs.g7.large")
	enis := c.addENIs("w", 2)
	c.put(enis[0], cloud.StatusAttaching, inst, time.Second) // another invocation's attach, slow
	h, _ := fakeHandler(t, c, nil)
	resp, err := invoke(t, h, directPayload(inst), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := resultFor(t, resp, inst)
	if r.Outcome != engine.OutcomeAlreadyAttached || r.NetworkInterfaceID != enis[0] {
		t.Errorf("%s %s (%s) on %s, want already-attached on %s", r.Outcome, r.Code, r.Reason, r.NetworkInterfaceID, enis[0])
	}
	// Over the second the other attach takes, polls back off from a quarter of the attach
	// estimate; 15 is far above what that needs and far below a loop without a wait.
	if n := c.count("DescribeNetworkInterfaces"); n > 15 {
		t.Errorf("%d DescribeNetworkInterfaces while waiting one second for an attach, want at most 15", n)
	}
	if got := c.held(inst); len(got) != 1 {
		t.Errorf("instance holds %v, want one", got)
	}
}
