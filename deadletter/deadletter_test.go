package deadletter_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/enipool/enipool/deadletter"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// withDerived returns e as Parse(Marshal(e)) should return it.
func withDerived(e deadletter.Envelope) deadletter.Envelope {
	e.EventSize, e.EventSHA256, e.EventTruncated = len(e.Event), sum(e.Event), false
	e.Time = e.Time.UTC()
	return e
}

func full() deadletter.Envelope {
	return deadletter.Envelope{
		Reason:            "AttachNetworkInterface kept failing with ServiceUnavailable; check ECS health, then redrive this message",
		Verdict:           "retries-exhausted",
		InstanceID:        "i-bp1demo00000000001",
		Region:            "cn-hangzhou",
		Pool:              "web",
		Zone:              "cn-hangzhou-h",
		VPCID:             "vpc-bp1demo0000000001",
		Error:             &deadletter.Error{Service: "ecs", API: "AttachNetworkInterface", Code: "ServiceUnavailable", Message: "The request has failed due to a temporary failure of the server.", HTTPStatus: 503, RequestID: "473469C7-AA6F-4DC5-B3DB-A3DC0DE3C83E"},
		Attempts:          5,
		ENIsTried:         []string{"eni-bp1demo0000000001", "eni-bp1demo0000000002"},
		FunctionName:      "enipool",
		FunctionRequestID: "1-6631a2b4-0f3c2d1e4b5a69788a9b0c1d",
		FCRetryCount:      2,
		RedriveCount:      1,
		Time:              time.Date(2024, 5, 1, 2, 0, 31, 123456789, time.UTC),
		Source:            "acs.ecs",
		EventID:           "7a1c5e2b-3f4d-4c6e-9b8a-0d1e2f3a4b01",
		Event:             []byte(`{"instanceId":"i-bp1demo00000000001"}`),
	}
}

func TestRoundTrip(t *testing.T) {
	with := func(f func(*deadletter.Envelope)) deadletter.Envelope {
		e := full()
		f(&e)
		return e
	}
	cases := []struct {
		name   string
		e      deadletter.Envelope
		base64 bool // the event must travel as eventBase64
	}{
		{name: "zero", e: deadletter.Envelope{}},
		{name: "full", e: full()},
		{name: "nil event", e: with(func(e *deadletter.Envelope) { e.Event = nil })},
		{name: "empty event", e: with(func(e *deadletter.Envelope) { e.Event = []byte{} })},
		{name: "empty slices", e: with(func(e *deadletter.Envelope) { e.ENIsTried = []string{}; e.Error = &deadletter.Error{} })},
		{name: "invalid UTF-8", e: with(func(e *deadletter.Envelope) { e.Event = []byte("{\"a\":\"\xff\xfe\"}") }), base64: true},
		{name: "NUL bytes", e: with(func(e *deadletter.Envelope) { e.Event = []byte("\x00{\"a\":\"\x00\"}\x00") })},
		{name: "escapes", e: with(func(e *deadletter.Envelope) { e.Event = []byte("<&>\"\\\u2028\u2029\t\n\x1f\x7f é 漢字 🙂") })},
		{name: "binary", e: with(func(e *deadletter.Envelope) { e.Event = []byte{0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28} }), base64: true},
		{name: "local time", e: with(func(e *deadletter.Envelope) {
			e.Time = time.Date(2024, 5, 1, 10, 0, 31, 0, time.FixedZone("CST", 8*3600))
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := deadletter.Marshal(&tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(b, []byte(`"eventBase64"`)); got != tc.base64 {
				t.Errorf("eventBase64 present = %v, want %v: %s", got, tc.base64, b)
			}
			if !deadletter.IsEnvelope(b) {
				t.Errorf("IsEnvelope(Marshal) = false")
			}
			got, err := deadletter.Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, b)
			}
			want := withDerived(tc.e)
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Parse(Marshal(e)):\n got %+v\nwant %+v", *got, want)
			}
			ev, err := got.OriginalEvent()
			if err != nil || !bytes.Equal(ev, tc.e.Event) {
				t.Errorf("OriginalEvent = %q, %v; want %q", ev, err, tc.e.Event)
			}
			again, err := deadletter.Marshal(got)
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("Marshal(Parse(b)) != b:\n%s\n%s", again, b)
			}
		})
	}
}

