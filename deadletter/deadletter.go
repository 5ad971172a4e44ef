// Package deadletter defines the versioned JSON envelope enipool sends to its
// MNS dead-letter queue, one message per failed event, and parses it back so
// that moving dead-lettered messages to the work queue redrives them.
//
// The envelope carries the original event verbatim (as text when it is valid
// UTF-8, as base64 otherwise), so a redrive decodes exactly the bytes the
// function first received. An envelope never exceeds an MNS message body:
// when the original event does not fit, only the event is truncated, and its
// full size and SHA-256 stay in the envelope so an operator can find the
// whole event in the function's logs.
//
// The package also parses the record Function Compute itself writes to an
// asynchronous invocation's onFailure destination (see [FCRecord]), so one
// dead-letter queue can hold both kinds of message.
package deadletter

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

const (
	// Type is the value of the envelope's "type" field.
	Type = "enipool.deadletter"

	// Version is the envelope format version this package writes and reads.
	Version = 1

	// MaxMessageBytes is the largest message body MNS accepts: 65536 bytes,
	// the default and the upper bound of a queue's MaximumMessageSize
	// (1024-65536, aliyun-mns-go-sdk errors.go). Marshal keeps envelopes
	// within it; use MarshalLimit for a queue configured smaller.
	MaxMessageBytes = 64 * 1024
)

var (
	// ErrInvalid reports bytes that are not a well-formed envelope (or FC
	// destination record).
	ErrInvalid = errors.New("deadletter: invalid envelope")

	// ErrVersion reports an envelope of a format version this package does
	// not read.
	ErrVersion = errors.New("deadletter: unsupported envelope version")

	// ErrTruncated reports that the envelope holds only a prefix of the
	// original event, which therefore cannot be redriven from the envelope.
	ErrTruncated = errors.New("deadletter: original event was truncated")

	// ErrTooLarge reports an envelope whose fields other than the original
	// event alone exceed the size limit; Marshal never truncates them.
	ErrTooLarge = errors.New("deadletter: envelope too large")
)

// Envelope is one dead-lettered event. The JSON field names (camelCase) are
// in the struct tags; Marshal adds "type" (Type) and "version" (Version) and
// writes the original event as "event" (text) or "eventBase64", followed by
// "eventSize", "eventSha256" and "eventTruncated". Always encode with Marshal
// and decode with Parse: the tags alone do not describe the event fields.
type Envelope struct {
	// Reason is a human sentence: what went wrong and what to do about it.
	Reason string `json:"reason"`
	// Verdict is the error table's verdict that led here, such as "dead-letter" or
	// "retry" (the JSON name, "action", is kept for the readers of dead letters).
	Verdict string `json:"action"`

	InstanceID string `json:"instanceId,omitempty"`
	Region     string `json:"region,omitempty"`
	Pool       string `json:"pool,omitempty"`
	Zone       string `json:"zone,omitempty"`
	VPCID      string `json:"vpcId,omitempty"`

	// Error is the last error seen, if any.
	Error *Error `json:"error,omitempty"`

	// Attempts counts the attach attempts made for this event.
	Attempts int `json:"attempts"`
	// ENIsTried lists the ENIs tried, in order.
	ENIsTried []string `json:"enisTried"`

	FunctionName      string `json:"functionName,omitempty"`
	FunctionRequestID string `json:"functionRequestId,omitempty"`
	// FCRetryCount is the platform's retry count of the invocation.
	FCRetryCount int `json:"fcRetryCount"`
	// RedriveCount is how many times the event had been redriven when it
	// was dead-lettered (0 on its first failure).
	RedriveCount int `json:"redriveCount"`

	// Time is when the event was dead-lettered. Marshal writes it in UTC as
	// RFC 3339 with nanoseconds; a zero Time is omitted.
	Time time.Time `json:"time,omitzero"`

	// Source says the carrier the event came on to the invocation that
	// wrote this letter ("acs.ecs", "mns:<queue>", "direct", "deadletter",
	// ...), never what an envelope inside it claimed; EventID is its id
	// there.
	Source  string `json:"source,omitempty"`
	EventID string `json:"eventId,omitempty"`
	// Channel is how that invocation was reached: "direct", "timer",
	// "eventbridge" or "queue" (event.Channel).
	Channel string `json:"channel,omitempty"`

	// Event is the original event, byte for byte. After Parse of a
	// truncated envelope it holds only the kept prefix (see EventTruncated).
	Event []byte `json:"-"`
	// EventSize and EventSHA256 (lowercase hex) describe the whole original
	// event. Marshal computes them from Event unless EventTruncated is set,
	// in which case Event is already a prefix and they are kept as given.
	EventSize   int    `json:"-"`
	EventSHA256 string `json:"-"`
	// EventTruncated reports that Event is a prefix of the original.
	EventTruncated bool `json:"-"`
}

