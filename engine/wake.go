package engine

import (
	"context"
	"slices"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// nextWake returns how long to wait before the next round, and whether that round must look
// at the cloud first. A look is due when every attach accepted in this round is expected to
// be done (one listing then confirms a whole batch, however the pacer spread its attaches),
// when a poll found an attach unfinished, or when a lost race or a claimed pool asks for one.
// A round that only retries a backed-off attach needs no look.
func (e *attachRun) nextWake(active []*target) (time.Duration, bool) {
	now := e.eng.clock.Now()
	var lookAt, retryAt time.Time
	later := func(cur, at time.Time) time.Time {
		if cur.IsZero() || at.After(cur) {
			return at
		}
		return cur
	}
	sooner := func(cur, at time.Time) time.Time {
		if cur.IsZero() || at.Before(cur) {
			return at
		}
		return cur
	}
	urgent := time.Time{}
	for _, t := range active {
		if t.awaits(stateLookENIs) || t.awaits(stateListPool) {
			urgent = sooner(urgent, now)
		}
		if t.watchWait > 0 {
			urgent = sooner(urgent, now.Add(t.watchWait))
			t.watchWait = min(t.watchWait*3/2, 2*time.Second)
		}
		if t.refillAt.After(now) {
			urgent = sooner(urgent, t.refillAt)
		}
		if e.lastLook.Before(t.settleAt) {
			urgent = sooner(urgent, later(now, t.settleAt))
		}
		if !t.retryAt.IsZero() && t.retryAt.After(now) {
			retryAt = sooner(retryAt, t.retryAt)
		}
		for _, r := range t.enis {
			switch {
			case r.attach != attachPending:
			case r.missed > 0:
				// Polled and found unfinished: the next poll of the geometric schedule.
				urgent = sooner(urgent, r.acceptedAt.Add(e.eng.attachTime.nextPoll(r.acceptedAt.Sub(t.began), r.missed)))
			default:
				lookAt = later(lookAt, r.acceptedAt.Add(e.eng.attachTime.firstPoll(r.acceptedAt.Sub(t.began))))
			}
		}
	}
	if !urgent.IsZero() {
		lookAt = sooner(lookAt, urgent)
	}
	switch {
	case !lookAt.IsZero() && (retryAt.IsZero() || !retryAt.Before(lookAt)):
		return e.spaced(lookAt.Sub(now), now), true
	case !retryAt.IsZero():
		return retryAt.Sub(now), false
	}
	// Nothing scheduled, yet work remains: look again, but never back to back.
	return e.spaced(0, now), true
}

// lastChanceWake is nextWake, but when an accepted attach is still unconfirmed and the next
// look would come after ctx's deadline, it looks once just before the deadline instead (two
// looks' time before it, at least 100 ms): the attach may well be done by then, and an
// invocation that ends on an old look hands back an instance that holds its ENI.
func (e *attachRun) lastChanceWake(ctx context.Context, active []*target) (time.Duration, bool) {
	wait, look := e.nextWake(active)
	left, ok := clock.Left(ctx)
	if !ok || e.lastChance || !slices.ContainsFunc(active, func(t *target) bool { return t.count(isPending) > 0 }) {
		return wait, look
	}
	if before := left - max(100*time.Millisecond, 2*e.lookTook); wait > before {
		e.lastChance = true
		return max(0, before), true
	}
	return wait, look
}

// spaced stretches a wait before a look so that looks are at least minPoll apart: a state
// that asks for a look at once, round after round, must not become a busy loop of calls.
func (e *attachRun) spaced(wait time.Duration, now time.Time) time.Duration {
	if e.lastLook.IsZero() {
		return wait
	}
	return max(wait, e.lastLook.Add(minPoll).Sub(now))
}

// observe refreshes the view. One instance alone is looked up by instance (one call shows
// all its pool ENIs); several are seen through one listing of each of their pools.
func (e *attachRun) observe(ctx context.Context, active []*target) bool {
	// How long an attach had when looked at is counted to when the look was sent: the time
	// the answer took to come back is not the attach's.
	sent := e.eng.clock.Now()
	e.lastLook = sent
	relist := len(active) > 1
	for _, t := range active {
		if t.awaits(stateListPool) {
			relist = true
			t.looked(stateListPool)
		}
		if t.awaits(stateLookENIs) && t.count(isPending) == 0 && t.count(isRefused) > 0 && !e.listed[t.group()].After(t.lastTry) {
			relist = true
		}
	}
	if relist {
		if !e.listPools(ctx, active) {
			return false
		}
	} else {
		t := active[0]
		var got []cloud.ENI
		err := e.call(ctx, []*target{t}, func(ctx context.Context) (err error) {
			got, err = e.ecs.DescribeENIs(ctx, cloud.ENIQuery{InstanceID: t.id, TagKey: e.eng.cfg.TagKey, TagValue: t.pool})
			return err
		})
		if err != nil {
			e.failAll(ctx, []*target{t}, err)
			return false
		}
		seen := map[string]bool{}
		for _, eni := range got {
			e.see(eni, sent)
			seen[eni.ID] = true
		}
		// A view entry that claimed to be on t but is not any more went back to the pool.
		for id, eni := range e.view {
			if eni.InstanceID == t.id && !seen[id] {
				eni.InstanceID, eni.Status = "", cloud.StatusDetaching
				e.see(eni, sent)
			}
		}
	}
	for _, t := range active {
		t.looked(stateLookENIs)
		for id, r := range t.enis {
			if r.attach != attachPending {
				continue
			}
			eni, ok := e.view[id]
			onT := ok && eni.InstanceID == t.id
			waited := sent.Sub(r.acceptedAt)
			switch {
			case onT && eni.Status == cloud.StatusInUse:
				// Any look counts, one taken early for another reason too: it bounds how
				// long a read takes to show an attach done, and the last miss bounds it below.
				e.eng.attachTime.observe(r.missed, waited)
				r.attach = attachDone
			case onT && eni.Status == cloud.StatusAttaching, !e.rolledBack(eni, ok, t, waited):
				// Unfinished, or not visible yet (reads lag writes): poll again on the
				// schedule, counted from this look.
				r.missed = max(r.missed, waited)
			default:
				// The attach was accepted (or may have been), yet the ENI is elsewhere, or
				// still free long after: ECS rolled it back, another invocation detached it
				// because the instance stopped, or it never happened. Look at the instance
				// again before trying another ENI.
				r.attach, r.uncertain, r.refused = attachNone, false, true
				t.want(stateLookInstance)
				e.eng.claims.unclaim(id, t.id)
				t.lastErr = cloud.Problemf(cloud.CodeTransport, "attach of %s to %s did not last (ENI is %s)", id, t.id, statusOr(eni, ok))
			}
		}
	}
	return true
}

// rolledBack tells an accepted attach that did not last from one a lagging read does not
// show yet: it did not last when its ENI is seen on another instance, leaving this one, or
// still free (or unseen) after the staleness bound.
func (e *attachRun) rolledBack(eni cloud.ENI, seen bool, t *target, waited time.Duration) bool {
	switch {
	case seen && eni.InstanceID != "" && eni.InstanceID != t.id:
		return true
	case seen && eni.InstanceID == t.id && eni.Status == cloud.StatusDetaching:
		return true
	}
	return waited > e.eng.cfg.StaleReadBound
}

func statusOr(eni cloud.ENI, ok bool) string {
	if !ok {
		return "gone"
	}
	return eni.Status
}
