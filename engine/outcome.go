package engine

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
