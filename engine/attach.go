package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/enipool/enipool/cloud"
)

// rebootCutoff returns the date before which an instance's last start means it must be
// rebooted before it can take an ENI while Running (AttachNetworkInterface's rules).
func rebootCutoff() time.Time { return time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC) }

// target is one instance an invocation works on, and what happened to it.
type target struct {
	id           string
	hint         string // an ENI the event asked for
	allowStopped bool   // direct requests may attach to Stopped instances, as ECS allows

	inst  *cloud.Instance
	pool  string
	quota int // ENIs the instance type allows; 0 when unknown

	// enis are the ENIs this run tried for the target, and what it knows of each.
	enis map[string]*eniRecord
	// began is when this run started on the target: the polls of its attaches are spaced
	// from it (see estimator.go).
	began time.Time
	// lookedAt is when the instance was last described (zero: by someone else, earlier).
	lookedAt time.Time
	// fullAt is when ECS first refused an attach because the instance holds all the ENIs
	// its type allows (fullErr), while the reads showed fewer than N of the pool's on it.
	fullAt  time.Time
	fullErr error
	retryAt time.Time
	retry   backoff
	// throttle spaces the attempts ECS answered Throttling: every instance of the function
	// that was refused at the same moment would come back together on retry's delays.
	throttle backoff
	// watchWait spaces the looks at what this invocation waits on but did not start: an ENI
	// another invocation (or an answer lost after ECS applied it) is attaching. Zero when
	// nothing such is awaited.
	watchWait time.Duration
	lastTry   time.Time

	attempts   int
	calls      int
	requestIDs []string
	lastErr    error

	state   state
	outcome Outcome
	err     error // the error behind a dead letter, skip or retry outcome
	kept    []cloud.ENI
	dropped []string
	// settleAt is set when the target detached a surplus: another live invocation may be
	// detaching, on the same instance, an ENI this one keeps (each keeps the other's), on a
	// read as old as StaleReadBound. The target finishes only on a look sent after
	// settleAt (see converge).
	settleAt time.Time
	// exhaustedAt is when the pool first had no candidate for the target, and refillAt when
	// to list it again while an ENI of it is on its way back (see refilling).
	exhaustedAt, refillAt time.Time

	// unwind are the ENIs an unwinding target still has to see off its instance, and
	// gaveUp/gaveUpErr the outcome it finishes with then (stateUnwinding).
	unwind    map[string]unwinding
	gaveUp    Outcome
	gaveUpErr error
}

// newTarget makes the target of one instance; hint is an ENI the event asked for.
func newTarget(id, hint string, allowStopped bool) *target {
	return &target{id: id, hint: hint, allowStopped: allowStopped,
		enis:     map[string]*eniRecord{},
		retry:    backoff{base: 200 * time.Millisecond, max: 3 * time.Second},
		throttle: backoff{base: throttleBase, max: throttleMax, full: true}}
}

// AttachRequest names an instance to give its pool ENIs.
type AttachRequest struct {
	InstanceID string
	// ENIID is the ENI the event asked for, if any: then only it may be attached.
	ENIID string
	// AllowStopped lets the attach go to a Stopped instance, as ECS allows: direct requests
	// may; a Running event about an instance that has stopped since is out of date.
	AllowStopped bool
}

// Attach gives each instance its N pool ENIs, sharing the instance and pool look-ups between
// them, until each has an outcome or ctx is done. account is the caller's: only its own ENIs
// are candidates. It returns one Result per request, in order; requests name distinct
// instances.
func (eng *Engine) Attach(ctx context.Context, ecs cloud.ECS, account string, reqs []AttachRequest) []Result {
	ts := make([]*target, len(reqs))
	for i, q := range reqs {
		ts[i] = newTarget(q.InstanceID, q.ENIID, q.AllowStopped)
	}
	eng.attach(ctx, ecs, account, ts)
	out := make([]Result, len(ts))
	for i, t := range ts {
		out[i] = t.result()
	}
	return out
}

func (eng *Engine) attach(ctx context.Context, ecs cloud.ECS, account string, ts []*target) {
	if len(ts) > 0 {
		(&attachRun{eng: eng, ecs: ecs, account: account, targets: ts}).run(ctx)
	}
}

// result is the end of the target's work.
func (t *target) result() Result {
	r := Result{InstanceID: t.id, Outcome: t.outcome, Err: t.err, Pool: t.pool, ENIs: t.kept, Detached: t.dropped,
		Attempts: t.attempts, Calls: t.calls, RequestIDs: t.requestIDs, Tried: []string{}}
	if t.inst != nil {
		r.Zone, r.VpcID = t.inst.Zone, t.inst.VpcID
	}
	for id, rec := range t.enis {
		if rec.refused || rec.attach != attachNone {
			r.Tried = append(r.Tried, id)
		}
	}
	sort.Strings(r.Tried)
	return r
}

func (t *target) finish(o Outcome, err error) {
	t.state, t.outcome, t.err = stateDone, o, err
}

