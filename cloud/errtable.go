package cloud

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Verdict is what the error table says to do about an error. Results and dead letters carry
// it as their "action" field.
type Verdict string

// The verdicts of the error table.
const (
	// VerdictRetry: a passing condition. Back off (capped, jittered) and try again inside the
	// invocation deadline; then let the platform retry, and dead-letter on its last retry.
	VerdictRetry Verdict = "retry"
	// VerdictWaitInstance: the instance is not in a state that allows the attach yet.
	// Re-check it and retry, like VerdictRetry.
	VerdictWaitInstance Verdict = "wait-instance"
	// VerdictNextENI: this ENI cannot be used (taken, gone, misconfigured). Try the next
	// candidate of the pool.
	VerdictNextENI Verdict = "next-eni"
	// VerdictDeadLetter: permanent until a person acts. Send the event to the dead-letter
	// queue with the reason.
	VerdictDeadLetter Verdict = "dead-letter"
	// VerdictSkip: not ours to act on (the instance is gone or not in a pool). Log it and
	// acknowledge; no dead letter.
	VerdictSkip Verdict = "skip"
)

// Rule maps an error code to a verdict.
type Rule struct {
	// Code is the error code, or a prefix when it ends in "*".
	Code string
	// HTTPStatus is the status the service documents for the code (0: varies or none).
	HTTPStatus int
	Verdict    Verdict
	// Meaning says what causes the code and what to do about it.
	Meaning string
}

// Codes enipool itself gives to outcomes that are not API errors. They share the table with
// the API's codes so every outcome has exactly one verdict.
const (
	CodePoolExhausted   = "enipool.PoolExhausted"
	CodeNotInPool       = "enipool.ENINotInPool"
	CodeENIUnavailable  = "enipool.RequestedENIUnavailable"
	CodeNotEligible     = "enipool.InstanceNotInPool"
	CodeRequiresStopped = "enipool.InstanceTypeRequiresStopped"
	CodeRebootRequired  = "enipool.RebootRequired"
	CodeENILimit        = "enipool.ENILimitReached"
	CodeNoVPC           = "enipool.InstanceNotInVPC"
	CodeNotFound        = "enipool.InstanceNotFound"
	CodeNotReady        = "enipool.InstanceNotReady"
	CodeStaleEvent      = "enipool.StaleEvent"
	CodeDeadline        = "enipool.DeadlineExceeded"
	CodeBadEvent        = "enipool.BadEvent"
	CodeUnsupported     = "enipool.UnsupportedEvent"
	CodeTransport       = "enipool.TransportError"
	CodeNotAllowed      = "enipool.NotAllowed"
	CodeReleaseRefused  = "enipool.ReleaseNotAllowed"
	CodeForeign         = "enipool.ForeignEvent"
	CodeBudget          = "enipool.CallBudgetExceeded"
	CodeQuarantined     = "enipool.Quarantined"
	// CodeLifecycleUnverified: Auto Scaling does not confirm a lifecycle notification's
	// claim (its action is not open for the hook, the transition or scaling group differs,
	// the instance is not held by the action, or the scaling group is not one enipool
	// serves); nothing was done on its word.
	CodeLifecycleUnverified = "enipool.LifecycleUnverified"
)

