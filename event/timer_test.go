package event_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/events"

	"github.com/enipool/enipool/event"
)

// timerEvent builds FC's timer wrapper with the SDK's own type, so the shape is the
// platform's, not a guess.
func timerEvent(t *testing.T, payload *string) string {
	t.Helper()
	when, name := "2024-05-01T10:05:00Z", "reconcile-timer"
	b, err := json.Marshal(events.TimerEvent{TriggerTime: &when, TriggerName: &name, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDecodeTimer: fails on ca38816, where every timer event was refused with
// "unsupported event: object with keys [payload triggerName triggerTime]", so the
// reconcile timer dead-lettered every run and reconcile never ran.
func TestDecodeTimer(t *testing.T) {
	str := func(s string) *string { return &s }
	when := time.Date(2024, 5, 1, 10, 5, 0, 0, time.UTC)
	tests := []struct {
		name    string
		payload *string
		kind    event.Kind
		action  string
		inst    string
		err     error
		errText string
	}{
		{name: "reconcile", payload: str(`{"action":"reconcile"}`), kind: event.KindAction, action: event.ActionReconcile},
		{name: "reconcile of a pool, bounded", payload: str(`{"action":"reconcile","pool":"web","max":50}`), kind: event.KindAction, action: event.ActionReconcile},
		{name: "redrive", payload: str(`{"action":"redrive","max":5}`), kind: event.KindAction, action: event.ActionRedrive},
		{name: "status", payload: str(`{"action":"status"}`), kind: event.KindAction, action: event.ActionStatus},
		{name: "detach", payload: str(`{"action":"detach","instanceId":"` + i1 + `"}`), kind: event.KindAction, action: event.ActionDetach, inst: i1},
		{name: "direct", payload: str(`{"instanceId":"` + i2 + `"}`), kind: event.KindDirect, inst: i2},
		{name: "payload with spaces", payload: str(" {\"action\":\"reconcile\"}\n"), kind: event.KindAction, action: event.ActionReconcile},
		{name: "plain text", payload: str("TestPayload"), err: event.ErrUnsupported, errText: "timer payload"},
		{name: "empty", payload: str(""), err: event.ErrUnsupported, errText: "timer payload"},
		{name: "none", payload: nil, err: event.ErrUnsupported, errText: "timer payload"},
		{name: "unknown action", payload: str(`{"action":"explode"}`), err: event.ErrUnsupported, errText: "explode"},
		{name: "not an event", payload: str(`{"hello":1}`), err: event.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := timerEvent(t, tt.payload)
			reqs := event.Decode([]byte(in), event.Options{})
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
			}
			r := reqs[0]
			if string(r.Raw) != in {
				t.Errorf("Raw = %s, want the whole timer event %s", r.Raw, in)
			}
			if r.Source != "timer:reconcile-timer" {
				t.Errorf("Source = %q, want timer:reconcile-timer", r.Source)
			}
			if tt.err != nil {
				if !errors.Is(r.Err, tt.err) || !strings.Contains(r.Err.Error(), tt.errText) {
					t.Fatalf("Err = %v, want %v containing %q", r.Err, tt.err, tt.errText)
				}
				return
			}
			if r.Err != nil {
				t.Fatalf("Err = %v", r.Err)
			}
			if r.Kind != tt.kind || r.InstanceID != tt.inst {
				t.Errorf("Kind %q instance %q, want %q %q", r.Kind, r.InstanceID, tt.kind, tt.inst)
			}
			if tt.action != "" && (r.Action == nil || r.Action.Name != tt.action) {
				t.Errorf("Action = %+v, want %s", r.Action, tt.action)
			}
			if !r.TriggerTime.Equal(when) {
				t.Errorf("TriggerTime = %v, want %v", r.TriggerTime, when)
			}
		})
	}
}

// TestDecodePublishedTimerSample decodes the sample FC publishes (event/testdata/README.md
// names its source): its payload is plain text, so it is refused with the whole event kept
// for the dead letter. Fails on ca38816 the same way (a refusal naming the keys, no source).
func TestDecodePublishedTimerSample(t *testing.T) {
	in, err := os.ReadFile("testdata/timer-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	var te events.TimerEvent
	if err := json.Unmarshal(in, &te); err != nil || te.Payload == nil || te.TriggerName == nil {
		t.Fatalf("the sample does not fit events.TimerEvent: %v", err)
	}
	reqs := event.Decode(in, event.Options{})
	if len(reqs) != 1 || !errors.Is(reqs[0].Err, event.ErrUnsupported) || !strings.Contains(reqs[0].Err.Error(), `"TestPayload"`) {
		t.Fatalf("got %+v, want one refusal naming the payload", reqs)
	}
	if string(reqs[0].Raw) != string(in) || reqs[0].Source != "timer:TestTimer" {
		t.Errorf("Raw %q Source %q: want the whole event and timer:TestTimer", reqs[0].Raw, reqs[0].Source)
	}
}