func TestWireFormat(t *testing.T) {
	e := full()
	b, err := deadletter.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "enipool.deadletter", "version": 1.0, "reason": e.Reason, "action": "retries-exhausted",
		"instanceId": "i-bp1demo00000000001", "region": "cn-hangzhou", "pool": "web", "zone": "cn-hangzhou-h",
		"vpcId": "vpc-bp1demo0000000001",
		"error": map[string]any{"service": "ecs", "api": "AttachNetworkInterface", "code": "ServiceUnavailable",
			"message": e.Error.Message, "httpStatus": 503.0, "requestId": "473469C7-AA6F-4DC5-B3DB-A3DC0DE3C83E"},
		"attempts": 5.0, "enisTried": []any{"eni-bp1demo0000000001", "eni-bp1demo0000000002"},
		"functionName": "enipool", "functionRequestId": "1-6631a2b4-0f3c2d1e4b5a69788a9b0c1d",
		"fcRetryCount": 2.0, "redriveCount": 1.0, "time": "2024-05-01T02:00:31.123456789Z",
		"source": "acs.ecs", "eventId": "7a1c5e2b-3f4d-4c6e-9b8a-0d1e2f3a4b01",
		"event": string(e.Event), "eventSize": float64(len(e.Event)), "eventSha256": sum(e.Event), "eventTruncated": false,
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("wire:\n got %v\nwant %v", m, want)
	}
	if !bytes.HasPrefix(b, []byte(`{"type":"enipool.deadletter","version":1,`)) {
		t.Errorf("envelope does not start with type and version: %.60s", b)
	}
}

func TestMarshalTruncates(t *testing.T) {
	textEvent := []byte(`{"data":"` + strings.Repeat(`é"漢<🙂\n`, 20000) + `"}`)
	binEvent := bytes.Repeat([]byte{0xff, 0x00, 'a'}, 50000)
	cases := []struct {
		name  string
		event []byte
		limit int
	}{
		{"text 64KiB", textEvent, deadletter.MaxMessageBytes},
		{"binary 64KiB", binEvent, deadletter.MaxMessageBytes},
		{"text small queue", textEvent, 2048},
		{"binary small queue", binEvent, 2048},
		{"6MiB", bytes.Repeat([]byte("x"), 6<<20), deadletter.MaxMessageBytes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := full()
			e.Event = tc.event
			b, err := deadletter.MarshalLimit(&e, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tc.limit {
				t.Fatalf("envelope of %d bytes exceeds %d", len(b), tc.limit)
			}
			if len(b) < tc.limit-16 {
				t.Errorf("envelope of %d bytes wastes room under %d", len(b), tc.limit)
			}
			got, err := deadletter.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.EventTruncated || got.EventSize != len(tc.event) || got.EventSHA256 != sum(tc.event) {
				t.Errorf("truncated=%v size=%d sha=%s; want true %d %s", got.EventTruncated, got.EventSize, got.EventSHA256, len(tc.event), sum(tc.event))
			}
			if !bytes.HasPrefix(tc.event, got.Event) || len(got.Event) == 0 {
				t.Errorf("kept %d bytes that are not a prefix of the event", len(got.Event))
			}
			if utf8.Valid(tc.event) && !utf8.Valid(got.Event) {
				t.Errorf("text event cut inside a rune")
			}
			// Every other field survives.
			rest, want := *got, withDerived(e)
			rest.Event, rest.EventSize, rest.EventSHA256, rest.EventTruncated = nil, 0, "", false
			want.Event, want.EventSize, want.EventSHA256 = nil, 0, ""
			if !reflect.DeepEqual(rest, want) {
				t.Errorf("fields changed:\n got %+v\nwant %+v", rest, want)
			}
			if _, err := got.OriginalEvent(); !errors.Is(err, deadletter.ErrTruncated) {
				t.Errorf("OriginalEvent error = %v, want ErrTruncated", err)
			}
			again, err := deadletter.MarshalLimit(got, tc.limit)
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("re-marshal of a truncated envelope changed it: %v", err)
			}
		})
	}
}

