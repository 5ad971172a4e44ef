package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/trigger"
	"github.com/enipool/enipool/localcloud/world"
)

// Options configure Run.
type Options struct {
	// Project is the s.yaml to run the function with; it overrides the scenario's project.
	// One of the two is required.
	Project string
	// Getenv answers s.yaml's ${env('NAME')}; nil means no variable is set (a clean shell).
	Getenv func(string) (string, bool)
	// Binary is the built function; empty builds it (testbed.BuildFunction) into a
	// temporary directory.
	Binary string
	// Story receives the human account of the run as it happens; nil discards it.
	Story io.Writer
	// Logs receives the function's log lines; nil discards them.
	Logs io.Writer
	// Clock drives the timeline, the end condition, the cloud and the triggers; nil means
	// real time. The function's processes always run on real time, so anything else is only
	// consistent for a timeline without them.
	Clock trigger.Clock
	// Poll is how often the runner looks at the world while it waits (a release while an ENI
	// attaches, the end condition); default 20 ms.
	Poll time.Duration
}

// run is one scenario's run: the cloud, the function, its triggers and what the timeline
// launched.
type run struct {
	sc    *Scenario
	o     Options
	clock trigger.Clock
	story *story
	spec  trigger.FunctionSpec
	n     int    // ENIPOOL_ENIS_PER_INSTANCE
	dlq   string // the function's dead-letter queue
	work  string // the work queue (s.yaml's MNS event stream), "" without one

	cancel context.CancelFunc
	c      *localcloud.Cloud
	rt     *fcrt.Runtime
	tr     *trigger.Triggers

	keep       string              // the directory of the built binary, removed at the end
	labels     map[string][]string // launch.as: instance ids
	nextID     int
	launched   int
	released   int
	stopped    int
	started    int
	sent       int
	sendErrors int
	mu         sync.Mutex
	actions    []string // lifecycle action tokens the launches started, under mu
	starters   sync.WaitGroup
	startersOn atomic.Int32 // launches still waiting to start their lifecycle action
	startErrs  chan error
}

// Run runs a scenario: it builds the function (unless Options.Binary), starts the local cloud
// from the scenario's world and the function with the project's configuration and triggers,
// drives the world only through the timeline (the function hears of it only through the
// triggers: EventBridge via Watch, the work queue via its event stream, the timer on its
// cron), waits for the end and returns the report. A timeline step that cannot be carried
// out is an error; a function that misbehaves is not, it is what the report shows.
func Run(ctx context.Context, sc *Scenario, o Options) (*Report, error) {
	if o.Clock == nil {
		o.Clock = trigger.RealClock{}
	}
	if o.Poll <= 0 {
		o.Poll = 20 * time.Millisecond
	}
	// tearDown cancels ctx first, so that a launch still waiting to start its lifecycle action
	// gives up when the run ends early.
	ctx, cancel := context.WithCancel(ctx)
	r := &run{sc: sc, o: o, clock: o.Clock, cancel: cancel, labels: map[string][]string{}, startErrs: make(chan error, len(sc.Timeline))}
	r.story = &story{w: o.Story, clock: o.Clock}
	if r.story.w == nil {
		r.story.w = io.Discard
	}
	defer r.tearDown()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	r.story.start = r.clock.Now()
	r.story.say("scenario %s: %s", sc.Name, orElse(sc.Description, "(no description)"))
	for i, s := range sc.Timeline {
		if err := r.step(ctx, s); err != nil {
			return nil, fmt.Errorf("scenario %s: timeline[%d].%s: %w", sc.Name, i, s.Kind(), err)
		}
		select {
		case err := <-r.startErrs:
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		default:
		}
	}
	ended, err := r.waitEnd(ctx)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	select {
	case err := <-r.startErrs:
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	default:
	}
	rep := r.report(ended)
	r.tell(rep)
	return rep, nil
}

