package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/ess"
	"github.com/enipool/enipool/localcloud/world"
)

// Issue 14, trust boundaries: a notification's claims are claims until ECS or Auto Scaling
// confirms them. Each case below was reproduced against the local cloud on 968df3d (main
// before this branch) and fails there as its comment says.

const forgedToken = "0BADC0DE-0000-4000-8000-000000000000"

// holding returns a pool instance in zone h that holds one pool ENI, InUse.
func holding(id, eni string) (world.Instance, world.ENI) {
	return inst(id, zoneH), world.ENI{ID: eni, VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
		Tags: map[string]string{"enipool": pool}, Status: "InUse", InstanceID: id}
}

// envelope wraps an event in a dead letter naming one instance, as a redrive delivers it.
func envelope(t *testing.T, instance, ev string) string {
	t.Helper()
	body, err := deadletter.Marshal(&deadletter.Envelope{Reason: "earlier failure", Verdict: "dead-letter", InstanceID: instance,
		Region: region, ENIsTried: []string{}, Source: "acs.ess", EventID: "evt-1", Event: []byte(ev)})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// withActivity adds the scaling activity Auto Scaling gives the token's action to a hook
// event's data, as ESS's notifications carry it (scalingActivityId).
func (b *bed) withActivity(ev, token string) string {
	a, ok := b.cloud.ESS.LifecycleAction(token)
	if !ok {
		b.t.Fatalf("no lifecycle action with token %s", token)
	}
	return strings.Replace(ev, `"data":{`, `"data":{"scalingActivityId":"`+a.ScalingActivityID+`",`, 1)
}

// TestLifecycleTrust: a lifecycle notification acts only as far as Auto Scaling confirms it.
func TestLifecycleTrust(t *testing.T) {
	t.Parallel()
	const a, b2 = "i-bp1trusta000001", "i-bp1trustb000001"
	tests := []struct {
		name string
		// setup returns the payload; it may start lifecycle actions.
		setup func(t *testing.T, b *bed) string
		env   map[string]string
		// want: a's ENI still attached, a's result, the action's result ("" = left open),
		// the dead letters' codes.
		keepsENI   bool
		outcome    engine.Outcome
		code       string
		action     string
		deadCodes  []string
		completion bool // whether a completion result is expected
	}{
		{
			// On main: a's ENI was detached first, then CompleteLifecycleAction failed with
			// LifecycleHookIdAndLifecycleActionToken.Invalid (skipped, no dead letter).
			name:     "forged scale-in token",
			setup:    func(t *testing.T, b *bed) string { return hookEvent(hookIn, forgedToken, "SCALE_IN", []string{a}) },
			keepsENI: true, outcome: engine.OutcomeDeadLettered, code: cloud.CodeLifecycleUnverified,
			deadCodes: []string{cloud.CodeLifecycleUnverified},
		},
		{
			// On main: the envelope naming a detached a's ENI, with no completion and no
			// dead letter. Now a letter never releases (and nothing is asked of Auto Scaling).
			name: "forged scale-in token in a dead-letter envelope",
			setup: func(t *testing.T, b *bed) string {
				return envelope(t, a, hookEvent(hookIn, forgedToken, "SCALE_IN", []string{a}))
			},
			keepsENI: true, outcome: engine.OutcomeSkipped, code: cloud.CodeReleaseRefused,
		},
		{
			// On main: a's ENI was detached and the scale-out completed with CONTINUE, so
			// the instance entered service without its ENI.
			name: "scale-out token claimed as SCALE_IN",
			setup: func(t *testing.T, b *bed) string {
				return hookEvent(hookOut, b.startAction(hookOut, a), "SCALE_IN", []string{a})
			},
			keepsENI: true, outcome: engine.OutcomeDeadLettered, code: cloud.CodeLifecycleUnverified,
			deadCodes: []string{cloud.CodeLifecycleUnverified},
		},
		{
			// On main: the extra instance (a t6, which cannot take an ENI while Running)
			// failed and the whole action was ABANDONed, so Auto Scaling would release a.
			name: "real scale-out token with an extra failing instance",
			setup: func(t *testing.T, b *bed) string {
				return hookEvent(hookOut, b.startAction(hookOut, a), "SCALE_OUT", []string{a, b2})
			},
			keepsENI: true, outcome: engine.OutcomeAlreadyAttached, action: "CONTINUE",
			deadCodes: []string{cloud.CodeLifecycleUnverified}, completion: true,
		},
		{
			// On main there was no ENIPOOL_SCALING_GROUPS: the other group's scale-in
			// detached a's ENI and completed.
			name: "scale-in of a scaling group enipool does not serve",
			env:  map[string]string{"ENIPOOL_SCALING_GROUPS": "asg-bp1other00001"},
			setup: func(t *testing.T, b *bed) string {
				return hookEvent(hookIn, b.startAction(hookIn, a), "SCALE_IN", []string{a})
			},
			keepsENI: true, outcome: engine.OutcomeDeadLettered, code: cloud.CodeLifecycleUnverified,
			deadCodes: []string{cloud.CodeLifecycleUnverified},
		},
		{
			// The same scale-in, from a served group, is carried out: the control case.
			name: "scale-in of a served scaling group",
			env:  map[string]string{"ENIPOOL_SCALING_GROUPS": "asg-bp1other00001, asg-bp1test000001"},
			setup: func(t *testing.T, b *bed) string {
				return hookEvent(hookIn, b.startAction(hookIn, a), "SCALE_IN", []string{a})
			},
			keepsENI: false, outcome: engine.OutcomeDetached, action: "CONTINUE", completion: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ia, ea := holding(a, "eni-trusta0001")
			ib := inst(b2, zoneH)
			ib.Type = "ecs.t6-c1m1.large"
			bd := newBed(t, newWorld(t, spec{instances: []world.Instance{ia, ib}, enis: append(poolENIs("p", zoneH, 2), ea), mutate: withHooks}),
				bedOptions{env: tt.env})
			payload := tt.setup(t, bd)
			resp := bd.mustInvoke(payload)

			got, _ := bd.cloud.Store.ENI(ea.ID)
			if attached := got.Status == "InUse" && got.InstanceID == a; attached != tt.keepsENI {
				t.Errorf("%s is %s on %q, want attached to %s: %v", ea.ID, got.Status, got.InstanceID, a, tt.keepsENI)
			}
			if r := result(t, resp, a); r.Outcome != tt.outcome || r.Code != tt.code {
				t.Errorf("%s: %s %s (%s), want %s %s", a, r.Outcome, r.Code, r.Reason, tt.outcome, tt.code)
			}
			if len(bd.inUse(b2)) != 0 {
				t.Errorf("%s, not Auto Scaling's, holds %v", b2, bd.inUse(b2))
			}
			var actions []string
			for _, x := range bd.cloud.ESS.LifecycleActions() {
				if x.Status != ess.StatusPending {
					actions = append(actions, x.Result)
				}
			}
			switch {
			case tt.action == "" && len(actions) != 0:
				t.Errorf("lifecycle actions ended %v, want none completed", actions)
			case tt.action != "" && (len(actions) != 1 || actions[0] != tt.action):
				t.Errorf("lifecycle actions ended %v, want one %s", actions, tt.action)
			}
			if n := bd.calls("ess", "CompleteLifecycleAction"); (n > 0) != tt.completion {
				t.Errorf("%d CompleteLifecycleAction calls, want completion %v", n, tt.completion)
			}
			var codes []string
			for _, d := range bd.deadLetters() {
				codes = append(codes, d.Error.Code)
			}
			if strings.Join(codes, ",") != strings.Join(tt.deadCodes, ",") {
				t.Errorf("dead letters %v, want %v", codes, tt.deadCodes)
			}
		})
	}
}

