package event

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aliyun/fc-runtime-go-sdk/events"

	"github.com/enipool/enipool/deadletter"
)

// CloudEvent "type" values.
const (
	typeMNSMessage   = "mns:Queue:SendMessage"
	typeECSState     = "ecs:Instance:StateChange"
	typeHookScaleOut = "ess:LifecycleHook:ScaleOut"
	typeHookScaleIn  = "ess:LifecycleHook:ScaleIn"
	typeHookTest     = "ess:LifecycleHook:Test"
)

// Request.Source values other than a CloudEvent's own source.
const (
	sourceDirect     = "direct"
	sourceDeadLetter = "deadletter"
	sourceFCRecord   = "fc-destination"
	sourceECS        = "acs.ecs"
	sourceESS        = "acs.ess"
	sourceMNS        = "mns"
	sourceTimer      = "timer"
)

const (
	// maxActionCount bounds Action.Max.
	maxActionCount = 1_000_000
	// maxTextFieldBytes bounds free text copied from an envelope or record.
	maxTextFieldBytes = 512
)

type decoder struct {
	opts Options
}

// document decodes one JSON text: an object, an array of events, or a JSON
// string holding an event. pin, when not nil, is the Raw of every Request
// (the MNS message the text came in); otherwise Raw is b, or each element
// when b is an array.
func (d *decoder) document(b, pin []byte, wrap int) []Request {
	raw := pin
	if raw == nil {
		raw = b
	}
	t := trimSpace(b)
	if len(t) == 0 {
		return fail(raw, "", fmt.Errorf("%w: empty payload", ErrMalformed))
	}
	sh, err := scanShape(t, d.opts.MaxDepth)
	if err != nil {
		return fail(raw, "", err)
	}
	if err := checkText(t); err != nil {
		return fail(raw, "", err)
	}
	switch t[0] {
	case '{':
		if err := checkUnit(t); err != nil {
			return fail(raw, "", err)
		}
		return d.object(t, raw, wrap)
	case '"':
		return d.jsonString(t, pin, wrap)
	case '[':
		if sh.elements > d.opts.MaxEvents {
			return fail(raw, "", fmt.Errorf("%w: batch of %d events exceeds the limit of %d", ErrTooLarge, sh.elements, d.opts.MaxEvents))
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(t, &elems); err != nil {
			return fail(raw, "", fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		if len(elems) == 0 {
			return fail(raw, "", fmt.Errorf("%w: empty batch", ErrMalformed))
		}
		var out []Request
		for _, el := range elems {
			out = append(out, d.element(el, pin, wrap)...)
			if len(out) > d.opts.MaxEvents {
				return fail(raw, "", fmt.Errorf("%w: batch holds more than %d events", ErrTooLarge, d.opts.MaxEvents))
			}
		}
		return out
	}
	return fail(raw, "", fmt.Errorf("%w: payload is %s, not an event", ErrUnsupported, jsonKind(t)))
}

// checkUnit checks one event's text (an object or a batch element) for
// what JSON syntax allows but the decoder refuses.
func checkUnit(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: invalid UTF-8 at offset %d", ErrMalformed, invalidUTF8At(b))
	}
	return checkDuplicateKeys(b)
}

// element decodes one element of a batch.
func (d *decoder) element(el, pin []byte, wrap int) []Request {
	raw := pin
	if raw == nil {
		raw = el
	}
	switch el[0] {
	case '{':
		if err := checkUnit(el); err != nil {
			return fail(raw, "", err)
		}
		return d.object(el, raw, wrap)
	case '"':
		return d.jsonString(el, pin, wrap)
	}
	return fail(raw, "", fmt.Errorf("%w: batch element is %s, not an event", ErrUnsupported, jsonKind(el)))
}

// jsonString decodes a JSON string literal holding an event (as Kafka-style
// EventBridge batches deliver them). Unpinned, Raw is the string's content.
func (d *decoder) jsonString(lit, pin []byte, wrap int) []Request {
	raw := pin
	if raw == nil {
		raw = lit
	}
	if err := checkUnit(lit); err != nil {
		return fail(raw, "", err)
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return fail(raw, "", fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	if len(trimSpace([]byte(s))) == 0 {
		return fail(raw, "", fmt.Errorf("%w: JSON string holds no event", ErrMalformed))
	}
	if wrap+1 > maxWrap {
		return fail(raw, "", tooWrapped())
	}
	reqs := d.document([]byte(s), pin, wrap+1)
	for i := range reqs {
		if errors.Is(reqs[i].Err, ErrTooDeep) {
			reqs[i].Raw = raw // as in envelope: a refusal for depth keeps what came
		}
	}
	return reqs
}

func tooWrapped() error {
	return fmt.Errorf("%w: events wrapped in each other more than %d times", ErrTooDeep, maxWrap)
}

// object dispatches one JSON object on its shape. b has passed checkUnit.
func (d *decoder) object(b, raw []byte, wrap int) []Request {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fail(raw, "", fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	o := fields{m: m}
	if o.has("type") {
		var rd reader
		typ := rd.str(o, "type")
		if rd.err != nil {
			return fail(raw, "", rd.err)
		}
		switch typ {
		case deadletter.Type:
			return d.envelope(b, raw, wrap)
		case typeMNSMessage:
			return d.mnsMessage(o, raw, wrap)
		case typeECSState:
			return []Request{ecsStateChange(o, raw)}
		case typeHookScaleOut:
			return lifecycleEvent(o, raw, TransitionScaleOut, d.opts.MaxEvents)
		case typeHookScaleIn:
			return lifecycleEvent(o, raw, TransitionScaleIn, d.opts.MaxEvents)
		case typeHookTest:
			return []Request{lifecycleTest(o, raw)}
		}
		what := "object of type"
		if o.has("specversion") {
			what = "CloudEvent type"
		}
		return fail(raw, cloudEventSource(o, ""), fmt.Errorf("%w: %s %q", ErrUnsupported, what, clip(typ)))
	}
	switch {
	case isTimer(o):
		return d.timer(b, raw, wrap)
	case o.has("action"):
		return []Request{action(o, raw)}
	case o.has("requestContext") && o.has("requestPayload"):
		return d.fcRecord(b, raw, wrap)
	case o.has("product") && o.has("content"):
		return []Request{ecsNotification(o, raw)}
	case o.has("content"):
		return lifecycleNotification(o, raw, d.opts.MaxEvents)
	case o.has("messageBody"):
		return d.mnsRawData(o, raw, wrap)
	case o.has("instanceId") || o.has("instanceIds"):
		return direct(o, raw, d.opts.MaxEvents)
	}
	return fail(raw, "", fmt.Errorf("%w: object with keys %s is no known event form", ErrUnsupported, o.keys()))
}

// isTimer reports whether o is FC's timer trigger event (events.TimerEvent of
// fc-runtime-go-sdk): a payload beside a trigger name or time. The payload key
// alone is not enough, and may be null (a timer configured without one).
func isTimer(o fields) bool {
	_, payload := o.m["payload"]
	return payload && (o.has("triggerName") || o.has("triggerTime"))
}

// timer unwraps FC's timer trigger event. Its payload is the string configured on
// the trigger; it holds the event to handle as JSON text, an action such as
// {"action":"reconcile"} in practice. Every Request keeps the whole timer event as
// Raw, so a dead letter of it redrives the same way, and carries the trigger time
// (work spread over successive runs keys on it).
func (d *decoder) timer(b, raw []byte, wrap int) []Request {
	var te events.TimerEvent
	if err := json.Unmarshal(b, &te); err != nil {
		return fail(raw, sourceTimer, fmt.Errorf("%w: timer event: %v", ErrMalformed, err))
	}
	source := sourceTimer
	var name, when string
	if te.TriggerName != nil {
		name = text(*te.TriggerName)
		if n := queueName("acs:mns:/" + name); n != "" {
			source += ":" + n
		}
	}
	var at time.Time
	if te.TriggerTime != nil {
		when = text(*te.TriggerTime)
		// An unreadable time does not make the event unusable: the handler then keys on its
		// own clock.
		at, _ = time.Parse(time.RFC3339, *te.TriggerTime)
	}
	var payload []byte
	if te.Payload != nil {
		payload = trimSpace([]byte(*te.Payload))
	}
	var reqs []Request
	switch {
	case !looksJSON(payload):
		reqs = fail(raw, "", fmt.Errorf("%w: timer payload %q is not an event; configure one such as {\"action\":\"reconcile\"}",
			ErrUnsupported, clip(string(payload))))
	case wrap+1 > maxWrap:
		reqs = fail(raw, "", tooWrapped())
	default:
		reqs = d.document(payload, raw, wrap+1)
	}
	for i := range reqs {
		reqs[i].Source, reqs[i].TriggerTime, reqs[i].Channel = source, at, ChannelTimer
		if name != "" || when != "" {
			reqs[i].EventID = name + "@" + when
		}
	}
	return reqs
}

// fail returns the single Request of an event that cannot be decoded.
func fail(raw []byte, source string, err error) []Request {
	return []Request{failed(raw, source, err)}
}

// cloudEventSource is a CloudEvent's source if it is fit for a log line.
func cloudEventSource(o fields, def string) string {
	var rd reader
	if s := rd.str(o, "source"); printable(s, 128) {
		return s
	}
	return def
}

// accounts adds to acc every account id the event names under keys (a key holding an
// account id, or an ARN acs:service:region:account:resource whose account part is one), each
// once. Every one is kept, not the first: a foreign ARN beside a matching account id must
// still be compared with the function's own (the handler refuses the event if any differs).
func accounts(acc []string, o fields, keys ...string) []string {
	var rd reader
	for _, k := range keys {
		v := rd.str(o, k)
		if strings.HasPrefix(v, "acs:") {
			if parts := strings.SplitN(v, ":", 5); len(parts) == 5 {
				v = parts[3]
			}
		}
		if ValidAccountID(v) && !slices.Contains(acc, v) {
			acc = append(acc, v)
		}
	}
	return acc
}

// cloudEventAccounts are the account ids a CloudEvent names: the account it was published in,
// the account it originally came from, and the account of its subject's ARN.
func cloudEventAccounts(o fields) []string {
	return accounts(nil, o, "aliyunaccountid", "aliyunoriginalaccountid", "subject")
}

// cloudEventTime is a CloudEvent's time, zero when absent or not RFC 3339.
func cloudEventTime(o fields) time.Time {
	var rd reader
	t, err := time.Parse(time.RFC3339Nano, rd.str(o, "time"))
	if err != nil {
		return time.Time{}
	}
	return t
}

// eventID is an id field's value if it is fit for a log line.
func eventID(o fields, key string) string {
	var rd reader
	if s := rd.str(o, key); printable(s, 256) {
		return s
	}
	return ""
}

// ---- MNS queue messages ----

// mnsMessage decodes an MNS queue trigger CloudEvent: its body holds the
// event. Every Request it yields keeps the whole CloudEvent as Raw.
func (d *decoder) mnsMessage(o fields, raw []byte, wrap int) []Request {
	source := sourceMNS
	var rd reader
	if q := queueName(rd.str(o, "subject")); q != "" {
		source += ":" + q
	}
	data, ok := rd.obj(o, "data")
	if rd.err == nil && !ok {
		rd.fail(fmt.Errorf("%w: MNS message has no data object", ErrMalformed))
	}
	if rd.err != nil {
		return fail(raw, source, rd.err)
	}
	id := eventID(o, "id")
	reqs := d.mnsBody(data, raw, source, id, wrap)
	if acc := cloudEventAccounts(o); len(acc) > 0 {
		for i := range reqs {
			for _, a := range acc {
				if !slices.Contains(reqs[i].Accounts, a) {
					reqs[i].Accounts = append(reqs[i].Accounts, a)
				}
			}
		}
	}
	return reqs
}

// mnsRawData decodes an MNS message delivered as RawData: the CloudEvent's
// data alone, {requestId, messageId, messageBody}.
func (d *decoder) mnsRawData(o fields, raw []byte, wrap int) []Request {
	return d.mnsBody(o, raw, sourceMNS, "", wrap)
}

func (d *decoder) mnsBody(data fields, raw []byte, source, id string, wrap int) []Request {
	if mid := eventID(data, "messageId"); mid != "" {
		id = mid
	}
	var body []byte
	switch jsonKind(data.m["messageBody"]) {
	case "a string":
		var rd reader
		body = []byte(rd.str(data, "messageBody"))
	case "an object", "an array":
		// Some deliveries inline a JSON body rather than quote it.
		body = data.m["messageBody"]
	default:
		return fail(raw, source, fmt.Errorf("%w: %s must be a string, got %s", ErrMalformed, data.name("messageBody"), jsonKind(data.m["messageBody"])))
	}
	reqs := d.body(body, raw, wrap+1, "MNS message body")
	for i := range reqs {
		reqs[i].Source, reqs[i].Channel = source, ChannelQueue
		if id != "" {
			reqs[i].EventID = id
		}
	}
	return reqs
}

// queueName extracts the queue from "acs:mns:{region}:{uid}:queues/{name}".
func queueName(subject string) string {
	i := strings.LastIndex(subject, "/")
	if !strings.HasPrefix(subject, "acs:mns:") || i < 0 {
		return ""
	}
	name := subject[i+1:]
	if len(name) == 0 || len(name) > 256 {
		return ""
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return ""
		}
	}
	return name
}

// body decodes a message body or payload that holds an event as JSON text or
// as base64 of JSON text (standard or URL alphabet, padded or not).
func (d *decoder) body(b, pin []byte, wrap int, what string) []Request {
	raw := pin
	if raw == nil {
		raw = b
	}
	if wrap > maxWrap {
		return fail(raw, "", tooWrapped())
	}
	t := trimSpace(b)
	if len(t) == 0 {
		return fail(raw, "", fmt.Errorf("%w: empty %s", ErrMalformed, what))
	}
	if looksJSON(t) || json.Valid(t) {
		return d.document(t, pin, wrap)
	}
	if dec, ok := decodeBase64(t); ok && looksJSON(trimSpace(dec)) {
		return d.document(dec, pin, wrap)
	}
	return fail(raw, "", fmt.Errorf("%w: %s is neither JSON nor base64-encoded JSON: %q", ErrMalformed, what, clip(string(t))))
}

// looksJSON reports whether b starts like a JSON text that can hold an event.
// None of these bytes is in a base64 alphabet.
func looksJSON(b []byte) bool {
	return len(b) > 0 && (b[0] == '{' || b[0] == '[' || b[0] == '"')
}

func decodeBase64(b []byte) ([]byte, bool) {
	s := string(b)
	if strings.ContainsAny(s, " \t\r\n") {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, s)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if dec, err := enc.DecodeString(s); err == nil {
			return dec, true
		}
	}
	return nil, false
}

// ---- dead-letter envelope and FC destination record ----

func (d *decoder) envelope(b, raw []byte, wrap int) []Request {
	env, err := deadletter.Parse(b)
	if err != nil {
		return fail(raw, sourceDeadLetter, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if _, err := env.OriginalEvent(); err != nil {
		return fail(raw, sourceDeadLetter, fmt.Errorf("%w: dead-letter envelope cannot be redriven: %w", ErrTooLarge, err))
	}
	if len(trimSpace(env.Event)) == 0 {
		return fail(raw, sourceDeadLetter, fmt.Errorf("%w: dead-letter envelope holds an empty event", ErrMalformed))
	}
	if wrap+1 > maxWrap {
		return fail(raw, sourceDeadLetter, tooWrapped())
	}
	var prev string
	if e := env.Error; e != nil {
		prev = e.Code
		if e.Code != "" && e.Message != "" {
			prev += ": "
		}
		prev += e.Message
	}
	rd := Redrive{
		InstanceID:        validInstanceOrEmpty(env.InstanceID),
		RedriveCount:      min(max(0, env.RedriveCount)+1, MaxRedriveCount),
		PreviousAction:    text(env.Verdict),
		PreviousError:     text(prev),
		EnvelopeSource:    text(env.Source),
		EnvelopeEventID:   text(env.EventID),
		FunctionRequestID: text(env.FunctionRequestID),
		Attempts:          max(0, env.Attempts),
	}
	// Not pinned: a redriven event's Raw is the original event, so a dead letter of it does
	// not nest envelopes. A refusal for depth keeps what came, though: dead-lettering an
	// inner layer would make a too-deep payload acceptable to the next redrive.
	reqs := d.document(env.Event, nil, wrap+1)
	for i := range reqs {
		if errors.Is(reqs[i].Err, ErrTooDeep) {
			reqs[i].Raw = raw
		}
		reqs[i].Redrive = rd.over(reqs[i].Redrive)
		reqs[i].Source, reqs[i].Channel = sourceDeadLetter, "" // the letter's own carrier says
		if printable(env.EventID, 256) {
			reqs[i].EventID = env.EventID
		}
	}
	return reqs
}

func (d *decoder) fcRecord(b, raw []byte, wrap int) []Request {
	rec, err := deadletter.ParseFCDestinationRecord(b)
	if err != nil {
		return fail(raw, sourceFCRecord, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if len(trimSpace(rec.RequestPayload)) == 0 {
		return fail(raw, sourceFCRecord, fmt.Errorf("%w: FC destination record holds an empty requestPayload", ErrMalformed))
	}
	rd := Redrive{
		FCDestination:     true,
		RedriveCount:      1,
		PreviousAction:    text(rec.Condition),
		PreviousError:     text(rec.FunctionError),
		FunctionRequestID: text(rec.RequestID),
		Attempts:          rec.ApproximateInvokeCount,
	}
	reqs := d.body(rec.RequestPayload, nil, wrap+1, "FC destination record requestPayload")
	for i := range reqs {
		if errors.Is(reqs[i].Err, ErrTooDeep) {
			reqs[i].Raw = raw // as in envelope
		}
		reqs[i].Redrive = rd.over(reqs[i].Redrive)
		reqs[i].Source, reqs[i].Channel = sourceFCRecord, "" // the record's own carrier says
	}
	return reqs
}

// over returns a copy of r, the outer wrapper, completed by inner, the
// wrapper found inside it: the outer one is the latest failure, the inner one
// may know more about the original event.
func (r Redrive) over(inner *Redrive) *Redrive {
	if inner != nil {
		r.RedriveCount = max(r.RedriveCount, inner.RedriveCount)
		if r.EnvelopeSource == "" {
			r.EnvelopeSource = inner.EnvelopeSource
		}
		if r.EnvelopeEventID == "" {
			r.EnvelopeEventID = inner.EnvelopeEventID
		}
		if r.InstanceID == "" {
			r.InstanceID = inner.InstanceID
		}
	}
	return &r
}

// validInstanceOrEmpty keeps an envelope's instance id only when it is a valid one.
func validInstanceOrEmpty(s string) string {
	if ValidInstanceID(s) {
		return s
	}
	return ""
}

// text makes a free-text field fit for a log line: valid UTF-8, no control
// characters, at most maxTextFieldBytes.
func text(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > maxTextFieldBytes {
		s = strings.ToValidUTF8(s[:maxTextFieldBytes], "")
	}
	return s
}

// ---- ECS ----

// instanceRef reads an instance id that may also be given as an ECS instance
// ARN, acs:ecs:{region}:{uid}:instance/{id}; it returns the ARN's region.
func instanceRef(field, v string) (id, region string, err error) {
	if !strings.HasPrefix(v, "acs:") {
		if !ValidInstanceID(v) {
			return "", "", badInstanceID(field, v)
		}
		return v, "", nil
	}
	parts := strings.SplitN(v, ":", 5)
	if len(parts) != 5 || parts[1] != "ecs" {
		return "", "", fmt.Errorf("%w: %s %q is not an ECS instance ARN", ErrInvalidID, field, clip(v))
	}
	typ, id, _ := strings.Cut(parts[4], "/")
	if typ != "instance" {
		return "", "", fmt.Errorf("%w: %s %q is not an ECS instance ARN", ErrInvalidID, field, clip(v))
	}
	if parts[2] != "" && !ValidRegion(parts[2]) {
		return "", "", badRegion(field, parts[2])
	}
	if !ValidInstanceID(id) {
		return "", "", badInstanceID(field, id)
	}
	return id, parts[2], nil
}

// candidate is one place an instance id may be found.
type candidate struct {
	field, value string
	lastSegment  bool // a subject: use its last path segment unless it is an ARN
}

// firstInstance returns the id in the first non-empty candidate, and the
// region of the first ARN among the candidates.
func firstInstance(cands ...candidate) (id, region string, err error) {
	for _, c := range cands {
		if c.value == "" {
			continue
		}
		v := c.value
		if c.lastSegment && !strings.HasPrefix(v, "acs:") {
			v = v[strings.LastIndex(v, "/")+1:]
		}
		if id == "" && err == nil {
			id, region, err = instanceRef(c.field, v)
			continue
		}
		if region == "" && strings.HasPrefix(v, "acs:ecs:") {
			if _, r, e := instanceRef(c.field, v); e == nil {
				region = r
			}
		}
	}
	if id == "" && err == nil {
		err = fmt.Errorf("%w: no instance id (looked at %s)", ErrMalformed, fieldNames(cands))
	}
	return id, region, err
}

func fieldNames(cands []candidate) string {
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = c.field
	}
	return strings.Join(names, ", ")
}

// region validates region v, or returns fallback when v is empty.
func region(rd *reader, field string, v, fallback string) string {
	if v == "" {
		return fallback
	}
	if !ValidRegion(v) {
		rd.fail(badRegion(field, v))
		return ""
	}
	return v
}

func state(rd *reader, field, v string) string {
	if v == "" {
		rd.fail(fmt.Errorf("%w: no instance state (%s)", ErrMalformed, field))
		return ""
	}
	s, ok := normalizeState(v)
	if !ok {
		rd.fail(fmt.Errorf("%w: %s %q is not an ECS instance state", ErrMalformed, field, clip(v)))
	}
	return s
}

// ecsStateChange decodes an EventBridge ecs:Instance:StateChange event.
// EventBridge's exact data layout is not documented (reference §1.4), so
// the instance id is data.resourceId, data.content.resourceId,
// data.instanceId, the subject's last path segment or the top-level
// resourceId ARN, and the state data.state or data.content.state.
func ecsStateChange(o fields, raw []byte) Request {
	r := Request{Kind: KindECSStateChange, Raw: raw, Source: cloudEventSource(o, sourceECS), EventID: eventID(o, "id"),
		Channel: ChannelEventBridge, Accounts: accounts(cloudEventAccounts(o), o, "resourceId"), Time: cloudEventTime(o)}
	var rd reader
	data, ok := rd.obj(o, "data")
	if rd.err == nil && !ok {
		rd.fail(fmt.Errorf("%w: ECS event has no data object", ErrMalformed))
	}
	content, _ := rd.obj(data, "content")
	if rd.err != nil {
		r.Err = rd.err
		return r
	}
	id, arnRegion, err := firstInstance(
		candidate{field: "data.resourceId", value: rd.str(data, "resourceId")},
		candidate{field: "data.content.resourceId", value: rd.str(content, "resourceId")},
		candidate{field: "data.instanceId", value: rd.str(data, "instanceId")},
		candidate{field: "subject", value: rd.str(o, "subject"), lastSegment: true},
		candidate{field: "resourceId", value: rd.str(o, "resourceId")},
	)
	if rd.err == nil {
		rd.fail(err)
	}
	reg := region(&rd, "aliyunregionid", rd.str(o, "aliyunregionid"), arnRegion)
	st := rd.str(data, "state")
	field := "data.state"
	if st == "" {
		st, field = rd.str(content, "state"), "data.content.state"
	}
	st = state(&rd, field, st)
	if rd.err != nil {
		r.Err = rd.err
		return r
	}
	r.InstanceID, r.Region, r.State = id, reg, st
	return r
}

// ecsNotification decodes the ECS CloudMonitor/MNS notification form.
func ecsNotification(o fields, raw []byte) Request {
	r := Request{Kind: KindECSNotification, Raw: raw, Source: sourceECS, EventID: eventID(o, "id"), Accounts: accounts(nil, o, "userId", "resourceId")}
	var rd reader
	product, name := rd.str(o, "product"), rd.str(o, "name")
	if rd.err == nil && (!strings.EqualFold(product, "ECS") || name != "Instance:StateChange") {
		rd.fail(fmt.Errorf("%w: notification of product %q, name %q", ErrUnsupported, clip(product), clip(name)))
	}
	content, ok := rd.obj(o, "content")
	if rd.err == nil && !ok {
		rd.fail(fmt.Errorf("%w: ECS notification has no content object", ErrMalformed))
	}
	if rd.err != nil {
		r.Err = rd.err
		return r
	}
	id, arnRegion, err := firstInstance(
		candidate{field: "content.resourceId", value: rd.str(content, "resourceId")},
		candidate{field: "resourceId", value: rd.str(o, "resourceId")},
	)
	if rd.err == nil {
		rd.fail(err)
	}
	reg := region(&rd, "regionId", rd.str(o, "regionId"), arnRegion)
	st := state(&rd, "content.state", rd.str(content, "state"))
	if rd.err != nil {
		r.Err = rd.err
		return r
	}
	r.InstanceID, r.Region, r.State = id, reg, st
	return r
}

// ---- ESS lifecycle hooks ----

// lifecycleEvent decodes an EventBridge ess:LifecycleHook:ScaleOut/ScaleIn
// event, whose data is taken to mirror the MNS notification's content
// (reference §2.1-2.2: EventBridge's exact layout is not documented), or to
// hold that content under data.content.
func lifecycleEvent(o fields, raw []byte, transition string, limit int) []Request {
	base := Request{Kind: KindLifecycle, Raw: raw, Source: cloudEventSource(o, sourceESS), EventID: eventID(o, "id"),
		Channel: ChannelEventBridge, Accounts: cloudEventAccounts(o)}
	var rd reader
	data, ok := rd.obj(o, "data")
	if rd.err == nil && !ok {
		rd.fail(fmt.Errorf("%w: lifecycle hook event has no data object", ErrMalformed))
	}
	if inner, ok := rd.obj(data, "content"); ok {
		data = inner
	}
	base.Region = region(&rd, "aliyunregionid", rd.str(o, "aliyunregionid"), "")
	if base.Region == "" {
		base.Region = region(&rd, data.name("regionId"), rd.str(data, "regionId"), "")
	}
	if rd.err != nil {
		base.Err = rd.err
		return []Request{base}
	}
	return hook(base, data, transition, limit)
}

// lifecycleNotification decodes the lifecycle hook notification ESS sends
// to an MNS queue or topic: {userId, regionId, resourceArn, content}.
func lifecycleNotification(o fields, raw []byte, limit int) []Request {
	base := Request{Kind: KindLifecycle, Raw: raw, Source: sourceESS, Accounts: accounts(nil, o, "userId", "resourceArn")}
	var rd reader
	content, _ := rd.obj(o, "content")
	if rd.err != nil {
		base.Err = rd.err
		return []Request{base}
	}
	if !content.has("lifecycleActionToken") && !content.has("lifecycleHookId") {
		base.Kind, base.Source = "", ""
		base.Err = fmt.Errorf("%w: object with keys %s and content keys %s is no known event form", ErrUnsupported, o.keys(), content.keys())
		return []Request{base}
	}
	arnRegion := ""
	if arn := rd.str(o, "resourceArn"); strings.HasPrefix(arn, "acs:") {
		if parts := strings.SplitN(arn, ":", 5); len(parts) == 5 && ValidRegion(parts[2]) {
			arnRegion = parts[2]
		}
	}
	base.Region = region(&rd, "regionId", rd.str(o, "regionId"), arnRegion)
	if rd.err != nil {
		base.Err = rd.err
		return []Request{base}
	}
	return hook(base, content, "", limit)
}

// hook reads a lifecycle hook's fields from f and returns one Request per
// instance. want, when not empty, is the transition the event type implies;
// limit bounds the number of instances.
func hook(base Request, f fields, want string, limit int) []Request {
	var rd reader
	lc := &Lifecycle{
		HookID:         rd.str(f, "lifecycleHookId"),
		Token:          rd.str(f, "lifecycleActionToken"),
		Transition:     strings.ToUpper(rd.str(f, "lifecycleTransition")),
		DefaultResult:  strings.ToUpper(rd.str(f, "defaultResult")),
		ScalingGroupID: rd.str(f, "scalingGroupId"),
	}
	if act := rd.str(f, "scalingActivityId"); token(act) {
		lc.ScalingActivityID = act
	}
	ids, ok := rd.strs(f, "instanceIds", limit)
	switch {
	case rd.err != nil:
	case !token(lc.HookID):
		rd.fail(fmt.Errorf("%w: %s %q is missing or not a hook id", ErrMalformed, f.name("lifecycleHookId"), clip(lc.HookID)))
	case !token(lc.Token):
		rd.fail(fmt.Errorf("%w: %s is missing or malformed", ErrMalformed, f.name("lifecycleActionToken")))
	case lc.ScalingGroupID != "" && !token(lc.ScalingGroupID):
		rd.fail(fmt.Errorf("%w: %s %q is not a scaling group id", ErrMalformed, f.name("scalingGroupId"), clip(lc.ScalingGroupID)))
	case lc.Transition == "" && want == "":
		rd.fail(fmt.Errorf("%w: %s is missing", ErrMalformed, f.name("lifecycleTransition")))
	case lc.Transition != "" && lc.Transition != TransitionScaleOut && lc.Transition != TransitionScaleIn:
		rd.fail(fmt.Errorf("%w: %s %q is neither %s nor %s", ErrMalformed, f.name("lifecycleTransition"), clip(lc.Transition), TransitionScaleOut, TransitionScaleIn))
	case lc.Transition != "" && want != "" && lc.Transition != want:
		rd.fail(fmt.Errorf("%w: %s %q contradicts the event type (%s)", ErrMalformed, f.name("lifecycleTransition"), lc.Transition, want))
	case lc.DefaultResult != "" && lc.DefaultResult != "CONTINUE" && lc.DefaultResult != "ABANDON" && lc.DefaultResult != "ROLLBACK":
		rd.fail(fmt.Errorf("%w: %s %q is not CONTINUE, ABANDON or ROLLBACK", ErrMalformed, f.name("defaultResult"), clip(lc.DefaultResult)))
	case !ok || len(ids) == 0:
		rd.fail(fmt.Errorf("%w: %s is missing or empty", ErrMalformed, f.name("instanceIds")))
	}
	if lc.Transition == "" {
		lc.Transition = want
	}
	if rd.err != nil {
		// Keep what identifies the hook, so the handler may still answer it.
		if !token(lc.HookID) || !token(lc.Token) {
			lc = nil
		} else {
			lc.InstanceIDs = nil
		}
		base.Lifecycle = lc
		base.Err = rd.err
		return []Request{base}
	}
	reqs := perInstance(base, f.name("instanceIds"), ids)
	for i := range reqs {
		reqs[i].Lifecycle = lc
		if reqs[i].Err == nil {
			lc.InstanceIDs = append(lc.InstanceIDs, reqs[i].InstanceID)
		}
	}
	return reqs
}

// lifecycleTest decodes EventBridge's ess:LifecycleHook:Test event.
func lifecycleTest(o fields, raw []byte) Request {
	r := Request{Kind: KindLifecycleTest, Raw: raw, Source: cloudEventSource(o, sourceESS), EventID: eventID(o, "id"),
		Channel: ChannelEventBridge, Accounts: cloudEventAccounts(o)}
	var rd reader
	if reg := rd.str(o, "aliyunregionid"); ValidRegion(reg) {
		r.Region = reg
	}
	return r
}

// perInstance returns one Request per distinct valid id, in order. Invalid ids
// yield one Request with ErrInvalidID between them, at the place of the first,
// naming it and counting the rest: a list of 10,000 bad ids is one event that
// cannot be read, not 10,000.
func perInstance(base Request, field string, ids []string) []Request {
	reqs := make([]Request, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	bad, first := 0, -1
	for i, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !ValidInstanceID(id) {
			if bad == 0 {
				first = i
				reqs = append(reqs, base) // its place; the error is set below
			}
			bad++
			continue
		}
		r := base
		r.InstanceID = id
		reqs = append(reqs, r)
	}
	if bad > 0 {
		err := badInstanceID(fmt.Sprintf("%s[%d]", field, first), ids[first])
		if bad > 1 {
			err = fmt.Errorf("%w (and %d more invalid ids in %s)", err, bad-1, field)
		}
		for i := range reqs {
			if reqs[i].InstanceID == "" {
				reqs[i].Err = err
				break
			}
		}
	}
	return reqs
}

// ---- direct invocation and actions ----

// direct decodes {"instanceId": ...} or {"instanceIds": [...]}, with an
// optional regionId (or region) and, for one instance, networkInterfaceId.
// Other fields are ignored (producers add some, such as "attempt"), except
// near-misses of these names. limit bounds the number of instances.
func direct(o fields, raw []byte, limit int) []Request {
	base := Request{Kind: KindDirect, Raw: raw, Source: sourceDirect}
	var rd reader
	rd.exactly(o, "instanceId", "instanceIds", "regionId", "region", "networkInterfaceId")
	base.Region = directRegion(&rd, o)
	one := rd.str(o, "instanceId")
	list, isList := rd.strs(o, "instanceIds", limit)
	eni := rd.str(o, "networkInterfaceId")
	switch {
	case rd.err != nil:
	case o.has("instanceId") && isList:
		rd.fail(fmt.Errorf("%w: give instanceId or instanceIds, not both", ErrMalformed))
	case isList && len(list) == 0:
		rd.fail(fmt.Errorf("%w: instanceIds is empty", ErrMalformed))
	case isList && eni != "":
		rd.fail(fmt.Errorf("%w: networkInterfaceId names one ENI; use it with instanceId, not instanceIds", ErrMalformed))
	case eni != "" && !ValidENIID(eni):
		rd.fail(badENIID("networkInterfaceId", eni))
	case !isList && !ValidInstanceID(one):
		rd.fail(badInstanceID("instanceId", one))
	}
	if rd.err != nil {
		base.Err = rd.err
		return []Request{base}
	}
	if isList {
		return perInstance(base, "instanceIds", list)
	}
	base.InstanceID, base.ENIID = one, eni
	return []Request{base}
}

// directRegion reads regionId, or its alias region.
func directRegion(rd *reader, o fields) string {
	id, alias := rd.str(o, "regionId"), rd.str(o, "region")
	if id != "" && alias != "" && id != alias {
		rd.fail(fmt.Errorf("%w: regionId %q and region %q disagree", ErrMalformed, clip(id), clip(alias)))
		return ""
	}
	if id != "" {
		return region(rd, "regionId", id, "")
	}
	return region(rd, "region", alias, "")
}

// action decodes {"action": name, ...}. Unknown fields are refused: a
// misspelt instanceId must not widen an action to every instance.
func action(o fields, raw []byte) Request {
	r := Request{Kind: KindAction, Raw: raw, Source: sourceDirect}
	var rd reader
	rd.only(o, "an action", "action", "instanceId", "networkInterfaceId", "max", "pool", "regionId", "region")
	a := &Action{
		Name:       strings.ToLower(rd.str(o, "action")),
		InstanceID: rd.str(o, "instanceId"),
		Max:        rd.count(o, "max", maxActionCount),
		Pool:       rd.str(o, "pool"),
	}
	r.Region = directRegion(&rd, o)
	eni := rd.str(o, "networkInterfaceId")
	switch {
	case rd.err != nil:
	case a.Name != ActionStatus && a.Name != ActionReconcile && a.Name != ActionRedrive && a.Name != ActionDetach:
		rd.fail(fmt.Errorf("%w: action %q; want one of %s, %s, %s, %s", ErrUnsupported, clip(a.Name), ActionStatus, ActionReconcile, ActionRedrive, ActionDetach))
	case a.InstanceID != "" && !ValidInstanceID(a.InstanceID):
		rd.fail(badInstanceID("instanceId", a.InstanceID))
	case eni != "" && !ValidENIID(eni):
		rd.fail(badENIID("networkInterfaceId", eni))
	case o.has("pool") && !printable(a.Pool, 128):
		rd.fail(fmt.Errorf("%w: pool %q must be 1-128 printable characters", ErrMalformed, clip(a.Pool)))
	case a.Name == ActionDetach && a.InstanceID == "" && eni == "":
		rd.fail(fmt.Errorf("%w: detach needs instanceId or networkInterfaceId", ErrMalformed))
	}
	if rd.err != nil {
		r.Err = rd.err
		return r
	}
	r.Action, r.InstanceID, r.ENIID = a, a.InstanceID, eni
	return r
}
