// Package event decodes the payloads enipool's function receives into
// requests: one Request per event, whatever form the payload takes.
//
// Supported forms (see Decode): EventBridge ECS instance state changes, the
// ECS CloudMonitor/MNS notification, ESS lifecycle hooks (EventBridge and MNS
// notification), MNS queue trigger events (single, batch, JSON strings,
// RawData, base64 bodies), direct invocations, the dead-letter envelope and
// Function Compute's destination record (redrive), and ad hoc actions.
//
// Decoding never panics and never drops an event: what cannot be decoded
// becomes a Request whose Err says why, with the event's raw bytes kept so
// the handler can dead-letter it.
package event

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors wrapped by Request.Err; match them with errors.Is.
var (
	// ErrMalformed: not JSON, not UTF-8, a NUL byte, a duplicate key, a
	// field of the wrong JSON type, or a required field missing.
	ErrMalformed = errors.New("malformed event")
	// ErrUnsupported: well-formed, but not a form or event type enipool
	// handles (the error names what was seen).
	ErrUnsupported = errors.New("unsupported event")
	// ErrTooLarge: the payload exceeds Options.MaxBytes, a batch exceeds
	// Options.MaxEvents, or a dead-letter envelope holds a truncated event.
	ErrTooLarge = errors.New("event too large")
	// ErrTooDeep: JSON nested deeper than Options.MaxDepth, or events
	// wrapped in each other (message bodies, envelopes) too many times.
	ErrTooDeep = errors.New("event nested too deeply")
	// ErrInvalidID: an instance, ENI or region id that does not match the
	// ECS syntax; the error names the field and the value.
	ErrInvalidID = errors.New("invalid id")
)

// Kind is the form an event arrived in.
type Kind string

// The kinds of event Decode returns.
const (
	// KindECSStateChange is an EventBridge ecs:Instance:StateChange event.
	KindECSStateChange Kind = "ecs-state-change"
	// KindECSNotification is the ECS CloudMonitor/MNS notification of an
	// instance state change.
	KindECSNotification Kind = "ecs-notification"
	// KindLifecycle is an ESS lifecycle hook (scale out or scale in), from
	// EventBridge or an MNS notification.
	KindLifecycle Kind = "ess-lifecycle"
	// KindLifecycleTest is EventBridge's ess:LifecycleHook:Test event. It
	// names no real hook: acknowledge it and do nothing. Lifecycle is nil.
	KindLifecycleTest Kind = "ess-lifecycle-test"
	// KindDirect is a direct invocation naming instances.
	KindDirect Kind = "direct"
	// KindAction is an ad hoc operation; see Action.
	KindAction Kind = "action"
)

// Channel is the carrier an event reached the function through: the outermost form of the
// payload. Unlike an event's own claims, a sender cannot choose it beyond its rights: only
// those allowed to invoke the function can send a bare payload, only FC's timer sends the
// timer wrapper, only EventBridge delivers a CloudEvent from ECS or ESS, and anyone allowed to
// send to the work queue can put any body inside an MNS message.
type Channel string

// The channels Decode tells apart.
const (
	// ChannelDirect is a payload invoked directly (fc:InvokeFunction, s invoke): any form
	// that is not one of the carriers below.
	ChannelDirect Channel = "direct"
	// ChannelTimer is FC's timer trigger wrapper; its payload is the trigger's configuration.
	ChannelTimer Channel = "timer"
	// ChannelEventBridge is an ECS or ESS CloudEvent delivered as the payload itself, as
	// EventBridge triggers deliver them.
	ChannelEventBridge Channel = "eventbridge"
	// ChannelQueue is an MNS queue trigger's message (CloudEvent or RawData form): its body
	// is whatever a sender with mns:SendMessage on the queue wrote.
	ChannelQueue Channel = "queue"
)

// Lifecycle transitions.
const (
	TransitionScaleOut = "SCALE_OUT"
	TransitionScaleIn  = "SCALE_IN"
)

// Ad hoc action names (Action.Name).
const (
	ActionStatus    = "status"    // report the pool and, optionally, one instance
	ActionReconcile = "reconcile" // bring instances to exactly N pool ENIs
	ActionRedrive   = "redrive"   // handle dead letters again, deleting each that succeeds
	ActionDetach    = "detach"    // detach pool ENIs from an instance
)

