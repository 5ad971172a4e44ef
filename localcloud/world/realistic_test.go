package world

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fault"
)

// TestRealisticWorldIsTheDemoWithRealism keeps realistic.yaml in step with demo.yaml: it
// loads, switches every realism knob on, and differs from the demo only in its timing
// and faults.
func TestRealisticWorldIsTheDemoWithRealism(t *testing.T) {
	demo, err := Load(demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	real, err := Load(filepath.Join(filepath.Dir(demoPath(t)), "realistic.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := real.Faults
	if f.MaxStaleness() <= 0 || len(f.AfterAction) == 0 || len(f.ResponseLatency) == 0 || len(f.Latency) == 0 ||
		real.Timing.AttachSpread.IsZero() || real.Timing.DetachSpread.IsZero() || real.Timing.Stop <= 0 {
		t.Fatalf("realism is not all on: timing %+v faults %+v", real.Timing, f)
	}
	for _, svc := range []string{"ecs/AttachNetworkInterface", "ecs/DetachNetworkInterface", "ess/CompleteLifecycleAction", "mns/SendMessage"} {
		found := false
		for _, r := range f.AfterAction {
			found = found || r.Service+"/"+r.Action == svc
		}
		if !found {
			t.Errorf("no after-action fault for %s", svc)
		}
	}
	real.Timing, real.Faults = demo.Timing, demo.Faults
	if !reflect.DeepEqual(demo, real) {
		t.Fatal("realistic.yaml differs from demo.yaml beyond timing and faults; keep them in step")
	}
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	if _, err := NewStore(real, clk.now); err != nil {
		t.Fatal(err)
	}
}

// TestHistoryServesThePast checks the store's history directly: a lagging view misses a
// created ENI and still shows a deleted one, sees instance changes late, and the history
// is forgotten once older than the staleness bound.
func TestHistoryServesThePast(t *testing.T) {
	w, err := Load(demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Faults.Staleness = []fault.Staleness{{Max: fault.Duration(2 * time.Second)}}
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s, err := NewStore(w, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	const inst = "i-bp1demo00000000001"
	if err := s.Update(func(st *State) error {
		st.AddENI(&ENI{ID: "eni-new", VSwitch: "vsw-bp1demoh001", Type: ENISecondary, Status: ENIAvailable})
		st.DeleteENI("eni-bp1demountagged")
		return st.SetInstanceStatus(inst, StatusStopped)
	}); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	type seen struct {
		newENI, oldENI bool
		status         string
		current        bool
	}
	look := func(lag time.Duration) seen {
		var out seen
		s.ViewLagging(lag, func(view, truth *State) {
			_, out.newENI = view.ENIs["eni-new"]
			_, out.oldENI = view.ENIs["eni-bp1demountagged"]
			out.status = view.Instances[inst].Status
			out.current = truth == nil
		})
		return out
	}
	tests := []struct {
		name string
		lag  time.Duration
		want seen
	}{
		{"no lag", 0, seen{newENI: true, status: StatusStopped, current: true}},
		{"lag shorter than the change's age", 500 * time.Millisecond, seen{newENI: true, status: StatusStopped, current: true}},
		{"lag longer than the change's age", 1500 * time.Millisecond, seen{oldENI: true, status: StatusRunning}},
	}
	for _, tt := range tests {
		if got := look(tt.lag); got != tt.want {
			t.Errorf("%s: saw %+v, want %+v", tt.name, got, tt.want)
		}
	}
	clk.add(2 * time.Second)
	if got := look(2 * time.Second); !got.current || !got.newENI {
		t.Fatalf("3s later a 2s lag still sees the past: %+v", got)
	}
	s.View(func(st *State) {
		if len(st.pastENI)+len(st.pastInst)+len(st.pastQ) != 0 {
			t.Fatalf("history not pruned: %d ENIs, %d instances, %d queued", len(st.pastENI), len(st.pastInst), len(st.pastQ))
		}
	})
}
