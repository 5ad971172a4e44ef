package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/ess"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/trigger"
	"github.com/enipool/enipool/localcloud/world"
)

// The tests of this file play an attacker who may only send to the work queue (and so, through
// the queue's own dead-lettering and FC's destinations, to the dead-letter queue): what such a
// sender asks for must never cut an instance's network, reach outside the deployment, or cost
// more than one message's worth. Each case was reproduced against 968df3d (issue 14).

const account = "1234567890123456"

// queued is body as the work queue's trigger hands it to the function: the CloudEvent the
// local cloud's event stream builds for an MNS message.
func queued(t testing.TB, body string) string {
	t.Helper()
	ev := trigger.MNSQueueMessage(region, account, "enipool-work", "MNS-enipool-work", "C6DB60D1574661357FA2272774450001",
		[]byte(body), time.Now(), time.Now())
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// inEnvelope is event as a dead letter holds it.
func inEnvelope(t testing.TB, event string, edit func(*deadletter.Envelope)) string {
	t.Helper()
	env := &deadletter.Envelope{Reason: "earlier failure", Verdict: "retry", Region: region, ENIsTried: []string{},
		Source: "mns:enipool-work", EventID: "M1", Event: []byte(event), Error: &deadletter.Error{Code: "Throttling"}}
	if edit != nil {
		edit(env)
	}
	b, err := deadletter.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// inFCRecord is event as Function Compute's destination record holds it.
func inFCRecord(t testing.TB, event string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"timestamp": 1714500000000, "requestContext": map[string]any{"requestId": "r-1", "functionArn": "acs:fc:cn-hangzhou:" + account + ":functions/enipool",
			"condition": "UnhandledInvocationError", "approximateInvokeCount": 3},
		"requestPayload": event, "responseContext": map[string]any{"statusCode": 200, "functionError": "UnhandledInvocationError"},
		"responsePayload": "",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// heldENI is a pool ENI InUse on instance.
func heldENI(id, instance string) world.ENI {
	return world.ENI{ID: id, VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
		Tags: map[string]string{"enipool": pool}, Status: "InUse", InstanceID: instance}
}

// ecsCalls counts the ECS calls the function made since mark.
func (b *bed) ecsCallsSince(mark int64, match func(record.Call) bool) int {
	n := 0
	for _, c := range b.cloud.Calls.Calls(record.Match("ecs", "")) {
		if c.Seq > mark && (match == nil || match(c)) {
			n++
		}
	}
	return n
}

func (b *bed) lastSeq() int64 {
	calls := b.cloud.Calls.Calls()
	if len(calls) == 0 {
		return 0
	}
	return calls[len(calls)-1].Seq
}

// An ad hoc action is taken only from a direct invocation or the timer: inside a work-queue
// message, a dead letter or an FC record it is refused, dead-lettered once with
// enipool.NotAllowed, and nothing is detached, reconciled or redriven (issue 14, 1).
func TestActionsOnlyFromTrustedChannels(t *testing.T) {
	t.Parallel()
	const a = "i-bp1trust00000001"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)},
		enis: append(poolENIs("spare", zoneH, 2), heldENI("eni-trustheld001", a))}), bedOptions{})
	actions := map[string]string{
		"detach":    fmt.Sprintf(`{"action":"detach","instanceId":%q}`, a),
		"detachENI": `{"action":"detach","networkInterfaceId":"eni-trustheld001"}`,
		"reconcile": `{"action":"reconcile"}`,
		"redrive":   `{"action":"redrive"}`,
		"status":    `{"action":"status"}`,
	}
	carriers := map[string]func(string) string{
		"work-queue message":       func(s string) string { return queued(t, s) },
		"dead letter":              func(s string) string { return inEnvelope(t, s, nil) },
		"dead letter in the queue": func(s string) string { return queued(t, inEnvelope(t, s, nil)) },
		"FC record":                func(s string) string { return inFCRecord(t, s) },
		"timer in a queue message": func(s string) string {
			return queued(t, fmt.Sprintf(`{"triggerTime":"2024-05-01T02:00:00Z","triggerName":"reconcile","payload":%q}`, s))
		},
		"batch of a queue delivery": func(s string) string { return "[" + queued(t, s) + "]" },
	}
	letters := 0
	for cname, wrap := range carriers {
		for aname, action := range actions {
			t.Run(cname+"/"+aname, func(t *testing.T) {
				mark := b.lastSeq()
				resp, _ := b.invoke(wrap(action))
				if len(resp.Results) != 1 || resp.Results[0].Code != cloud.CodeNotAllowed || resp.Results[0].Outcome != engine.OutcomeDeadLettered {
					t.Fatalf("results %+v, want one dead-lettered %s", resp.Results, cloud.CodeNotAllowed)
				}
				if resp.Report != nil {
					t.Errorf("the refused action reported %v", resp.Report)
				}
				if n := b.ecsCallsSince(mark, nil); n != 0 {
					t.Errorf("%d ECS calls for a refused action", n)
				}
				letters++
				if got := len(b.deadLetters()); got != letters {
					t.Errorf("%d dead letters, want %d", got, letters)
				}
			})
		}
	}
	if got := b.inUse(a); len(got) != 1 || got[0] != "eni-trustheld001" {
		t.Fatalf("instance holds %v, want its ENI untouched", got)
	}
	// The same detach invoked directly is an operator's: it is done.
	r := result(t, b.mustInvoke(actions["detach"]), a)
	if r.Outcome != engine.OutcomeDetached {
		t.Fatalf("direct detach: %s (%s), want detached", r.Outcome, r.Reason)
	}
}

