package handler

import "github.com/enipool/enipool/cloud"

// Outcome is how one event ended.
type Outcome string

// The outcomes. Every event ends in exactly one (docs/invariants.md, invariant 3).
const (
	// OutcomeAttached: this invocation attached the instance's pool ENIs and saw them InUse.
	OutcomeAttached Outcome = "attached"
	// OutcomeAlreadyAttached: the instance already held its pool ENIs.
	OutcomeAlreadyAttached Outcome = "already-attached"
	// OutcomeDetached: the instance's pool ENIs went back to the pool.
	OutcomeDetached Outcome = "detached"
	// OutcomeCompleted: an ad hoc action or lifecycle completion finished.
	OutcomeCompleted Outcome = "completed"
	// OutcomeSkipped: nothing to do (not ours, gone, or a state enipool does not act on).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeDeadLettered: sent to the dead-letter queue with the reason.
	OutcomeDeadLettered Outcome = "dead-lettered"
	// OutcomeRetry: a transient failure returned to the platform, which retries the event.
	OutcomeRetry Outcome = "retry"
	// OutcomeUnresolved: a reconcile found an instance it could not fix. It is reported and
	// logged, not dead-lettered: reconcile runs again, and the event that should have fixed
	// the instance was dead-lettered when it failed.
	OutcomeUnresolved Outcome = "unresolved"
	// OutcomeFailed: the event should have been dead-lettered but the send failed; the
	// invocation returns an error so the platform keeps the event.
	OutcomeFailed Outcome = "failed"
)

// Response is what an invocation returns: one result per event (per instance for events
// naming several).
type Response struct {
	RequestID  string   `json:"requestId,omitempty"`
	Results    []Result `json:"results"`
	APICalls   int      `json:"apiCalls"`
	DurationMs int64    `json:"durationMs"`
	// Report carries the output of ad hoc actions such as status.
	Report any `json:"report,omitempty"`
}

// Result is the end of one event.
type Result struct {
	InstanceID         string        `json:"instanceId,omitempty"`
	NetworkInterfaceID string        `json:"networkInterfaceId,omitempty"`
	PrivateIP          string        `json:"privateIpAddress,omitempty"`
	ENIs               []ENIRef      `json:"networkInterfaces,omitempty"`
	Pool               string        `json:"pool,omitempty"`
	Zone               string        `json:"zone,omitempty"`
	Outcome            Outcome       `json:"outcome"`
	Code               string        `json:"code,omitempty"`
	Reason             string        `json:"reason,omitempty"`
	Action             cloud.Verdict `json:"action,omitempty"`
	Attempts           int           `json:"attempts"`
	APICalls           int           `json:"apiCalls"`
	DurationMs         int64         `json:"durationMs"`
	Detached           []string      `json:"detached,omitempty"`
	DeadLetterID       string        `json:"deadLetterMessageId,omitempty"`
	Source             string        `json:"source,omitempty"`
	EventID            string        `json:"eventId,omitempty"`
	RequestIDs         []string      `json:"requestIds,omitempty"`
}

// ENIRef names one ENI an instance holds.
type ENIRef struct {
	ID        string `json:"networkInterfaceId"`
	PrivateIP string `json:"privateIpAddress,omitempty"`
}

// holds lists the ids of the pool ENIs the result says the instance holds.
func (r Result) holds() []string {
	if len(r.ENIs) == 0 && r.NetworkInterfaceID != "" {
		return []string{r.NetworkInterfaceID}
	}
	ids := make([]string, 0, len(r.ENIs))
	for _, e := range r.ENIs {
		ids = append(ids, e.ID)
	}
	return ids
}