// Rules returns the error table: every error code of AttachNetworkInterface, the transient
// codes of the ECS, ESS and MNS APIs, and enipool's own outcome codes. The first matching
// rule wins; exact codes come before prefixes.
func Rules() []Rule {
	return []Rule{
		// AttachNetworkInterface's documented codes (its API reference, testdata/AttachNetworkInterface.md).
		{"InvalidUserType.NotSupported", 403, VerdictDeadLetter, "The account type cannot attach ENIs. Use an account that supports ENIs."},
		{"Abs.InvalidAccount.NotFound", 403, VerdictDeadLetter, "The account does not exist or its AccessKey expired. Check the function's RAM role and the account."},
		{"MissingParameter", 400, VerdictDeadLetter, "A required parameter was not sent: a bug in enipool. Report it with the dead letter."},
		{"Forbidden.NotSupportRAM", 403, VerdictDeadLetter, "The account does not allow RAM identities to attach ENIs. Ask the account owner to allow it."},
		{"UnsupportedParameter", 400, VerdictDeadLetter, "A parameter is not supported: an SDK/API mismatch. Report it with the dead letter."},
		{"Forbidden.SubUser", 403, VerdictDeadLetter, "The function's role may not manage this instance or ENI. Render its policy for this deployment (make policy, deploy/README.md)."},
		{"InvalidParameter", 400, VerdictDeadLetter, "A parameter value is invalid. Report it with the dead letter."},
		{"InvalidInstanceID.Malformed", 400, VerdictDeadLetter, "The event named a malformed instance id. Fix the producer of the event."},
		{"InvalidOperation.InvalidRegion", 400, VerdictDeadLetter, "The instance is not in the region the call went to. Check ENIPOOL_REGION and the event's region."},
		{"InvalidOperation.InvalidEcsState", 400, VerdictWaitInstance, "The instance is not Running or Stopped yet, its type needs Stopped, or it must be rebooted (last start before 2018-04-01). enipool checks the last two before calling and dead-letters them with that advice."},
		{"InvalidOperation.InvalidEniState", 400, VerdictNextENI, "The ENI is not Available: another attach won the race for it. enipool checks whether it went to this instance, else takes the next ENI."},
		{"InvalidOperation.DetachPrimaryEniNotAllowed", 400, VerdictDeadLetter, "A primary ENI cannot be detached: enipool never detaches one, so this is a bug. Report it."},
		{"InvalidEcsId.NotFound", 404, VerdictSkip, "The instance does not exist (released). Nothing to do."},
		{"InvalidEniId.NotFound", 404, VerdictNextENI, "The ENI was deleted after the pool was listed. The next ENI is tried."},
		{"InvalidVSwitchId.NotFound", 404, VerdictNextENI, "The ENI's vSwitch is gone. The next ENI is tried; delete or fix that ENI."},
		{"InvalidSecurityGroupId.NotFound", 404, VerdictNextENI, "The ENI's security group is gone. The next ENI is tried; fix that ENI."},
		{"MaxEniCountExceeded", 403, VerdictDeadLetter, "The account's ENI quota is reached. Raise the quota in Quota Center."},
		{"EniPerInstanceLimitExceeded", 403, VerdictDeadLetter, "The instance holds as many ENIs as its type allows. Use a larger type or fewer ENIs per instance."},
		{"InvalidOperation.AvailabilityZoneMismatch", 403, VerdictNextENI, "The ENI's vSwitch is in another zone than the instance. enipool filters by zone, so the listing was stale; the next ENI is tried."},
		{"InvalidOperation.VpcMismatch", 403, VerdictNextENI, "The ENI is in another VPC than the instance. The next ENI is tried."},
		{"SecurityGroupInstanceLimitExceed", 403, VerdictNextENI, "The ENI's security group holds its maximum of instances. The next ENI is tried; spread the pool over more groups."},
		{"InvalidSecurityGroupId.NotVpc", 403, VerdictNextENI, "The ENI's security group is not a VPC group. The next ENI is tried; fix that ENI."},
		{"InvalidOperation.InvalidEniType", 403, VerdictNextENI, "The ENI's type cannot be attached (e.g. Primary). The next ENI is tried; untag that ENI."},
		{"Forbidden.RegionId", 400, VerdictDeadLetter, "ECS ENIs are not offered in this region."},
		{"InvalidInstanceId.NotFound", 403, VerdictSkip, "The instance does not exist or is not visible to the account (released). Nothing to do."},
		{"InvalidOperation.InvalidGeneration", 400, VerdictDeadLetter, "The instance's generation does not support ENIs. Use a newer instance type."},
		{"InvalidParams.EniId", 400, VerdictDeadLetter, "The ENI id is malformed. Fix the event or the pool tag."},
		{"InvalidOperation.Ipv4CountExceeded", 403, VerdictNextENI, "This ENI's IPv4 addresses would exceed what the instance may hold. The next ENI is tried."},
		{"InvalidOperation.EniServiceManaged", 403, VerdictNextENI, "The ENI is managed by a cloud service. The next ENI is tried; untag that ENI."},
		{"InvalidOperation.Ipv6NotSupport", 403, VerdictNextENI, "The ENI has IPv6 addresses the instance type cannot take. The next ENI is tried."},

		// Codes of the describe calls that come first.
		{"InvalidRegionId.NotFound", 404, VerdictDeadLetter, "The region does not exist. Check the event's region and ENIPOOL_REGION."},

		// Transient codes of Alibaba Cloud APIs (throttling matched by prefix).
		{"Throttling*", 400, VerdictRetry, "The API's rate limit was hit (Throttling, Throttling.User, Throttling.Api, ...). Backed off and retried; lower concurrency or ENIPOOL_ATTACH_QPS if it persists."},
		{"Rejected.Throttling", 400, VerdictRetry, "Rate limit. Backed off and retried."},
		{"ServiceUnavailable", 503, VerdictRetry, "The service is briefly unavailable. Backed off and retried."},
		{"InternalError", 500, VerdictRetry, "A server-side error. Backed off and retried."},
		{"UnknownError", 0, VerdictRetry, "An unclassified server-side error. Backed off and retried."},
		{"OperationConflict", 0, VerdictRetry, "Another operation on the resource is in progress. Backed off and retried."},
		{"InvalidSecurityToken.Expired", 0, VerdictRetry, "The invocation's STS token expired. The platform's retry brings fresh credentials."},
		{"QpsLimitExceeded", 503, VerdictRetry, "MNS rate limit. Backed off and retried."},

		// Authorization and credential problems: fix the deployment.
		{"Forbidden.RAM", 403, VerdictDeadLetter, "The function's role lacks a permission. Render its policy for this deployment (make policy, deploy/README.md)."},
		{"Forbidden*", 403, VerdictDeadLetter, "Not allowed. Check the function's RAM role."},
		{"InvalidAccessKeyId*", 0, VerdictDeadLetter, "The AccessKey is unknown or disabled. Check the function's role."},
		{"SignatureDoesNotMatch", 400, VerdictDeadLetter, "The request signature was refused. Check the credentials configuration."},
		{"LifecycleHookIdAndLifecycleActionToken.Invalid", 400, VerdictSkip, "The lifecycle action is already completed or expired. Nothing to do."},

		// enipool's own outcome codes.
		{CodeTransport, 0, VerdictRetry, "The call did not complete (timeout, reset, refused). Backed off and retried."},
		{CodeDeadline, 0, VerdictRetry, "The work did not finish inside the invocation deadline. The platform retries; on its last retry the event is dead-lettered."},
		{CodeNotReady, 0, VerdictWaitInstance, "The instance is still starting. Re-checked until the deadline."},
		{CodePoolExhausted, 0, VerdictDeadLetter, "The pool has no Available ENI in the instance's zone and VPC. Add ENIs with the pool tag there, then redrive."},
		{CodeNotInPool, 0, VerdictDeadLetter, "The event asked for an ENI that is not in the instance's pool. Refused: only pool ENIs are attached."},
		{CodeENIUnavailable, 0, VerdictDeadLetter, "The event asked for a pool ENI that is attached elsewhere or not Available. Detach it or drop the request's networkInterfaceId, then redrive."},
		{CodeRequiresStopped, 0, VerdictDeadLetter, "The instance type requires the instance to be Stopped for an ENI attach. Stop it and redrive, or use another type."},
		{CodeRebootRequired, 0, VerdictDeadLetter, "The instance was last started before 2018-04-01 and is Running: reboot it (RebootInstance), then redrive."},
		{CodeENILimit, 0, VerdictDeadLetter, "The instance already holds as many ENIs as its type allows. Use a larger type or fewer ENIs per instance."},
		{CodeNoVPC, 0, VerdictDeadLetter, "The instance is not in a VPC; ENIs attach only to VPC instances."},
		{CodeNotFound, 0, VerdictSkip, "The instance does not exist (released before the event was handled). Nothing to do."},
		{CodeNotEligible, 0, VerdictSkip, "The instance carries no pool tag, or a pool this deployment does not serve (ENIPOOL_POOLS): not ours. Nothing to do."},
		{CodeStaleEvent, 0, VerdictSkip, "The event's state is not one enipool acts on, or the instance has moved on since. Nothing to do."},
		{CodeBadEvent, 0, VerdictDeadLetter, "The payload could not be decoded. Dead-lettered with the raw payload; fix its producer."},
		{CodeUnsupported, 0, VerdictDeadLetter, "The payload is valid but of a kind enipool does not handle. Dead-lettered with the raw payload."},
		{CodeNotAllowed, 0, VerdictDeadLetter, "The event asked for what its channel may not: actions come only from a direct invocation or the timer trigger, one per invocation. Dead-lettered with the raw payload; never redriven as an action."},
		{CodeReleaseRefused, 0, VerdictSkip, "A release (Stopped, Deleted, scale-in) came on a channel that may only ask for attaches (the work queue, a dead letter, an FC record). Not acted on: reconcile sends back a stopped instance's ENIs, and ECS detaches a released one's. A scale-in hook's notification straight from the work queue is dead-lettered, as its hook is misconfigured: point scale-in hooks at EventBridge; the action waits out its timeout."},
		{CodeForeign, 0, VerdictDeadLetter, "The event names another region or account than the function's own. Refused: a deployment acts only in its own region and account."},
		{CodeBudget, 0, VerdictDeadLetter, "The invocation made as many ECS calls as ENIPOOL_MAX_CALLS allows. What was left is dead-lettered; redrive it."},
		{CodeQuarantined, 0, VerdictDeadLetter, "A dead letter that cannot be acted on came back from the queue several times. Redrive leaves it in the queue, invisible for 12 hours: read it and delete it."},
		{CodeLifecycleUnverified, 0, VerdictDeadLetter, "Auto Scaling does not confirm the lifecycle notification: it lists no action of that hook with that token, the hook's transition or scaling group is not the one claimed, the instance is not one the action names or not in its wait state (Pending:Wait, Removing:Wait), or the scaling group is not in ENIPOOL_SCALING_GROUPS. Nothing was attached, detached or completed on its word: find who sent it (a forgery or a misrouted event). A redrive attaches a scale-out's instance as a direct invocation would; a letter never releases (reconcile sends back a stopped instance's ENIs, ECS detaches a released one's)."},
	}
}

