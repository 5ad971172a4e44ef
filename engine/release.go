package engine

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/enipool/enipool/cloud"
)

// Check is what ECS must say of an instance before its pool ENIs are released. A
// release without a check (a scale-in Auto Scaling confirmed, the detach action, a
// reconcile's stray) still needs the instance to carry the pool tag, as every release does.
type Check string

// The checks of a release.
const (
	// CheckTag: the instance carries the pool tag, as every release needs.
	CheckTag Check = ""
	// CheckStopped: ECS says the instance is Stopped (or Stopping) and its family gives
	// ENIs back when Stopped (releasesOnStop), or ECS no longer knows it.
	CheckStopped Check = "Stopped"
	// CheckDeleted: ECS no longer knows the instance. A Deleted event about an instance ECS
	// still has is out of date, or forged.
	CheckDeleted Check = "Deleted"
)

// giveBack is one instance whose pool ENIs go back to the pool.
type giveBack struct {
	id    string
	check Check
	since time.Time // when the event asking for it says its change happened (zero: unknown)
	only  string    // release just this ENI (the detach action naming one)

	pool, zone string
	pending    map[string]time.Time // detached ENIs not yet seen Available, and Attaching ones to detach
	waiting    map[string]string    // pending ENI -> the status it was last seen in
	detached   []string
	attempts   int
	calls      int

	done    bool
	outcome Outcome
	err     error
}

func (r *giveBack) finish(o Outcome, err error) { r.done, r.outcome, r.err = true, o, err }

func (r *giveBack) result() Result {
	return Result{InstanceID: r.id, Outcome: r.outcome, Err: r.err, Pool: r.pool, Zone: r.zone,
		Detached: r.detached, Attempts: r.attempts, Calls: r.calls}
}

// ReleaseRequest names an instance whose pool ENIs go back to the pool.
type ReleaseRequest struct {
	InstanceID string
	// Check is what ECS must say of the instance first.
	Check Check
	// Only, when set, releases just this ENI (the detach action naming one, a reconcile's
	// stray).
	Only string
	// Since is when the event asking for the release says its change happened (zero:
	// unknown). An instance that ECS says started after it has restarted since the event,
	// and a read sent longer than StaleReadBound after it cannot show the world before it.
	Since time.Time
}

// Release detaches the pool ENIs of the instances and waits until they are Available again.
// It returns one Result per request, in order.
func (eng *Engine) Release(ctx context.Context, ecs cloud.ECS, reqs []ReleaseRequest) []Result {
	rs := make([]*giveBack, len(reqs))
	for i, q := range reqs {
		rs[i] = &giveBack{id: q.InstanceID, check: q.Check, only: q.Only, since: q.Since}
	}
	if len(rs) > 0 {
		eng.releaseAll(ctx, ecs, rs)
	}
	out := make([]Result, len(rs))
	for i, r := range rs {
		out[i] = r.result()
	}
	return out
}

