package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/enipool/enipool/cloud"
)

// holdings returns the pool ENIs t holds: attached or attaching as the view shows them, the
// attaches this invocation had accepted that the view does not show yet (reads lag writes),
// as Attaching, and its own attaches a read showed InUse on it that a later read, sent
// within the staleness bound, shows free: reads lag by different amounts, and an ENI that
// seemed to go would have another attached in its place (sim seed 29574). Only its own:
// another invocation's ENI may really have gone, detached as a surplus by its maker.
func (e *attachRun) holdings(t *target) []cloud.ENI {
	var held []cloud.ENI
	seen := map[string]bool{}
	for _, eni := range e.view {
		if eni.InstanceID != t.id || eni.Tags[e.eng.cfg.TagKey] != t.pool {
			continue
		}
		if eni.Status == cloud.StatusInUse || eni.Status == cloud.StatusAttaching {
			held = append(held, eni)
			seen[eni.ID] = true
		}
	}
	for id, r := range t.enis {
		if (r.attach == attachPending || lostAnswer(r)) && !seen[id] {
			eni := e.view[id]
			eni.ID, eni.InstanceID, eni.Status = id, t.id, cloud.StatusAttaching
			held = append(held, eni)
			seen[id] = true
		}
	}
	for id, s := range e.inUse {
		eni := e.view[id]
		if r, ok := t.enis[id]; !ok || r.attach != attachDone {
			continue
		}
		if s.instance != t.id || s.pool != t.pool || seen[id] || slices.Contains(t.dropped, id) || eni.InstanceID != "" ||
			e.viewSent[id].Sub(s.sent) > e.eng.cfg.StaleReadBound {
			continue
		}
		eni.ID, eni.InstanceID, eni.Status = id, t.id, cloud.StatusInUse
		held = append(held, eni)
	}
	return held
}

// candidates returns the ENIs t may take, best first.
func (e *attachRun) candidates(t *target) []cloud.ENI {
	var out []cloud.ENI
	for _, eni := range e.view {
		if eni.Status != cloud.StatusAvailable || eni.Tags[e.eng.cfg.TagKey] != t.pool || eni.VpcID != t.inst.VpcID ||
			eni.Zone != t.inst.Zone || eni.Type == "Primary" || eni.ServiceManaged || t.refused(eni.ID) {
			continue
		}
		if t.hint != "" && eni.ID != t.hint {
			continue
		}
		if eni.OwnerID != "" && e.account != "" && eni.OwnerID != e.account {
			continue // shared by another account: a RAM identity may not attach it
		}
		out = append(out, eni)
	}
	return rank(t.id, out)
}

type attachJob struct {
	t   *target
	eni string
}

