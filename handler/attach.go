package handler

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// rebootCutoff returns the date before which an instance's last start means it must be
// rebooted before it can take an ENI while Running (AttachNetworkInterface's rules).
func rebootCutoff() time.Time { return time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC) }

// target is one instance an invocation works on, and what happened to it.
type target struct {
	id           string
	hint         string // an ENI the event asked for
	allowStopped bool   // direct requests may attach to Stopped instances, as ECS allows

	inst  *Instance
	pool  string
	quota int // ENIs the instance type allows; 0 when unknown

	tried   map[string]bool
	pending map[string]time.Time // ENI -> when its attach was accepted
	polled  map[string]bool      // ENIs whose first confirmation poll happened
	ours    map[string]bool      // ENIs this invocation attached
	// uncertain marks pending attaches whose call failed after it may have been applied.
	uncertain map[string]bool
	// lookedAt is when the instance was last described (zero: by someone else, earlier).
	lookedAt time.Time
	// fullAt is when ECS first refused an attach because the instance holds all the ENIs
	// its type allows (fullErr), while the reads showed fewer than N of the pool's on it.
	fullAt  time.Time
	fullErr error
	// contested holds the ENIs whose attach ECS refused as no longer Available, with when:
	// someone attached them, maybe a duplicate of this event for this very instance. Until a
	// read shows where they went (reads lag writes), or the staleness bound passes, each
	// counts as possibly this instance's, so that no second ENI is attached beside it.
	contested map[string]time.Time
	retryAt   time.Time
	retry     backoff
	pollWait  time.Duration
	// watchWait spaces the looks at what this invocation waits on but did not start: an ENI
	// another invocation (or an answer lost after ECS applied it) is attaching. Zero when
	// nothing such is awaited.
	watchWait time.Duration
	needLook  bool // a lost race: look whether the ENI went to this instance
	recheck   bool // an accepted attach's ENI left the instance: look at the instance again
	stale     bool // every candidate was claimed by another invocation here: list the pool again
	lastTry   time.Time

	attempts   int
	calls      int
	requestIDs []string
	lastErr    error

	done    bool
	outcome Outcome
	err     error // the error behind a dead letter, skip or retry outcome
	kept    []ENI
	dropped []string
}

func (t *target) finish(o Outcome, err error) {
	t.done, t.outcome, t.err = true, o, err
}

// engine runs the attach path of docs/attach.md over a set of instances of one region, sharing
// the instance and pool look-ups between them.
type engine struct {
	h       *Handler
	ecs     ECS
	account string // the invocation's account: only its own ENIs are candidates

	targets []*target
	mu      sync.Mutex // guards the targets' fields written from attach goroutines
	view    map[string]ENI
	listed  map[groupKey]time.Time
	// lastLook is when the loop last looked at the cloud (observe).
	lastLook time.Time
}

type groupKey struct{ pool, vpc string }

func (t *target) group() groupKey { return groupKey{t.pool, t.inst.VpcID} }

// run drives every target to an outcome or until ctx is done.
func (e *engine) run(ctx context.Context) {
	e.view = make(map[string]ENI)
	e.listed = make(map[groupKey]time.Time)
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
		wait, look := e.nextWake(active)
		if err := sleep(ctx, wait); err != nil {
			e.expire(active, err)
			return
		}
		if look && !e.observe(ctx, active) {
			return
		}
	}
}

func (e *engine) active() []*target {
	var out []*target
	for _, t := range e.targets {
		if !t.done {
			out = append(out, t)
		}
	}
	return out
}

// call runs one ECS call with the retry policy, counting every attempt against the targets
// it serves.
func (e *engine) call(ctx context.Context, ts []*target, fn func(context.Context) error) error {
	return retry(ctx, func(ctx context.Context) error {
		err := fn(ctx)
		e.mu.Lock()
		for _, t := range ts {
			t.calls++
		}
		e.mu.Unlock()
		return err
	})
}

