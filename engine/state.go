package engine

import (
	"slices"
	"time"
)

// state is where a target stands on its way to an outcome. A round of the attach loop
// decides for the targets in stateDeciding; the others wait for the look their state names,
// which the loop takes before (observe: the ENIs, the pool) or at the start of (recheck: the
// instance) the next round. Two attaches of one instance can end in one round in ways that
// ask for different looks (one lost race, one instance in no state to take an ENI): then
// both are due, stateLookBoth, and each look moves the target on to the other.
type state uint8

const (
	// stateDeciding: nothing is due; the next round decides what the target needs.
	stateDeciding state = iota
	// stateLookENIs: an attach was refused in a way only the ENIs can explain (a lost race
	// that may have gone to this very instance, an instance full of ENIs the reads do not
	// show yet, a pool that looks empty): nothing is attached for the target until the loop
	// has looked at the cloud again.
	stateLookENIs
	// stateListPool: every candidate was claimed by another invocation in this process: the
	// pool is listed again before the next decision.
	stateListPool
	// stateLookInstance: the instance is described again before any attach: an attach that
	// did not last, ECS saying the instance cannot take one now, or a look too old to attach on.
	stateLookInstance
	// stateLookBoth: stateLookENIs and stateLookInstance at once.
	stateLookBoth
	// stateUnwinding: the target gave up (its instance stopped) while attaches of its own
	// may be on the instance; it detaches them before it finishes (see unwind.go). Nothing
	// is attached for it any more, and no look is asked of it but the ENIs'.
	stateUnwinding
	// stateDone: the target has its outcome; nothing moves it on.
	stateDone
)

var stateNames = [...]string{"deciding", "look-enis", "list-pool", "look-instance", "look-both", "unwinding", "done"}

func (s state) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(?)"
}

// want asks for the look s (stateLookENIs, stateListPool or stateLookInstance) before the
// target decides again.
func (t *target) want(s state) {
	switch {
	case t.state == stateDone || t.state == stateUnwinding || t.state == s || t.state == stateLookBoth:
	case t.state == stateDeciding:
		t.state = s
	case (t.state == stateLookENIs && s == stateLookInstance) || (t.state == stateLookInstance && s == stateLookENIs):
		t.state = stateLookBoth
	default:
		// A pool to list again leaves no attach of the target in flight, and nothing else
		// is asked of it before the listing; a later ask overrides the earlier one.
		t.state = s
	}
}

// looked records that the loop took the look s asked for.
func (t *target) looked(s state) {
	switch {
	case t.state == s:
		t.state = stateDeciding
	case t.state == stateLookBoth && s == stateLookENIs:
		t.state = stateLookInstance
	case t.state == stateLookBoth && s == stateLookInstance:
		t.state = stateLookENIs
	}
}

// awaits reports whether the look s is due for the target.
func (t *target) awaits(s state) bool {
	return t.state == s || (t.state == stateLookBoth && (s == stateLookENIs || s == stateLookInstance))
}

// done reports whether the target has its outcome.
func (t *target) done() bool { return t.state == stateDone }

// attachState is where this run's attach of one ENI to a target stands.
type attachState uint8

const (
	// attachNone: this run has no attach of the ENI standing (never sent, refused, or it did
	// not last).
	attachNone attachState = iota
	// attachPending: ECS accepted the attach (or, after a lost answer, the ENI was found
	// taken, most likely here); it is awaited on the instance.
	attachPending
	// attachDone: the attach was seen through (InUse on the instance), or the ENI was
	// detached again as a surplus. Either way this run attached it.
	attachDone
)

// eniRecord is what a run knows of one ENI it tried for a target. Its facts are not one
// state: an ENI awaited on the instance can be offered again by a lagging listing and refused
// (pending, refused and contested at once), and a lost answer's uncertainty outlives the
// retry that settles it.
type eniRecord struct {
	attach attachState
	// acceptedAt is when the pending attach was accepted.
	acceptedAt time.Time
	// missed is how long after acceptance the last look that found the attach unfinished
	// (or not visible yet) was sent; zero until one did. The next poll is timed from it.
	missed time.Duration
	// uncertain: an attach call failed after it may have been applied; the same ENI is
	// tried again, and a refusal of it as taken then means the first call went through.
	uncertain bool
	// uncertainAt is when the last attach call that may have been applied failed.
	uncertainAt time.Time
	// refused: the ENI is never a candidate again (ECS refused it, or its attach did not last).
	refused bool
	// contestedAt is when ECS refused the ENI as no longer Available: someone attached it,
	// maybe a duplicate of this event for this very instance. Until a read shows where it
	// went (reads lag writes), or the staleness bound passes, it counts as possibly this
	// instance's, so that no second ENI is attached beside it. Zero when not contested.
	contestedAt time.Time
}

// rec returns the record of eni, making it.
func (t *target) rec(eni string) *eniRecord {
	r, ok := t.enis[eni]
	if !ok {
		r = &eniRecord{}
		t.enis[eni] = r
	}
	return r
}

// pending reports whether eni's attach is awaited on the instance.
func (t *target) pending(eni string) bool {
	r, ok := t.enis[eni]
	return ok && r.attach == attachPending
}

// made reports whether eni may be on the instance by this invocation's doing: an attach of
// it was accepted, or its answer was lost after ECS may have applied it.
func (t *target) made(eni string) bool {
	r, ok := t.enis[eni]
	return ok && (r.attach != attachNone || lostAnswer(r))
}

// madeAt is when the target's attach of eni went through, as far as it knows: when it was
// accepted, or when a call whose answer was lost failed, whichever is earlier.
func (t *target) madeAt(eni string) time.Time {
	r := t.enis[eni]
	at := r.uncertainAt
	if r.attach != attachNone && (at.IsZero() || r.acceptedAt.Before(at)) {
		at = r.acceptedAt
	}
	return at
}

// undrop forgets that eni was detached as a surplus: it is attached again (two invocations
// that each dropped their own attach anew), and a surplus again if it is one.
func (t *target) undrop(eni string) {
	t.dropped = slices.DeleteFunc(t.dropped, func(id string) bool { return id == eni })
}

// refused reports whether eni is no candidate any more.
func (t *target) refused(eni string) bool {
	r, ok := t.enis[eni]
	return ok && r.refused
}

// count returns how many of the target's ENI records satisfy f.
func (t *target) count(f func(*eniRecord) bool) int {
	n := 0
	for _, r := range t.enis {
		if f(r) {
			n++
		}
	}
	return n
}

func isPending(r *eniRecord) bool { return r.attach == attachPending }
func isRefused(r *eniRecord) bool { return r.refused }
