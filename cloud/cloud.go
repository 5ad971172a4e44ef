// Package cloud is what enipool needs of Alibaba Cloud, as interfaces and plain values: ECS,
// Auto Scaling's lifecycle reads and completions, the dead-letter queue, the errors they
// answer with, and the error table that says what to do about each. It imports no SDK: the
// engine, the handler and the SDK adapters (alicloud) meet here, and a simulated cloud
// implements the same interfaces.
package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Credentials are the STS credentials of one invocation (FC hands a fresh set to each). They
// print and log redacted.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// IsZero reports whether no credentials are set; adapters then use their default chain.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// String redacts the secret parts, so a stray %v cannot leak them.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AccessKeyID: %s, secret and token redacted}", c.AccessKeyID)
}

// GoString redacts like String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue redacts for log/slog.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Session is what a set of clients acts as: a region, an account and credentials.
type Session struct {
	Region      string
	AccountID   string
	Credentials Credentials
}

// Connector gives the handler cloud clients for a session. Implementations cache clients
// and rebuild them when the credentials change.
type Connector interface {
	Connect(ctx context.Context, s Session) (*Clients, error)
}

// Clients are the cloud APIs the handler uses, bound to one session.
type Clients struct {
	ECS         ECS
	Lifecycle   Lifecycle
	DeadLetters DeadLetters
}

// ECS is the part of the ECS OpenAPI the handler needs. Methods return *APIError for
// failures the service reported and for transport failures.
type ECS interface {
	// DescribeInstances returns the instances matching q, following pages.
	DescribeInstances(ctx context.Context, q InstanceQuery) ([]Instance, error)
	// DescribeInstanceTypes returns the named instance types: 1 to 10 per call, as ECS
	// takes; callers split longer lists.
	DescribeInstanceTypes(ctx context.Context, types []string) ([]InstanceType, error)
	// DescribeENIs returns every ENI matching q, following pages.
	DescribeENIs(ctx context.Context, q ENIQuery) ([]ENI, error)
	// AttachENI asks ECS to attach an ENI; the attach completes asynchronously.
	AttachENI(ctx context.Context, eniID, instanceID string) error
	// DetachENI asks ECS to detach an ENI; the detach completes asynchronously.
	DetachENI(ctx context.Context, eniID, instanceID string) error
	// CreateENI creates an Available ENI. Calls with the same ClientToken create one ENI.
	CreateENI(ctx context.Context, spec ENISpec) (ENI, error)
	// DeleteENI deletes an Available ENI.
	DeleteENI(ctx context.Context, eniID string) error
}

// InstanceQuery selects instances; zero fields do not filter. IDs are looked up 100 at a time.
type InstanceQuery struct {
	IDs      []string
	TagKey   string
	TagValue string
	Status   string
}

// ENISpec describes an ENI to create.
type ENISpec struct {
	VSwitchID        string
	SecurityGroupIDs []string
	Tags             map[string]string
	Description      string
	// ClientToken makes the create idempotent (at most 64 ASCII characters).
	ClientToken string
}

// Lifecycle is the part of the Auto Scaling (ESS) API the handler needs: completing and
// extending lifecycle actions, and the reads that prove a lifecycle notification's claims
// before anything is done on its word.
type Lifecycle interface {
	// Complete ends a lifecycle action with CONTINUE, ABANDON or ROLLBACK.
	Complete(ctx context.Context, hookID, token, result string) error
	// Heartbeat extends a lifecycle action's timeout.
	Heartbeat(ctx context.Context, hookID, token string, timeout time.Duration) error
	// LifecycleHook returns the hook with the given id (DescribeLifecycleHooks); found is
	// false when Auto Scaling does not know it.
	LifecycleHook(ctx context.Context, hookID string) (hook LifecycleHook, found bool, err error)
	// LifecycleActions returns the lifecycle actions of a scaling activity in the given
	// status (StatusPending, or "" for any), following pages (DescribeLifecycleActions).
	LifecycleActions(ctx context.Context, activityID, status string) ([]LifecycleAction, error)
	// ScalingInstances returns those of the named instances that are in the scaling
	// group, with their lifecycle states (DescribeScalingInstances), of the given scaling
	// activity unless activityID is empty; instances not in it are left out. Adapters
	// split the ids as the API requires.
	ScalingInstances(ctx context.Context, groupID, activityID string, instanceIDs []string) ([]ScalingInstance, error)
}

// LifecycleHook is an Auto Scaling lifecycle hook as Auto Scaling describes it.
type LifecycleHook struct {
	ID             string
	ScalingGroupID string
	Transition     string // SCALE_OUT or SCALE_IN
	DefaultResult  string
}