// describe looks the instances up (unless the caller already did) and checks what can be
// checked before an attach: eligibility, state, VPC, the instance type's rules and ENI limit.
func (e *engine) describe(ctx context.Context) bool {
	retry := backoff{base: time.Second, max: 5 * time.Second}
	var todo []*target
	for _, t := range e.active() {
		if t.inst == nil {
			todo = append(todo, t)
		} else {
			e.precheck(t)
		}
	}
	for len(todo) > 0 {
		starting, ok := e.lookInstances(ctx, todo)
		if !ok {
			return false
		}
		if len(starting) == 0 {
			break
		}
		if err := sleep(ctx, retry.next()); err != nil {
			for _, t := range starting {
				t.finish(OutcomeRetry, problem(CodeNotReady, "instance %s is still %s", t.id, t.inst.Status))
			}
			return len(e.active()) > 0
		}
		todo = starting
	}
	return len(e.active()) > 0 && e.checkTypes(ctx)
}

func isStarting(i *Instance) bool {
	return i != nil && (i.Status == "Pending" || i.Status == "Starting")
}

// precheck settles what the instance record alone decides; it reports true when the
// instance is still starting and must be looked up again.
func (e *engine) precheck(t *target) bool {
	i, o := t.inst, e.h.opts
	switch {
	case i == nil:
		t.finish(OutcomeSkipped, problem(CodeNotFound, "instance %s does not exist", t.id))
		return false
	case i.Tags[o.TagKey] == "":
		t.finish(OutcomeSkipped, problem(CodeNotEligible, "instance %s has no %s tag", t.id, o.TagKey))
		return false
	case !o.Serves(i.Tags[o.TagKey]):
		t.finish(OutcomeSkipped, problem(CodeNotEligible, "instance %s is in pool %q, which this deployment does not serve (ENIPOOL_POOLS %s)",
			t.id, i.Tags[o.TagKey], strings.Join(o.Pools, ",")))
		return false
	case isStarting(i):
		return true
	case i.Status == "Stopped" && !t.allowStopped:
		t.finish(OutcomeSkipped, problem(CodeStaleEvent, "instance %s is Stopped now; the Running event is out of date", t.id))
		return false
	case i.Status == "Stopped" && e.h.releasesOnStop(i):
		t.finish(OutcomeSkipped, problem(CodeStaleEvent,
			"instance %s is Stopped, and Stopped instances give their ENIs back (ENIPOOL_RELEASE_ON): it gets them when it runs", t.id))
		return false
	case i.Status != "Running" && i.Status != "Stopped":
		t.finish(OutcomeSkipped, problem(CodeStaleEvent, "instance %s is %s", t.id, i.Status))
		return false
	case i.VpcID == "":
		t.finish(OutcomeDeadLettered, problem(CodeNoVPC, "instance %s is not in a VPC", t.id))
		return false
	}
	t.pool = i.Tags[o.TagKey]
	if i.Status == "Running" {
		if e.h.stoppedOnly(i) {
			t.finish(OutcomeDeadLettered, problem(CodeRequiresStopped,
				"instance type %s (family %s) requires the instance to be Stopped to attach an ENI; stop %s and redrive, or use another type",
				i.Type, family(i), t.id))
			return false
		}
		if !i.StartTime.IsZero() && i.StartTime.Before(rebootCutoff()) {
			t.finish(OutcomeDeadLettered, problem(CodeRebootRequired,
				"instance %s was last started %s, before 2018-04-01: reboot it (RebootInstance), then redrive",
				t.id, i.StartTime.UTC().Format("2006-01-02")))
			return false
		}
	}
	return false
}

// stoppedOnly reports whether the instance's family takes ENIs only while Stopped.
func (h *Handler) stoppedOnly(i *Instance) bool {
	return slices.Contains(h.opts.StoppedOnlyFamilies, family(i))
}

// releasesOnStop reports whether a Stopped instance gives its pool ENIs back. Instances of
// families that take ENIs only while Stopped keep them: they could not get them back running.
func (h *Handler) releasesOnStop(i *Instance) bool {
	return slices.Contains(h.opts.ReleaseOn, "Stopped") && !h.stoppedOnly(i)
}

func family(i *Instance) string {
	if i.Family != "" {
		return i.Family
	}
	// ecs.t5-lc1m1.small -> ecs.t5; ecs.g7.large -> ecs.g7
	parts := strings.SplitN(i.Type, ".", 3)
	if len(parts) < 2 {
		return i.Type
	}
	f := parts[0] + "." + parts[1]
	if k := strings.IndexByte(f, '-'); k > 0 {
		f = f[:k]
	}
	return f
}

