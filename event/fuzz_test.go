package event_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/enipool/enipool/event"
)

// FuzzDecode checks Decode's promises on any input: it returns, never
// panics, never returns zero Requests, keeps Raw, and every Request either
// carries an Err wrapping a sentinel or has a known Kind and valid ids.
func FuzzDecode(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no sample events: %v", err)
	}
	for _, name := range names {
		f.Add(readEvent(f, filepath.Base(name)))
	}
	direct := `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`
	for _, s := range []string{
		"", " ", "null", "[]", "[[]]", `""`, `"\"\""`, "[1,\"2\",{}]", "{}", `{"type":null}`,
		direct, "[" + direct + "," + quote(direct) + "]", quote(quote(quote(direct))),
		mnsEvent("M1", quote(direct)), mnsEvent("M1", quote(b64(direct))), mnsEvent("M1", quote(b64(b64(direct)))),
		mnsEvent("M1", quote(mnsEvent("M2", quote(direct)))), mnsEvent("M1", `{}`), mnsEvent("M1", `"TEST"`),
		`{"requestId":"r","messageId":"m","messageBody":` + quote(direct) + `}`,
		`{"requestContext":{},"requestPayload":` + quote(direct) + `}`,
		`{"requestContext":{},"requestPayload":{"requestContext":{},"requestPayload":"{}"}}`,
		`{"type":"enipool.deadletter","version":1,"event":` + quote(direct) + `}`,
		`{"type":"enipool.deadletter","version":1,"eventBase64":"/w=="}`,
		`{"action":"detach","networkInterfaceId":"eni-bp1x","max":1e3}`,
		`{"instanceId":"i-1","instanceId":"i-2"}`, `{"a\u0000":1,"a\u0000":2}`,
		"{\"instanceId\":\"i-\xff\"}", "{\"x\":\"\x00\"}", strings.Repeat("[", 100), strings.Repeat(`{"a":`, 70),
		hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `["`+i1+`","`+i1+`","bad"]`)),
		hookEvent("ess:LifecycleHook:Test", `null`), notification,
		ecsEvent(`"subject":"acs:ecs:cn-hangzhou:1:instance/`+i1+`",`, `{"state":"running","content":{"state":"x"}}`),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		reqs := event.Decode(in, event.Options{MaxEvents: 100})
		checkInvariants(t, in, reqs)
		if len(reqs) > 100 {
			t.Fatalf("%d requests exceed MaxEvents", len(reqs))
		}
	})
}