// releaseAll detaches the pool ENIs of the instances and waits until they are Available
// again, so the pool can hand them out at once. An ENI still Detaching is never a candidate
// for an attach (candidates must be Available).
func (eng *Engine) releaseAll(ctx context.Context, ecs cloud.ECS, rs []*giveBack) {
	call := func(r *giveBack, fn func(context.Context) error) error {
		return eng.Retry(ctx, func(ctx context.Context) error { r.calls++; return fn(ctx) })
	}
	// ECS decides, not the event: every release looks at its instance first. State events
	// can arrive out of order (act on the state the instance is in now), and any event can be
	// forged; an instance without the pool tag is never enipool's to take ENIs from.
	var ids []string
	for _, r := range rs {
		if !slices.Contains(ids, r.id) {
			ids = append(ids, r.id)
		}
	}
	// A read that contradicts the event (the instance still Running for a Stopped event,
	// still known for a Deleted one) may only lag the change: it is the event that is out
	// of date only if ECS still says so once reads have caught up (sim seed 971).
	for again := true; len(ids) > 0; again = false {
		var insts []cloud.Instance
		sent := eng.clock.Now()
		err := call(rs[0], func(ctx context.Context) (err error) {
			insts, err = ecs.DescribeInstances(ctx, cloud.InstanceQuery{IDs: ids})
			return err
		})
		now := map[string]cloud.Instance{}
		for _, in := range insts {
			now[in.ID] = in
		}
		var lagging []string
		for _, r := range rs {
			if r.done || !slices.Contains(ids, r.id) {
				continue
			}
			in, found := now[r.id]
			contradicts := found && (r.check == CheckDeleted ||
				r.check == CheckStopped && in.Status != "Stopped" && in.Status != "Stopping")
			switch {
			case err != nil:
				r.finish(FailOutcome(err), err)
			case found && in.Tags[eng.cfg.TagKey] == "":
				r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeNotEligible, "instance %s carries no pool tag (%s): enipool takes no ENI from it", r.id, eng.cfg.TagKey))
			case contradicts && r.check == CheckStopped && restartedSince(&in, r.since):
				// No read lag explains a start after the event: the instance stopped and
				// started again, and the event is out of date.
				r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s started again at %s, after the %s event (%s): its ENIs stay",
					r.id, in.StartTime.UTC().Format(time.RFC3339), r.check, r.since.UTC().Format(time.RFC3339)))
			case contradicts && again && eng.cfg.StaleReadBound > 0 && !eng.afterLag(sent, r.since):
				lagging = append(lagging, r.id)
			case found && r.check == CheckDeleted:
				r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "ECS still has instance %s (%s): a Deleted event releases only an instance ECS no longer knows, its ENIs stay", r.id, in.Status))
			case found && r.check == CheckStopped && in.Status != "Stopped" && in.Status != "Stopping":
				r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s is %s now: the %s event is out of date, its ENIs stay", r.id, in.Status, r.check))
			case found && r.check == CheckStopped && !eng.releasesOnStop(&in):
				r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s (family %s) takes ENIs only while Stopped: it keeps them", r.id, family(&in)))
			}
		}
		ids = lagging
		if len(ids) > 0 {
			if err := eng.clock.Sleep(ctx, eng.cfg.StaleReadBound); err != nil {
				for _, r := range rs {
					if !r.done && slices.Contains(ids, r.id) {
						r.finish(OutcomeRetry, &cloud.Problem{Code: cloud.CodeDeadline, Msg: "the instance's state was not confirmed before the deadline", Err: err})
					}
				}
				break
			}
		}
	}
	for _, r := range rs {
		if r.done {
			continue
		}
		var held []cloud.ENI
		err := call(r, func(ctx context.Context) (err error) {
			held, err = ecs.DescribeENIs(ctx, cloud.ENIQuery{InstanceID: r.id, TagKey: eng.cfg.TagKey})
			return err
		})
		if err != nil {
			r.finish(FailOutcome(err), err)
			continue
		}
		r.pending, r.waiting = map[string]time.Time{}, map[string]string{}
		sort.Slice(held, func(i, j int) bool { return held[i].ID < held[j].ID })
		for _, eni := range held {
			if (r.only != "" && eni.ID != r.only) || eni.Type == "Primary" {
				continue // a primary ENI never leaves its instance, pool tag or not
			}
			if !eng.cfg.Serves(eni.Tags[eng.cfg.TagKey]) {
				continue // another deployment's pool (ENIPOOL_POOLS)
			}
			r.pool, r.zone = eni.Tags[eng.cfg.TagKey], eni.Zone
			switch eni.Status {
			case cloud.StatusDetaching:
				r.pending[eni.ID] = eng.clock.Now()
			case cloud.StatusAttaching:
				// ECS refuses to detach an Attaching ENI: wait for it to be InUse, then
				// detach it (awaitDetached).
				r.pending[eni.ID] = eng.clock.Now()
			case cloud.StatusInUse:
				err := call(r, func(ctx context.Context) error { return ecs.DetachENI(ctx, eni.ID, r.id) })
				r.attempts++
				if a, _ := cloud.Classify(err); err == nil || a == cloud.VerdictNextENI || a == cloud.VerdictSkip {
					// Not InUse any more (another invocation is detaching it) or gone: wait
					// for it like for our own.
					r.pending[eni.ID] = eng.clock.Now()
					continue
				}
				if code, _ := cloud.CodeOf(err); r.check == CheckStopped && code == "InvalidOperation.InvalidEcsState" {
					// ECS detaches from a Stopped instance: refused, the instance is not
					// Stopped now, whatever a lagging read said. It started again (the event
					// is out of date), or is stopping again (its own Stopped event follows).
					r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent,
						"ECS refused to detach %s from %s (%s): the instance is no longer Stopped, the Stopped event is out of date and its ENIs stay", eni.ID, r.id, code))
					break
				}
				r.finish(FailOutcome(err), err)
			}
			if r.done {
				break
			}
		}
		if !r.done && len(r.pending) == 0 {
			if r.only != "" {
				r.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeNotInPool, "ENI %s is not a pool ENI attached to %s", r.only, r.id))
			} else {
				r.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s holds no pool ENI", r.id))
			}
		}
	}
	eng.awaitDetached(ctx, ecs, rs, call)
}

