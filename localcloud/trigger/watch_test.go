package trigger

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/world"
)

// TestWatchPublishesWorldChanges: instance state changes and new lifecycle actions in the
// world become events on the default bus that reach the function through s.yaml's rules;
// what existed before Watch is not published.
func TestWatchPublishesWorldChanges(t *testing.T) {
	w, err := world.Load("../worlds/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr, rt, dir := busFunction(t, "", nil, Options{})
	if err := tr.Watch(WatchOptions{Instances: c.Store, Lifecycle: c.ESS, World: w, Region: c.Region, Interval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	const id = "i-bp1demo00000000002"
	setStatus := func(f func(*world.Instance)) {
		t.Helper()
		if err := c.Store.Update(func(st *world.State) error {
			f(st.Instances[id])
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(func(in *world.Instance) { in.Status = "Stopping" })
	waitFor(t, "Stopping", func() bool { return tr.Stats().Published == 1 })
	setStatus(func(in *world.Instance) { in.Status = "Stopped" })
	waitFor(t, "Stopped", func() bool { return tr.Stats().Published == 2 })
	setStatus(func(in *world.Instance) { in.Released = true })
	waitFor(t, "Deleted", func() bool { return tr.Stats().Published == 3 })
	token, err := c.ESS.StartLifecycleAction("ash-bp1demo0000000001", "i-bp1demo00000000003")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lifecycle event", func() bool { return tr.Stats().Published == 4 })
	if err := tr.Idle(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := rt.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var states []string
	var lc *Lifecycle
	for _, b := range received(t, dir) {
		var ev CloudEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case TypeECSStateChange:
			var d struct{ ResourceID, State string }
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.ResourceID != id {
				t.Fatalf("event for %q (%v), want %s", d.ResourceID, err, id)
			}
			states = append(states, d.State)
		case TypeESSScaleOut:
			lc = &Lifecycle{}
			if err := json.Unmarshal(ev.Data, lc); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("unexpected event %s", b)
		}
	}
	// Asynchronous invocations may run in another order than published (separate instances).
	slices.Sort(states)
	if !slices.Equal(states, []string{"Deleted", "Stopped", "Stopping"}) {
		t.Errorf("states %v, want Stopping, Stopped and Deleted", states)
	}
	if lc == nil || lc.LifecycleActionToken != token || lc.LifecycleHookID != "ash-bp1demo0000000001" ||
		lc.LifecycleTransition != "SCALE_OUT" || !slices.Equal(lc.InstanceIDs, []string{"i-bp1demo00000000003"}) {
		t.Errorf("lifecycle event %+v, want token %s for i-bp1demo00000000003", lc, token)
	}
}