// Request is one event to act on.
//
// When Err is set, the other fields hold what could be decoded and may be
// partial; Raw is always set (for a non-empty payload). An id field is only
// ever set to a value that passed validation.
type Request struct {
	// Kind is the form of the event.
	Kind Kind
	// InstanceID is the ECS instance the event is about. Set for every kind
	// except KindLifecycleTest; optional for KindAction.
	InstanceID string
	// State is the instance state of an ECS event ("Running", "Stopped",
	// ...), in ECS's capitalisation whatever the event's. All states are
	// returned; the handler decides.
	State string
	// Region is the region the event names, empty when it names none (the
	// handler then uses its own).
	Region string
	// ENIID is the ENI a direct invocation or action names explicitly
	// (networkInterfaceId), empty otherwise.
	ENIID string
	// Lifecycle is set for KindLifecycle. A hook naming several instances
	// yields one Request per instance, all sharing one Lifecycle: complete
	// the lifecycle action once all of them are done. Read only.
	Lifecycle *Lifecycle
	// Action is set for KindAction.
	Action *Action
	// Redrive is set when the event came wrapped in a dead-letter envelope
	// or a Function Compute destination record, at any depth: what it holds
	// was written by whoever could write to the queue it was read from, so
	// it is a claim at most.
	Redrive *Redrive
	// Source is the outermost carrier the event arrived through:
	// "mns:<queue>" (or "mns" when the queue is unknown) for MNS queue
	// messages, "timer:<trigger>" (or "timer") for a timer trigger's
	// event, "deadletter" for an envelope and "fc-destination" for a
	// destination record invoked directly, "direct" for direct invocations
	// and actions, else the event's own source ("acs.ecs", "acs.ess");
	// empty when nothing could be decoded.
	Source string
	// Channel is the carrier the event came on (see Channel); set for every Request,
	// including those with Err.
	Channel Channel
	// Accounts are every account id the event and its carrier name (a CloudEvent's
	// aliyunaccountid and aliyunoriginalaccountid, a notification's userId, the account of
	// each ARN), each once; empty when they name none. The handler refuses the event if any
	// is not the function's own.
	Accounts []string
	// EventID is the outermost carrier's id: the MNS messageId, the
	// CloudEvent or notification id, or the id recorded in the envelope.
	EventID string
	// Time is when the event says its change happened: a CloudEvent's time
	// (RFC 3339; the CloudEvents spec's "timestamp of when the occurrence
	// happened"). Zero when the event gives none or it cannot be read.
	Time time.Time
	// TriggerTime is when a timer trigger fired, for an event that came in FC's timer
	// wrapper; zero otherwise (or when the wrapper's time is unreadable).
	TriggerTime time.Time
	// Raw is the verbatim bytes of this event, what to dead-letter: the
	// element for a batch element (the text it holds for a JSON string
	// element), the whole CloudEvent (or RawData object) for an MNS queue
	// message, the original event for an envelope or destination record, so
	// that redriving Raw decodes the same event again. It may share memory
	// with the payload and with other Requests; do not modify it.
	Raw []byte
	// Err says why the event cannot be acted on; it wraps one of the
	// package's sentinel errors.
	Err error
}

// Lifecycle is an ESS lifecycle hook notification.
type Lifecycle struct {
	HookID string
	// Token is the lifecycleActionToken to pass to CompleteLifecycleAction.
	Token string
	// Transition is TransitionScaleOut or TransitionScaleIn.
	Transition string
	// DefaultResult is what ESS does at the hook's timeout: "CONTINUE",
	// "ABANDON" or "ROLLBACK"; empty when the event does not say.
	DefaultResult  string
	ScalingGroupID string
	// ScalingActivityID is the scaling activity the notification names
	// (scalingActivityId), empty when it names none; a claim, like the rest.
	ScalingActivityID string
	// InstanceIDs lists every instance of the hook, in order, duplicates
	// removed.
	InstanceIDs []string
}

// Action is an ad hoc operation invoked directly, such as
// {"action":"reconcile","pool":"web","max":10}.
type Action struct {
	// Name is one of ActionStatus, ActionReconcile, ActionRedrive,
	// ActionDetach.
	Name string
	// InstanceID narrows the action to one instance; required by detach
	// unless an ENI is named (Request.ENIID).
	InstanceID string
	// Max bounds the work done (instances reconciled, messages redriven);
	// 0 means the handler's default.
	Max int
	// Pool names the pool (the pool tag's value); empty means the
	// function's configured pool.
	Pool string
}

// Redrive describes the dead-letter envelope or destination record an event
// came wrapped in.
type Redrive struct {
	// FCDestination is true for Function Compute's destination record,
	// false for enipool's own envelope.
	FCDestination bool
	// InstanceID is the instance the dead letter is about, when the envelope
	// names one: an event naming several instances (a lifecycle hook) is
	// dead-lettered once per failing instance, and its redrive concerns that
	// instance only.
	InstanceID string
	// RedriveCount counts the redrives of the event including this one (1
	// on the first), at most MaxRedriveCount. Write it into the envelope if the event is
	// dead-lettered again.
	RedriveCount int
	// PreviousAction is the envelope's action, or the record's condition.
	PreviousAction string
	// PreviousError summarises the last error: the envelope's error code
	// and message, or the record's functionError.
	PreviousError string
	// EnvelopeSource and EnvelopeEventID are the envelope's source and
	// eventId: where the envelope says the original event first came from.
	// Whoever wrote the envelope chose them: the event id may correlate a
	// letter with its first failure, the source is only ever reported as a
	// claim, never recorded as where an event came from.
	EnvelopeSource  string
	EnvelopeEventID string
	// FunctionRequestID is the request id of the invocation that gave up.
	FunctionRequestID string
	// Attempts is the envelope's attempts, or the record's
	// approximateInvokeCount.
	Attempts int
}