// Problem is an outcome enipool decided itself, without an API error: a precondition that
// failed, an exhausted pool, a decoding error. Its Code is in the error table.
type Problem struct {
	Code string
	Msg  string
	Err  error
}

// Error says the code, the message and the cause.
func (p *Problem) Error() string {
	if p.Err != nil {
		return p.Code + ": " + p.Msg + ": " + p.Err.Error()
	}
	return p.Code + ": " + p.Msg
}

// Unwrap returns the underlying error.
func (p *Problem) Unwrap() error { return p.Err }

// Problemf returns a Problem with code and a formatted message.
func Problemf(code, format string, args ...any) *Problem {
	return &Problem{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Classify returns the verdict for err and the rule that decided it. Transport failures
// retry; unknown codes retry when the status is 5xx and dead-letter otherwise.
func Classify(err error) (Verdict, Rule) {
	code, status := CodeOf(err)
	if code == "" {
		return VerdictRetry, Rule{Code: CodeTransport, Verdict: VerdictRetry}
	}
	rules := Rules()
	for _, r := range rules {
		if r.Code == code {
			return r.Verdict, r
		}
	}
	for _, r := range rules {
		if p, ok := strings.CutSuffix(r.Code, "*"); ok && strings.HasPrefix(code, p) {
			return r.Verdict, r
		}
	}
	if status >= 500 {
		return VerdictRetry, Rule{Code: code, HTTPStatus: status, Verdict: VerdictRetry, Meaning: "Unknown server error: retried."}
	}
	return VerdictDeadLetter, Rule{Code: code, HTTPStatus: status, Verdict: VerdictDeadLetter, Meaning: "Unknown error code: dead-lettered for a person to look at."}
}

// CodeOf returns the error code and HTTP status err carries; "" for transport failures.
func CodeOf(err error) (string, int) {
	var p *Problem
	if errors.As(err, &p) {
		return p.Code, 0
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code, ae.HTTPStatus
	}
	return "", 0
}

// CodeOrTransport returns the code err carries, or CodeTransport for a call that did not
// complete.
func CodeOrTransport(err error) string {
	if code, _ := CodeOf(err); code != "" {
		return code
	}
	return CodeTransport
}

// WriteMarkdownTable writes the error table as Markdown; the README carries its output.
func WriteMarkdownTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Code | HTTP | Action | What it means, what to do |\n| --- | --- | --- | --- |\n")
	for _, r := range Rules() {
		status := ""
		if r.HTTPStatus != 0 {
			status = fmt.Sprint(r.HTTPStatus)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Code, status, r.Verdict, r.Meaning)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
