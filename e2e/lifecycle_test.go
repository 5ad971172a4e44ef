package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

const (
	hookOut = "ash-bp1testout0001"
	hookIn  = "ash-bp1testin00001"
)

func withHooks(w *world.World) {
	w.LifecycleHooks = append(w.LifecycleHooks,
		world.LifecycleHook{ID: hookOut, Name: "attach", ScalingGroupID: "asg-bp1test000001", Transition: "SCALE_OUT", DefaultResult: "CONTINUE"},
		world.LifecycleHook{ID: hookIn, Name: "release", ScalingGroupID: "asg-bp1test000001", Transition: "SCALE_IN", DefaultResult: "CONTINUE"})
}

// hookEvent is the EventBridge event a lifecycle hook sends.
func hookEvent(hook, token, transition string, ids []string) string {
	typ := "ess:LifecycleHook:ScaleOut"
	if transition == "SCALE_IN" {
		typ = "ess:LifecycleHook:ScaleIn"
	}
	data, _ := json.Marshal(map[string]any{"lifecycleHookId": hook, "lifecycleActionToken": token, "lifecycleTransition": transition,
		"scalingGroupId": "asg-bp1test000001", "defaultResult": "CONTINUE", "instanceIds": ids})
	return fmt.Sprintf(`{"id":"%s-evt","source":"acs.ess","specversion":"1.0","type":%q,"aliyunregionid":"cn-hangzhou","data":%s}`, token[:8], typ, data)
}

func (b *bed) startAction(hook string, ids ...string) string {
	b.t.Helper()
	token, err := b.cloud.ESS.StartLifecycleAction(hook, ids...)
	if err != nil {
		b.t.Fatal(err)
	}
	return token
}

func instances(prefix string, n int, zone string) ([]world.Instance, []string) {
	var insts []world.Instance
	var ids []string
	for i := range n {
		id := fmt.Sprintf("i-bp1%s%08d", prefix, i)
		insts = append(insts, inst(id, zone))
		ids = append(ids, id)
	}
	return insts, ids
}

// A scale-out hook for 10 instances ends with 10 attached and the action completed once with
// CONTINUE.
func TestScaleOutHook(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hook", 10, zoneH)
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 12), mutate: withHooks}), bedOptions{})
	token := b.startAction(hookOut, ids...)
	resp := b.mustInvoke(hookEvent(hookOut, token, "SCALE_OUT", ids))
	for _, id := range ids {
		if got := b.inUse(id); len(got) != 1 {
			t.Errorf("%s holds %v", id, got)
		}
	}
	a, _ := b.cloud.ESS.LifecycleAction(token)
	if a.Result != "CONTINUE" || a.CompletedBy != "enipool-fn" {
		t.Fatalf("lifecycle action %+v, want CONTINUE by the function", a)
	}
	if n := b.calls("ess", "CompleteLifecycleAction"); n != 1 {
		t.Errorf("%d completions, want 1", n)
	}
	last := resp.Results[len(resp.Results)-1]
	if last.Outcome != engine.OutcomeCompleted || !strings.Contains(last.Reason, "CONTINUE; 10 of 10") {
		t.Errorf("completion result %+v", last)
	}
}

// One instance that cannot get its ENI makes the action ABANDON (Auto Scaling replaces it)
// and leaves a dead letter for that instance; the others keep their ENIs.
func TestScaleOutHookAbandons(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hookx", 3, zoneH)
	insts[2].Type = "ecs.t6-c1m1.large" // Running, and its type needs Stopped
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 4), mutate: withHooks}), bedOptions{})
	token := b.startAction(hookOut, ids...)
	b.mustInvoke(hookEvent(hookOut, token, "SCALE_OUT", ids))
	if a, _ := b.cloud.ESS.LifecycleAction(token); a.Result != "ABANDON" {
		t.Fatalf("lifecycle action ended %q, want ABANDON", a.Result)
	}
	dl := b.deadLetters()
	if len(dl) != 1 || dl[0].InstanceID != ids[2] || dl[0].Error.Code != cloud.CodeRequiresStopped {
		t.Fatalf("dead letters %+v, want one for %s", dl, ids[2])
	}
	if len(b.inUse(ids[0])) != 1 || len(b.inUse(ids[1])) != 1 {
		t.Fatal("the instances that could get ENIs do not hold them")
	}
}

