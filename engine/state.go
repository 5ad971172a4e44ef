package engine

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
	// stateDone: the target has its outcome; nothing moves it on.
	stateDone
)

var stateNames = [...]string{"deciding", "look-enis", "list-pool", "look-instance", "look-both", "done"}

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
	case t.state == stateDone || t.state == s || t.state == stateLookBoth:
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