// A repeated notification of a scale-in Auto Scaling already completed changes nothing and is
// not a dead letter: the action is listed, ended; the instance is no longer held for removal.
func TestLifecycleLateDuplicate(t *testing.T) {
	t.Parallel()
	const a = "i-bp1trustlate001"
	ia, ea := holding(a, "eni-trustlate01")
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{ia}, enis: []world.ENI{ea}, mutate: withHooks}), bedOptions{})
	token := b.startAction(hookIn, a)
	ev := b.withActivity(hookEvent(hookIn, token, "SCALE_IN", []string{a}), token)
	b.mustInvoke(ev)
	// The instance comes back with an ENI (as if reused); the late duplicate must not take it.
	if err := b.cloud.Store.Update(func(s *world.State) error {
		e := s.ENIs[ea.ID]
		e.Status, e.InstanceID = "InUse", a
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp := b.mustInvoke(ev)
	if r := result(t, resp, a); r.Outcome != engine.OutcomeSkipped || r.Code != cloud.CodeStaleEvent {
		t.Errorf("late duplicate: %s %s (%s), want skipped %s", r.Outcome, r.Code, r.Reason, cloud.CodeStaleEvent)
	}
	if got := b.inUse(a); len(got) != 1 {
		t.Errorf("%s holds %v after the late duplicate", a, got)
	}
	if n := b.calls("ess", "CompleteLifecycleAction"); n != 1 {
		t.Errorf("%d completions, want the first only", n)
	}
	if len(b.deadLetters()) != 0 {
		t.Errorf("dead letters: %+v", b.deadLetters())
	}
}

// Lifecycle tokens never appear in results or logs, only their fingerprint. On main the
// completion's summary ("lifecycle action <token> of hook ...") carried the token.
func TestLifecycleTokenNotLogged(t *testing.T) {
	t.Parallel()
	insts, ids := instances("tokn", 1, zoneH)
	b := newBed(t, newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 1), mutate: withHooks}), bedOptions{})
	token := b.startAction(hookOut, ids...)
	resp := b.mustInvoke(hookEvent(hookOut, token, "SCALE_OUT", ids))
	last := resp.Results[len(resp.Results)-1]
	if last.Outcome != engine.OutcomeCompleted || !strings.Contains(last.Reason, "token#") {
		t.Errorf("completion %s %q, want completed with the token's fingerprint", last.Outcome, last.Reason)
	}
	b.waitLines(2, "")
	for _, r := range resp.Results {
		if strings.Contains(r.Reason, token) {
			t.Errorf("a result carries the token: %q", r.Reason)
		}
	}
	if strings.Contains(b.logs.String(), token) {
		t.Error("the function's log carries the lifecycle action token")
	}
}

