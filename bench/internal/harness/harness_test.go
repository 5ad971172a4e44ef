package harness

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fault"
)

// fastCloud is the bench's world ten times faster, with a burst small enough to meet its
// attach quota: the correctness run checks what must hold whatever the timing.
func fastCloud(n int) CloudParams {
	ms := func(v int) fault.Duration { return fault.Duration(time.Duration(v) * time.Millisecond) }
	return CloudParams{Instances: n, Pool: n, Zones: 2, Seed: 1,
		RequestLatency: Duration(2 * time.Millisecond), ResponseLatency: Duration(1 * time.Millisecond),
		AttachSpread: fault.Spread{Median: ms(200), P99: ms(800), Max: ms(3000)},
		DetachSpread: fault.Spread{Median: ms(100), P99: ms(400), Max: ms(1500)},
		Staleness:    Duration(100 * time.Millisecond),
		AttachQPS:    40, AttachBurst: 5, OtherQPS: 400, OtherBurst: 800}
}

// TestHarness is the bench's correctness run, inside `make test`: every policy, enipool and
// the peers, runs under the local FC runtime in the single-event scenario and in a small
// burst, and enipool in a small burst through s.yaml's work-queue trigger; every instance
// ends with exactly one pool ENI, InUse, none attached twice, every event answered. It
// asserts no timing: the figures belong to `make bench`.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the functions: not with -short")
	}
	// Cleanup, not defer: the subtests run in parallel after this function returns.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	bins, err := BuildFunctions(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A batch confirms its attaches with listings of the pool rather than reads of each ENI
	// or instance, which Polls does not count: polled says whether each event must have some.
	check := func(t *testing.T, what string, events []*Event, a Audit, polled bool) {
		t.Helper()
		if a.Attached != len(events) || a.DoubleAttaches() != 0 {
			t.Errorf("%s: %d of %d instances hold exactly one pool ENI InUse, %d double attaches (bare %v, more than one %v)",
				what, a.Attached, len(events), a.DoubleAttaches(), a.Bare, a.Multi)
		}
		for _, ev := range events {
			switch {
			case ev == nil:
				t.Errorf("%s: an event has no record", what)
			case ev.Status != "Succeeded" || ev.Outcome != "attached":
				t.Errorf("%s: %s ended %s, %s: %s", what, ev.Instance, ev.Status, ev.Outcome, ev.Error)
			case ev.Floor <= 0 || ev.Ratio <= 0 || ev.Attaches != 1 || (polled && ev.Polls < 1):
				t.Errorf("%s: %s has floor %v, ratio %v, %d accepted attaches and %d polls: the cloud's records do not match the event",
					what, ev.Instance, ev.Floor.D(), ev.Ratio, ev.Attaches, ev.Polls)
			}
		}
	}
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		r, err := Single(ctx, bins, SingleParams{Cloud: fastCloud(0), Policies: Policies(), Lanes: 2, PerLane: 2, PeerScale: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		for _, pol := range Policies() {
			sp := r.Policies[pol]
			if sp == nil {
				t.Fatalf("%s did not run", pol)
			}
			check(t, pol, sp.Events, sp.Audit, true)
			if sp.Audit.ECSCalls == 0 || sp.Cold.N != 2 || sp.Warm.N != 2 {
				t.Errorf("%s: %d ECS calls by its role, %d cold and %d warm events; want calls, 2 and 2", pol, sp.Audit.ECSCalls, sp.Cold.N, sp.Warm.N)
			}
		}
	})
	for _, pol := range Policies() {
		t.Run("burst/"+pol, func(t *testing.T) {
			t.Parallel()
			r, err := Burst(ctx, bins, BurstParams{Cloud: fastCloud(20), Policy: pol, Events: 20, MaxInstances: 8, PeerScale: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			check(t, pol, r.Events, r.Audit, true)
			if r.WallFloor <= 0 || r.Instances < 1 || r.Instances > 8 {
				t.Errorf("wall floor %v, %d FC instances (at most 8)", r.WallFloor.D(), r.Instances)
			}
			t.Logf("%s: %d ECS calls, %d throttled, wall %v (floor %v), ratios p50 %.2f p99 %.2f", pol, r.Audit.ECSCalls, r.Audit.Throttled,
				r.Wall.D(), r.WallFloor.D(), r.Summary.P50, r.Summary.P99)
		})
	}
	t.Run("burstqueue/"+Enipool, func(t *testing.T) {
		t.Parallel()
		const n = 20
		r, err := BurstQueue(ctx, bins, BurstParams{Cloud: fastCloud(n), Policy: Enipool, Events: n, MaxInstances: 8})
		if err != nil {
			t.Fatal(err)
		}
		check(t, "burstqueue", r.Events, r.Audit, false)
		q := r.Queue
		if q == nil {
			t.Fatal("no record of the work-queue stream")
		}
		sum := 0
		for _, size := range q.Batches {
			sum += size
			if size > q.CountBasedWindow {
				t.Errorf("a batch of %d messages; s.yaml's CountBasedWindow is %d", size, q.CountBasedWindow)
			}
		}
		if sum != n || q.MessagesTaken != n || q.Again != 0 || r.Invocations != len(q.Batches)+q.Retries || q.Errors != 0 {
			t.Errorf("batches %v (%d messages), %d taken, %d handled again, %d invocations, %d stream retries, errors %v: want %d messages, each taken and handled once, one invocation per push, no errors",
				q.Batches, sum, q.MessagesTaken, q.Again, r.Invocations, q.Retries, q.FirstErrors, n)
		}
		if len(r.Audit.DeadLetters) != 0 || r.Audit.OtherDLQMessages != 0 || r.Audit.MNSSends != 0 {
			t.Errorf("%d dead letters, %d other messages in the dead-letter queue, %d sends by the function's role; want none",
				len(r.Audit.DeadLetters), r.Audit.OtherDLQMessages, r.Audit.MNSSends)
		}
		t.Logf("burstqueue: batches %v, calls %v, %d ECS calls, %d throttled, wall %v (floor %v), ratios p50 %.2f p99 %.2f", q.Batches, r.Audit.ByAction, r.Audit.ECSCalls,
			r.Audit.Throttled, r.Wall.D(), r.WallFloor.D(), r.Summary.P50, r.Summary.P99)
		if _, err := BurstQueue(ctx, bins, BurstParams{Cloud: fastCloud(n), Policy: Policies()[1], Events: n}); err == nil {
			t.Errorf("BurstQueue ran %s, which has no batch path", Policies()[1])
		}
	})
}

// TestWorkQueueVisibility: the bench's work queue has the visibility timeout the deploy steps
// create it with (deploy/README.md), longer than the function's timeout.
func TestWorkQueueVisibility(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`VisibilityTimeout`\\s+(\\d+)").FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/README.md gives the work queue no `VisibilityTimeout` <seconds>")
	}
	if got := strconv.Itoa(int(WorkQueueVisibility / time.Second)); got != string(m[1]) {
		t.Errorf("WorkQueueVisibility %v; deploy/README.md creates the work queue with %s s", WorkQueueVisibility, m[1])
	}
	if WorkQueueVisibility <= FunctionTimeout {
		t.Errorf("WorkQueueVisibility %v is not longer than the function's timeout %v", WorkQueueVisibility, FunctionTimeout)
	}
}
