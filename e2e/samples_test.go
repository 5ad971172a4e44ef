package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// TestSampleEvents sends every file in events/ to the function on a fresh demo world (the
// world of `make run`), as `s invoke -f events/<file>` would, and checks what it did.
func TestSampleEvents(t *testing.T) {
	t.Parallel()
	type want struct {
		instance string // "" for the lifecycle completion or action result
		outcome  engine.Outcome
		code     string
	}
	const (
		i1, i2, i3 = "i-bp1demo00000000001", "i-bp1demo00000000002", "i-bp1demo00000000003"
		i4, i5, i6 = "i-bp1demo00000000004", "i-bp1demo00000000005", "i-bp1demo00000000006"
	)
	attached := func(id string) want { return want{id, engine.OutcomeAttached, ""} }
	completed := want{"", engine.OutcomeCompleted, ""}
	tests := map[string]struct {
		results   []want
		dead      int
		lifecycle string // the result the hook's action ends with
	}{
		"ecs-running.json":          {results: []want{attached(i1)}},
		"ecs-stopped.json":          {results: []want{{i2, engine.OutcomeSkipped, cloud.CodeStaleEvent}}},
		"ecs-notification-mns.json": {results: []want{attached(i3)}},
		"ess-scale-out.json": {results: []want{attached(i4), {i5, engine.OutcomeDeadLettered, cloud.CodeRequiresStopped}, completed},
			dead: 1, lifecycle: "ABANDON"},
		"ess-scale-out-mns.json":  {results: []want{attached(i4), completed}, lifecycle: "CONTINUE"},
		"ess-scale-in.json":       {results: []want{{i4, engine.OutcomeSkipped, cloud.CodeStaleEvent}, completed}, lifecycle: "CONTINUE"},
		"mns-single.json":         {results: []want{attached(i1)}},
		"mns-batch.json":          {results: []want{attached(i2), attached(i3), {i6, engine.OutcomeSkipped, cloud.CodeNotEligible}}},
		"direct.json":             {results: []want{attached(i1)}},
		"direct-list.json":        {results: []want{attached(i1), attached(i2), attached(i3)}},
		"deadletter-redrive.json": {results: []want{attached(i1)}},
		"fc-destination.json":     {results: []want{attached(i3)}},
		"action-status.json":      {results: []want{completed}},
		"action-redrive.json":     {results: []want{completed}},
		"action-detach.json":      {results: []want{{i3, engine.OutcomeSkipped, cloud.CodeStaleEvent}}},
		"action-reconcile.json": {results: []want{completed, attached(i1), attached(i2), attached(i3), attached(i4),
			{i5, engine.OutcomeUnresolved, cloud.CodeRequiresStopped}}},
		"timer-reconcile.json": {results: []want{completed, attached(i1), attached(i2), attached(i3), attached(i4),
			{i5, engine.OutcomeUnresolved, cloud.CodeRequiresStopped}}},
	}
	files, err := filepath.Glob("../events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("events/ holds %d files, the test knows %d", len(files), len(tests))
	}
	for _, f := range files {
		name := filepath.Base(f)
		tt, ok := tests[name]
		if !ok {
			t.Errorf("%s has no expectation", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w, err := world.Load("../localcloud/worlds/demo.yaml")
			if err != nil {
				t.Fatal(err)
			}
			w.Timing.Attach, w.Timing.Jitter = 2e8, 0 // faster than the demo's 1 s
			payload, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b := newBed(t, w, bedOptions{})
			resp := b.mustInvoke(string(payload))
			if len(resp.Results) != len(tt.results) {
				t.Fatalf("%d results, want %d: %+v", len(resp.Results), len(tt.results), resp.Results)
			}
			for i, w := range tt.results {
				r := resp.Results[i]
				if r.InstanceID != w.instance || r.Outcome != w.outcome || r.Code != w.code {
					t.Errorf("result %d: %s %s %q (%s), want %s %s %q", i, r.InstanceID, r.Outcome, r.Code, r.Reason, w.instance, w.outcome, w.code)
				}
				if r.Outcome == engine.OutcomeAttached {
					if got := b.inUse(r.InstanceID); len(got) != 1 || got[0] != r.NetworkInterfaceID {
						t.Errorf("%s: the cloud says %v, the result %s", r.InstanceID, got, r.NetworkInterfaceID)
					}
				}
			}
			if got := len(b.deadLetters()); got != tt.dead {
				t.Errorf("%d dead letters, want %d", got, tt.dead)
			}
			if tt.lifecycle != "" {
				var results []string
				for _, a := range b.cloud.ESS.LifecycleActions() {
					if a.Result != "" {
						results = append(results, a.Result)
					}
				}
				if len(results) != 1 || results[0] != tt.lifecycle {
					t.Errorf("lifecycle actions completed %v, want one %s", results, tt.lifecycle)
				}
			}
		})
	}
}
