package handler

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"
)

// What ECS must say of an instance before its pool ENIs are released (release.check). A
// release without a check (a scale-in Auto Scaling confirmed, the detach action, a
// reconcile's stray) still needs the instance to carry the pool tag, as every release does.
const (
	// checkStopped: ECS says the instance is Stopped (or Stopping) and its family gives
	// ENIs back when Stopped (releasesOnStop), or ECS no longer knows it.
	checkStopped = "Stopped"
	// checkDeleted: ECS no longer knows the instance. A Deleted event about an instance ECS
	// still has is out of date, or forged.
	checkDeleted = "Deleted"
	// checkLifecycleClosed: the dead letter of one instance of a scale-in, whose action was
	// ended when the letter was written, so Auto Scaling can no longer vouch for it: as
	// checkDeleted, but refused with CodeLifecycleUnverified.
	checkLifecycleClosed = "lifecycle-closed"
)

// release is one instance whose pool ENIs go back to the pool.
type release struct {
	id    string
	check string // checkStopped, checkDeleted, checkLifecycleClosed, or "" (tag check only)
	// since is when the latest event asking for the release says its change happened (zero:
	// unknown): an instance that ECS says started after it has restarted since the event.
	since time.Time
	only  string // release just this ENI (the detach action naming one)

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

func (r *release) finish(o Outcome, err error) { r.done, r.outcome, r.err = true, o, err }

// releaseAll detaches the pool ENIs of the instances and waits until they are Available
// again, so the pool can hand them out at once. An ENI still Detaching is never a candidate
// for an attach (candidates must be Available).
func (h *Handler) releaseAll(ctx context.Context, ecs ECS, rs []*release) {
	call := func(r *release, fn func(context.Context) error) error {
		return retry(ctx, func(ctx context.Context) error { r.calls++; return fn(ctx) })
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
		var insts []Instance
		sent := h.opts.Now()
		err := call(rs[0], func(ctx context.Context) (err error) {
			insts, err = ecs.DescribeInstances(ctx, InstanceQuery{IDs: ids})
			return err
		})
		now := map[string]Instance{}
		for _, in := range insts {
			now[in.ID] = in
		}
		var lagging []string
		for _, r := range rs {
			if r.done || !slices.Contains(ids, r.id) {
				continue
			}
			in, found := now[r.id]
			contradicts := found && (r.check == checkDeleted || r.check == checkLifecycleClosed ||
				r.check == checkStopped && in.Status != "Stopped" && in.Status != "Stopping")
			switch {
			case err != nil:
				r.finish(failOutcome(err), err)
			case found && in.Tags[h.opts.TagKey] == "":
				r.finish(OutcomeSkipped, problem(CodeNotEligible, "instance %s carries no pool tag (%s): enipool takes no ENI from it", r.id, h.opts.TagKey))
			case contradicts && r.check == checkStopped && restartedSince(&in, r.since):
				// No read lag explains a start after the event: the instance stopped and
				// started again, and the event is out of date.
				r.finish(OutcomeSkipped, problem(CodeStaleEvent, "instance %s started again at %s, after the %s event (%s): its ENIs stay",
					r.id, in.StartTime.UTC().Format(time.RFC3339), r.check, r.since.UTC().Format(time.RFC3339)))
			case contradicts && again && h.opts.StaleReadBound > 0 && !h.afterLag(sent, r.since):
				lagging = append(lagging, r.id)
			case found && r.check == checkDeleted:
				r.finish(OutcomeSkipped, problem(CodeStaleEvent, "ECS still has instance %s (%s): a Deleted event releases only an instance ECS no longer knows, its ENIs stay", r.id, in.Status))
			case found && r.check == checkLifecycleClosed:
				r.finish(OutcomeDeadLettered, problem(CodeLifecycleUnverified, "instance %s (%s) is still known to ECS, and the scale-in's lifecycle action was ended when this dead letter was written, so Auto Scaling no longer vouches for it: its ENIs stay", r.id, in.Status))
			case found && r.check == checkStopped && in.Status != "Stopped" && in.Status != "Stopping":
				r.finish(OutcomeSkipped, problem(CodeStaleEvent, "instance %s is %s now: the %s event is out of date, its ENIs stay", r.id, in.Status, r.check))
			case found && r.check == checkStopped && !h.releasesOnStop(&in):
				r.finish(OutcomeSkipped, problem(CodeStaleEvent, "instance %s (family %s) takes ENIs only while Stopped: it keeps them", r.id, family(&in)))
			}
		}
		ids = lagging
		if len(ids) > 0 {
			if err := sleep(ctx, h.opts.StaleReadBound); err != nil {
				for _, r := range rs {
					if !r.done && slices.Contains(ids, r.id) {
						r.finish(OutcomeRetry, &Problem{Code: CodeDeadline, Msg: "the instance's state was not confirmed before the deadline", Err: err})
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
		var held []ENI
		err := call(r, func(ctx context.Context) (err error) {
			held, err = ecs.DescribeENIs(ctx, ENIQuery{InstanceID: r.id, TagKey: h.opts.TagKey})
			return err
		})
		if err != nil {
			r.finish(failOutcome(err), err)
			continue
		}
		r.pending, r.waiting = map[string]time.Time{}, map[string]string{}
		sort.Slice(held, func(i, j int) bool { return held[i].ID < held[j].ID })
		for _, eni := range held {
			if (r.only != "" && eni.ID != r.only) || eni.Type == "Primary" {
				continue // a primary ENI never leaves its instance, pool tag or not
			}
			if !h.opts.Serves(eni.Tags[h.opts.TagKey]) {
				continue // another deployment's pool (ENIPOOL_POOLS)
			}
			r.pool, r.zone = eni.Tags[h.opts.TagKey], eni.Zone
			switch eni.Status {
			case StatusDetaching:
				r.pending[eni.ID] = time.Now()
			case StatusAttaching:
				// ECS refuses to detach an Attaching ENI: wait for it to be InUse, then
				// detach it (awaitDetached).
				r.pending[eni.ID] = time.Now()
			case StatusInUse:
				err := call(r, func(ctx context.Context) error { return ecs.DetachENI(ctx, eni.ID, r.id) })
				r.attempts++
				if a, _ := Classify(err); err == nil || a == ActionNextENI || a == ActionSkip {
					// Not InUse any more (another invocation is detaching it) or gone: wait
					// for it like for our own.
					r.pending[eni.ID] = time.Now()
					continue
				}
				r.finish(failOutcome(err), err)
			}
			if r.done {
				break
			}
		}
		if !r.done && len(r.pending) == 0 {
			if r.only != "" {
				r.finish(OutcomeDeadLettered, problem(CodeNotInPool, "ENI %s is not a pool ENI attached to %s", r.only, r.id))
			} else {
				r.finish(OutcomeSkipped, problem(CodeStaleEvent, "instance %s holds no pool ENI", r.id))
			}
		}
	}
	h.awaitDetached(ctx, ecs, rs, call)
}

// awaitDetached polls the detached ENIs until each is Available (or gone), first when a
// detach is expected to be done.
func (h *Handler) awaitDetached(ctx context.Context, ecs ECS, rs []*release, call func(*release, func(context.Context) error) error) {
	wait := h.detachTime.get()
	first := true
	for {
		var ids []string
		var active []*release
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
		if err := sleep(ctx, wait); err != nil {
			for _, r := range active {
				var what []string
				for id := range r.pending {
					what = append(what, id+" "+firstNonEmpty(r.waiting[id], "not yet seen"))
				}
				sort.Strings(what)
				r.finish(OutcomeRetry, problem(CodeDeadline, "detach of %d ENI(s) from %s not confirmed before the deadline (%s; ECS detaches an ENI only once it is InUse)",
					len(r.pending), r.id, strings.Join(what, ", ")))
			}
			return
		}
		var got []ENI
		err := call(active[0], func(ctx context.Context) (err error) {
			got, err = ecs.DescribeENIs(ctx, ENIQuery{IDs: ids})
			return err
		})
		if err != nil {
			for _, r := range active {
				r.finish(failOutcome(err), err)
			}
			return
		}
		now := map[string]ENI{}
		for _, e := range got {
			now[e.ID] = e
		}
		allDone := true
		for _, r := range active {
			for id := range r.pending {
				eni, ok := now[id]
				switch {
				case !ok || eni.Status == StatusAvailable:
					delete(r.pending, id)
					r.detached = append(r.detached, id)
					h.claims.drop(id)
					continue
				case eni.InstanceID != "" && eni.InstanceID != r.id:
					delete(r.pending, id) // moved on to another instance: not this release's
					continue
				case eni.Status == StatusInUse:
					// An attach that was under way (or a detach refused on a lagging read)
					// settled: detach it now.
					err := call(r, func(ctx context.Context) error { return ecs.DetachENI(ctx, id, r.id) })
					r.attempts++
					if a, _ := Classify(err); err != nil && a != ActionNextENI && a != ActionSkip {
						r.finish(failOutcome(err), err)
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
		if first {
			h.detachTime.observe(wait, allDone) // the poll was sent after waiting `wait`
			first = false
			wait = max(wait/4, 50*time.Millisecond)
		} else {
			wait = min(wait*3/2, 2*time.Second)
		}
	}
}

// afterLag reports whether a read sent at sent shows the world after an event of time since:
// reads lag by StaleReadBound at most, so one sent longer than that after the event cannot
// show what was before it. Its contradiction of the event is then the truth.
func (h *Handler) afterLag(sent, since time.Time) bool {
	return !since.IsZero() && sent.Sub(since) > h.opts.StaleReadBound
}

// restartedSince reports whether ECS says the instance started after the event's time. A
// read that lags the stop shows the start before it, never after.
func restartedSince(in *Instance, since time.Time) bool {
	return !since.IsZero() && !in.StartTime.IsZero() && in.StartTime.After(since)
}

// failOutcome is the outcome of a call that could not be made to succeed.
func failOutcome(err error) Outcome {
	switch a, _ := Classify(err); a {
	case ActionRetry, ActionWaitInstance:
		return OutcomeRetry
	case ActionSkip:
		return OutcomeSkipped
	default:
		return OutcomeDeadLettered
	}
}