// MaxRedriveCount caps Redrive.RedriveCount: a letter written again and again keeps this
// count rather than one that grows without bound.
const MaxRedriveCount = 100

// Defaults for Options' zero values.
const (
	DefaultMaxBytes  = 6 << 20
	DefaultMaxDepth  = 64
	DefaultMaxEvents = 10000
)

// maxWrap bounds how many times events may be wrapped in each other: MNS
// message bodies, JSON strings, envelopes, destination records. The deepest
// legitimate chain is a destination record holding an MNS message whose body
// is an envelope holding an MNS message (4).
const maxWrap = 5

// Options bound the work Decode does on hostile input. Zero (or negative)
// fields take the defaults.
type Options struct {
	// MaxBytes is the largest payload accepted (DefaultMaxBytes).
	MaxBytes int
	// MaxDepth is the deepest JSON nesting accepted (DefaultMaxDepth).
	MaxDepth int
	// MaxEvents is the most events one payload may hold, and the longest
	// instanceIds list accepted (DefaultMaxEvents).
	MaxEvents int
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	// encoding/json refuses nesting beyond 10000 on its own.
	o.MaxDepth = min(o.MaxDepth, 10000)
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	return o
}

// Decode turns a payload into one Request per event, in order.
//
// It accepts:
//   - an EventBridge CloudEvent of type ecs:Instance:StateChange;
//   - the ECS CloudMonitor notification {product:"ECS",name:"Instance:StateChange",...};
//   - ESS lifecycle hooks: EventBridge ess:LifecycleHook:ScaleOut, ScaleIn and
//     Test, and the MNS notification {userId,regionId,resourceArn,content:{...}};
//   - MNS queue trigger events (type mns:Queue:SendMessage): one CloudEvent, a
//     JSON array of them, an array of JSON strings each holding one, and
//     RawData bodies {requestId,messageId,messageBody}; a message body is
//     JSON text or base64 of it and holds any form of this list;
//   - direct invocations {"instanceId":...}, {"instanceIds":[...]} with an
//     optional regionId (or region) and networkInterfaceId;
//   - a JSON array of any of these;
//   - enipool's dead-letter envelope and Function Compute's destination
//     record: the original event inside is decoded and Redrive set;
//   - ad hoc actions {"action":"status"|"reconcile"|"redrive"|"detach",...};
//   - FC's timer trigger event {"triggerTime","triggerName","payload"}
//     (events.TimerEvent): its payload string holds any form of this list,
//     an action in practice.
//
// Anything else yields a Request with Err: ErrUnsupported for well-formed
// input of another shape (naming what was seen), ErrMalformed for input that
// is not JSON. An empty payload yields one Request with Err; Decode never
// returns zero Requests.
func Decode(payload []byte, opts Options) []Request {
	reqs := decode(payload, opts)
	for i := range reqs {
		if len(reqs[i].Raw) == 0 {
			reqs[i].Raw = payload
		}
		// A carrier sets its channel on what it holds; what none claimed was sent bare.
		if reqs[i].Channel == "" {
			reqs[i].Channel = ChannelDirect
		}
	}
	return reqs
}

func decode(payload []byte, opts Options) []Request {
	d := decoder{opts: opts.withDefaults()}
	if len(payload) > d.opts.MaxBytes {
		return []Request{failed(payload, "", fmt.Errorf("%w: payload of %d bytes exceeds the limit of %d", ErrTooLarge, len(payload), d.opts.MaxBytes))}
	}
	reqs := d.document(payload, nil, 0)
	if len(reqs) > d.opts.MaxEvents {
		return []Request{failed(payload, "", fmt.Errorf("%w: payload holds %d events, more than the limit of %d", ErrTooLarge, len(reqs), d.opts.MaxEvents))}
	}
	if len(reqs) == 0 {
		// Not reached: every path yields a Request. Kept so that the
		// promise of Decode does not rest on that.
		return []Request{failed(payload, "", fmt.Errorf("%w: no event found", ErrMalformed))}
	}
	return reqs
}

// failed returns a Request that only carries an error.
func failed(raw []byte, source string, err error) Request {
	return Request{Raw: raw, Source: source, Err: err}
}