// decideAndAttach settles the targets the view decides, and sends the attaches the others
// need.
func (e *attachRun) decideAndAttach(ctx context.Context) {
	e.recheck(ctx)
	n := e.eng.cfg.PerInstance
	now := e.eng.clock.Now()
	var jobs []attachJob
	for _, t := range e.active() {
		if t.state == stateUnwinding {
			e.unwindRound(ctx, t)
			continue
		}
		if e.retryLost(t, now, &jobs) {
			continue
		}
		held := e.holdings(t)
		if len(held) >= n {
			e.converge(ctx, t, held)
			continue
		}
		need := n - len(held)
		e.watch(t, held)
		waiting := e.unresolved(t, held, now)
		if waiting > 0 && t.watchWait == 0 {
			t.watchWait = max(e.eng.attachTime.typical()/4, minPoll)
		}
		need -= waiting
		if need <= 0 || now.Before(t.retryAt) || t.awaits(stateLookENIs) {
			continue
		}
		if now.Sub(t.lookedAt) > instanceFresh {
			// ECS attaches to Stopped instances too: an attach must not go out on an old
			// look at the instance, which may have stopped since (an event's long wait, a
			// retry after a lost answer). Look again first; the next round attaches.
			t.want(stateLookInstance)
			continue
		}
		if others := e.otherENIs(t); t.quota > 0 && others+n > t.quota {
			t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeENILimit,
				"instance %s (type %s) allows %d ENIs and holds %d besides its pool's; %d of the pool do not fit",
				t.id, t.inst.Type, t.quota, others, n))
			continue
		}
		if !t.fullAt.IsZero() {
			// ECS said the instance is full while it holds fewer than N of the pool's ENIs
			// as far as the reads show. Duplicates of this event may have filled it with
			// the pool's own ENIs, which lagging reads do not show yet: the refusal is
			// final only once the reads have caught up.
			if now.Sub(t.fullAt) > e.eng.cfg.StaleReadBound {
				t.finish(OutcomeDeadLettered, t.fullErr)
			} else if t.watchWait == 0 {
				t.watchWait = max(e.eng.attachTime.typical()/4, minPoll)
			}
			continue
		}
		picked, blocked := 0, 0
		for _, c := range e.candidates(t) {
			if picked == need {
				break
			}
			// The view shows c Available as of its read's sending, less the staleness bound.
			if e.eng.claims.take(c.ID, t.id, e.viewSent[c.ID].Add(-e.eng.cfg.StaleReadBound)) {
				jobs = append(jobs, attachJob{t, c.ID})
				picked++
			} else {
				blocked++
			}
		}
		// Held ENIs that are all InUse leave the rest of N to find, decided as for a target
		// holding none: waiting on nothing, it would otherwise look at the cloud every
		// minPoll until the deadline (sim seed 17).
		if picked > 0 || t.count(isPending) > 0 || waiting > 0 || t.watchWait > 0 {
			continue
		}
		if blocked > 0 {
			// Another invocation of this process is attaching them: look at the pool again
			// shortly rather than call it exhausted.
			t.want(stateListPool)
			t.retryAt = now.Add(250 * time.Millisecond)
			continue
		}
		if e.eng.hintRefused(t, e.view) {
			continue
		}
		if e.listed[t.group()].After(t.lastTry) {
			if t.exhaustedAt.IsZero() {
				t.exhaustedAt = now
			}
			est := e.eng.attachTime.typical()
			// How long an ENI on its way back may take: a surplus is dropped once what its
			// instance keeps is InUse (a slow attach: the learned 99th percentile), and a
			// read may show its detach StaleReadBound late.
			back := e.eng.attachTime.quantile(0.99) + e.eng.cfg.DetachTime + 2*e.eng.cfg.StaleReadBound
			if e.refilling(t) && now.Sub(t.exhaustedAt) <= back {
				// An ENI of the pool is on its way back (detaching, or a surplus some
				// invocation is converging): the pool is short for a moment, not
				// exhausted (sim seed 21356: an exact pool, duplicates each dropping a
				// surplus). Look again, spaced out.
				if now.Before(t.refillAt) {
					continue
				}
				if !t.refillAt.IsZero() {
					t.want(stateListPool)
				}
				t.refillAt = now.Add(max(est/4, 500*time.Millisecond))
				continue
			}
			t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodePoolExhausted,
				"pool %q has no Available ENI in zone %s of %s for instance %s", t.pool, t.inst.Zone, t.inst.VpcID, t.id))
			continue
		}
		t.want(stateListPool) // list the pool again before calling it exhausted
	}
	e.attach(ctx, jobs)
}