func TestMarshalLimitBoundary(t *testing.T) {
	e := full()
	e.Event = nil
	base, err := deadletter.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	// Grow an ASCII event until the envelope is exactly the limit: it must
	// not be truncated.
	n := deadletter.MaxMessageBytes - len(base) - len(`,"event":""`) - 4
	var b []byte
	for range 5 {
		e.Event = bytes.Repeat([]byte("a"), n)
		if b, err = deadletter.Marshal(&e); err != nil {
			t.Fatal(err)
		}
		if len(b) == deadletter.MaxMessageBytes && !bytes.Contains(b, []byte(`"eventTruncated":true`)) {
			break
		}
		n += deadletter.MaxMessageBytes - len(b)
	}
	if len(b) != deadletter.MaxMessageBytes || bytes.Contains(b, []byte(`"eventTruncated":true`)) {
		t.Fatalf("no exact fit: len %d, truncated %v", len(b), bytes.Contains(b, []byte(`"eventTruncated":true`)))
	}
	e.Event = append(e.Event, 'a')
	b, err = deadletter.Marshal(&e)
	if err != nil || len(b) > deadletter.MaxMessageBytes || !bytes.Contains(b, []byte(`"eventTruncated":true`)) {
		t.Fatalf("one byte over: len %d, err %v", len(b), err)
	}
}