// awaitDetached polls the detached ENIs until each is Available (or gone), on the detach
// estimator's schedule (see estimator.go), counted from when the detaches went out.
func (eng *Engine) awaitDetached(ctx context.Context, ecs cloud.ECS, rs []*giveBack, call func(*giveBack, func(context.Context) error) error) {
	start := eng.clock.Now()
	wait := eng.detachTime.firstPoll(0)
	var missed time.Duration // when the last poll that found a detach unfinished was sent
	for {
		var ids []string
		var active []*giveBack
		for _, r := range rs {
			if r.done || len(r.pending) == 0 {
				continue
			}
			active = append(active, r)
			for id := range r.pending {
				ids = append(ids, id)
			}
		}
		if len(active) == 0 {
			return
		}
		if err := eng.clock.Sleep(ctx, wait); err != nil {
			for _, r := range active {
				var what []string
				for id := range r.pending {
					what = append(what, id+" "+firstNonEmpty(r.waiting[id], "not yet seen"))
				}
				sort.Strings(what)
				r.finish(OutcomeRetry, cloud.Problemf(cloud.CodeDeadline, "detach of %d ENI(s) from %s not confirmed before the deadline (%s; ECS detaches an ENI only once it is InUse)",
					len(r.pending), r.id, strings.Join(what, ", ")))
			}
			return
		}
		sent := eng.clock.Now().Sub(start)
		var got []cloud.ENI
		err := call(active[0], func(ctx context.Context) (err error) {
			got, err = ecs.DescribeENIs(ctx, cloud.ENIQuery{IDs: ids})
			return err
		})
		if err != nil {
			for _, r := range active {
				r.finish(FailOutcome(err), err)
			}
			return
		}
		now := map[string]cloud.ENI{}
		for _, e := range got {
			now[e.ID] = e
		}
		allDone := true
		for _, r := range active {
			for id := range r.pending {
				eni, ok := now[id]
				switch {
				case !ok || eni.Status == cloud.StatusAvailable:
					eng.detachTime.observe(missed, sent)
					delete(r.pending, id)
					r.detached = append(r.detached, id)
					eng.claims.forget(id)
					continue
				case eni.InstanceID != "" && eni.InstanceID != r.id:
					delete(r.pending, id) // moved on to another instance: not this release's
					continue
				case eni.Status == cloud.StatusInUse:
					// An attach that was under way (or a detach refused on a lagging read)
					// settled: detach it now.
					err := call(r, func(ctx context.Context) error { return ecs.DetachENI(ctx, id, r.id) })
					r.attempts++
					if a, _ := cloud.Classify(err); err != nil && a != cloud.VerdictNextENI && a != cloud.VerdictSkip {
						r.finish(FailOutcome(err), err)
					}
				}
				r.waiting[id] = eni.Status
				allDone = false
			}
			if r.done {
				continue
			}
			if len(r.pending) == 0 {
				sort.Strings(r.detached)
				r.finish(OutcomeDetached, nil)
			}
		}
		if !allDone {
			missed = sent
		}
		wait = eng.detachTime.nextPoll(0, sent) - eng.clock.Now().Sub(start)
	}
}

// FailOutcome is the outcome of a call that could not be made to succeed.
func FailOutcome(err error) Outcome {
	switch a, _ := cloud.Classify(err); a {
	case cloud.VerdictRetry, cloud.VerdictWaitInstance:
		return OutcomeRetry
	case cloud.VerdictSkip:
		return OutcomeSkipped
	default:
		return OutcomeDeadLettered
	}
}

// Detach sends pool ENIs of an instance back to the pool: only eniID when set, and then the
// instance is looked up by the ENI when instanceID is empty.
func (eng *Engine) Detach(ctx context.Context, ecs cloud.ECS, instanceID, eniID string) Result {
	if instanceID == "" && eniID != "" {
		var got []cloud.ENI
		err := eng.Retry(ctx, func(ctx context.Context) (err error) {
			got, err = ecs.DescribeENIs(ctx, cloud.ENIQuery{IDs: []string{eniID}})
			return err
		})
		if err != nil {
			return Result{Outcome: FailOutcome(err), Err: err}
		}
		if len(got) == 1 {
			instanceID = got[0].InstanceID
		}
	}
	if instanceID == "" {
		return Result{Outcome: OutcomeSkipped, Err: cloud.Problemf(cloud.CodeStaleEvent, "ENI %s is not attached to any instance", eniID)}
	}
	return eng.Release(ctx, ecs, []ReleaseRequest{{InstanceID: instanceID, Only: eniID}})[0]
}

// afterLag reports whether a read sent at sent shows the world after an event of time since:
// reads lag by StaleReadBound at most, so one sent longer than that after the event cannot
// show what was before it. Its contradiction of the event is then the truth.
func (eng *Engine) afterLag(sent, since time.Time) bool {
	return !since.IsZero() && sent.Sub(since) > eng.cfg.StaleReadBound
}

// restartedSince reports whether ECS says the instance started after the event's time. A
// read that lags the stop shows the start before it, never after.
func restartedSince(in *cloud.Instance, since time.Time) bool {
	return !since.IsZero() && !in.StartTime.IsZero() && in.StartTime.After(since)
}
