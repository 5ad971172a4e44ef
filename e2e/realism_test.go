package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

func ms(n int) fault.Duration { return fault.Duration(time.Duration(n) * time.Millisecond) }

// realistic turns on what production does and a calm world does not: describes that lag the
// writes by up to 600 ms, attach and detach times with a long tail (no two alike, unknown to
// the function), and latency on both halves of every ECS call. The figures are scaled down
// from the demo world (localcloud/worlds/demo.yaml) so that the suite stays fast;
// the staleness is twice the median attach, so a confirmation read regularly sees the past.
func realistic(w *world.World) {
	w.Timing.AttachSpread = fault.Spread{Median: ms(300), P99: ms(1500), Max: ms(3000)}
	w.Timing.DetachSpread = fault.Spread{Median: ms(150), P99: ms(800), Max: ms(2000)}
	w.Faults.Staleness = append(w.Faults.Staleness, fault.Staleness{Service: "ecs", Max: ms(600)})
	w.Faults.Latency = append(w.Faults.Latency, fault.Latency{Service: "ecs", Base: ms(3), Jitter: ms(10)})
	w.Faults.ResponseLatency = append(w.Faults.ResponseLatency, fault.Latency{Service: "ecs", Base: ms(3), Jitter: ms(10)})
}

// loseRule makes the first call of action lose its answer after the action was applied.
func loseRule(service, action, kind string) fault.AfterRule {
	return fault.AfterRule{Service: service, Action: action, Rate: 1, Kind: kind, Hold: ms(3000), Limit: 1}
}

// lose is loseRule as a world mutation.
func lose(service, action, kind string) func(*world.World) {
	return func(w *world.World) {
		w.Faults.AfterAction = append(w.Faults.AfterAction, loseRule(service, action, kind))
	}
}

// atRest waits until no pool ENI of instance is moving, and returns what it holds.
func (b *bed) atRest(instance string) []world.ENI {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		held := b.held(instance)
		moving := false
		for _, e := range held {
			moving = moving || e.Status == world.ENIAttaching || e.Status == world.ENIDetaching
		}
		if !moving || time.Now().After(deadline) {
			return held
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Under production's realism (stale reads, a spread of attach times, answers lost after the
// action) every event still ends with exactly N pool ENIs on its instance, without a dead
// letter and without polling hot. On ca38816 the lost answers and stale reads attached a
// second ENI to N=1 instances and polled DescribeNetworkInterfaces back to back.
func TestUnderRealism(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		n          int
		duplicates int // concurrent deliveries of the event
		mutate     func(*world.World)
	}{
		{name: "stale reads, duplicates, N=1", n: 1, duplicates: 8},
		{name: "stale reads, duplicates, N=2", n: 2, duplicates: 8},
		{name: "attach applied, connection reset", n: 1, duplicates: 1, mutate: lose("ecs", "AttachNetworkInterface", fault.AfterReset)},
		{name: "attach applied, 503", n: 1, duplicates: 1, mutate: lose("ecs", "AttachNetworkInterface", fault.AfterError)},
		{name: "attach applied, no answer", n: 1, duplicates: 1, mutate: lose("ecs", "AttachNetworkInterface", fault.AfterTimeout)},
		{name: "attach applied, reset, duplicates", n: 1, duplicates: 4, mutate: lose("ecs", "AttachNetworkInterface", fault.AfterReset)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const a = "i-bp1real00000001"
			w := newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("r", zoneH, 6), mutate: func(w *world.World) {
				realistic(w)
				if tt.mutate != nil {
					tt.mutate(w)
				}
			}})
			b := newBed(t, w, bedOptions{env: map[string]string{"ENIPOOL_ENIS_PER_INSTANCE": fmt.Sprint(tt.n)}, max: tt.duplicates})
			var wg sync.WaitGroup
			results := make([]handler.Result, tt.duplicates)
			start := time.Now()
			for i := range tt.duplicates {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = result(t, b.mustInvoke(running(a)), a)
				}()
			}
			wg.Wait()
			took := time.Since(start)
			for _, r := range results {
				if r.Outcome != engine.OutcomeAttached && r.Outcome != engine.OutcomeAlreadyAttached {
					t.Errorf("outcome %s (%s: %s), want attached or already-attached", r.Outcome, r.Code, r.Reason)
				}
			}
			held := b.atRest(a)
			if len(held) != tt.n || len(b.inUse(a)) != tt.n {
				t.Fatalf("at rest the instance holds %d pool ENIs (%d InUse), want exactly %d: %+v", len(held), len(b.inUse(a)), tt.n, held)
			}
			if dl := b.deadLetters(); len(dl) != 0 {
				t.Errorf("%d dead letters, want none: %+v", len(dl), dl[0])
			}
			// No hot polling: every look is separated by a wait, so the looks per second of
			// the whole run stay far below what a loop without a wait makes (thousands).
			looks := b.calls("ecs", "DescribeNetworkInterfaces")
			if perSecond := float64(looks) / took.Seconds(); perSecond > 40*float64(tt.duplicates) {
				t.Errorf("%d DescribeNetworkInterfaces in %v (%.0f/s) from %d invocations: polling without waiting", looks, took, perSecond, tt.duplicates)
			}
			// Whatever went on the instance beyond N came off again (the converge), and an
			// attach whose answer was lost was not followed by attaches of other ENIs.
			attached := map[string]bool{}
			for _, op := range b.cloud.Store.Operations() {
				if op.Op == "attach" && op.Instance == a {
					attached[op.ENI] = true
				}
			}
			if tt.duplicates == 1 && len(attached) != tt.n {
				t.Errorf("one event attached %d distinct ENIs, want %d: %v", len(attached), tt.n, attached)
			}
		})
	}
}

