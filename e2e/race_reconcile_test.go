package e2e

import (
	"fmt"
	"testing"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// A reconcile that repairs several instances attaches from concurrent goroutines. Run with
// -race (make test), the function under test is built with -race too. Fails on ca38816 under
// -race: the function reported "WARNING: DATA RACE" on the action's call count.
func TestReconcileRepairsSeveral(t *testing.T) {
	t.Parallel()
	var insts []world.Instance
	for i := range 5 {
		insts = append(insts, inst(fmt.Sprintf("i-bp1several%05d", i), zoneH))
	}
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("s", zoneH, 5)}), bedOptions{})
	resp := b.mustInvoke(`{"action":"reconcile"}`)
	if resp.Results[0].Outcome != engine.OutcomeCompleted || resp.Results[0].APICalls != resp.APICalls {
		t.Errorf("reconcile %+v: counted %d calls of the invocation's %d", resp.Results[0], resp.Results[0].APICalls, resp.APICalls)
	}
	for _, in := range insts {
		if got := b.inUse(in.ID); len(got) != 1 {
			t.Errorf("%s holds %v", in.ID, got)
		}
	}
}
