package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
)

func TestPattern(t *testing.T) {
	ecs := `{"source":"acs.ecs","type":"ecs:Instance:StateChange","subject":"acs:ecs:cn-hangzhou:1:instance/i-1",
		"data":{"state":"Running","n":5,"ip":"10.0.0.7","tags":["a","b"]}}`
	tests := []struct {
		pattern string
		event   string
		want    bool
	}{
		// The forms s.yaml uses.
		{`{"source":["acs.ecs"],"type":["ecs:Instance:StateChange"]}`, ecs, true},
		{`{"source":["acs.ess"],"type":["ess:LifecycleHook:ScaleOut","ess:LifecycleHook:ScaleIn"]}`, ecs, false},
		{`{"source":["acs.ess"],"type":["ess:LifecycleHook:ScaleOut","ess:LifecycleHook:ScaleIn"]}`,
			`{"source":"acs.ess","type":"ess:LifecycleHook:ScaleIn"}`, true},
		{`{"source":["acs.ess"],"type":["ess:LifecycleHook:ScaleOut","ess:LifecycleHook:ScaleIn"]}`,
			`{"source":"acs.ess","type":"ess:ScalingActivity:ScaleOutSuccess"}`, false},
		{`{"source":["MNS-enipool-work-queue"]}`, `{"source":"MNS-enipool-work-queue"}`, true},
		// The other documented operators.
		{`{"data":{"state":["Running"]}}`, ecs, true},
		{`{"data":{"state":["running"]}}`, ecs, false}, // case-sensitive
		{`{"source":[{"prefix":"acs."}]}`, ecs, true},
		{`{"subject":[{"suffix":"/i-1"}]}`, ecs, true},
		{`{"type":[{"contains":"State"}]}`, ecs, true},
		{`{"data":{"state":[{"anything-but":"Running"}]}}`, ecs, false},
		{`{"data":{"state":[{"anything-but":["Stopped","Deleted"]}]}}`, ecs, true},
		{`{"data":{"state":[{"anything-but":{"prefix":"Run"}}]}}`, ecs, false},
		{`{"data":{"n":[{"numeric":[">",0,"<=",5]}]}}`, ecs, true},
		{`{"data":{"n":[{"numeric":[">",5]}]}}`, ecs, false},
		{`{"data":{"n":[5]}}`, ecs, true},
		{`{"data":{"ip":[{"cidr":"10.0.0.0/24"}]}}`, ecs, true},
		{`{"data":{"ip":[{"cidr":"10.0.1.0/24"}]}}`, ecs, false},
		{`{"data":{"state":[{"exists":true}]}}`, ecs, true},
		{`{"data":{"nope":[{"exists":false}]}}`, ecs, true},
		{`{"data":{"nope":["x"]}}`, ecs, false},
		{`{"data":{"tags":["b"]}}`, ecs, true}, // an array matches through any element
		{`{"data":{"state":["Stopped","Running"]},"source":["acs.ecs"]}`, ecs, true},
		{`{"data":{"state":["Stopped"]},"source":["acs.ecs"]}`, ecs, false}, // AND across fields
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.MatchJSON([]byte(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"source":"acs.ecs"}`, `{"source":[{"prefix":1}]}`, `{"source":[{"wildcard":"a*"}]}`,
		`{"n":[{"numeric":[">"]}]}`, `{"ip":[{"cidr":"nope"}]}`} {
		if _, err := ParsePattern(bad); !errors.Is(err, ErrBadPattern) {
			t.Errorf("ParsePattern(%s) = %v, want ErrBadPattern", bad, err)
		}
	}
}

// busFunction starts the echo function with s.yaml's two default-bus rules.
func busFunction(t *testing.T, fail string, dest fcrt.Destination, o Options) (*Triggers, *fcrt.Runtime, string) {
	t.Helper()
	spec := project(t)
	rt, dir := echoFunction(t, spec, fail, dest)
	o.Function, o.Target, o.AccountID = spec, rt, testAccount
	o.Only = []string{"ecs-state-change", "ess-lifecycle-hook"}
	tr, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr, rt, dir
}

func lifecycle(transition string, instances ...string) Lifecycle {
	return Lifecycle{
		LifecycleHookID: "ash-1", LifecycleActionToken: "9C2E9DA7-F794-449A-ACF6-CEE24444F7BB",
		LifecycleHookName: "enipool-attach", ScalingGroupID: "asg-1", ScalingGroupName: "web",
		LifecycleTransition: transition, DefaultResult: "CONTINUE", RequestID: "req-1",
		ScalingActivityID: "asa-1", InstanceIDs: instances,
	}
}

// TestBusMatchesPublishedSample publishes ECS and Auto Scaling events on the default bus: only
// those s.yaml's patterns match reach the function, asynchronously, each with the envelope of
// EventBridge's "Event overview" sample and the data keys of the ECS and ESS notifications.
func TestBusMatchesPublishedSample(t *testing.T) {
	tr, rt, dir := busFunction(t, "", nil, Options{Clock: NewScaledClock(time.Now(), 1000)})
	envelope := decode(t, readSample(t, "eventbridge-event.json")).(map[string]any)
	ecsData := decode(t, readSample(t, "ecs-notification.json")).(map[string]any)["content"]
	essData := decode(t, readSample(t, "ess-lifecycle-notification.json")).(map[string]any)["content"]
	now := time.Now()
	other := ECSStateChange("cn-hangzhou", testAccount, "i-x", "Running", now)
	other.Source = "acs.oss"
	activity := ESSLifecycle("cn-hangzhou", testAccount, lifecycle("SCALE_OUT", "i-3"), now)
	activity.Type = "ess:ScalingActivity:ScaleOutSuccess"
	events := []struct {
		ev   CloudEvent
		want int
		data any
	}{
		{ECSStateChange("cn-hangzhou", testAccount, "i-1", "Running", now), 1, ecsData},
		{ESSLifecycle("cn-hangzhou", testAccount, lifecycle("SCALE_OUT", "i-1", "i-2"), now), 1, essData},
		{ESSLifecycle("cn-hangzhou", testAccount, lifecycle("SCALE_IN", "i-2"), now), 1, essData},
		{other, 0, nil},
		{activity, 0, nil},
	}
	wantRuns := 0
	for _, e := range events {
		n, err := tr.Publish(e.ev)
		if err != nil {
			t.Fatal(err)
		}
		if n != e.want {
			t.Errorf("%s %s matched %d rules, want %d", e.ev.Source, e.ev.Type, n, e.want)
		}
		wantRuns += e.want
	}
	ctx := ctxT(t)
	if err := tr.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	got := received(t, dir)
	if len(got) != wantRuns || len(rt.AsyncTasks()) != wantRuns {
		t.Fatalf("the function ran %d times (%d async tasks), want %d", len(got), len(rt.AsyncTasks()), wantRuns)
	}
	for _, b := range got {
		ev := decode(t, b).(map[string]any)
		data := ev["data"]
		ev["data"], envelope["data"] = map[string]any{}, map[string]any{}
		if d := shapeDiff("$", envelope, ev); d != "" {
			t.Errorf("envelope of %s\ndiffers from EventBridge's sample: %s", b, d)
		}
		want := ecsData
		if strings.HasPrefix(ev["type"].(string), "ess:") {
			want = essData
		}
		if d := shapeDiff("$.data", want, data); d != "" {
			t.Errorf("data of %s\ndiffers from the notification sample: %s", b, d)
		}
		if pt, _ := ev["aliyunpublishtime"].(string); !strings.HasSuffix(pt, "PRC") {
			t.Errorf("aliyunpublishtime %q is not in the sample's PRC form", pt)
		}
	}
}

// TestBusAsyncRetriesAndOnFailure: an event the function keeps failing is retried
// maxAsyncRetryAttempts times and then reaches the onFailure destination with the event as
// requestPayload, as FC does for asynchronous invocations.
func TestBusAsyncRetriesAndOnFailure(t *testing.T) {
	dest := &recorder{}
	tr, rt, dir := busFunction(t, `"Stopped"`, dest, Options{Clock: NewScaledClock(time.Now(), 1000)})
	stopped := ECSStateChange("cn-hangzhou", testAccount, "i-9", "Stopped", time.Now())
	for _, ev := range []CloudEvent{ECSStateChange("cn-hangzhou", testAccount, "i-1", "Running", time.Now()), stopped} {
		if _, err := tr.Publish(ev); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t)
	if err := tr.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(received(t, dir)); n != 1+3 {
		t.Errorf("the function ran %d times, want 1 + 3 (2 retries from s.yaml)", n)
	}
	if dest.len() != 1 {
		t.Fatalf("onFailure got %d records, want 1", dest.len())
	}
	var rec fcrt.DestinationRecord
	if err := json.Unmarshal(dest.bodies[0], &rec); err != nil {
		t.Fatal(err)
	}
	var ev CloudEvent
	if err := json.Unmarshal([]byte(rec.RequestPayload), &ev); err != nil || ev.ID != stopped.ID {
		t.Errorf("record's requestPayload %q is not the failed event (%v)", rec.RequestPayload, err)
	}
	if rec.RequestContext.Condition != fcrt.ConditionRetriesExhausted || rec.RequestContext.ApproximateInvokeCount != 3 {
		t.Errorf("record %+v", rec.RequestContext)
	}
}

// TestBusAtLeastOnce: with the knobs on, every event arrives at least once, some twice, not
// in the order published; the same seed gives the same run.
func TestBusAtLeastOnce(t *testing.T) {
	const n = 30
	run := func(seed uint64) (order []string, s Stats) {
		clock := NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		tr, rt, dir := busFunction(t, "", nil, Options{Clock: clock, Seed: seed,
			Bus: BusOptions{MinDelay: 100 * time.Millisecond, MaxDelay: 3 * time.Second, DuplicateRate: 0.3}})
		for i := range n {
			if _, err := tr.Publish(ECSStateChange("cn-hangzhou", testAccount, fmt.Sprintf("i-%03d", i), "Running", clock.Now())); err != nil {
				t.Fatal(err)
			}
		}
		total := tr.Stats().Matched + tr.Stats().Duplicates
		ctx := ctxT(t)
		if err := clock.WaitForSleepers(ctx, total); err != nil {
			t.Fatal(err)
		}
		// Step through virtual time so that deliveries happen in the order of their delays.
		for clock.Sleepers() > 0 {
			clock.Advance(50 * time.Millisecond)
			want := total - clock.Sleepers()
			waitFor(t, "the woken deliveries", func() bool { return len(tr.Deliveries()) == want })
		}
		if err := rt.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := len(received(t, dir)); got != total {
			t.Fatalf("the function ran %d times, want %d", got, total)
		}
		// Deliveries woken by one step race each other: order by step, then by id.
		for _, d := range tr.Deliveries() {
			var ev CloudEvent
			if err := json.Unmarshal(d.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			order = append(order, d.Time.Format("05.000")+"@"+strings.TrimPrefix(ev.Subject, "acs:ecs:cn-hangzhou:"+testAccount+":instance/"))
		}
		slices.Sort(order)
		return order, tr.Stats()
	}
	order, stats := run(7)
	seen := map[string]int{}
	var ids []string
	for _, o := range order {
		_, id, _ := strings.Cut(o, "@")
		seen[id]++
		ids = append(ids, id)
	}
	if len(seen) != n {
		t.Errorf("%d distinct events arrived, want all %d", len(seen), n)
	}
	if stats.Duplicates == 0 || len(order) != n+stats.Duplicates {
		t.Errorf("duplicates %d, deliveries %d: want some duplicates, and %d + duplicates deliveries", stats.Duplicates, len(order), n)
	}
	if slices.IsSorted(ids) {
		t.Error("events arrived in the order published; want the delays to reorder them")
	}
	again, stats2 := run(7)
	if !slices.Equal(order, again) || stats2.Duplicates != stats.Duplicates {
		t.Errorf("the same seed gave another run:\n%v\n%v", order, again)
	}
}

// TestBusSyncRuleRetries: a rule with asyncInvocationType false pushes synchronously and, on a
// function error, retries with EventBridge's default BACKOFF_RETRY (3 retries).
func TestBusSyncRuleRetries(t *testing.T) {
	spec := project(t)
	for i, tr := range spec.Triggers {
		if tr.Name == "ecs-state-change" {
			eb := *tr.EventBridge
			eb.AsyncInvocationType = false
			spec.Triggers[i].EventBridge = &eb
		}
	}
	rt, dir := echoFunction(t, spec, `"Stopped"`, nil)
	tr, err := Start(Options{Function: spec, Target: rt, AccountID: testAccount, Clock: NewScaledClock(time.Now(), 1000),
		Only: []string{"ecs-state-change"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, state := range []string{"Running", "Stopped"} {
		if _, err := tr.Publish(ECSStateChange("cn-hangzhou", testAccount, "i-1", state, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Idle(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(rt.AsyncTasks()); n != 0 {
		t.Errorf("%d async tasks, want none", n)
	}
	var failed, ok int
	for _, d := range tr.Deliveries() {
		if d.Async {
			t.Errorf("delivery %+v is async", d)
		}
		if d.Err != "" {
			failed++
		} else {
			ok++
		}
	}
	if failed != 4 || ok != 1 || len(received(t, dir)) != 5 {
		t.Errorf("%d failed and %d ok pushes (%d runs), want 4 (1 + 3 retries) and 1", failed, ok, len(received(t, dir)))
	}
}