// The answer of a detach, a lifecycle completion or a dead letter may be lost after the
// action was applied; the retry must be safe and the outcome right.
func TestAnswersLostAfterTheAction(t *testing.T) {
	t.Parallel()
	t.Run("detach", func(t *testing.T) {
		t.Parallel()
		const a = "i-bp1realdet00001"
		in := inst(a, zoneH)
		b := newBed(t, newWorld(t, spec{instances: []world.Instance{in}, enis: poolENIs("d", zoneH, 3), mutate: realistic}), bedOptions{})
		result(t, b.mustInvoke(running(a)), a)
		b.atRest(a)
		if err := b.cloud.Store.Update(func(st *world.State) error {
			st.Instances[a].Status = world.StatusStopped
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		plan := b.cloud.Faults.Plan()
		plan.AfterAction = append(plan.AfterAction, loseRule("ecs", "DetachNetworkInterface", fault.AfterError))
		b.cloud.Faults.SetPlan(plan)
		r := result(t, b.mustInvoke(stateEvent(a, "Stopped")), a)
		if r.Outcome != engine.OutcomeDetached {
			t.Fatalf("outcome %s (%s: %s), want detached", r.Outcome, r.Code, r.Reason)
		}
		if held := b.atRest(a); len(held) != 0 {
			t.Fatalf("the stopped instance still holds %+v", held)
		}
	})
	t.Run("lifecycle completion", func(t *testing.T) {
		t.Parallel()
		insts, ids := instances("realhook", 3, zoneH)
		b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("h", zoneH, 4), mutate: func(w *world.World) {
			realistic(w)
			withHooks(w)
			lose("ess", "CompleteLifecycleAction", fault.AfterReset)(w)
		}}), bedOptions{})
		token := b.startAction(hookOut, ids...)
		resp := b.mustInvoke(hookEvent(hookOut, token, "SCALE_OUT", ids))
		if a, _ := b.cloud.ESS.LifecycleAction(token); a.Result != "CONTINUE" || a.CompletedBy != "enipool-fn" {
			t.Fatalf("lifecycle action %+v, want CONTINUE by the function", a)
		}
		last := resp.Results[len(resp.Results)-1]
		if last.Outcome != engine.OutcomeCompleted {
			t.Fatalf("completion result %+v, want completed", last)
		}
		for _, id := range ids {
			if got := b.atRest(id); len(got) != 1 {
				t.Errorf("%s holds %d pool ENIs, want 1", id, len(got))
			}
		}
		if dl := b.deadLetters(); len(dl) != 0 {
			t.Errorf("%d dead letters, want none", len(dl))
		}
	})
	t.Run("dead letter", func(t *testing.T) {
		t.Parallel()
		const a = "i-bp1realdlq00001"
		// No ENI in the instance's zone: the event can only be dead-lettered.
		b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("q", zoneI, 1), mutate: func(w *world.World) {
			realistic(w)
			lose("mns", "SendMessage", fault.AfterError)(w)
		}}), bedOptions{})
		resp, ferr := b.invoke(running(a))
		if ferr != nil {
			t.Fatalf("function error %s: %s", ferr.ErrorType, ferr.ErrorMessage)
		}
		r := result(t, resp, a)
		if r.Outcome != engine.OutcomeDeadLettered || r.Code != cloud.CodePoolExhausted {
			t.Fatalf("outcome %s %s, want dead-lettered %s", r.Outcome, r.Code, cloud.CodePoolExhausted)
		}
		// The first send was enqueued and its answer lost; the retry may enqueue it again.
		// Either way every letter is this event's, and none is lost.
		dl := b.deadLetters()
		if len(dl) < 1 || len(dl) > 2 {
			t.Fatalf("%d dead letters, want the one (or its retried copy)", len(dl))
		}
		for _, env := range dl {
			if env.InstanceID != a || env.Error == nil || env.Error.Code != cloud.CodePoolExhausted {
				t.Errorf("dead letter %+v, want %s for %s", env, cloud.CodePoolExhausted, a)
			}
		}
	})
}
