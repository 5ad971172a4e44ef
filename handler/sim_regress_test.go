package handler

import (
	"testing"
	"time"
)

// Regressions the deterministic simulation (package sim) found; each names its seed.

// An instance that holds some of its N pool ENIs, with no Available ENI left for the rest
// and nothing of its own attaching, is a pool exhausted for it: a dead letter says so at
// once. Fails on cd9674d: the target was neither attached nor finished, and the loop looked
// at the cloud every minPoll (50 ms) until the deadline, then asked for a retry
// (sim seed 17: 300 calls in one invocation; N=2, a rollback left one ENI tried).
func TestPartlyHeldPoolExhaustedEndsAtOnce(t *testing.T) {
	const inst = "i-bp1partly000001"
	c := newFakeCloud()
	c.addInstance(inst, "ecs.g7.large")
	enis := c.addENIs("p", 1)
	c.put(enis[0], StatusInUse, inst, 0)
	h, _ := fakeHandler(t, c, func(o *Options) { o.PerInstance = 2 })
	start := time.Now()
	resp, _ := invoke(t, h, stateEvent(inst, "Running"), 3*time.Second)
	r := resultFor(t, resp, inst)
	if r.Outcome != OutcomeDeadLettered || r.Code != CodePoolExhausted {
		t.Errorf("outcome %s %s (%s), want dead-lettered %s", r.Outcome, r.Code, r.Reason, CodePoolExhausted)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v: waited for the deadline instead of deciding", took)
	}
	if n := c.count("DescribeNetworkInterfaces"); n > 5 {
		t.Errorf("%d DescribeNetworkInterfaces, want a few: the pool is listed, not polled", n)
	}
}