// One payload asks for one action at most: 300 reconciles in one message make no ECS call
// (issue 14, 6: they made 1,209 in 2 s). A max above the configured one is cut to it: with
// twice as many instances as ENIPOOL_RECONCILE_MAX and more letters than ENIPOOL_REDRIVE_MAX,
// the reports cover exactly the configured number (with capAction removed, a reconcile asking
// for max 100000 looked at all 6 instances in one window, a redrive asking for 100 took all 4
// letters).
func TestOneActionPerInvocation(t *testing.T) {
	t.Parallel()
	const reconcileMax, redriveMax = 3, 2
	// Two full windows, so whichever the run's time picks holds exactly reconcileMax.
	insts, ids := instances("trustmax", 2*reconcileMax, zoneH)
	var enis []world.ENI
	for i, id := range ids {
		enis = append(enis, heldENI(fmt.Sprintf("eni-trustmax%04d", i), id))
	}
	b := newBed(t, newWorld(t, spec{instances: insts, enis: enis}),
		bedOptions{env: map[string]string{"ENIPOOL_RECONCILE_MAX": fmt.Sprint(reconcileMax), "ENIPOOL_REDRIVE_MAX": fmt.Sprint(redriveMax)}})
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"action":"reconcile"},`, 300), ",") + "]"
	mark := b.lastSeq()
	resp, _ := b.invoke(many)
	if n := b.ecsCallsSince(mark, nil); n != 0 {
		t.Fatalf("%d ECS calls for 300 refused reconciles", n)
	}
	for _, r := range resp.Results {
		if r.Code != cloud.CodeNotAllowed {
			t.Fatalf("result %+v, want %s", r, cloud.CodeNotAllowed)
		}
	}
	if got := len(b.deadLetters()); got != 1 {
		t.Fatalf("%d dead letters for one message, want 1", got)
	}
	ctx := context.Background()
	b.cloud.MNS.DeleteQueue(dlq) // the redrive below meets only the letters it puts there
	if err := b.cloud.MNS.CreateQueue(dlq); err != nil {
		t.Fatal(err)
	}

	var rep engine.ReconcileReport
	resp = b.mustInvoke(`{"action":"reconcile","max":100000}`)
	raw, _ := json.Marshal(resp.Report)
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Coverage == nil {
		t.Fatalf("report %s: %v", raw, err)
	}
	if rep.Instances != reconcileMax || rep.Coverage.Fleet != len(ids) || rep.Coverage.Windows != 2 {
		t.Fatalf("reconcile asking for max 100000 looked at %d of a fleet of %d in window %d of %d, want ENIPOOL_RECONCILE_MAX (%d) of %d in one of 2",
			rep.Instances, rep.Coverage.Fleet, rep.Coverage.Window, rep.Coverage.Windows, reconcileMax, len(ids))
	}

	// Letters of instances that already hold their ENI: each redrive of one is quick, and
	// deletes it.
	for _, id := range ids[:redriveMax+2] {
		if err := b.cloud.MNS.Deliver(ctx, dlq, []byte(inEnvelope(t, direct(id), nil))); err != nil {
			t.Fatal(err)
		}
	}
	var rr handler.RedriveReport
	raw, _ = json.Marshal(b.mustInvoke(`{"action":"redrive","max":100}`).Report)
	if err := json.Unmarshal(raw, &rr); err != nil {
		t.Fatal(err)
	}
	if rr.Received != redriveMax || rr.Redriven != redriveMax {
		t.Fatalf("redrive asking for max 100: %+v, want ENIPOOL_REDRIVE_MAX (%d) received and redriven", rr, redriveMax)
	}
	if got := len(b.cloud.MNS.Messages(dlq)); got != 2 {
		t.Fatalf("%d letters left in the queue, want the 2 past the redrive's max", got)
	}
}

// A release comes only from a channel that needs more than the right to send to the queue: a
// Stopped event or a scale-in inside a work-queue message or a dead letter detaches nothing.
func TestReleasesNotFromTheQueue(t *testing.T) {
	t.Parallel()
	const a = "i-bp1trust00000003"
	stopped := inst(a, zoneH)
	stopped.Status = "Stopped"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{stopped}, enis: []world.ENI{heldENI("eni-trustheld003", a)}}), bedOptions{})
	for name, payload := range map[string]string{
		"queue":            queued(t, stateEvent(a, "Stopped")),
		"dead letter":      inEnvelope(t, stateEvent(a, "Deleted"), nil),
		"queued FC record": queued(t, inFCRecord(t, stateEvent(a, "Stopped"))),
	} {
		r := result(t, b.mustInvoke(payload), a)
		if r.Outcome != engine.OutcomeSkipped || r.Code != cloud.CodeReleaseRefused {
			t.Errorf("%s: %s %s (%s), want skipped %s", name, r.Outcome, r.Code, r.Reason, cloud.CodeReleaseRefused)
		}
	}
	if got := b.inUse(a); len(got) != 1 {
		t.Fatalf("instance holds %v, want its ENI", got)
	}
	if n := b.calls("ecs", "DetachNetworkInterface"); n != 0 {
		t.Fatalf("%d detaches", n)
	}
	// From EventBridge, the same event releases: the instance is Stopped.
	if r := result(t, b.mustInvoke(stateEvent(a, "Stopped")), a); r.Outcome != engine.OutcomeDetached {
		t.Fatalf("EventBridge Stopped: %s (%s), want detached", r.Outcome, r.Reason)
	}
}

// essNotification is the notification a lifecycle hook whose NotificationArn is an MNS queue
// puts there: {userId, regionId, resourceArn, content}, base64-encoded (event/decode_test.go
// has the documented layout).
func essNotification(hook, token, transition string, ids []string) string {
	content, _ := json.Marshal(map[string]any{"lifecycleHookId": hook, "lifecycleActionToken": token, "lifecycleTransition": transition,
		"scalingGroupId": "asg-bp1test000001", "defaultResult": "CONTINUE", "instanceIds": ids})
	note := fmt.Sprintf(`{"userId":%q,"regionId":%q,"resourceArn":"acs:ess:%s:%s:scalinggroup/asg-bp1test000001","content":%s}`,
		account, region, region, account, content)
	return base64.StdEncoding.EncodeToString([]byte(note))
}

// A scale-in hook may not notify the work queue (anyone who may send to it could cut an
// instance's network): its notification there detaches nothing and completes nothing, and is
// dead-lettered once, saying what to change, while the hook waits out its timeout. On main it
// was skipped without a letter, so nothing told the operator why scale-ins waited.
func TestScaleInThroughTheWorkQueue(t *testing.T) {
	t.Parallel()
	ia, ea := holding("i-bp1trustqin00001", "eni-trustqin01")
	ib, eb := holding("i-bp1trustqin00002", "eni-trustqin02")
	ids := []string{ia.ID, ib.ID}
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{ia, ib}, enis: []world.ENI{ea, eb}, mutate: withHooks}), bedOptions{})
	token := b.startAction(hookIn, ids...)
	resp := b.mustInvoke(queued(t, essNotification(hookIn, token, "SCALE_IN", ids)))
	for _, id := range ids {
		if r := result(t, resp, id); r.Outcome != engine.OutcomeDeadLettered || r.Code != cloud.CodeReleaseRefused {
			t.Errorf("%s: %s %s (%s), want dead-lettered %s", id, r.Outcome, r.Code, r.Reason, cloud.CodeReleaseRefused)
		}
		if got := b.inUse(id); len(got) != 1 {
			t.Errorf("%s holds %v, want its ENI", id, got)
		}
	}
	if n := b.calls("ecs", "DetachNetworkInterface"); n != 0 {
		t.Errorf("%d detaches", n)
	}
	for _, api := range []string{"CompleteLifecycleAction", "RecordLifecycleActionHeartbeat"} {
		if n := b.calls("ess", api); n != 0 {
			t.Errorf("%d %s calls, want none", n, api)
		}
	}
	if a, ok := b.cloud.ESS.LifecycleAction(token); !ok || a.Status != ess.StatusPending {
		t.Errorf("lifecycle action %+v, want it left %s for its timeout", a, ess.StatusPending)
	}
	envs := b.deadLetters()
	if len(envs) != 1 {
		t.Fatalf("%d dead letters, want one for the message", len(envs))
	}
	msg := envs[0].Error.Message
	if envs[0].Error.Code != cloud.CodeReleaseRefused {
		t.Errorf("letter code %s, want %s", envs[0].Error.Code, cloud.CodeReleaseRefused)
	}
	for _, want := range []string{"scale-in", "work-queue message", hookIn, "default result (CONTINUE)",
		"point scale-in hooks at EventBridge", "eventbus/default", "only scale-out hooks may notify the work queue"} {
		if !strings.Contains(msg, want) {
			t.Errorf("letter says %q, want it to say %q", msg, want)
		}
	}
	if strings.Contains(msg, token) {
		t.Errorf("letter carries the lifecycle token: %q", msg)
	}
}

// An event naming another region or account is refused before any call: a message cannot
// steer the function to another deployment's fleet, nor starve this one's work (issue 14, 3).
func TestOwnRegionAndAccountOnly(t *testing.T) {
	t.Parallel()
	const a, c = "i-bp1trust00000004", "i-bp1trust00000005"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH), inst(c, zoneH)}, enis: poolENIs("p", zoneH, 2)}), bedOptions{})
	otherAccount := strings.ReplaceAll(running(a), "1234567890123456", "6543210987654321")
	ownID := func(ev string) string {
		return strings.Replace(ev, `"aliyunregionid"`, `"aliyunaccountid":"1234567890123456","aliyunregionid"`, 1)
	}
	tests := []struct{ name, payload string }{
		{"direct, another region", fmt.Sprintf(`{"instanceId":%q,"regionId":"cn-beijing"}`, a)},
		{"queued, another region", queued(t, fmt.Sprintf(`{"instanceId":%q,"regionId":"cn-beijing"}`, a))},
		{"queued, a region that does not exist", queued(t, fmt.Sprintf(`{"instanceId":%q,"regionId":"aa-aa"}`, a))},
		{"EventBridge event of another account", otherAccount},
		{"queued event of another account", queued(t, otherAccount)},
		// Every account field is compared, not the first valid one: on a0bb83d the matching
		// aliyunaccountid hid the subject's foreign account, and these attached.
		{"EventBridge event whose subject is another account's, beside this account's id", ownID(otherAccount)},
		{"queued event whose subject is another account's, beside this account's id", queued(t, ownID(otherAccount))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := b.lastSeq()
			r := result(t, b.mustInvoke(tt.payload), a)
			if r.Code != cloud.CodeForeign || r.Outcome != engine.OutcomeDeadLettered {
				t.Fatalf("%s %s (%s), want dead-lettered %s", r.Outcome, r.Code, r.Reason, cloud.CodeForeign)
			}
			if n := b.ecsCallsSince(mark, nil); n != 0 {
				t.Fatalf("%d ECS calls", n)
			}
		})
	}
	// A foreign element does not hold back a real one in the same batch.
	resp := b.mustInvoke(queued(t, fmt.Sprintf(`[{"instanceId":%q,"regionId":"aa-aa"},{"instanceId":%q}]`, a, c)))
	if r := result(t, resp, c); r.Outcome != engine.OutcomeAttached {
		t.Fatalf("the real instance: %s (%s)", r.Outcome, r.Reason)
	}
	if got := b.inUse(a); len(got) != 0 {
		t.Fatalf("the instance named with another region got %v", got)
	}
	if n := len(b.cloud.Calls.Calls(func(c record.Call) bool { return c.Params["RegionId"] != "" && c.Params["RegionId"] != region })); n != 0 {
		t.Fatalf("%d calls outside %s", n, region)
	}
}

// A poison letter in the dead-letter queue detaches nothing, however often it is redriven, and
// stops coming back after a few redrives (issue 14, 4: it detached again on every redrive).
func TestPoisonLetterQuarantined(t *testing.T) {
	t.Parallel()
	const a = "i-bp1trust00000006"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)},
		enis: []world.ENI{heldENI("eni-trustheld006", a)}}), bedOptions{})
	poison := fmt.Sprintf(`[{"action":"detach","instanceId":%q},{"bogus":1}]`, a)
	ctx := context.Background()
	// A short visibility timeout, so each redrive meets the letters kept by the one before.
	b.cloud.MNS.DeleteQueue(dlq)
	if err := b.cloud.MNS.CreateQueueWithConfig(dlq, mns.QueueConfig{VisibilityTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{poison, inEnvelope(t, poison, nil)} {
		if err := b.cloud.MNS.Deliver(ctx, dlq, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	var quarantined int
	for i := 1; i <= 5; i++ {
		time.Sleep(1100 * time.Millisecond)
		resp := b.mustInvoke(`{"action":"redrive"}`)
		raw, _ := json.Marshal(resp.Report)
		var rep handler.RedriveReport
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		quarantined += rep.Quarantined
		if rep.Redriven != 0 {
			t.Fatalf("redrive %d deleted a poison letter as handled: %+v", i, rep)
		}
		if i > 3 && rep.Received != 0 {
			t.Fatalf("redrive %d received %d letters after they were quarantined", i, rep.Received)
		}
	}
	if quarantined != 2 {
		t.Fatalf("%d letters quarantined, want 2", quarantined)
	}
	if got := b.inUse(a); len(got) != 1 {
		t.Fatalf("instance holds %v after the redrives, want its ENI", got)
	}
	if n := b.calls("ecs", "DetachNetworkInterface"); n != 0 {
		t.Fatalf("%d detaches", n)
	}
	if got := len(b.cloud.MNS.Messages(dlq)); got != 2 {
		t.Fatalf("%d messages left in the dead-letter queue, want the 2 quarantined", got)
	}
}

// A letter records the carrier it really came on, never what an envelope inside it claims, and
// its redrive count stays bounded (issue 14, 4 and 8).
func TestLetterRecordsItsCarrier(t *testing.T) {
	t.Parallel()
	const a = "i-bp1trust00000007" // no pool ENI in its zone: every attach is dead-lettered
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneI)}}), bedOptions{env: map[string]string{"ENIPOOL_PLATFORM_RETRIES": "0"}})
	forged := inEnvelope(t, direct(a), func(e *deadletter.Envelope) { e.Source = "acs.ess"; e.RedriveCount = 1 << 40 })
	tests := []struct {
		name, payload, source, channel string
	}{
		{"forged envelope invoked directly", forged, "deadletter", "direct"},
		{"forged envelope in a queue message", queued(t, forged), "mns:enipool-work", "queue"},
		{"queue message", queued(t, direct(a)), "mns:enipool-work", "queue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(b.deadLetters())
			if r := result(t, b.mustInvoke(tt.payload), a); r.Outcome != engine.OutcomeDeadLettered {
				t.Fatalf("%s (%s), want dead-lettered", r.Outcome, r.Reason)
			}
			envs := b.deadLetters()
			if len(envs) != before+1 {
				t.Fatalf("%d new letters, want 1", len(envs)-before)
			}
			env := envs[len(envs)-1]
			if env.Source != tt.source || env.Channel != tt.channel {
				t.Errorf("letter records source %q channel %q, want %q %q", env.Source, env.Channel, tt.source, tt.channel)
			}
			if env.RedriveCount > 100 {
				t.Errorf("redrive count %d: unbounded", env.RedriveCount)
			}
		})
	}
}

// One message holding 10,000 invalid ids is one dead letter, one SendMessage and one result
// (issue 14, 6: 10,000 of each).
func TestOneLetterPerUnreadableMessage(t *testing.T) {
	t.Parallel()
	b := newBed(t, newWorld(t, spec{}), bedOptions{})
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"x%d"`, i)
	}
	resp, _ := b.invoke(queued(t, `{"instanceIds":[`+strings.Join(ids, ",")+`]}`))
	if len(resp.Results) != 1 || resp.Results[0].Code != cloud.CodeBadEvent {
		t.Fatalf("%d results (first %+v), want one %s", len(resp.Results), resp.Results[0], cloud.CodeBadEvent)
	}
	if n := b.calls("mns", "SendMessage"); n != 1 {
		t.Fatalf("%d SendMessage calls, want 1", n)
	}
	envs := b.deadLetters()
	if len(envs) != 1 {
		t.Fatalf("%d letters, want 1", len(envs))
	}
	if !strings.Contains(envs[0].Error.Message, "9999 more invalid ids") {
		t.Errorf("letter says %q, want the count of invalid ids", envs[0].Error.Message)
	}
}