// Error is the last error an event met, as the cloud reported it.
type Error struct {
	Service    string `json:"service,omitempty"` // "ecs", "ess", "mns"
	API        string `json:"api,omitempty"`     // e.g. "AttachNetworkInterface"
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
}

// wire is the JSON form of an Envelope.
type wire struct {
	Type    string `json:"type"`
	Version int    `json:"version"`
	Envelope
	Event          *string `json:"event,omitempty"`
	EventBase64    *string `json:"eventBase64,omitempty"`
	EventSize      *int    `json:"eventSize,omitempty"`
	EventSHA256    *string `json:"eventSha256,omitempty"`
	EventTruncated bool    `json:"eventTruncated"`
}

// Marshal encodes e as a message body of at most MaxMessageBytes.
//
// Nothing but the original event is ever shortened: when the envelope would
// be too large, Event is cut (at a UTF-8 boundary when it is text) to the
// longest prefix that fits and eventTruncated is set; eventSize and
// eventSha256 keep describing the whole event. If the other fields alone do
// not fit, Marshal returns an error wrapping ErrTooLarge.
//
// Round trip: for an envelope whose strings are valid UTF-8 (JSON cannot carry
// anything else; invalid bytes become U+FFFD), whose Time is UTC or zero, and
// whose event fits, Parse(Marshal(e)) equals e with EventSize and EventSHA256
// filled in. Event survives exactly in every case, NUL and invalid UTF-8
// included.
func Marshal(e *Envelope) ([]byte, error) {
	return MarshalLimit(e, MaxMessageBytes)
}

// MarshalLimit is Marshal for a queue whose message size limit is limit bytes.
func MarshalLimit(e *Envelope, limit int) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil envelope", ErrInvalid)
	}
	if y := e.Time.Year(); !e.Time.IsZero() && (y < 0 || y > 9999) {
		return nil, fmt.Errorf("%w: time %v is outside years 0-9999", ErrInvalid, e.Time)
	}
	size, sum := e.EventSize, e.EventSHA256
	if e.EventTruncated {
		if size < len(e.Event) || !isSHA256Hex(sum) {
			return nil, fmt.Errorf("%w: truncated event needs the full event's eventSize (>= %d) and eventSha256", ErrInvalid, len(e.Event))
		}
	} else {
		h := sha256.Sum256(e.Event)
		size, sum = len(e.Event), hex.EncodeToString(h[:])
	}
	// Text when the whole original is valid UTF-8, so every prefix cut at a
	// rune boundary is text too; base64 otherwise. An already truncated
	// prefix may have travelled as base64 although it is valid UTF-8: take
	// the smaller form, so that marshalling it again never cuts it further.
	text := utf8.Valid(e.Event)
	if e.EventTruncated && text {
		b64 := base64.StdEncoding.EncodedLen(len(e.Event)) + len("eventBase64") - len("event")
		text = prefixWithin(e.Event, true, b64) == len(e.Event)
	}
	b, err := encode(e, e.Event, e.Event == nil, text, size, sum, e.EventTruncated)
	if err != nil {
		return nil, err
	}
	if len(b) <= limit {
		return b, nil
	}
	// Too large: keep the longest prefix that fits. The envelope without
	// the event's content is fixed in size (eventSize and eventSha256
	// describe the whole event), so the room left is known and one pass over
	// the event finds the prefix.
	empty, err := encode(e, e.Event[:0], false, text, size, sum, true)
	if err != nil {
		return nil, err
	}
	if len(empty) > limit {
		return nil, fmt.Errorf("%w: %d bytes without the original event, limit %d; shorten reason or error message", ErrTooLarge, len(empty), limit)
	}
	if len(e.Event) == 0 {
		return nil, fmt.Errorf("%w: %d bytes, limit %d; shorten reason or error message", ErrTooLarge, len(b), limit)
	}
	// A truncated event is a proper prefix: the whole event can seem to fit
	// once "eventTruncated":false becomes the shorter true.
	n := min(prefixWithin(e.Event, text, limit-len(empty)), boundary(e.Event, len(e.Event)-1, text))
	for {
		b, err := encode(e, e.Event[:n], false, text, size, sum, true)
		if err != nil {
			return nil, err
		}
		if len(b) <= limit || n == 0 {
			return b, nil
		}
		// Only if prefixWithin misjudged encoding/json: shrink and retry.
		n = boundary(e.Event, max(0, n-(len(b)-limit)), text)
	}
}

// prefixWithin returns the length of the longest prefix of ev whose encoding
// as the event field's content takes at most room bytes.
func prefixWithin(ev []byte, text bool, room int) int {
	if !text {
		return min(len(ev), room/4*3)
	}
	used := 0
	for i := 0; i < len(ev); {
		r, n := utf8.DecodeRune(ev[i:])
		if used += escapedLen(r, n); used > room {
			return i
		}
		i += n
	}
	return len(ev)
}