// Duplicates of a hook event, concurrent and late, complete the action once.
func TestScaleOutHookDuplicatesCompleteOnce(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hookd", 4, zoneI)
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneI, 6), mutate: withHooks}), bedOptions{max: 4})
	token := b.startAction(hookOut, ids...)
	ev := hookEvent(hookOut, token, "SCALE_OUT", ids)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); b.mustInvoke(ev) }()
	}
	wg.Wait()
	b.mustInvoke(ev)
	a, _ := b.cloud.ESS.LifecycleAction(token)
	if a.Result != "CONTINUE" {
		t.Fatalf("lifecycle action %+v", a)
	}
	completedAt := a.CompletedAt
	effective := b.cloud.Calls.Calls(record.Match("ess", "CompleteLifecycleAction"), func(c record.Call) bool { return c.OK() })
	for _, c := range effective {
		if c.Time.After(completedAt.Add(time.Second)) && c.Params["LifecycleActionResult"] != "CONTINUE" {
			t.Errorf("a later completion asked for %s", c.Params["LifecycleActionResult"])
		}
	}
	for _, id := range ids {
		if got := b.inUse(id); len(got) != 1 {
			t.Errorf("%s holds %v after duplicates", id, got)
		}
	}
	if len(b.deadLetters()) != 0 {
		t.Errorf("duplicates produced dead letters")
	}
}

// A scale-in hook sends the instances' pool ENIs back to the pool, Available, then
// CONTINUEs.
func TestScaleInHook(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hooki", 3, zoneH)
	var enis []world.ENI
	for i, id := range ids {
		enis = append(enis, world.ENI{ID: fmt.Sprintf("eni-scalein%04d", i), VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
			Tags: map[string]string{"enipool": pool}, Status: "InUse", InstanceID: id})
	}
	b := newBed(t, newWorld(t, spec{instances: insts, enis: enis, mutate: withHooks}), bedOptions{})
	token := b.startAction(hookIn, ids...)
	resp := b.mustInvoke(hookEvent(hookIn, token, "SCALE_IN", ids))
	for _, e := range enis {
		got, _ := b.cloud.Store.ENI(e.ID)
		if got.Status != "Available" || got.InstanceID != "" {
			t.Errorf("%s is %s on %q after scale-in", e.ID, got.Status, got.InstanceID)
		}
	}
	if a, _ := b.cloud.ESS.LifecycleAction(token); a.Result != "CONTINUE" {
		t.Fatalf("scale-in action ended %q", a.Result)
	}
	for _, id := range ids {
		if r := result(t, resp, id); r.Outcome != engine.OutcomeDetached {
			t.Errorf("%s: %s", id, r.Outcome)
		}
	}
}

// Reconcile repairs an instance whose launch event was lost, drops surplus, and gives back
// the ENIs of an instance that stopped without its event arriving.
func TestReconcile(t *testing.T) {
	t.Parallel()
	const lost, greedy, stopped = "i-bp1reclost00001", "i-bp1recgreedy001", "i-bp1recstop00001"
	st := inst(stopped, zoneH)
	st.Status = "Stopped"
	on := func(id, eni string) world.ENI {
		return world.ENI{ID: eni, VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"}, Tags: map[string]string{"enipool": pool},
			Status: "InUse", InstanceID: id}
	}
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(lost, zoneH), inst(greedy, zoneH), st},
		enis: append(poolENIs("p", zoneH, 3), on(greedy, "eni-greedya0001"), on(greedy, "eni-greedyb0001"), on(stopped, "eni-stopped00001"))}),
		bedOptions{})
	resp := b.mustInvoke(`{"action":"reconcile"}`)
	if got := b.inUse(lost); len(got) != 1 {
		t.Errorf("the instance whose event was lost holds %v", got)
	}
	time.Sleep(300 * time.Millisecond) // the surplus detach completes
	if got := b.inUse(greedy); len(got) != 1 {
		t.Errorf("the instance with a surplus holds %v", got)
	}
	if e, _ := b.cloud.Store.ENI("eni-stopped00001"); e.Status != "Available" {
		t.Errorf("the stopped instance's ENI is %s", e.Status)
	}
	rep, _ := json.Marshal(resp.Report)
	if !strings.Contains(string(rep), `"pools"`) || !strings.Contains(string(rep), `"available"`) {
		t.Errorf("report lacks the watermarks: %s", rep)
	}
	watermark := false
	for _, l := range b.waitLines(1, "enipool.watermarks") {
		if l["msg"] == "enipool.watermarks" {
			watermark = true
		}
	}
	if !watermark {
		t.Error("no watermark log line")
	}
}

