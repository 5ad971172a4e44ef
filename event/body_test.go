package event_test

import (
	"testing"

	"github.com/enipool/enipool/event"
)

// The work queue's trigger delivers bodies as enqueued (IsBase64Decode false in s.yaml): plain
// JSON from redrives and direct producers, base64 from ESS. One batch may hold both, and
// every body decodes whichever form it takes.
func TestWorkQueueBodiesEitherForm(t *testing.T) {
	d1, d2 := `{"instanceId":"`+i1+`"}`, `{"instanceId":"`+i2+`"}`
	batch := "[" + mnsEvent("M1", quote(d1)) + "," + mnsEvent("M2", quote(b64(d2))) + "," + mnsEvent("M3", quote(b64(" "+d1+"\n"))) + "]"
	reqs := event.Decode([]byte(batch), event.Options{})
	want := []struct{ id, msg string }{{i1, "M1"}, {i2, "M2"}, {i1, "M3"}}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i, w := range want {
		r := reqs[i]
		if r.Err != nil || r.Kind != event.KindDirect || r.InstanceID != w.id || r.EventID != w.msg || r.Source != mq {
			t.Errorf("request %d = %+v (err %v), want direct %s from %s", i, r, r.Err, w.id, w.msg)
		}
	}
}