// A work-queue batch of more unreadable messages than ENIPOOL_MAX_DEAD_LETTERS loses none and
// does not fail the invocation: the messages past the cap share one letter holding their raw
// events as a JSON array, which a redrive reads back event by event. On main the 6 messages
// past the cap were "not dead-lettered" and the invocation failed, so the stream would retry
// the whole batch (the real event in it included) and send the same letters again.
func TestMoreUnreadableMessagesThanDeadLetters(t *testing.T) {
	t.Parallel()
	const maxLetters, bad = 4, 10
	in, e := holding("i-bp1trustcap00001", "eni-trustcap01")
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{in}, enis: []world.ENI{e}}),
		bedOptions{env: map[string]string{"ENIPOOL_MAX_DEAD_LETTERS": fmt.Sprint(maxLetters)}})
	var batch []string
	for i := range bad {
		batch = append(batch, queued(t, fmt.Sprintf("not an event, unreadable-%02d", i)))
	}
	batch = append(batch, queued(t, direct(in.ID)))
	resp, ferr := b.invoke("[" + strings.Join(batch, ",") + "]")
	if ferr != nil {
		t.Fatalf("the invocation failed (the stream would retry the whole batch): %s", ferr.ErrorMessage)
	}
	if r := result(t, resp, in.ID); r.Outcome != engine.OutcomeAlreadyAttached {
		t.Errorf("the real event: %s (%s)", r.Outcome, r.Reason)
	}
	n := 0
	for _, r := range resp.Results {
		if r.InstanceID == in.ID {
			continue
		}
		n++
		if r.Outcome != engine.OutcomeDeadLettered || r.DeadLetterID == "" || r.Code != cloud.CodeBadEvent {
			t.Errorf("result %s %s letter %q (%s), want dead-lettered %s in a letter", r.Outcome, r.Code, r.DeadLetterID, r.Reason, cloud.CodeBadEvent)
		}
	}
	if n != bad {
		t.Errorf("%d results for the unreadable messages, want %d", n, bad)
	}
	envs := b.deadLetters()
	if len(envs) != maxLetters {
		t.Fatalf("%d dead letters, want ENIPOOL_MAX_DEAD_LETTERS (%d)", len(envs), maxLetters)
	}
	for i := range bad {
		mark, found := fmt.Sprintf("unreadable-%02d", i), 0
		for _, env := range envs {
			found += strings.Count(string(env.Event), mark)
		}
		if found != 1 {
			t.Errorf("message %s is in %d letters, want 1", mark, found)
		}
	}
	// A redrive reads every message back out of the letters, the folded one included.
	var rep handler.RedriveReport
	raw, _ := json.Marshal(b.mustInvoke(`{"action":"redrive"}`).Report)
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Received != maxLetters || rep.Unreadable != bad {
		t.Errorf("redrive %+v, want %d letters received holding %d unreadable events", rep, maxLetters, bad)
	}
}
