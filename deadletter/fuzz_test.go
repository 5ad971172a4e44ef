package deadletter_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/enipool/enipool/deadletter"
)

// jsonText is s as JSON carries it: each invalid UTF-8 byte becomes U+FFFD.
func jsonText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// FuzzEnvelopeRoundTrip checks that any envelope survives Marshal and Parse:
// its fields exactly (text fields as JSON carries them), its event byte for
// byte or, when too large for the limit, as a prefix with the full size and
// sha256, and that the result always fits. It also feeds the event to Parse
// and ParseFCDestinationRecord, which must not panic on any input.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add([]byte(`{"instanceId":"i-bp1demo00000000001"}`), "reason", "i-bp1demo00000000001", "eni-a,eni-b", 3, int64(1714528831000000000), uint16(0))
	f.Add([]byte("\xff\xfe\x00binary"), "r\xffé", "", "", 0, int64(0), uint16(100))
	f.Add([]byte{}, "", "", ",", -1, int64(-1), uint16(1))
	f.Add([]byte(`{"type":"enipool.deadletter","version":1,"event":"{}"}`), "nested", "x", "", 1, int64(1), uint16(2000))
	f.Add([]byte(`{"requestContext":{},"requestPayload":"{}"}`), "fc", "", "", 0, int64(0), uint16(0))
	// Truncation is reached with small limits: large seeds would make the
	// fuzzer's minimisation crawl (TestMarshalTruncates covers 64 KiB).
	f.Add(bytes.Repeat([]byte("\"\\<\u2028漢\x01"), 100), "text", "", "", 0, int64(0), uint16(300))
	f.Add(bytes.Repeat([]byte{0xe6, 0xbc}, 500), "binary", "", "", 0, int64(0), uint16(500))
	f.Fuzz(func(t *testing.T, event []byte, reason, instance, enis string, n int, ns int64, limitSel uint16) {
		// Neither parser may panic on arbitrary bytes.
		_, _ = deadletter.Parse(event)
		_, _ = deadletter.ParseFCDestinationRecord(event)

		limit := deadletter.MaxMessageBytes
		if limitSel != 0 {
			limit = 200 + int(limitSel)%4000
		}
		e := deadletter.Envelope{
			Reason: reason, Verdict: "dead-letter", InstanceID: instance, Region: "cn-hangzhou",
			Error:    &deadletter.Error{Code: reason, Message: instance, HTTPStatus: n},
			Attempts: n, FCRetryCount: -n, RedriveCount: n / 2,
			Time:  time.Unix(0, ns).UTC(),
			Event: event,
		}
		if enis != "" {
			e.ENIsTried = strings.Split(enis, ",")
		}
		b, err := deadletter.MarshalLimit(&e, limit)
		if err != nil {
			if !errors.Is(err, deadletter.ErrTooLarge) {
				t.Fatalf("Marshal: %v", err)
			}
			return // the other fields alone exceed the limit
		}
		if len(b) > limit {
			t.Fatalf("envelope of %d bytes exceeds %d", len(b), limit)
		}
		if !deadletter.IsEnvelope(b) {
			t.Fatalf("IsEnvelope(Marshal) = false")
		}
		got, err := deadletter.Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal): %v", err)
		}
		want := e
		want.Reason, want.InstanceID = jsonText(e.Reason), jsonText(e.InstanceID)
		want.Error = &deadletter.Error{Code: want.Reason, Message: want.InstanceID, HTTPStatus: n}
		for i, s := range want.ENIsTried {
			want.ENIsTried[i] = jsonText(s)
		}
		want.EventSize, want.EventSHA256 = len(event), sum(event)
		if got.EventTruncated {
			if !bytes.HasPrefix(event, got.Event) || len(got.Event) >= len(event) {
				t.Fatalf("kept %d bytes that are not a proper prefix of %d", len(got.Event), len(event))
			}
			want.Event, want.EventTruncated = got.Event, true
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("Parse(Marshal(e)):\n got %+v\nwant %+v", *got, want)
		}
		if !got.EventTruncated {
			orig, err := got.OriginalEvent()
			if err != nil || !bytes.Equal(orig, event) {
				t.Fatalf("OriginalEvent = %q, %v", orig, err)
			}
		}
		// Re-marshalling a parsed envelope (a redrive that fails again)
		// keeps it: the bytes may differ only in how U+FFFD is written.
		again, err := deadletter.MarshalLimit(got, limit)
		if err != nil {
			t.Fatalf("Marshal(Parse(b)): %v", err)
		}
		if len(again) > limit {
			t.Fatalf("re-marshalled envelope of %d bytes exceeds %d", len(again), limit)
		}
		if back, err := deadletter.Parse(again); err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("Parse(Marshal(Parse(b))) = %+v, %v; want %+v", back, err, got)
		}
	})
}