// escapedLen is how many bytes encoding/json (without HTML escaping) writes
// for rune r of n bytes inside a string.
func escapedLen(r rune, n int) int {
	switch {
	case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20, r == '\u2028', r == '\u2029':
		return 6
	}
	return n
}

// boundary moves n back to the start of a rune when ev is text.
func boundary(ev []byte, n int, text bool) int {
	for text && n > 0 && n < len(ev) && !utf8.RuneStart(ev[n]) {
		n--
	}
	return n
}

// encode writes one envelope; ev is the (possibly truncated) event.
func encode(e *Envelope, ev []byte, omit, text bool, size int, sum string, truncated bool) ([]byte, error) {
	w := wire{Type: Type, Version: Version, Envelope: *e, EventSize: &size, EventSHA256: &sum, EventTruncated: truncated}
	w.Envelope.Time = e.Time.UTC()
	if !omit {
		if text {
			s := string(ev)
			w.Event = &s
		} else {
			s := base64.StdEncoding.EncodeToString(ev)
			w.EventBase64 = &s
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Parse decodes an envelope written by Marshal. It checks the type and
// version, that exactly one of event and eventBase64 is present when
// eventSize is not zero, and that an untruncated event matches its
// eventSize and eventSha256. Unknown fields are ignored, and a key given
// twice keeps its last value (event.Decode refuses duplicate keys before it
// gets here).
func Parse(b []byte) (*Envelope, error) {
	var w wire
	if err := strictUnmarshal(b, &w); err != nil {
		return nil, err
	}
	if w.Type != Type {
		return nil, fmt.Errorf("%w: type is %q, want %q", ErrInvalid, clip(w.Type), Type)
	}
	if w.Version != Version {
		return nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrVersion, w.Version, Version)
	}
	e := w.Envelope
	e.Time = e.Time.UTC()
	switch {
	case w.Event != nil && w.EventBase64 != nil:
		return nil, fmt.Errorf("%w: both event and eventBase64 are present", ErrInvalid)
	case w.Event != nil:
		e.Event = []byte(*w.Event)
		if e.Event == nil {
			e.Event = []byte{}
		}
	case w.EventBase64 != nil:
		ev, err := base64.StdEncoding.DecodeString(*w.EventBase64)
		if err != nil {
			return nil, fmt.Errorf("%w: eventBase64: %w", ErrInvalid, err)
		}
		e.Event = ev
	}
	e.EventTruncated = w.EventTruncated
	sum := sha256.Sum256(e.Event)
	switch {
	case w.EventSize != nil:
		e.EventSize = *w.EventSize
	case !e.EventTruncated:
		e.EventSize = len(e.Event)
	}
	switch {
	case w.EventSHA256 != nil:
		e.EventSHA256 = *w.EventSHA256
	case !e.EventTruncated:
		e.EventSHA256 = hex.EncodeToString(sum[:])
	}
	if !isSHA256Hex(e.EventSHA256) {
		return nil, fmt.Errorf("%w: eventSha256 %q is not 64 lowercase hex digits", ErrInvalid, clip(e.EventSHA256))
	}
	if e.EventTruncated {
		if e.EventSize <= len(e.Event) {
			return nil, fmt.Errorf("%w: truncated event of %d bytes claims a full size of %d", ErrInvalid, len(e.Event), e.EventSize)
		}
		return &e, nil
	}
	if e.EventSize != len(e.Event) {
		return nil, fmt.Errorf("%w: eventSize is %d but the event has %d bytes", ErrInvalid, e.EventSize, len(e.Event))
	}
	if hex.EncodeToString(sum[:]) != e.EventSHA256 {
		return nil, fmt.Errorf("%w: event does not match eventSha256 %s", ErrInvalid, e.EventSHA256)
	}
	return &e, nil
}

// IsEnvelope reports whether b looks like an envelope: a JSON object that
// mentions the envelope type. It only scans bytes; Parse decides.
func IsEnvelope(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' &&
		bytes.Contains(b, []byte(`"type"`)) && bytes.Contains(b, []byte(`"`+Type+`"`))
}

// OriginalEvent returns the original event bytes. It fails with an error
// wrapping ErrTruncated when the envelope holds only a prefix; the error
// names the full size and SHA-256 to look for in the logs.
func (e *Envelope) OriginalEvent() ([]byte, error) {
	if e.EventTruncated {
		return nil, fmt.Errorf("%w: kept %d of %d bytes; find the event with sha256 %s in the function's logs",
			ErrTruncated, len(e.Event), e.EventSize, e.EventSHA256)
	}
	return e.Event, nil
}

// strictUnmarshal decodes one JSON object into v, refusing anything after it.
func strictUnmarshal(b []byte, v any) error {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
