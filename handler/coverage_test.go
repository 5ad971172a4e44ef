package handler

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/enipool/enipool/engine"
)

// Reconcile runs bounded by ReconcileMax reach the whole fleet over successive timer runs,
// with nothing kept between them but the trigger time, and each report says which part of
// the fleet it covered. Fails on ca38816: every run took the same first 3 instances by id
// ("i-bp1cover0000003 holds [] after 3 runs").
func TestReconcileCoversFleet(t *testing.T) {
	c := newFakeCloud()
	var ids []string
	for i := range 7 {
		id := fmt.Sprintf("i-bp1cover%07d", i)
		c.addInstance(id, "ecs.g7.large")
		ids = append(ids, id)
	}
	c.addENIs("c", 7)
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	windows := map[int]bool{}
	for run := range 3 {
		// A fresh handler each run: a new FC instance shares no memory with the last.
		h, _ := fakeHandler(t, c, func(o *Options) { o.ReconcileMax = 3 })
		when := start.Add(time.Duration(run) * 5 * time.Minute).Format(time.RFC3339)
		payload := fmt.Sprintf(`{"triggerTime":%q,"triggerName":"reconcile-timer","payload":"{\"action\":\"reconcile\"}"}`, when)
		resp, err := invoke(t, h, payload, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep engine.ReconcileReport
		b, _ := json.Marshal(resp.Report)
		if err := json.Unmarshal(b, &rep); err != nil || rep.Coverage == nil {
			t.Fatalf("run %d: report %s has no coverage (%v)", run, b, err)
		}
		if rep.Coverage.Fleet != 7 || rep.Coverage.Windows != 3 || rep.Instances > 3 {
			t.Errorf("run %d: coverage %+v, %d instances", run, *rep.Coverage, rep.Instances)
		}
		windows[rep.Coverage.Window] = true
	}
	if len(windows) != 3 {
		t.Errorf("3 runs covered windows %v, want all 3", windows)
	}
	for _, id := range ids {
		if got := c.held(id); len(got) != 1 {
			t.Errorf("%s holds %v after 3 runs", id, got)
		}
	}
}
