package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"time"

	"github.com/enipool/enipool/cloud"
)

// An attach can go out on a lagging read that still shows the instance Running, or its
// request can be slow on the way, and land after the instance stopped: ECS attaches to
// Stopped instances. The Stopped event's release may have run before it landed, so nothing
// else gives that ENI back. A target that gives up because its instance stopped while
// attaches of its own were accepted therefore sees them through before it finishes: it
// detaches each once InUse (ECS detaches only InUse ENIs), or, when the deadline comes
// first, ends in a dead letter naming what it may have left on the instance.

// holdOn moves a target that has just finished skipped, because its instance is stopping
// or stopped and gives its ENIs back when Stopped, into stateUnwinding when attaches of its
// own may be on the instance. The outcome it had is kept for when they are gone.
func (e *attachRun) holdOn(t *target) {
	if !t.done() || t.outcome != OutcomeSkipped || t.inst == nil {
		return
	}
	if s := t.inst.Status; (s != "Stopped" && s != "Stopping") || !e.eng.releasesOnStop(t.inst) {
		return
	}
	left := map[string]unwinding{}
	for id, r := range t.enis {
		switch {
		case slices.Contains(t.dropped, id):
		case r.attach != attachNone:
			left[id] = unwinding{since: r.acceptedAt}
		case lostAnswer(r):
			// Its answer was lost: it may have been applied all the same.
			left[id] = unwinding{since: r.uncertainAt}
		}
	}
	if len(left) == 0 {
		return
	}
	t.unwind, t.gaveUp, t.gaveUpErr = left, t.outcome, t.err
	t.state, t.outcome, t.err = stateUnwinding, "", nil
}

// unwinding is one ENI an unwinding target must see off its instance.
type unwinding struct {
	since  time.Time // when its attach was accepted (or its answer lost)
	status string    // what the view last showed, for the dead letter
}

// unwindRound detaches what it can of an unwinding target's ENIs and forgets those a read
// has placed off the instance; the target finishes with the outcome it gave up with once
// none is left.
func (e *attachRun) unwindRound(ctx context.Context, t *target) {
	now := e.eng.clock.Now()
	for id, u := range t.unwind {
		eni, seen := e.view[id]
		onT := seen && eni.InstanceID == t.id
		u.status = statusOr(eni, seen)
		t.unwind[id] = u
		switch {
		case onT && eni.Status == cloud.StatusInUse:
			err := e.call(ctx, []*target{t}, func(ctx context.Context) error { return e.ecs.DetachENI(ctx, id, t.id) })
			if err == nil {
				t.dropped = append(t.dropped, id)
				delete(t.unwind, id)
				continue
			}
			t.lastErr = err
			switch verdict, _ := cloud.Classify(err); verdict {
			case cloud.VerdictNextENI, cloud.VerdictRetry, cloud.VerdictWaitInstance:
				// Not InUse after all (a lagging read, or the Stopped event's release is
				// detaching it), or the instance is still stopping: look again.
			case cloud.VerdictSkip:
				delete(t.unwind, id) // gone
			default:
				t.finish(OutcomeDeadLettered, e.leftBehind(t, err))
				return
			}
		case onT && eni.Status == cloud.StatusAttaching:
			// ECS detaches only InUse ENIs: wait for it.
		case seen && (eni.Status == cloud.StatusDetaching || (eni.InstanceID != "" && !onT)):
			delete(t.unwind, id) // on its way back to the pool, or another instance's
		case now.Sub(u.since) > e.eng.cfg.StaleReadBound:
			// Free (or unseen) on a read sent past the lag bound after the attach: it was
			// rolled back, never applied, or already detached.
			delete(t.unwind, id)
		}
	}
	if len(t.unwind) == 0 {
		sort.Strings(t.dropped)
		t.finish(t.gaveUp, t.gaveUpErr)
		return
	}
	if t.watchWait == 0 {
		t.watchWait = max(e.eng.attachTime.typical()/4, minPoll)
	}
}

// leftBehind is the problem of an unwinding target that could not see its ENIs off: it
// names them, so the dead letter says what the stopped instance may keep.
func (e *attachRun) leftBehind(t *target, cause error) error {
	var what []string
	for id, u := range t.unwind {
		what = append(what, id+" "+u.status)
	}
	sort.Strings(what)
	code := cloud.CodeDeadline
	if c, _ := cloud.CodeOf(cause); c != "" {
		code = c
	}
	return &cloud.Problem{Code: code, Err: cause, Msg: fmt.Sprintf("instance %s stopped while this invocation's attaches were under way (%v); "+
		"it may keep pool ENI(s) %s, which were not seen detached: detach them, or let the reconcile do it", t.id, t.gaveUpErr, strings.Join(what, ", "))}
}
