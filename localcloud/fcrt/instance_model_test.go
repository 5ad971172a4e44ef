package fcrt

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestConcurrentInvocationsGetFreshProcesses: concurrent invocations of a go1 function land on
// separate processes that share no memory (each process has counted one call), and a later
// invocation reuses a warm one (which has then counted two). Stats counts what happened.
func TestConcurrentInvocationsGetFreshProcesses(t *testing.T) {
	const n = 3
	rt, _ := startProbe(t, Function{MaxInstances: n})
	gate := t.TempDir()
	type out struct{ Peak, Calls, PID int64 }
	results := make([]out, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := rt.Invoke(context.Background(), mustJSON(t, map[string]any{"op": "gate", "dir": gate}))
			if err != nil || res.Error != nil {
				t.Errorf("invoke: %+v, %v", res, err)
				return
			}
			if err := json.Unmarshal(res.Payload, &results[i]); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "all invocations to arrive", func() bool {
		entries, _ := os.ReadDir(gate)
		return len(entries) == n
	})
	if err := os.WriteFile(filepath.Join(gate, "open"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	pids := map[int64]bool{}
	for _, r := range results {
		pids[r.PID] = true
		if r.Calls != 1 || r.Peak != 1 {
			t.Errorf("a process saw %d calls and %d at once, want 1 and 1 (fresh memory, one at a time)", r.Calls, r.Peak)
		}
	}
	if len(pids) != n {
		t.Errorf("%d concurrent invocations ran in %d processes, want %d", n, len(pids), n)
	}
	res, err := rt.Invoke(context.Background(), mustJSON(t, map[string]any{"op": "gate", "dir": gate}))
	if err != nil || res.Error != nil {
		t.Fatalf("invoke: %+v, %v", res, err)
	}
	var again out
	if err := json.Unmarshal(res.Payload, &again); err != nil {
		t.Fatal(err)
	}
	if !pids[again.PID] || again.Calls != 2 || res.ColdStart {
		t.Errorf("a later invocation ran in pid %d with %d calls (cold %v), want a warm instance's second call", again.PID, again.Calls, res.ColdStart)
	}
	if s := rt.Stats(); s.InstancesStarted != n || s.ColdStarts != n || s.Invocations != n+1 || s.Reclaimed != 0 {
		t.Errorf("stats %+v, want %d started, %d cold starts, %d invocations, none reclaimed", s, n, n, n+1)
	}
}

// TestIdleReclaim: an instance idle for IdleTimeout is stopped and the next invocation
// cold-starts a new process; within the idle time it is reused; with no IdleTimeout it lives on.
func TestIdleReclaim(t *testing.T) {
	tests := []struct {
		idle          time.Duration
		pause         time.Duration
		wantInstances int
		wantCold      int
		wantReclaimed int
	}{
		// Reuse within the idle time: an idle time far above the pause, or a loaded machine
		// (make test runs two packages at once beside the race builds) reclaims it first.
		{idle: 5 * time.Second, pause: 20 * time.Millisecond, wantInstances: 1, wantCold: 1},
		{idle: 150 * time.Millisecond, pause: 0, wantInstances: 2, wantCold: 2, wantReclaimed: 1}, // pause: until reclaimed
		{idle: 0, pause: 400 * time.Millisecond, wantInstances: 1, wantCold: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("idle %v pause %v", tt.idle, tt.pause), func(t *testing.T) {
			t.Parallel()
			rt, _ := startProbe(t, Function{IdleTimeout: tt.idle})
			echo := mustJSON(t, map[string]any{"op": "echo", "data": 1})
			first, err := rt.Invoke(context.Background(), echo)
			if err != nil || first.Error != nil {
				t.Fatalf("invoke: %+v, %v", first, err)
			}
			if tt.pause > 0 {
				time.Sleep(tt.pause)
			} else {
				waitFor(t, "the idle instance to be reclaimed", func() bool {
					in := rt.Instances()[0]
					return in.Exited && in.ExitReason == "idle"
				})
			}
			second, err := rt.Invoke(context.Background(), echo)
			if err != nil || second.Error != nil {
				t.Fatalf("invoke: %+v, %v", second, err)
			}
			if fresh := second.Instance != first.Instance; fresh != (tt.wantInstances == 2) || second.ColdStart != fresh {
				t.Errorf("second invocation on %s (cold %v) after %s", second.Instance, second.ColdStart, first.Instance)
			}
			if s := rt.Stats(); s.InstancesStarted != tt.wantInstances || s.ColdStarts != tt.wantCold || s.Reclaimed != tt.wantReclaimed {
				t.Errorf("stats %+v, want %d started, %d cold, %d reclaimed", s, tt.wantInstances, tt.wantCold, tt.wantReclaimed)
			}
		})
	}
}