// maxTypesPerCall is the most instance types one DescribeInstanceTypes call may name.
const maxTypesPerCall = 10

// checkTypes learns the ENI quota of the instances' types (cached for the process) and
// refuses instances that have no room for their ENIs.
func (e *engine) checkTypes(ctx context.Context) bool {
	var types []string
	seen := map[string]bool{}
	for _, t := range e.active() {
		if !seen[t.inst.Type] {
			seen[t.inst.Type] = true
			types = append(types, t.inst.Type)
		}
	}
	// ECS takes 1 to 10 types per call. A look-up that fails leaves its types unknown
	// rather than failing the instances: the quota is only a pre-check, and ECS refuses an
	// attach beyond it (EniPerInstanceLimitExceeded) anyway.
	err := e.h.types.lookup(ctx, types, func(ctx context.Context, missing []string) ([]InstanceType, error) {
		var all []InstanceType
		for chunk := range slices.Chunk(missing, maxTypesPerCall) {
			var served []*target
			for _, t := range e.active() {
				if slices.Contains(chunk, t.inst.Type) {
					served = append(served, t)
				}
			}
			var got []InstanceType
			err := e.call(ctx, served, func(ctx context.Context) (err error) {
				got, err = e.ecs.DescribeInstanceTypes(ctx, chunk)
				return err
			})
			if err != nil {
				e.h.log.Warn("enipool.instance-types-unknown", "instanceTypes", chunk, "error", err.Error(),
					"reason", "the ENI quota of these types is not checked before attaching; ECS still enforces it")
				continue
			}
			all = append(all, got...)
		}
		return all, nil
	})
	if err != nil {
		e.failAll(ctx, e.active(), err)
		return false
	}
	for _, t := range e.active() {
		if it, ok := e.h.types.get(t.inst.Type); ok {
			t.quota = it.ENIQuantity
		}
	}
	return true
}

// listPools lists each pool the targets need once, in full (any status), so one listing
// shows both the candidates and what each instance already holds.
func (e *engine) listPools(ctx context.Context, ts []*target) bool {
	groups := map[groupKey][]*target{}
	for _, t := range ts {
		groups[t.group()] = append(groups[t.group()], t)
	}
	keys := make([]groupKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].pool+keys[i].vpc < keys[j].pool+keys[j].vpc })
	for _, k := range keys {
		members := groups[k]
		var got []ENI
		err := e.call(ctx, members, func(ctx context.Context) (err error) {
			got, err = e.ecs.DescribeENIs(ctx, ENIQuery{VpcID: k.vpc, TagKey: e.h.opts.TagKey, TagValue: k.pool})
			return err
		})
		if err != nil {
			e.failAll(ctx, members, err)
			continue
		}
		for _, id := range e.idsInGroup(k) {
			delete(e.view, id)
		}
		for _, eni := range got {
			e.view[eni.ID] = eni
		}
		e.listed[k] = time.Now()
	}
	return len(e.active()) > 0
}

func (e *engine) idsInGroup(k groupKey) []string {
	var ids []string
	for id, eni := range e.view {
		if eni.VpcID == k.vpc && eni.Tags[e.h.opts.TagKey] == k.pool {
			ids = append(ids, id)
		}
	}
	return ids
}

// holdings returns the pool ENIs t holds: attached or attaching as the view shows them, and
// the attaches this invocation had accepted that the view does not show yet (reads lag
// writes), as Attaching.
func (e *engine) holdings(t *target) []ENI {
	var held []ENI
	seen := map[string]bool{}
	for _, eni := range e.view {
		if eni.InstanceID != t.id || eni.Tags[e.h.opts.TagKey] != t.pool {
			continue
		}
		if eni.Status == StatusInUse || eni.Status == StatusAttaching {
			held = append(held, eni)
			seen[eni.ID] = true
		}
	}
	for id := range t.pending {
		if !seen[id] {
			eni := e.view[id]
			eni.ID, eni.InstanceID, eni.Status = id, t.id, StatusAttaching
			held = append(held, eni)
		}
	}
	return held
}

