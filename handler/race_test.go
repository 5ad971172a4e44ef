package handler

import (
	"fmt"
	"testing"
	"time"

	"github.com/enipool/enipool/engine"
)

// A reconcile attaches to several instances from concurrent goroutines; every API call is
// counted once in the action's result. Fails on ca38816 under -race: "WARNING: DATA RACE" on
// it.res.APICalls, incremented by the call observer from the attach goroutines.
func TestReconcileCountsCallsWithoutRace(t *testing.T) {
	c := newFakeCloud()
	for i := range 6 {
		c.addInstance(fmt.Sprintf("i-bp1race%09d", i), "ecs.g7.large")
	}
	c.addENIs("r", 6)
	h, _ := fakeHandler(t, c, nil)
	resp, err := invoke(t, h, `{"action":"reconcile"}`, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Outcome != engine.OutcomeCompleted {
		t.Fatalf("reconcile: %+v", resp.Results[0])
	}
	if got, want := resp.Results[0].APICalls, resp.APICalls; got != want {
		t.Errorf("the action counted %d calls, the invocation %d", got, want)
	}
	if got := c.count("AttachNetworkInterface"); got != 6 {
		t.Errorf("%d attaches, want 6", got)
	}
}