// TestReleaseTrust: a release needs ECS's word, and an instance with the pool tag.
func TestReleaseTrust(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*world.Instance)
		payload func(id string) string
		code    string
	}{
		{
			// On main: the Deleted event detached the ENI of a Stopped t6 that still exists
			// (t6 instances keep their ENIs while Stopped).
			name:    "Deleted event of an instance ECS still has",
			mutate:  func(in *world.Instance) { in.Type, in.Status = "ecs.t6-c1m1.large", "Stopped" },
			payload: func(id string) string { return stateEvent(id, "Deleted") },
			code:    cloud.CodeStaleEvent,
		},
		{
			// On main: the function asked ECS to detach from an untagged instance (RAM's
			// tag condition refused it: Forbidden.RAM, a dead letter).
			name:    "Stopped event of an instance without the pool tag",
			mutate:  func(in *world.Instance) { in.Tags, in.Status = nil, "Stopped" },
			payload: func(id string) string { return stateEvent(id, "Stopped") },
			code:    cloud.CodeNotEligible,
		},
		{
			// On main: likewise, through the detach action.
			name:    "detach action on an instance without the pool tag",
			mutate:  func(in *world.Instance) { in.Tags = map[string]string{"team": "web"} },
			payload: func(id string) string { return `{"action":"detach","instanceId":"` + id + `"}` },
			code:    cloud.CodeNotEligible,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := "i-bp1trustrel" + string(rune('a'+i)) + "0001"
			in, e := holding(id, "eni-trustrel0"+string(rune('a'+i)))
			tt.mutate(&in)
			b := newBed(t, newWorld(t, spec{instances: []world.Instance{in}, enis: []world.ENI{e}}), bedOptions{})
			r := result(t, b.mustInvoke(tt.payload(id)), id)
			if r.Outcome != engine.OutcomeSkipped || r.Code != tt.code {
				t.Errorf("%s %s (%s), want skipped %s", r.Outcome, r.Code, r.Reason, tt.code)
			}
			if got, _ := b.cloud.Store.ENI(e.ID); got.Status != "InUse" || got.InstanceID != id {
				t.Errorf("%s is %s on %q, want still attached", e.ID, got.Status, got.InstanceID)
			}
			if n := b.calls("ecs", "DetachNetworkInterface"); n != 0 {
				t.Errorf("%d DetachNetworkInterface calls, want none", n)
			}
			if len(b.deadLetters()) != 0 {
				t.Errorf("dead letters: %+v", b.deadLetters())
			}
		})
	}
}