// The warm target creates ENIs up to the minimum Available per zone, never beyond the
// maximum, and deletes only ENIs it created, only when Available and past the grace period.
func TestWarmTarget(t *testing.T) {
	t.Parallel()
	warmEnv := func(min, max int) map[string]string {
		return map[string]string{"ENIPOOL_WARM_POOL": pool, "ENIPOOL_WARM_MIN_AVAILABLE": fmt.Sprint(min), "ENIPOOL_WARM_MAX": fmt.Sprint(max),
			"ENIPOOL_WARM_VSWITCHES": "cn-hangzhou-h:" + vswH + ",cn-hangzhou-i:" + vswI, "ENIPOOL_WARM_SECURITY_GROUPS": "sg-testweb001",
			"ENIPOOL_WARM_GRACE": "10m"}
	}
	count := func(b *bed, zone string, managed bool) (avail, total int) {
		for _, e := range b.cloud.Store.ENIs(world.Tagged("enipool", pool)) {
			z, _ := b.cloud.Store.World().VSwitch(e.VSwitch)
			if z.Zone != zone || (managed && e.Tags["enipool:managed"] != "true") {
				continue
			}
			total++
			if e.Status == "Available" {
				avail++
			}
		}
		return avail, total
	}
	t.Run("creates up to the minimum, within the maximum", func(t *testing.T) {
		b := newBed(t, newWorld(t, spec{enis: append(poolENIs("h", zoneH, 1), poolENIs("i", zoneI, 4)...), mutate: withWarmPolicy(t, vswH, vswI)}),
			bedOptions{env: warmEnv(3, 4)})
		b.mustInvoke(`{"action":"reconcile"}`)
		if avail, total := count(b, zoneH, false); avail != 3 || total != 3 {
			t.Errorf("zone h: %d available of %d, want 3 of 3", avail, total)
		}
		if avail, total := count(b, zoneI, false); avail != 4 || total != 4 {
			t.Errorf("zone i: %d of %d, want untouched 4 of 4", avail, total)
		}
		b.mustInvoke(`{"action":"reconcile"}`) // idempotent
		if _, total := count(b, zoneH, false); total != 3 {
			t.Errorf("a second run made zone h %d", total)
		}
	})
	t.Run("trims only its own, old, available ENIs beyond the maximum", func(t *testing.T) {
		managed := func(id, age string) world.ENI {
			var ts world.Timestamp
			ts.UnmarshalText([]byte(age))
			return world.ENI{ID: id, VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"}, CreationTime: ts,
				Tags: map[string]string{"enipool": pool, "enipool:managed": "true"}}
		}
		enis := append(poolENIs("h", zoneH, 3), managed("eni-warmold00001", "-2h"), managed("eni-warmold00002", "-1h"),
			managed("eni-warmyoung001", "-1m"))
		b := newBed(t, newWorld(t, spec{enis: enis, mutate: withWarmPolicy(t, vswH, vswI)}), bedOptions{env: warmEnv(1, 4)})
		b.mustInvoke(`{"action":"reconcile"}`)
		if _, ok := b.cloud.Store.ENI("eni-warmold00001"); ok {
			t.Error("the oldest managed ENI beyond the maximum was kept")
		}
		if _, ok := b.cloud.Store.ENI("eni-warmyoung001"); !ok {
			t.Error("a managed ENI younger than the grace period was deleted")
		}
		for _, e := range poolENIs("h", zoneH, 3) {
			if _, ok := b.cloud.Store.ENI(e.ID); !ok {
				t.Errorf("%s, not created by enipool, was deleted", e.ID)
			}
		}
	})
}

// Redrive handles dead letters again: it deletes those whose cause was fixed and keeps the
// rest in the queue.
func TestRedrive(t *testing.T) {
	t.Parallel()
	const fixable, stuck = "i-bp1redrivefix01", "i-bp1redrivestk01"
	st := inst(stuck, zoneH)
	st.Type = "ecs.t6-c1m1.large"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(fixable, zoneI), st}, enis: poolENIs("h", zoneH, 1)}), bedOptions{})
	b.mustInvoke(running(fixable)) // zone i has no pool ENI: dead letter
	b.mustInvoke(running(stuck))   // type needs Stopped: dead letter
	if len(b.deadLetters()) != 2 {
		t.Fatalf("%d dead letters, want 2", len(b.deadLetters()))
	}
	// Fix the first cause as an operator would: create a pool ENI in zone i.
	added := b.createPoolENI(vswI)
	resp := b.mustInvoke(`{"action":"redrive","max":10}`)
	if got := b.inUse(fixable); len(got) != 1 || got[0] != added {
		t.Fatalf("after redrive %s holds %v", fixable, got)
	}
	dl := b.deadLetters()
	if len(dl) != 1 || dl[0].InstanceID != stuck {
		t.Fatalf("the queue holds %d letters, want only %s's", len(dl), stuck)
	}
	var rep handler.RedriveReport
	raw, _ := json.Marshal(resp.Report)
	json.Unmarshal(raw, &rep)
	if rep.Received != 2 || rep.Redriven != 1 || rep.Kept != 1 {
		t.Fatalf("report %+v, want 2 received, 1 redriven, 1 kept", rep)
	}
}