// setUp renders the project, builds the function and starts the cloud, the function and the
// triggers.
func (r *run) setUp(ctx context.Context) (err error) {
	project := r.o.Project
	if project == "" {
		project = r.sc.Project
	}
	if project == "" {
		return errors.New("scenario: no project (s.yaml): set Options.Project or the scenario's project")
	}
	w := r.sc.World
	p, err := trigger.LoadProject(project, trigger.RenderOptions{Getenv: r.o.Getenv, AccountID: w.Account.ID})
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	if len(p.Functions) != 1 {
		return fmt.Errorf("scenario: %s: want one fc3 function, found %d", project, len(p.Functions))
	}
	r.spec = p.Functions[0]
	if key := orElse(r.spec.Env["ENIPOOL_TAG_KEY"], DefaultTagKey); key != r.sc.TagKey {
		return fmt.Errorf("scenario: the function's pool tag key is %q (%s), the scenario's %q (tagKey)", key, project, r.sc.TagKey)
	}
	r.n = 1
	if v := r.spec.Env["ENIPOOL_ENIS_PER_INSTANCE"]; v != "" {
		if r.n, err = strconv.Atoi(v); err != nil || r.n < 1 {
			return fmt.Errorf("scenario: %s: ENIPOOL_ENIS_PER_INSTANCE %q is not a positive number", project, v)
		}
	}
	for _, t := range r.spec.Triggers {
		if eb := t.EventBridge; eb != nil && eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters != nil {
			r.work = eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters.QueueName
		}
	}
	for _, s := range r.sc.Timeline {
		if s.Send != nil && s.Send.Queue == WorkQueue && r.work == "" {
			return fmt.Errorf("scenario: a send step names the %q queue, but %s has no MNS queue trigger", WorkQueue, project)
		}
	}

	bin := r.o.Binary
	if bin == "" {
		// FC starts instance processes until the end: the binary stays until tearDown.
		if r.keep, err = os.MkdirTemp("", "enipool-scenario-"); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
		r.story.say("building the function")
		if bin, err = testbed.BuildFunction(ctx, r.keep); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	c, err := localcloud.Start(w, localcloud.Options{Clock: r.clock.Now})
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	r.c = c
	f := testbed.Deployed(r.spec)
	f.Binary, f.Logs, f.MaxInstances, f.IdleTimeout = bin, r.o.Logs, r.sc.FC.MaxInstances, r.sc.FC.IdleTimeout.D()
	if f.MaxInstances == 0 {
		f.MaxInstances = fcrt.DefaultMaxInstances
	}
	r.dlq = f.DeadLetterQueue
	rt, err := testbed.StartFunction(r.c, f)
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	r.rt = rt
	tr, err := trigger.Start(trigger.Options{Function: r.spec, Target: r.rt, Queues: r.c.MNS, AccountID: r.c.AccountID,
		Clock: r.clock, Seed: r.sc.Seed,
		Bus: trigger.BusOptions{MinDelay: r.sc.Bus.MinDelay.D(), MaxDelay: r.sc.Bus.MaxDelay.D(), DuplicateRate: r.sc.Bus.Duplicates}})
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	r.tr = tr
	if err := r.tr.Watch(trigger.WatchOptions{Instances: r.c.Store, Lifecycle: r.c.ESS, World: w, Region: r.c.Region}); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	names := make([]string, 0, len(r.spec.Triggers))
	for _, t := range r.spec.Triggers {
		names = append(names, t.Name)
	}
	r.story.say("cloud up (world %s, region %s); function %s with the triggers of %s: %s; up to %d FC instances; N=%d pool ENI(s) per instance",
		r.sc.WorldSource, r.c.Region, r.spec.Name, project, strings.Join(names, ", "), f.MaxInstances, r.n)
	return nil
}

// tearDown stops the triggers, then the function, then the cloud.
func (r *run) tearDown() {
	r.cancel()
	if r.tr != nil {
		r.tr.Close()
	}
	r.starters.Wait()
	if r.rt != nil {
		r.rt.Close()
	}
	if r.c != nil {
		r.c.Close()
	}
	if r.keep != "" {
		os.RemoveAll(r.keep)
	}
}

// step carries out one timeline step.
func (r *run) step(ctx context.Context, s Step) error {
	switch {
	case s.Launch != nil:
		return r.launch(ctx, s.Launch)
	case s.Stop != nil:
		return r.stopStart(ctx, s.Stop, true)
	case s.Start != nil:
		return r.stopStart(ctx, s.Start, false)
	case s.Release != nil:
		return r.release(ctx, s.Release)
	case s.Send != nil:
		return r.send(ctx, s.Send)
	case s.Wait != nil:
		r.story.say("wait %s", s.Wait.D())
		return r.clock.Sleep(ctx, s.Wait.D())
	}
	return errors.New("empty step")
}

// launch runs a scaling activity: the instances one after the other, evenly over Over, and
// then, with a hook, the lifecycle action once all of them have started.
func (r *run) launch(ctx context.Context, l *Launch) error {
	hook := ""
	if l.Hook != NoHook {
		hook = " with lifecycle hook " + l.Hook
	}
	r.story.say("launch %d instance(s) of pool %s over %s%s", l.Count, l.Pool, l.Over.D(), hook)
	var gap time.Duration
	if l.Count > 1 {
		gap = l.Over.D() / time.Duration(l.Count-1)
	}
	ids := make([]string, 0, l.Count)
	begin := r.clock.Now()
	for i := range l.Count {
		if err := r.sleepUntil(ctx, begin.Add(time.Duration(i)*gap)); err != nil {
			return err
		}
		id := r.newInstanceID()
		in := world.Instance{ID: id, Type: l.Type, VSwitch: l.VSwitches[i%len(l.VSwitches)],
			Tags: map[string]string{r.sc.TagKey: l.Pool}, SecurityGroups: slices.Clone(l.SecurityGroups)}
		if err := r.c.Store.LaunchInstance(in, l.Pending.D(), l.Starting.D()); err != nil {
			return fmt.Errorf("launching %s: %w", id, err)
		}
		ids = append(ids, id)
	}
	r.launched += len(ids)
	if l.As != "" {
		r.labels[l.As] = ids
	}
	r.story.say("launched %s .. %s", ids[0], ids[len(ids)-1])
	if l.Hook == NoHook {
		return nil
	}
	// ESS holds a scale-out's instances in Pending:Wait once they are created and running, and
	// notifies the hook then; the action starts when none of them is still Pending or Starting.
	r.startersOn.Add(1)
	r.starters.Go(func() {
		defer r.startersOn.Add(-1)
		for {
			waiting := r.c.Store.Instances(func(in *world.Instance) bool {
				return slices.Contains(ids, in.ID) && !in.Released &&
					(in.Status == world.StatusPending || in.Status == world.StatusStarting)
			})
			if len(waiting) == 0 {
				break
			}
			if r.clock.Sleep(ctx, r.o.Poll) != nil {
				return
			}
		}
		token, err := r.c.ESS.StartLifecycleAction(l.Hook, ids...)
		if err != nil {
			r.startErrs <- fmt.Errorf("starting the lifecycle action of %d instances: %w", len(ids), err)
			return
		}
		r.mu.Lock()
		r.actions = append(r.actions, token)
		r.mu.Unlock()
		r.story.say("lifecycle action %s of hook %s started for %d instance(s)", token, l.Hook, len(ids))
	})
	return nil
}

// sleepUntil sleeps until t on the clock. Steps spread over a duration aim each action at its
// own time from the step's start, so that the time each action takes does not stretch the
// spread.
func (r *run) sleepUntil(ctx context.Context, t time.Time) error {
	if d := t.Sub(r.clock.Now()); d > 0 {
		return r.clock.Sleep(ctx, d)
	}
	return ctx.Err()
}

// newInstanceID returns an instance id the world does not use yet.
func (r *run) newInstanceID() string {
	for {
		r.nextID++
		id := fmt.Sprintf("i-scn%08d", r.nextID)
		if _, ok := r.c.Store.Instance(id); !ok {
			return id
		}
	}
}

// candidates returns the instances a selection draws from, in id order: the listed ones,
// or those of the label, or of the pool, or every instance.
func (r *run) candidates(ids []string, from, pool string) []string {
	if len(ids) > 0 {
		return ids
	}
	if from != "" {
		return slices.Sorted(slices.Values(r.labels[from]))
	}
	var out []string
	for _, in := range r.c.Store.Instances() {
		if !in.Released && (pool == "" || in.Tags[r.sc.TagKey] == pool) {
			out = append(out, in.ID)
		}
	}
	return out
}

// stopStart stops (stop true) or starts instances: it picks them, waits within Within for
// each to be Running (to stop) or Stopped (to start), and acts.
func (r *run) stopStart(ctx context.Context, s *Select, stop bool) error {
	verb, want, from := "start", world.StatusStopped, []string{world.StatusStopped, world.StatusStopping}
	if stop {
		verb, want, from = "stop", world.StatusRunning, []string{world.StatusRunning, world.StatusStarting, world.StatusPending}
	}
	var picked []string
	for _, id := range r.candidates(s.IDs, s.From, s.Pool) {
		in, ok := r.c.Store.Instance(id)
		if ok && !in.Released && (len(s.IDs) > 0 || slices.Contains(from, in.Status)) {
			picked = append(picked, id)
		}
		if s.Count > 0 && len(picked) == s.Count {
			break
		}
	}
	if len(picked) < max(s.Count, len(s.IDs)) {
		return fmt.Errorf("only %d instance(s) to %s, want %d", len(picked), verb, max(s.Count, len(s.IDs)))
	}
	r.story.say("%s %d instance(s): %s", verb, len(picked), short(picked))
	deadline := r.clock.Now().Add(s.Within.D())
	for _, id := range picked {
		for {
			in, ok := r.c.Store.Instance(id)
			if !ok || in.Released {
				return fmt.Errorf("instance %s was released before it could %s", id, verb)
			}
			if in.Status == want {
				break
			}
			if r.clock.Now().After(deadline) {
				return fmt.Errorf("instance %s is %s after %s, not %s", id, in.Status, s.Within.D(), want)
			}
			if err := r.clock.Sleep(ctx, r.o.Poll); err != nil {
				return err
			}
		}
		act, count := r.c.Store.StartInstance, &r.started
		if stop {
			act, count = r.c.Store.StopInstance, &r.stopped
		}
		if err := act(id, -1); err != nil {
			return fmt.Errorf("%s %s: %w", verb, id, err)
		}
		*count++
	}
	return nil
}

// release releases instances, at once or each while one of its pool ENIs attaches.
func (r *run) release(ctx context.Context, s *Release) error {
	cands := r.candidates(s.IDs, s.From, s.Pool)
	want := max(s.Count, len(s.IDs))
	if !s.WhileAttaching {
		var picked []string
		for _, id := range cands {
			if in, ok := r.c.Store.Instance(id); ok && !in.Released && len(picked) < want {
				picked = append(picked, id)
			}
		}
		if len(picked) < want {
			return fmt.Errorf("only %d instance(s) to release, want %d", len(picked), want)
		}
		r.story.say("release %d instance(s): %s", len(picked), short(picked))
		for _, id := range picked {
			if err := r.c.Store.ReleaseInstance(id); err != nil {
				return fmt.Errorf("release %s: %w", id, err)
			}
			r.released++
		}
		return nil
	}
	r.story.say("release %d instance(s) while a pool ENI attaches to each (within %s)", want, s.Within.D())
	deadline := r.clock.Now().Add(s.Within.D())
	var caught []string
	for len(caught) < want {
		attaching := map[string]string{}
		for _, e := range r.c.Store.ENIs(world.WithStatus(world.ENIAttaching)) {
			if _, pooled := e.Tags[r.sc.TagKey]; pooled {
				attaching[e.InstanceID] = e.ID
			}
		}
		for _, id := range cands {
			if eni, ok := attaching[id]; ok && !slices.Contains(caught, id) && len(caught) < want {
				if err := r.c.Store.ReleaseInstance(id); err != nil {
					return fmt.Errorf("release %s: %w", id, err)
				}
				r.released++
				caught = append(caught, id)
				r.story.say("released %s while %s attached to it", id, eni)
			}
		}
		if len(caught) == want {
			break
		}
		if r.clock.Now().After(deadline) {
			return fmt.Errorf("caught %d of %d instance(s) with a pool ENI attaching within %s", len(caught), want, s.Within.D())
		}
		if err := r.clock.Sleep(ctx, r.o.Poll); err != nil {
			return err
		}
	}
	return nil
}

// send sends messages to a queue, as a producer does.
func (r *run) send(ctx context.Context, m *Send) error {
	queue := m.Queue
	if queue == WorkQueue {
		queue = r.work
	}
	var insts []string
	if strings.Contains(m.Body, "{{instance}}") {
		insts = r.candidates(nil, m.From, m.Pool)
		if len(insts) == 0 {
			return errors.New("the body names {{instance}}, but the selection has no instance")
		}
	}
	r.story.say("send %d message(s) to %s over %s", m.Count, queue, m.Over.D())
	var gap time.Duration
	if m.Count > 1 {
		gap = m.Over.D() / time.Duration(m.Count-1)
	}
	failed := 0
	begin := r.clock.Now()
	for i := range m.Count {
		if err := r.sleepUntil(ctx, begin.Add(time.Duration(i)*gap)); err != nil {
			return err
		}
		body := strings.ReplaceAll(m.Body, "{{region}}", r.c.Region)
		body = strings.ReplaceAll(body, "{{n}}", strconv.Itoa(i+1))
		if len(insts) > 0 {
			body = strings.ReplaceAll(body, "{{instance}}", insts[i%len(insts)])
		}
		// A producer that loses an answer does not know whether the message went in; it is
		// counted, not sent again.
		if err := r.c.MNS.Deliver(ctx, queue, []byte(body)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed++
		}
	}
	r.sent += m.Count
	r.sendErrors += failed
	if failed > 0 {
		r.story.say("sent; %d send(s) answered with an error (the message may or may not be in the queue)", failed)
	}
	return nil
}

// waitEnd waits for the end condition and says which came: "quiet" or "deadline".
func (r *run) waitEnd(ctx context.Context) (string, error) {
	quiet, deadline := r.sc.End.Quiet.D(), r.story.start.Add(r.sc.End.Deadline.D())
	if quiet > 0 {
		r.story.say("waiting until nothing happens for %s (deadline %s after the start)", quiet, r.sc.End.Deadline.D())
	} else {
		r.story.say("waiting until the deadline, %s after the start", r.sc.End.Deadline.D())
	}
	var last activity
	lastChange := r.clock.Now()
	for {
		now := r.clock.Now()
		if !now.Before(deadline) {
			return "deadline", nil
		}
		if quiet > 0 {
			a, busy := r.activity(ctx)
			if busy || a != last {
				last, lastChange = a, now
			} else if now.Sub(lastChange) >= quiet {
				return "quiet", nil
			}
		}
		if err := r.clock.Sleep(ctx, r.o.Poll*5); err != nil {
			return "", err
		}
	}
}

// activity is what the end condition watches: any change means something happened.
type activity struct {
	changes, calls, invocations, deliveries, asyncDone int
}

// activity reads the counters, and whether something is in flight: a lifecycle action not yet
// started, a bus delivery or stream batch, an asynchronous invocation not settled.
func (r *run) activity(ctx context.Context) (activity, bool) {
	var a activity
	if ch := r.c.Store.Changes(1); len(ch) > 0 {
		a.changes = ch[len(ch)-1].Seq
	}
	a.calls = len(r.c.Calls.Calls())
	a.invocations = r.rt.Stats().Invocations
	a.deliveries = len(r.tr.Deliveries())
	busy := r.startersOn.Load() > 0
	for _, t := range r.rt.AsyncTasks() {
		switch t.Status {
		case fcrt.StatusEnqueued, fcrt.StatusRunning, fcrt.StatusRetrying:
			busy = true
		default:
			a.asyncDone++
		}
	}
	idle, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if r.tr.Idle(idle) != nil {
		busy = true
	}
	return a, busy
}

// story tells what happens, each line stamped with the time since the start.
type story struct {
	mu    sync.Mutex
	w     io.Writer
	clock trigger.Clock
	start time.Time
}

func (s *story) say(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := ""
	if !s.start.IsZero() {
		at = fmt.Sprintf("+%5.1fs ", s.clock.Now().Sub(s.start).Seconds())
	}
	fmt.Fprintf(s.w, "%s%s\n", at, fmt.Sprintf(format, args...))
}

// short lists ids, eliding the middle of a long list.
func short(ids []string) string {
	if len(ids) <= 6 {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s, ... (%d more), %s", strings.Join(ids[:3], ", "), len(ids)-5, strings.Join(ids[len(ids)-2:], ", "))
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