// refilling reports whether the view shows an ENI of t's pool, in its zone, on its way back
// to Available: detaching, or on an instance that holds more than N of the pool's.
func (e *attachRun) refilling(t *target) bool {
	held := map[string]int{}
	for _, eni := range e.view {
		if eni.Tags[e.eng.cfg.TagKey] != t.pool || eni.VpcID != t.inst.VpcID || eni.Zone != t.inst.Zone || eni.Type == "Primary" {
			continue
		}
		switch eni.Status {
		case cloud.StatusDetaching:
			if eni.InstanceID != "" {
				return true // a real detach; the view marks ENIs a look stopped seeing with no instance
			}
		case cloud.StatusInUse, cloud.StatusAttaching:
			if held[eni.InstanceID]++; eni.InstanceID != "" && held[eni.InstanceID] > e.eng.cfg.PerInstance {
				return true
			}
		}
	}
	return false
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// lostAnswer reports whether r is an attach whose answer was lost after ECS may have
// applied it, not yet placed by a read or a retry: it counts as attaching to the target, so
// that no other ENI is attached in its place and the target does not finish beside it.
func lostAnswer(r *eniRecord) bool {
	return r.uncertain && r.attach == attachNone && !r.refused
}

// retryLost settles the target's lost answers a read has placed, and retries the attach of
// one the view still shows Available once its back-off is over: a refusal of it as taken
// then says the first call went through (attachOne). It reports whether it queued a retry,
// in which case the target decides nothing else this round. A target that holds N without
// its lost answers retries none: the retry would make a surplus, and another invocation may
// have reported what it holds (sim seed 7055); it waits until a read places them instead.
func (e *attachRun) retryLost(t *target, now time.Time, jobs *[]attachJob) bool {
	settled := 0
	for _, eni := range e.holdings(t) {
		if r, ok := t.enis[eni.ID]; !ok || !lostAnswer(r) {
			settled++
		}
	}
	needed := settled < e.eng.cfg.PerInstance
	for id, r := range t.enis {
		if !lostAnswer(r) {
			continue
		}
		eni, seen := e.view[id]
		switch {
		case seen && eni.InstanceID == t.id:
			// Attaching or InUse here: it is one of the target's, and holdings counts it.
		case seen && eni.InstanceID != "":
			r.uncertain = false // another instance's: the lost call was not applied
		case now.Sub(r.uncertainAt) > e.eng.cfg.StaleReadBound:
			r.uncertain = false // still free on a read past the lag bound: not applied
		case !needed || now.Before(t.retryAt) || (seen && eni.Status != cloud.StatusAvailable):
		case now.Sub(t.lookedAt) > instanceFresh:
			t.want(stateLookInstance) // as for any attach: not on an old look at the instance
		default:
			*jobs = append(*jobs, attachJob{t, id})
			return true
		}
	}
	return false
}

// otherENIs counts the ENIs on t's instance that are not its pool's: the primary and any
// others, which leave room for the pool's N. ENIs of the pool are left out however the
// instance description and the pool listing lag one another.
func (e *attachRun) otherENIs(t *target) int {
	n := 0
	for _, id := range t.inst.ENIs {
		if eni, ok := e.view[id]; ok && eni.Tags[e.eng.cfg.TagKey] == t.pool {
			continue
		}
		if t.pending(id) {
			continue
		}
		n++
	}
	return n
}

// unresolved returns how many of t's contested ENIs may still be on their way to t, and
// forgets those a read has placed: on t (then held counts them), on another instance, or
// still free once the staleness bound has passed since the refusal.
func (e *attachRun) unresolved(t *target, held []cloud.ENI, now time.Time) int {
	n := 0
	for id, r := range t.enis {
		if r.contestedAt.IsZero() {
			continue
		}
		eni, seen := e.view[id]
		switch {
		case slices.ContainsFunc(held, func(h cloud.ENI) bool { return h.ID == id }):
			r.contestedAt = time.Time{}
		case seen && eni.InstanceID != "" && eni.InstanceID != t.id:
			r.contestedAt = time.Time{}
		case now.Sub(r.contestedAt) > e.eng.cfg.StaleReadBound:
			r.contestedAt = time.Time{}
		default:
			n++
		}
	}
	return n
}

// watch notes whether t waits on an attach it did not start (not in its pending set): the
// loop must then look again later, spaced out, since no accepted attach of its own says when.
func (e *attachRun) watch(t *target, held []cloud.ENI) {
	for _, eni := range held {
		if eni.Status == cloud.StatusAttaching && !t.pending(eni.ID) {
			if t.watchWait == 0 {
				t.watchWait = max(e.eng.attachTime.typical()/4, minPoll)
			}
			return
		}
	}
	t.watchWait = 0
}

// instanceFresh is how old a look at an instance may be when an attach to it goes out.
const instanceFresh = 2 * time.Second

// minPoll is the shortest wait between two looks at the cloud for the same targets.
const minPoll = 50 * time.Millisecond

// recheck describes again the instances whose attach did not last, so an instance that
// stopped meanwhile is not given another ENI.
func (e *attachRun) recheck(ctx context.Context) {
	var ts []*target
	for _, t := range e.active() {
		if t.awaits(stateLookInstance) {
			t.looked(stateLookInstance)
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return
	}
	starting, _ := e.lookInstances(ctx, ts)
	for _, t := range starting {
		t.retryAt = e.eng.clock.Now().Add(time.Second) // starting again: wait for it
	}
}

// hintRefused dead-letters a target whose requested ENI is not one of its pool's eligible
// ENIs: a message naming an ENI cannot widen the pool.
func (eng *Engine) hintRefused(t *target, view map[string]cloud.ENI) bool {
	if t.hint == "" {
		return false
	}
	eni, ok := view[t.hint]
	switch {
	case !ok:
		t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeNotInPool, "ENI %s is not in pool %q of %s", t.hint, t.pool, t.inst.VpcID))
	case eni.Zone != t.inst.Zone || eni.Type == "Primary" || eni.ServiceManaged:
		t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeNotInPool, "ENI %s of pool %q cannot serve instance %s (zone %s, type %s, service-managed %v)",
			t.hint, t.pool, t.id, eni.Zone, eni.Type, eni.ServiceManaged))
	case eni.Status != cloud.StatusAvailable || t.count(isRefused) > 0:
		t.finish(OutcomeDeadLettered, &cloud.Problem{Code: cloud.CodeENIUnavailable,
			Msg: fmt.Sprintf("ENI %s of pool %q is %s (instance %q)", t.hint, t.pool, eni.Status, eni.InstanceID), Err: t.lastErr})
	default:
		return false
	}
	return true
}