// When a hook's work goes back to the platform (an instance still starting), the action is
// left open and its heartbeat extended; FC's retry then finishes the work and completes the
// action once.
func TestScaleOutHookRetriedKeepsTheActionAlive(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hookr", 1, zoneH)
	insts[0].Status = "Pending"
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 2), mutate: withHooks}),
		bedOptions{timeout: 3 * time.Second, env: map[string]string{"ENIPOOL_DLQ_RESERVE": "1s"},
			async: fcrt.AsyncConfig{MaxRetryAttempts: 2, Backoff: func(int) time.Duration { return 2 * time.Second }}})
	token := b.startAction(hookOut, ids...)
	b.fn.InvokeAsync([]byte(hookEvent(hookOut, token, "SCALE_OUT", ids)))
	for len(b.fn.Invocations()) == 0 || b.fn.Invocations()[0].Duration == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	a, _ := b.cloud.ESS.LifecycleAction(token)
	if a.Result != "" || a.Heartbeats == 0 {
		t.Fatalf("after the first attempt the action is %+v, want open with a heartbeat", a)
	}
	if err := b.cloud.Store.Update(func(s *world.State) error { s.Instances[ids[0]].Status = "Running"; return nil }); err != nil {
		t.Fatal(err)
	}
	waitAsync(t, b)
	a, _ = b.cloud.ESS.LifecycleAction(token)
	if a.Result != "CONTINUE" || len(b.inUse(ids[0])) != 1 {
		t.Fatalf("after the retry: action %+v, instance holds %v", a, b.inUse(ids[0]))
	}
	if n := b.calls("ess", "CompleteLifecycleAction"); n != 1 {
		t.Errorf("%d completions, want 1", n)
	}
	if len(b.deadLetters()) != 0 {
		t.Errorf("dead letters: %+v", b.deadLetters())
	}
}

// A hook event whose token Auto Scaling does not list for the hook (a forgery: an action that
// timed out or was completed is still listed, see TestLifecycleLateDuplicate) gets nothing:
// no attach, no completion, a dead letter per instance saying why. (Before issue 14 it got
// its ENIs and a completion refused by ESS.)
func TestScaleOutHookUnknownToken(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hooku", 2, zoneH)
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 3), mutate: withHooks}), bedOptions{})
	resp := b.mustInvoke(hookEvent(hookOut, "00000000-DEAD-BEEF-0000-000000000000", "SCALE_OUT", ids))
	for _, id := range ids {
		if r := result(t, resp, id); r.Outcome != engine.OutcomeDeadLettered || r.Code != cloud.CodeLifecycleUnverified {
			t.Errorf("%s: %s %s, want dead-lettered %s", id, r.Outcome, r.Code, cloud.CodeLifecycleUnverified)
		}
		if len(b.inUse(id)) != 0 {
			t.Errorf("%s holds %v on a forged token's word", id, b.inUse(id))
		}
	}
	if n := b.calls("ess", "CompleteLifecycleAction"); n != 0 {
		t.Errorf("%d completions of a token Auto Scaling does not know", n)
	}
	if dl := b.deadLetters(); len(dl) != len(ids) {
		t.Errorf("%d dead letters, want %d", len(dl), len(ids))
	}
}

// On the platform's last retry, an instance that never became ready ends the action with
// ABANDON and a dead letter, even though the wait used the whole of the work's deadline.
func TestScaleOutHookGivesUpWithAbandon(t *testing.T) {
	t.Parallel()
	insts, ids := instances("hookg", 1, zoneH)
	insts[0].Status = "Pending"
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 1), mutate: withHooks}),
		// The completion and the dead letter go out in the reserve: 2 s of it, as a loaded
		// machine may need (see TestLastPlatformRetryDeadLettersItself).
		bedOptions{timeout: 4 * time.Second, env: map[string]string{"ENIPOOL_DLQ_RESERVE": "2s", "ENIPOOL_PLATFORM_RETRIES": "0"}})
	token := b.startAction(hookOut, ids...)
	resp := b.mustInvoke(hookEvent(hookOut, token, "SCALE_OUT", ids))
	if a, _ := b.cloud.ESS.LifecycleAction(token); a.Result != "ABANDON" {
		t.Fatalf("action ended %q, want ABANDON; results %+v", a.Result, resp.Results)
	}
	if dl := b.deadLetters(); len(dl) != 1 || dl[0].Error.Code != cloud.CodeNotReady {
		t.Fatalf("dead letters %+v, want one with %s", dl, cloud.CodeNotReady)
	}
}