func TestMarshalErrors(t *testing.T) {
	huge := full()
	huge.Reason = strings.Repeat("r", deadletter.MaxMessageBytes)
	badTrunc := full()
	badTrunc.EventTruncated = true
	farTime := full()
	farTime.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		e    *deadletter.Envelope
		want error
	}{
		{"nil", nil, deadletter.ErrInvalid},
		{"other fields too large", &huge, deadletter.ErrTooLarge},
		{"truncated without size", &badTrunc, deadletter.ErrInvalid},
		{"year 10000", &farTime, deadletter.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := deadletter.Marshal(tc.e); !errors.Is(err, tc.want) {
				t.Errorf("Marshal error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const ok = `"type":"enipool.deadletter","version":1,"reason":"r","action":"a","attempts":0,"enisTried":null,"fcRetryCount":0,"redriveCount":0`
	emptySum := sum(nil)
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", ``, deadletter.ErrInvalid},
		{"array", `[]`, deadletter.ErrInvalid},
		{"not JSON", `{"type":`, deadletter.ErrInvalid},
		{"other type", `{"type":"ecs:Instance:StateChange","version":1}`, deadletter.ErrInvalid},
		{"no type", `{"version":1}`, deadletter.ErrInvalid},
		{"version 2", `{"type":"enipool.deadletter","version":2}`, deadletter.ErrVersion},
		{"both events", `{` + ok + `,"event":"","eventBase64":""}`, deadletter.ErrInvalid},
		{"bad base64", `{` + ok + `,"eventBase64":"!!!"}`, deadletter.ErrInvalid},
		{"size mismatch", `{` + ok + `,"event":"abc","eventSize":4}`, deadletter.ErrInvalid},
		{"sha mismatch", `{` + ok + `,"event":"","eventSha256":"` + strings.Repeat("0", 64) + `"}`, deadletter.ErrInvalid},
		{"sha not hex", `{` + ok + `,"event":"","eventSha256":"xyz"}`, deadletter.ErrInvalid},
		{"truncated not shorter", `{` + ok + `,"event":"abc","eventSize":3,"eventSha256":"` + emptySum + `","eventTruncated":true}`, deadletter.ErrInvalid},
		{"number for string", `{"type":"enipool.deadletter","version":1,"reason":7}`, deadletter.ErrInvalid},
		{"string for number", `{"type":"enipool.deadletter","version":1,"attempts":"3"}`, deadletter.ErrInvalid},
		{"trailing data", `{` + ok + `} {}`, deadletter.ErrInvalid},
		{"bad time", `{` + ok + `,"time":"2020-11-19T21:04:42.179PRC"}`, deadletter.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := deadletter.Parse([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse error = %v (envelope %+v), want %v", err, e, tc.want)
			}
		})
	}
	// Fields the writer omitted are derived, so a hand-written envelope works.
	e, err := deadletter.Parse([]byte(`{` + ok + `,"event":"{}","futureField":true}`))
	if err != nil || string(e.Event) != "{}" || e.EventSize != 2 || e.EventSHA256 != sum([]byte("{}")) {
		t.Errorf("hand-written envelope: %+v, %v", e, err)
	}
}

func TestIsEnvelope(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{` {"type":"enipool.deadletter","version":1}`, true},
		{`{"version":1,"type":"enipool.deadletter"}`, true},
		{`{"type":"ecs:Instance:StateChange","data":{"x":"enipool.deadletter"}}`, true}, // a hint; Parse decides
		{`{"type":"ecs:Instance:StateChange"}`, false},
		{`["enipool.deadletter"]`, false},
		{`{"event":"{\"type\":\"enipool.deadletter\"}"}`, false},
		{``, false},
	}
	for _, tc := range cases {
		if got := deadletter.IsEnvelope([]byte(tc.in)); got != tc.want {
			t.Errorf("IsEnvelope(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseFCDestinationRecord(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    *deadletter.FCRecord
		wantErr bool
	}{
		{
			name: "documented sample",
			in: `{"timestamp":1660120276975,"requestContext":{"requestId":"xxx","functionArn":"acs:fc:{regionid}:{accountid}:functions/xxxx",` +
				`"condition":"FunctionResourceExhausted","approximateInvokeCount":3},"requestPayload":"",` +
				`"responseContext":{"statusCode":200,"functionError":""},"responsePayload":""}`,
			want: &deadletter.FCRecord{Timestamp: time.UnixMilli(1660120276975).UTC(), RequestID: "xxx",
				FunctionARN: "acs:fc:{regionid}:{accountid}:functions/xxxx", Condition: "FunctionResourceExhausted",
				ApproximateInvokeCount: 3, StatusCode: 200, RequestPayload: []byte{}, ResponsePayload: []byte{}},
		},
		{
			name: "payload as a JSON string",
			in:   `{"requestContext":{"requestId":"r1","condition":"UnhandledInvocationError"},"requestPayload":"{\"instanceId\":\"i-1\"}","responseContext":{"functionError":"boom"}}`,
			want: &deadletter.FCRecord{RequestID: "r1", Condition: "UnhandledInvocationError", FunctionError: "boom",
				RequestPayload: []byte(`{"instanceId":"i-1"}`)},
		},
		{
			name: "payload as JSON (Lambda style), numbers as strings",
			in:   `{"timestamp":"1660120276975","requestContext":{"approximateInvokeCount":"2"},"requestPayload":{"instanceId":"i-1"},"responsePayload":{"ok":true}}`,
			want: &deadletter.FCRecord{Timestamp: time.UnixMilli(1660120276975).UTC(), ApproximateInvokeCount: 2,
				RequestPayload: []byte(`{"instanceId":"i-1"}`), ResponsePayload: []byte(`{"ok":true}`)},
		},
		{name: "no requestContext", in: `{"requestPayload":""}`, wantErr: true},
		{name: "no requestPayload", in: `{"requestContext":{}}`, wantErr: true},
		{name: "null requestPayload", in: `{"requestContext":{},"requestPayload":null}`, wantErr: true},
		{name: "number for string", in: `{"requestContext":{"requestId":5},"requestPayload":""}`, wantErr: true},
		{name: "not JSON", in: `requestContext`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deadletter.ParseFCDestinationRecord([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, deadletter.ErrInvalid) {
					t.Errorf("error = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// sampleEnvelope is the envelope in ../events/deadletter-redrive.json: the
// ECS Running event of ../events/ecs-running.json after its attach failed.
func sampleEnvelope(t *testing.T) *deadletter.Envelope {
	ev, err := os.ReadFile("../events/ecs-running.json")
	if err != nil {
		t.Fatal(err)
	}
	e := full()
	e.Reason = "AttachNetworkInterface kept failing with ServiceUnavailable (HTTP 503) after 5 attempts; check the ECS service health dashboard, then move this message to the work queue to retry"
	e.ENIsTried = []string{"eni-bp1demo0000000001"}
	e.RedriveCount = 0
	e.Time = time.Date(2024, 5, 1, 2, 0, 31, 0, time.UTC)
	e.Event = ev
	return &e
}

// TestSampleRedriveFile keeps events/deadletter-redrive.json what Marshal
// writes. ENIPOOL_WRITE_SAMPLES=1 rewrites it.
func TestSampleRedriveFile(t *testing.T) {
	const path = "../events/deadletter-redrive.json"
	b, err := deadletter.Marshal(sampleEnvelope(t))
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("ENIPOOL_WRITE_SAMPLES") == "1" {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Errorf("%s differs from Marshal's output; rerun with ENIPOOL_WRITE_SAMPLES=1", path)
	}
}