// candidates returns the ENIs t may take, best first.
func (e *engine) candidates(t *target) []ENI {
	var out []ENI
	for _, eni := range e.view {
		if eni.Status != StatusAvailable || eni.Tags[e.h.opts.TagKey] != t.pool || eni.VpcID != t.inst.VpcID ||
			eni.Zone != t.inst.Zone || eni.Type == "Primary" || eni.ServiceManaged || t.tried[eni.ID] {
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
func (e *engine) decideAndAttach(ctx context.Context) {
	e.recheck(ctx)
	n := e.h.opts.PerInstance
	now := time.Now()
	var jobs []attachJob
	for _, t := range e.active() {
		held := e.holdings(t)
		if len(held) >= n {
			e.converge(ctx, t, held)
			continue
		}
		need := n - len(held)
		e.watch(t, held)
		waiting := e.unresolved(t, held, now)
		if waiting > 0 && t.watchWait == 0 {
			t.watchWait = max(e.h.attachTime.get()/4, minPoll)
		}
		need -= waiting
		if need <= 0 || now.Before(t.retryAt) || t.needLook {
			continue
		}
		if now.Sub(t.lookedAt) > instanceFresh {
			// ECS attaches to Stopped instances too: an attach must not go out on an old
			// look at the instance, which may have stopped since (an event's long wait, a
			// retry after a lost answer). Look again first; the next round attaches.
			t.recheck = true
			continue
		}
		if others := e.otherENIs(t); t.quota > 0 && others+n > t.quota {
			t.finish(OutcomeDeadLettered, problem(CodeENILimit,
				"instance %s (type %s) allows %d ENIs and holds %d besides its pool's; %d of the pool do not fit",
				t.id, t.inst.Type, t.quota, others, n))
			continue
		}
		if !t.fullAt.IsZero() {
			// ECS said the instance is full while it holds fewer than N of the pool's ENIs
			// as far as the reads show. Duplicates of this event may have filled it with
			// the pool's own ENIs, which lagging reads do not show yet: the refusal is
			// final only once the reads have caught up.
			if now.Sub(t.fullAt) > e.h.opts.StaleReadBound {
				t.finish(OutcomeDeadLettered, t.fullErr)
			} else if t.watchWait == 0 {
				t.watchWait = max(e.h.attachTime.get()/4, minPoll)
			}
			continue
		}
		picked, blocked := 0, 0
		for _, c := range e.candidates(t) {
			if picked == need {
				break
			}
			if e.h.claims.take(c.ID, t.id) {
				jobs = append(jobs, attachJob{t, c.ID})
				picked++
			} else {
				blocked++
			}
		}
		// Held ENIs that are all InUse leave the rest of N to find, decided as for a target
		// holding none: waiting on nothing, it would otherwise look at the cloud every
		// minPoll until the deadline (sim seed 17).
		if picked > 0 || len(t.pending) > 0 || waiting > 0 || t.watchWait > 0 {
			continue
		}
		if blocked > 0 {
			// Another invocation of this process is attaching them: look at the pool again
			// shortly rather than call it exhausted.
			t.stale, t.retryAt = true, now.Add(250*time.Millisecond)
			continue
		}
		if e.h.hintRefused(t, e.view) {
			continue
		}
		if e.listed[t.group()].After(t.lastTry) {
			t.finish(OutcomeDeadLettered, problem(CodePoolExhausted,
				"pool %q has no Available ENI in zone %s of %s for instance %s", t.pool, t.inst.Zone, t.inst.VpcID, t.id))
			continue
		}
		t.stale = true // list the pool again before calling it exhausted
	}
	e.attach(ctx, jobs)
}

// otherENIs counts the ENIs on t's instance that are not its pool's: the primary and any
// others, which leave room for the pool's N. ENIs of the pool are left out however the
// instance description and the pool listing lag one another.
func (e *engine) otherENIs(t *target) int {
	n := 0
	for _, id := range t.inst.ENIs {
		if eni, ok := e.view[id]; ok && eni.Tags[e.h.opts.TagKey] == t.pool {
			continue
		}
		if _, mine := t.pending[id]; mine {
			continue
		}
		n++
	}
	return n
}

// unresolved returns how many of t's contested ENIs may still be on their way to t, and
// forgets those a read has placed: on t (then held counts them), on another instance, or
// still free once the staleness bound has passed since the refusal.
func (e *engine) unresolved(t *target, held []ENI, now time.Time) int {
	n := 0
	for id, at := range t.contested {
		eni, seen := e.view[id]
		switch {
		case slices.ContainsFunc(held, func(h ENI) bool { return h.ID == id }):
			delete(t.contested, id)
		case seen && eni.InstanceID != "" && eni.InstanceID != t.id:
			delete(t.contested, id)
		case now.Sub(at) > e.h.opts.StaleReadBound:
			delete(t.contested, id)
		default:
			n++
		}
	}
	return n
}

// watch notes whether t waits on an attach it did not start (not in its pending set): the
// loop must then look again later, spaced out, since no accepted attach of its own says when.
func (e *engine) watch(t *target, held []ENI) {
	for _, eni := range held {
		if _, mine := t.pending[eni.ID]; eni.Status == StatusAttaching && !mine {
			if t.watchWait == 0 {
				t.watchWait = max(e.h.attachTime.get()/4, minPoll)
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
func (e *engine) recheck(ctx context.Context) {
	var ts []*target
	for _, t := range e.active() {
		if t.recheck {
			t.recheck = false
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return
	}
	starting, _ := e.lookInstances(ctx, ts)
	for _, t := range starting {
		t.retryAt = time.Now().Add(time.Second) // starting again: wait for it
	}
}

// lookInstances describes the targets' instances in one call and prechecks each; it returns
// those still starting, and false when the call failed (the targets are then finished).
func (e *engine) lookInstances(ctx context.Context, ts []*target) ([]*target, bool) {
	ids := make([]string, 0, len(ts))
	for _, t := range ts {
		ids = append(ids, t.id)
	}
	var got []Instance
	sent := time.Now()
	if err := e.call(ctx, ts, func(ctx context.Context) (err error) {
		got, err = e.ecs.DescribeInstances(ctx, InstanceQuery{IDs: ids})
		return err
	}); err != nil {
		e.failAll(ctx, ts, err)
		return nil, false
	}
	found := make(map[string]*Instance, len(got))
	for i := range got {
		found[got[i].ID] = &got[i]
	}
	var starting []*target
	for _, t := range ts {
		t.inst, t.lookedAt = found[t.id], sent
		if e.precheck(t) {
			starting = append(starting, t)
		}
	}
	return starting, true
}

// hintRefused dead-letters a target whose requested ENI is not one of its pool's eligible
// ENIs: a message naming an ENI cannot widen the pool.
func (h *Handler) hintRefused(t *target, view map[string]ENI) bool {
	if t.hint == "" {
		return false
	}
	eni, ok := view[t.hint]
	switch {
	case !ok:
		t.finish(OutcomeDeadLettered, problem(CodeNotInPool, "ENI %s is not in pool %q of %s", t.hint, t.pool, t.inst.VpcID))
	case eni.Zone != t.inst.Zone || eni.Type == "Primary" || eni.ServiceManaged:
		t.finish(OutcomeDeadLettered, problem(CodeNotInPool, "ENI %s of pool %q cannot serve instance %s (zone %s, type %s, service-managed %v)",
			t.hint, t.pool, t.id, eni.Zone, eni.Type, eni.ServiceManaged))
	case eni.Status != StatusAvailable || len(t.tried) > 0:
		t.finish(OutcomeDeadLettered, &Problem{Code: CodeENIUnavailable,
			Msg: fmt.Sprintf("ENI %s of pool %q is %s (instance %q)", t.hint, t.pool, eni.Status, eni.InstanceID), Err: t.lastErr})
	default:
		return false
	}
	return true
}

// converge settles a target that holds at least its N pool ENIs. Every ENI it holds is
// ranked, Attaching ones included, so every invocation that looks at the instance keeps the
// same ones whatever the order its attaches finish in; the surplus is detached once it can be
// (ECS detaches only InUse ENIs). The target finishes when what it keeps is InUse and nothing
// else is on it: its result then names what the instance holds. A surplus that cannot be
// detached is a failure of the event, handled as the error table says.
func (e *engine) converge(ctx context.Context, t *target, held []ENI) {
	ranked := rank(t.id, held)
	keep, surplus := ranked[:e.h.opts.PerInstance], ranked[e.h.opts.PerInstance:]
	waiting := false
	for _, k := range keep {
		if k.Status != StatusInUse {
			waiting = true
		}
	}
	if waiting {
		// An ENI kept is still attaching, and ECS may roll it back: the surplus stays until
		// the kept ones are InUse, or an InUse ENI another invocation reported would be
		// detached for one that never arrives (sim seed 2824).
		if t.watchWait == 0 {
			t.watchWait = max(e.h.attachTime.get()/4, minPoll)
		}
		return
	}
	for _, s := range surplus {
		if slices.Contains(t.dropped, s.ID) {
			continue // detach accepted; a lagging read may still show it
		}
		if s.Status != StatusInUse {
			waiting = true // attaching: it can be detached once InUse
			continue
		}
		err := e.call(ctx, []*target{t}, func(ctx context.Context) error { return e.ecs.DetachENI(ctx, s.ID, t.id) })
		if err == nil {
			t.dropped = append(t.dropped, s.ID)
			delete(t.pending, s.ID)
			continue
		}
		t.lastErr = err
		switch action, _ := Classify(err); action {
		case ActionNextENI:
			waiting = true // not InUse after all (a lagging read), or another invocation detached it first
		case ActionSkip:
		case ActionRetry, ActionWaitInstance:
			t.finish(OutcomeRetry, &Problem{Code: codeOrTransport(err), Err: err,
				Msg: fmt.Sprintf("instance %s holds %d pool ENIs for %d and the surplus %s could not be detached", t.id, len(held), e.h.opts.PerInstance, s.ID)})
			return
		default:
			t.finish(OutcomeDeadLettered, &Problem{Code: codeOrTransport(err), Err: err,
				Msg: fmt.Sprintf("instance %s holds %d pool ENIs for %d and the surplus %s cannot be detached", t.id, len(held), e.h.opts.PerInstance, s.ID)})
			return
		}
	}
	if waiting {
		if t.watchWait == 0 {
			t.watchWait = max(e.h.attachTime.get()/4, minPoll)
		}
		return
	}
	t.watchWait = 0
	t.kept = keep
	o := OutcomeAlreadyAttached
	for _, k := range keep {
		if t.ours[k.ID] {
			o = OutcomeAttached
		}
		// The claim stays until it expires: other invocations here may still hold a
		// listing that shows this ENI Available.
	}
	t.finish(o, nil)
}

// attach sends the attaches, at most Concurrency at once and paced by AttachQPS.
func (e *engine) attach(ctx context.Context, jobs []attachJob) {
	sem := make(chan struct{}, e.h.opts.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			e.attachOne(ctx, j)
		}()
	}
	wg.Wait()
}

func (e *engine) attachOne(ctx context.Context, j attachJob) {
	t := j.t
	if err := e.h.attachPace.wait(ctx); err != nil {
		return
	}
	var reqID string
	err := e.ecs.AttachENI(WithCallObserver(ctx, func(c Call) { reqID = c.RequestID }), j.eni, t.id)
	now := time.Now()

	e.mu.Lock()
	defer e.mu.Unlock()
	t.calls++
	t.attempts++
	t.lastTry = now
	if reqID != "" {
		t.requestIDs = append(t.requestIDs, reqID)
	}
	if err == nil {
		t.pending[j.eni] = now
		t.ours[j.eni] = true
		return
	}
	t.lastErr = err
	action, rule := Classify(err)
	switch action {
	case ActionNextENI:
		if t.uncertain[j.eni] && rule.Code == "InvalidOperation.InvalidEniState" {
			// The earlier call whose answer was lost went through: the ENI is attaching,
			// most likely here. Wait for it like for an accepted attach; a lagging read
			// may not show it yet.
			t.pending[j.eni] = now
			t.ours[j.eni] = true
			return
		}
		t.tried[j.eni] = true
		e.h.claims.release(j.eni, t.id)
		if rule.Code == "InvalidOperation.InvalidEniState" {
			// Maybe a duplicate of this event won it for this instance: look, and until a
			// read says where it went, attach nothing else in its place.
			t.needLook = true
			t.contested[j.eni] = now
		}
	case ActionRetry, ActionWaitInstance:
		if action == ActionWaitInstance {
			// ECS says the instance is in no state to take an ENI: it may be stopping while
			// the first look (a lagging read) still showed it Running. Look at it again
			// before the retry, so that an instance on its way to Stopped is not given an
			// ENI once it gets there (ECS attaches to Stopped instances).
			t.recheck = true
		}
		if maybeApplied(err) {
			// The call may have been applied and only its answer lost. The same ENI is
			// tried again: a refusal then says the first call went through (see below).
			t.uncertain[j.eni] = true
		}
		// Keep the claim: the same ENI is tried again after the back-off.
		t.retryAt = now.Add(t.retry.next())
	case ActionSkip:
		t.finish(OutcomeSkipped, err)
	default:
		if rule.Code == "EniPerInstanceLimitExceeded" {
			// Possibly full of the pool's own ENIs, attached by duplicates of this event:
			// decided once the reads catch up (decideAndAttach).
			e.h.claims.release(j.eni, t.id)
			if t.fullAt.IsZero() {
				t.fullAt, t.fullErr = now, err
			}
			t.needLook = true
			return
		}
		t.finish(OutcomeDeadLettered, err)
	}
}

// maybeApplied reports whether a failed call may still have been applied: the request went
// out and no answer, or a server error, came back. Throttling refuses before acting.
func maybeApplied(err error) bool {
	code, _ := codeOf(err)
	return code == "" || code == "InternalError" || code == "ServiceUnavailable" || code == "UnknownError"
}

// nextWake returns how long to wait before the next round, and whether that round must look
// at the cloud first. A look is due when every attach accepted in this round is expected to
// be done (one listing then confirms a whole batch, however the pacer spread its attaches),
// when a poll found an attach unfinished, or when a lost race or a claimed pool asks for one.
// A round that only retries a backed-off attach needs no look.
func (e *engine) nextWake(active []*target) (time.Duration, bool) {
	now := time.Now()
	est := e.h.attachTime.get()
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
		if t.needLook || t.stale {
			urgent = sooner(urgent, now)
		}
		if t.watchWait > 0 {
			urgent = sooner(urgent, now.Add(t.watchWait))
			t.watchWait = min(t.watchWait*3/2, 2*time.Second)
		}
		if !t.retryAt.IsZero() && t.retryAt.After(now) {
			retryAt = sooner(retryAt, t.retryAt)
		}
		for eni, at := range t.pending {
			if t.polled[eni] {
				urgent = sooner(urgent, now.Add(t.pollWait))
			} else {
				lookAt = later(lookAt, at.Add(est))
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

// spaced stretches a wait before a look so that looks are at least minPoll apart: a state
// that asks for a look at once, round after round, must not become a busy loop of calls.
func (e *engine) spaced(wait time.Duration, now time.Time) time.Duration {
	if e.lastLook.IsZero() {
		return wait
	}
	return max(wait, e.lastLook.Add(minPoll).Sub(now))
}

// observe refreshes the view. One instance alone is looked up by instance (one call shows
// all its pool ENIs); several are seen through one listing of each of their pools.
func (e *engine) observe(ctx context.Context, active []*target) bool {
	// How long an attach had when looked at is counted to when the look was sent: the time
	// the answer took to come back is not the attach's.
	sent := time.Now()
	e.lastLook = sent
	relist := len(active) > 1
	for _, t := range active {
		if t.stale {
			relist, t.stale = true, false
		}
		if t.needLook && len(t.pending) == 0 && len(t.tried) > 0 && !e.listed[t.group()].After(t.lastTry) {
			relist = true
		}
	}
	if relist {
		if !e.listPools(ctx, active) {
			return false
		}
	} else {
		t := active[0]
		var got []ENI
		err := e.call(ctx, []*target{t}, func(ctx context.Context) (err error) {
			got, err = e.ecs.DescribeENIs(ctx, ENIQuery{InstanceID: t.id, TagKey: e.h.opts.TagKey, TagValue: t.pool})
			return err
		})
		if err != nil {
			e.failAll(ctx, []*target{t}, err)
			return false
		}
		seen := map[string]bool{}
		for _, eni := range got {
			e.view[eni.ID] = eni
			seen[eni.ID] = true
		}
		// A view entry that claimed to be on t but is not any more went back to the pool.
		for id, eni := range e.view {
			if eni.InstanceID == t.id && !seen[id] {
				eni.InstanceID, eni.Status = "", StatusDetaching
				e.view[id] = eni
			}
		}
	}
	est := e.h.attachTime.get()
	for _, t := range active {
		t.needLook = false
		for id, at := range t.pending {
			eni, ok := e.view[id]
			onT := ok && eni.InstanceID == t.id
			// A look taken for another reason before this attach was due is not its poll.
			waited := sent.Sub(at)
			early := waited < est*9/10 && !t.polled[id]
			switch {
			case early && onT && (eni.Status == StatusAttaching || eni.Status == StatusInUse):
				if eni.Status == StatusInUse {
					delete(t.pending, id)
				}
			case onT && eni.Status == StatusInUse:
				if !t.polled[id] {
					e.h.attachTime.observe(waited, true)
				}
				delete(t.pending, id)
			case onT && eni.Status == StatusAttaching:
				if !t.polled[id] {
					e.h.attachTime.observe(waited, false)
					t.polled[id] = true
					t.pollWait = max(est/4, 50*time.Millisecond)
				} else {
					t.pollWait = min(t.pollWait*3/2, 2*time.Second)
				}
			case !e.rolledBack(eni, ok, t, sent.Sub(at)):
				// Not visible yet: reads lag writes. Look again, spaced out.
				if !t.polled[id] {
					t.polled[id] = true
					t.pollWait = max(est/4, minPoll)
				} else {
					t.pollWait = min(t.pollWait*3/2, 2*time.Second)
				}
			default:
				// The attach was accepted (or may have been), yet the ENI is elsewhere, or
				// still free long after: ECS rolled it back, another invocation detached it
				// because the instance stopped, or it never happened. Look at the instance
				// again before trying another ENI.
				delete(t.pending, id)
				delete(t.uncertain, id)
				delete(t.ours, id)
				t.tried[id] = true
				t.recheck = true
				e.h.claims.release(id, t.id)
				t.lastErr = problem(CodeTransport, "attach of %s to %s did not last (ENI is %s)", id, t.id, statusOr(eni, ok))
			}
		}
	}
	return true
}

// rolledBack tells an accepted attach that did not last from one a lagging read does not
// show yet: it did not last when its ENI is seen on another instance, leaving this one, or
// still free (or unseen) after the staleness bound.
func (e *engine) rolledBack(eni ENI, seen bool, t *target, waited time.Duration) bool {
	switch {
	case seen && eni.InstanceID != "" && eni.InstanceID != t.id:
		return true
	case seen && eni.InstanceID == t.id && eni.Status == StatusDetaching:
		return true
	}
	return waited > e.h.opts.StaleReadBound
}

func statusOr(eni ENI, ok bool) string {
	if !ok {
		return "gone"
	}
	return eni.Status
}

// expire ends the targets still active when the deadline comes. The outcome carries the
// code of what kept the target from finishing, when there was one, so a dead letter says
// what to fix rather than only that time ran out.
func (e *engine) expire(active []*target, cause error) {
	for _, t := range active {
		msg := fmt.Sprintf("not done before the deadline (%v)", cause)
		if len(t.pending) > 0 {
			msg = fmt.Sprintf("attach accepted but not confirmed InUse before the deadline (%v)", cause)
		}
		code := CodeDeadline
		if c, _ := codeOf(t.lastErr); c != "" && len(t.pending) == 0 {
			code = c
		}
		t.finish(OutcomeRetry, &Problem{Code: code, Msg: msg, Err: t.lastErr})
	}
}

// failAll ends targets after a call that could not be made to succeed. A call the deadline cut
// short says nothing about the cloud: its targets end as the deadline ends them, with what kept
// them waiting (an instance still starting is NotReady, not a transport error).
func (e *engine) failAll(ctx context.Context, ts []*target, err error) {
	if ctx.Err() != nil {
		var rest []*target
		for _, t := range ts {
			switch {
			case t.done:
			case isStarting(t.inst):
				t.finish(OutcomeRetry, problem(CodeNotReady, "instance %s is still %s", t.id, t.inst.Status))
			default:
				rest = append(rest, t)
			}
		}
		e.expire(rest, ctx.Err())
		return
	}
	for _, t := range ts {
		if !t.done {
			t.finish(failOutcome(err), err)
		}
	}
}