// attachRun runs the attach path of docs/attach.md over a set of instances of one region, sharing
// the instance and pool look-ups between them.
type attachRun struct {
	eng     *Engine
	ecs     cloud.ECS
	account string // the invocation's account: only its own ENIs are candidates

	targets []*target
	mu      sync.Mutex // guards the targets' fields written from attach goroutines
	view    map[string]cloud.ENI
	// viewSent is when the read behind each view entry was sent, and inUse the last read
	// that showed each ENI InUse on an instance: reads lag writes by different amounts, so
	// a later read may show an older world (see holdings).
	viewSent map[string]time.Time
	inUse    map[string]sighting
	listed   map[groupKey]time.Time
	// lastLook is when the loop last looked at the cloud (observe), and lookTook how long
	// that look took; lastChance is set once the loop has moved a look up to just before
	// the deadline (see lastChanceWake).
	lastLook   time.Time
	lookTook   time.Duration
	lastChance bool
}

type groupKey struct{ pool, vpc string }

// sighting is a read that showed an ENI of a pool InUse on an instance.
type sighting struct {
	instance, pool string
	sent           time.Time
}

// see records what a read sent at sent shows of eni.
func (e *attachRun) see(eni cloud.ENI, sent time.Time) {
	e.view[eni.ID], e.viewSent[eni.ID] = eni, sent
	if eni.Status == cloud.StatusInUse && eni.InstanceID != "" {
		e.inUse[eni.ID] = sighting{eni.InstanceID, eni.Tags[e.eng.cfg.TagKey], sent}
	}
}

func (t *target) group() groupKey { return groupKey{t.pool, t.inst.VpcID} }

// run drives every target to an outcome or until ctx is done.
func (e *attachRun) run(ctx context.Context) {
	e.view = make(map[string]cloud.ENI)
	e.viewSent = make(map[string]time.Time)
	e.inUse = make(map[string]sighting)
	e.listed = make(map[groupKey]time.Time)
	for _, t := range e.targets {
		t.began = e.eng.clock.Now()
	}
	if !e.describe(ctx) {
		return
	}
	if !e.listPools(ctx, e.active()) {
		return
	}
	for {
		e.decideAndAttach(ctx)
		active := e.active()
		if len(active) == 0 {
			return
		}
		wait, look := e.lastChanceWake(ctx, active)
		if err := e.eng.clock.Sleep(ctx, wait); err != nil {
			e.expire(active, err)
			return
		}
		if look {
			began := e.eng.clock.Now()
			if !e.observe(ctx, active) {
				return
			}
			e.lookTook = e.eng.clock.Now().Sub(began)
		}
	}
}

func (e *attachRun) active() []*target {
	var out []*target
	for _, t := range e.targets {
		if !t.done() {
			out = append(out, t)
		}
	}
	return out
}

// call runs one ECS call with the retry policy, counting every attempt against the targets
// it serves.
func (e *attachRun) call(ctx context.Context, ts []*target, fn func(context.Context) error) error {
	return e.eng.Retry(ctx, func(ctx context.Context) error {
		err := fn(ctx)
		e.mu.Lock()
		for _, t := range ts {
			t.calls++
		}
		e.mu.Unlock()
		return err
	})
}

// expire ends the targets still active when the deadline comes. The outcome carries the
// code of what kept the target from finishing, when there was one, so a dead letter says
// what to fix rather than only that time ran out.
func (e *attachRun) expire(active []*target, cause error) {
	for _, t := range active {
		if t.state == stateUnwinding {
			t.finish(OutcomeDeadLettered, e.leftBehind(t, cause))
			continue
		}
		msg := fmt.Sprintf("not done before the deadline (%v)", cause)
		if t.count(isPending) > 0 {
			msg = fmt.Sprintf("attach accepted but not confirmed InUse before the deadline (%v)", cause)
		}
		code := cloud.CodeDeadline
		if c, _ := cloud.CodeOf(t.lastErr); c != "" && t.count(isPending) == 0 {
			code = c
		}
		t.finish(OutcomeRetry, &cloud.Problem{Code: code, Msg: msg, Err: t.lastErr})
	}
}

// failAll ends targets after a call that could not be made to succeed. A call the deadline cut
// short says nothing about the cloud: its targets end as the deadline ends them, with what kept
// them waiting (an instance still starting is NotReady, not a transport error).
func (e *attachRun) failAll(ctx context.Context, ts []*target, err error) {
	if ctx.Err() != nil {
		var rest []*target
		for _, t := range ts {
			switch {
			case t.done():
			case isStarting(t.inst):
				t.finish(OutcomeRetry, cloud.Problemf(cloud.CodeNotReady, "instance %s is still %s", t.id, t.inst.Status))
			default:
				rest = append(rest, t)
			}
		}
		e.expire(rest, ctx.Err())
		return
	}
	for _, t := range ts {
		switch {
		case t.done():
		case t.state == stateUnwinding:
			// A retry of the event would find the instance stopped and know nothing of
			// these ENIs: the dead letter names them.
			t.finish(OutcomeDeadLettered, e.leftBehind(t, err))
		default:
			t.finish(FailOutcome(err), err)
		}
	}
}

// throttleBase and throttleMax bound the full-jitter back-off of a throttled attach: the
// window doubles from 2 s to 20 s, as the AWS SDKs' standard retry mode does, wide enough to
// spread the instances a burst throttled together (throttleWait keeps it inside the
// invocation's deadline).
const throttleBase, throttleMax = 2 * time.Second, 20 * time.Second