// LifecycleAction is one lifecycle action as DescribeLifecycleActions lists it. Its Token is
// a credential of sorts (whoever holds it may complete the action): never log it.
type LifecycleAction struct {
	HookID      string
	Token       string
	Status      string // Pending, Timeout, Completed
	Result      string
	InstanceIDs []string
}

// LifecyclePending is the status of a lifecycle action that waits for its completion.
const LifecyclePending = "Pending"

// The LifecycleState values of scaling instances the handler checks.
const (
	StatePendingWait  = "Pending:Wait"  // held by a scale-out lifecycle action
	StateRemovingWait = "Removing:Wait" // held by a scale-in lifecycle action
)

// ScalingInstance is an instance of a scaling group as DescribeScalingInstances lists it.
type ScalingInstance struct {
	InstanceID        string
	ScalingGroupID    string
	LifecycleState    string
	ScalingActivityID string
}

// DeadLetters is the dead-letter queue.
type DeadLetters interface {
	// Send enqueues one message and returns its id.
	Send(ctx context.Context, body []byte) (messageID string, err error)
	// Receive takes up to max messages, waiting at most wait for the first.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	// Delete removes a received message.
	Delete(ctx context.Context, receiptHandle string) error
	// Hide makes a received message invisible for d (ChangeMessageVisibility): it stays in
	// the queue, out of the way of the next receives.
	Hide(ctx context.Context, receiptHandle string, d time.Duration) error
}

// Message is a received dead letter.
type Message struct {
	ID            string
	ReceiptHandle string
	Body          []byte
	DequeueCount  int
}

// Instance is an ECS instance as the handler sees it.
type Instance struct {
	ID        string
	Region    string
	Zone      string
	VpcID     string
	VSwitchID string
	Type      string
	Family    string
	Status    string    // Pending, Starting, Running, Stopping, Stopped
	StartTime time.Time // zero when ECS did not say
	Tags      map[string]string
	ENIs      []string // every ENI attached to the instance, primary included
}

// InstanceType is the part of an instance type that limits ENIs.
type InstanceType struct {
	ID          string
	Family      string
	ENIQuantity int // ENIs an instance may hold, primary included
}

// ENI is an elastic network interface.
type ENI struct {
	ID             string
	Status         string // Available, Attaching, InUse, Detaching, Deleting
	Type           string // Primary, Secondary
	InstanceID     string
	VpcID          string
	VSwitchID      string
	Zone           string
	PrivateIP      string
	MAC            string
	ServiceManaged bool
	Tags           map[string]string
	Created        time.Time // zero when unknown
	// OwnerID is the account the ENI belongs to; another account's ENI shared with this one
	// cannot be attached by a RAM identity (Forbidden.NotSupportRAM).
	OwnerID string
	// DeleteOnRelease says ECS deletes the ENI when it releases the instance the ENI is
	// attached to, which is ECS's default: a pool ENI set so is lost, with its address, if
	// its instance is released before the ENI is detached.
	DeleteOnRelease bool
}

// ENI statuses.
const (
	StatusAvailable = "Available"
	StatusAttaching = "Attaching"
	StatusInUse     = "InUse"
	StatusDetaching = "Detaching"
)

// ENIQuery selects ENIs; zero fields do not filter.
type ENIQuery struct {
	IDs        []string
	VpcID      string
	InstanceID string
	Status     string
	Type       string
	TagKey     string
	TagValue   string
}

// APIError is a failed cloud call: either the service answered with an error code, or the
// call did not complete (Code empty, Err set).
type APIError struct {
	Service    string // "ecs", "ess", "mns"
	API        string // e.g. "AttachNetworkInterface"
	Code       string
	Message    string
	HTTPStatus int
	RequestID  string
	Err        error
}

// Error names the service, the API and the code or the transport failure.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s %s: %v", e.Service, e.API, e.Err)
	}
	return fmt.Sprintf("%s %s: %s (HTTP %d, request %s): %s", e.Service, e.API, e.Code, e.HTTPStatus, e.RequestID, e.Message)
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Call describes one API call an adapter made, for counting and logging.
type Call struct {
	Service   string
	API       string
	RequestID string
	Err       error
	Duration  time.Duration
}

type callObserverKey struct{}

// WithCallObserver returns a context whose API calls are reported to fn. The handler uses it
// to count calls and collect request ids per event; adapters report through ReportCall.
func WithCallObserver(ctx context.Context, fn func(Call)) context.Context {
	if prev, ok := ctx.Value(callObserverKey{}).(func(Call)); ok {
		next := fn
		fn = func(c Call) { prev(c); next(c) }
	}
	return context.WithValue(ctx, callObserverKey{}, fn)
}

// ReportCall tells the observers in ctx about a call. Adapters call it once per request sent,
// pages included.
func ReportCall(ctx context.Context, c Call) {
	if fn, ok := ctx.Value(callObserverKey{}).(func(Call)); ok {
		fn(c)
	}
}