// converge settles a target that holds at least its N pool ENIs. The ENIs it did not attach
// itself are kept first: one of them may be what another invocation, already ended, reported
// the instance holds, while an ENI of this invocation's own is reported by nobody yet. A
// surplus therefore costs its maker its own attach. Two live invocations that both made one
// drop both and attach again; a target that has dropped a surplus once ranks by the hash
// alone, so such a pair agrees the second time even when one of them may attach only the
// ENI its request names. The ENIs are ranked, Attaching ones included, so invocations agree
// on them whatever the order attaches finish in. The surplus is detached once it can
// be (ECS detaches only InUse ENIs). The target finishes when what it keeps is InUse and
// nothing else is on it: its result then names what the instance holds. A surplus that
// cannot be detached is a failure of the event, handled as the error table says.
func (e *attachRun) converge(ctx context.Context, t *target, held []cloud.ENI) {
	ranked := rank(t.id, held)
	if t.settleAt.IsZero() {
		slices.SortStableFunc(ranked, func(a, b cloud.ENI) int {
			ma, mb := t.made(a.ID), t.made(b.ID)
			if c := cmpBool(ma, mb); c != 0 || !ma {
				return c
			}
			// Of its own, the one that came last made the surplus: the earlier may be
			// what another invocation saw as the instance's N and reported (sim seed
			// 21362: a retried attach whose answer was lost landed late).
			return t.madeAt(a.ID).Compare(t.madeAt(b.ID))
		})
	}
	keep, surplus := ranked[:e.eng.cfg.PerInstance], ranked[e.eng.cfg.PerInstance:]
	waiting, watched := false, false
	for _, k := range keep {
		if k.Status != cloud.StatusInUse {
			// The target's own accepted attaches are polled on their schedule (nextWake);
			// only what it did not start needs watching.
			waiting, watched = true, watched || !t.pending(k.ID)
		}
	}
	if waiting {
		// An ENI kept is still attaching, and ECS may roll it back: the surplus stays until
		// the kept ones are InUse, or an InUse ENI another invocation reported would be
		// detached for one that never arrives (sim seed 2824).
		if watched && t.watchWait == 0 {
			t.watchWait = max(e.eng.attachTime.typical()/4, minPoll)
		}
		return
	}
	for _, s := range surplus {
		if slices.Contains(t.dropped, s.ID) {
			continue // detach accepted; a lagging read may still show it
		}
		if s.Status != cloud.StatusInUse {
			waiting = true // attaching: it can be detached once InUse
			continue
		}
		err := e.call(ctx, []*target{t}, func(ctx context.Context) error { return e.ecs.DetachENI(ctx, s.ID, t.id) })
		if err == nil {
			t.dropped = append(t.dropped, s.ID)
			// Another invocation's detach of an ENI this one keeps rests on a read sent
			// at most StaleReadBound after this detach (later reads no longer show the
			// surplus); a read sent StaleReadBound after that one shows it.
			t.settleAt = e.eng.clock.Now().Add(2 * e.eng.cfg.StaleReadBound)
			if t.pending(s.ID) {
				t.enis[s.ID].attach = attachDone // detached again, as a surplus
			}
			continue
		}
		t.lastErr = err
		switch verdict, _ := cloud.Classify(err); verdict {
		case cloud.VerdictNextENI:
			waiting = true // not InUse after all (a lagging read), or another invocation detached it first
		case cloud.VerdictSkip:
		case cloud.VerdictRetry, cloud.VerdictWaitInstance:
			t.finish(OutcomeRetry, &cloud.Problem{Code: cloud.CodeOrTransport(err), Err: err,
				Msg: fmt.Sprintf("instance %s holds %d pool ENIs for %d and the surplus %s could not be detached", t.id, len(held), e.eng.cfg.PerInstance, s.ID)})
			return
		default:
			t.finish(OutcomeDeadLettered, &cloud.Problem{Code: cloud.CodeOrTransport(err), Err: err,
				Msg: fmt.Sprintf("instance %s holds %d pool ENIs for %d and the surplus %s cannot be detached", t.id, len(held), e.eng.cfg.PerInstance, s.ID)})
			return
		}
	}
	if waiting {
		if t.watchWait == 0 {
			t.watchWait = max(e.eng.attachTime.typical()/4, minPoll)
		}
		return
	}
	t.watchWait = 0
	if e.lastLook.Before(t.settleAt) {
		return // nextWake looks again at settleAt
	}
	t.keep(keep)
}

// keep finishes t holding keep, which are InUse on its instance: attached if one of them is
// there by its doing, an attach whose answer was lost included. The claims stay until they
// expire: other invocations here may still hold a listing that shows them Available.
func (t *target) keep(keep []cloud.ENI) {
	t.kept = keep
	o := OutcomeAlreadyAttached
	for _, k := range keep {
		if t.made(k.ID) {
			o = OutcomeAttached
		}
	}
	t.finish(o, nil)
}