// A redriven letter is the attach of the instances it names, never a lifecycle completion or
// heartbeat, even when the token inside it is real and its action still open: the letter is
// only a claim, and the action belongs to the invocation that received the notification.
// Letters naming no instance (an FC record, a folded letter, a raw event moved to the queue)
// are checked with Auto Scaling like a notification, which confirms the open action; with the
// `Redrive != nil` check of lifecycleGroups removed, each of them completed the action with
// CONTINUE.
func TestRedrivenLetterNeverCompletesALifecycleAction(t *testing.T) {
	t.Parallel()
	carriers := map[string]func(t *testing.T, ev string) string{
		"FC destination record":        func(t *testing.T, ev string) string { return inFCRecord(t, ev) },
		"envelope naming no instance":  func(t *testing.T, ev string) string { return inEnvelope(t, ev, nil) },
		"raw event moved to the queue": func(t *testing.T, ev string) string { return ev },
	}
	i := 0
	for name, wrap := range carriers {
		id := fmt.Sprintf("i-bp1trustrdv%05d", i)
		i++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(id, zoneH)}, enis: poolENIs("rdv", zoneH, 1), mutate: withHooks}), bedOptions{})
			token := b.startAction(hookOut, id)
			letter := wrap(t, hookEvent(hookOut, token, "SCALE_OUT", []string{id}))
			if err := b.cloud.MNS.Deliver(context.Background(), dlq, []byte(letter)); err != nil {
				t.Fatal(err)
			}
			resp := b.mustInvoke(`{"action":"redrive"}`)
			if r := result(t, resp, id); r.Outcome != engine.OutcomeAttached {
				t.Errorf("%s: %s %s (%s), want attached", id, r.Outcome, r.Code, r.Reason)
			}
			if got := b.inUse(id); len(got) != 1 {
				t.Errorf("%s holds %v, want one pool ENI", id, got)
			}
			for _, api := range []string{"CompleteLifecycleAction", "RecordLifecycleActionHeartbeat"} {
				if n := b.calls("ess", api); n != 0 {
					t.Errorf("%d %s calls for a redriven letter, want none", n, api)
				}
			}
			if a, ok := b.cloud.ESS.LifecycleAction(token); !ok || a.Status != ess.StatusPending {
				t.Errorf("lifecycle action %+v, want it still %s", a, ess.StatusPending)
			}
			var rep handler.RedriveReport
			raw, _ := json.Marshal(resp.Report)
			if err := json.Unmarshal(raw, &rep); err != nil || rep.Redriven != 1 {
				t.Errorf("redrive report %s (%v), want the letter redriven", raw, err)
			}
		})
	}
}
