package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/mns"
)

// Target is the function the triggers invoke: an *fcrt.Runtime.
type Target interface {
	Invoke(ctx context.Context, payload []byte) (*fcrt.Result, error)
	InvokeAsyncWith(payload []byte, o fcrt.AsyncOptions) string
}

// Queues is the MNS service the event streams read and dead-letter to: an *mns.Server.
type Queues interface {
	Receive(ctx context.Context, queue string, wait time.Duration) (mns.Message, error)
	Delete(queue, receiptHandle string) error
	Deliver(ctx context.Context, queue string, body []byte) error
}

// Options configure Start.
type Options struct {
	// Function is the function whose triggers run (from LoadProject). Required.
	Function FunctionSpec
	// Target is the running function. Required.
	Target Target
	// Queues serves the MNS event streams; required when the function has one.
	Queues Queues
	// AccountID is stamped on events (aliyunaccountid, ARNs).
	AccountID string
	// Clock drives timers, batch windows, delays and retry waits; nil means RealClock.
	Clock Clock
	// Seed seeds the duplicates, delays and retry jitter, so that a run can be repeated.
	Seed uint64
	// TimerDestinations makes timer invocations reach asyncInvokeConfig's destinations. Off by
	// default: see the package doc.
	TimerDestinations bool
	// Bus shapes the default event bus's deliveries.
	Bus BusOptions
	// Only, when not empty, names the triggers to run; the others are ignored.
	Only []string
}

// BusOptions are the default event bus's at-least-once knobs. Each delivery of an event to a
// rule waits a delay drawn uniformly from [MinDelay, MaxDelay] on the Clock, so events
// published close together may arrive in another order; with probability DuplicateRate it is
// delivered a second time, with its own delay.
type BusOptions struct {
	MinDelay, MaxDelay time.Duration
	DuplicateRate      float64
}

// Delivery records one push of a trigger to the function.
type Delivery struct {
	Trigger string
	// Time is the Clock's time of the push.
	Time    time.Time
	Payload []byte
	// Async is true for asynchronous invocations; RequestID is then FC's request id, and the
	// outcome is in the Target's async tasks.
	Async     bool
	RequestID string
	// Attempt is 1 for a first push, 2 for the stream's first retry, ...
	Attempt int
	// Err is the failure of a synchronous push: a platform error or the function's error.
	Err string
	// Events is how many events the push carried (a batch's size).
	Events int
}

// Stats count what the triggers did.
type Stats struct {
	TimerFirings int
	// Published counts Publish calls; Matched the (event, rule) pairs that matched;
	// Duplicates the extra deliveries the bus made.
	Published, Matched, Duplicates int
	// MessagesTaken counts MNS messages the streams took; Filtered those whose event the
	// stream's pattern dropped; Batches the batches pushed; Retries the stream's retries;
	// DeadLettered the events written to a stream's dead-letter queue; Stopped the streams
	// stopped by errorsTolerance NONE.
	MessagesTaken, Filtered, Batches, Retries, DeadLettered, Stopped int
}

// Triggers runs a function's triggers. Its methods are safe for concurrent use.
type Triggers struct {
	o      Options
	clock  Clock
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rules  []*rule
	// streams are the MNS event streams, for Errors.
	streams []*stream

	mu         sync.Mutex
	rng        *rand.Rand
	deliveries []Delivery
	stats      Stats
	errs       []error
	pending    int           // bus deliveries and stream batches in progress
	idle       chan struct{} // closed while pending == 0
	closed     bool
}

// rule is an eventbridge trigger on the default bus.
type rule struct {
	name    string
	pattern *Pattern
	async   bool
}

// Start validates the function's triggers and starts them: timers begin counting, streams
// begin reading their queues, and Publish reaches the rules.
func Start(o Options) (*Triggers, error) {
	if o.Target == nil {
		return nil, fmt.Errorf("%w: Options.Target is nil", ErrInvalidProject)
	}
	clock := o.Clock
	if clock == nil {
		clock = RealClock{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	t := &Triggers{o: o, clock: clock, ctx: ctx, cancel: cancel, idle: idle,
		rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	type starter func()
	var starts []starter
	for _, spec := range o.Function.Triggers {
		if len(o.Only) > 0 && !slices.Contains(o.Only, spec.Name) {
			continue
		}
		switch {
		case spec.Timer != nil:
			if !spec.Timer.Enable {
				continue
			}
			sched, err := ParseSchedule(spec.Timer.CronExpression)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("trigger %s: %w", spec.Name, err)
			}
			name, payload := spec.Name, spec.Timer.Payload
			starts = append(starts, func() { t.wg.Go(func() { t.runTimer(name, payload, sched) }) })
		case spec.EventBridge != nil:
			eb := spec.EventBridge
			if !eb.TriggerEnable {
				continue
			}
			pat, err := ParsePattern(eb.EventRuleFilterPattern)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("trigger %s: %w", spec.Name, err)
			}
			switch src := eb.EventSourceConfig.EventSourceType; src {
			case "Default", "":
				t.rules = append(t.rules, &rule{name: spec.Name, pattern: pat, async: eb.AsyncInvocationType})
			case "MNS":
				s, err := t.newStream(spec, pat)
				if err != nil {
					cancel()
					return nil, fmt.Errorf("trigger %s: %w", spec.Name, err)
				}
				t.streams = append(t.streams, s)
				starts = append(starts, func() { s.start() })
			default:
				cancel()
				return nil, fmt.Errorf("%w: trigger %s: event source %s is not emulated", ErrInvalidProject, spec.Name, src)
			}
		}
	}
	for _, s := range starts {
		s()
	}
	return t, nil
}

// spawn runs f in a goroutine Close waits for, unless Close has begun; it reports whether f
// runs. The lock orders it with Close, so that no goroutine is added once Close waits.
func (t *Triggers) spawn(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Go(f)
	return true
}

// Close stops every trigger and waits for its goroutines. Deliveries not yet made are
// dropped; a batch being pushed is abandoned (its messages stay in the queue, as when a
// stream is stopped).
func (t *Triggers) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}

// Deliveries returns every push so far, in the order they were made.
func (t *Triggers) Deliveries() []Delivery {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.deliveries)
}

// Stats returns the counters.
func (t *Triggers) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Errors returns what went wrong outside the function: an unreadable queue, a failed
// dead-letter write, a stream stopped by errorsTolerance NONE.
func (t *Triggers) Errors() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errs)
}

// Idle blocks until no bus delivery is waiting and no stream batch is in progress. Messages
// still in a queue that no stream has taken yet do not count.
func (t *Triggers) Idle(ctx context.Context) error {
	for {
		t.mu.Lock()
		idle, pending := t.idle, t.pending
		t.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (t *Triggers) begin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == 0 {
		t.idle = make(chan struct{})
	}
	t.pending++
}

func (t *Triggers) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending--
	if t.pending == 0 {
		close(t.idle)
	}
}

func (t *Triggers) record(d Delivery, count func(*Stats)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deliveries = append(t.deliveries, d)
	if count != nil {
		count(&t.stats)
	}
}

func (t *Triggers) count(f func(*Stats)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.stats)
}

func (t *Triggers) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, err)
}

// random runs f with the seeded source under the lock.
func (t *Triggers) random(f func(r *rand.Rand)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.rng)
}

// runTimer fires a timer trigger on its schedule, asynchronously, as FC does.
func (t *Triggers) runTimer(name, payload string, sched Schedule) {
	for {
		now := t.clock.Now()
		next := sched.Next(now)
		if next.IsZero() {
			t.fail(fmt.Errorf("trigger %s: the schedule never fires", name))
			return
		}
		if t.clock.Sleep(t.ctx, next.Sub(now)) != nil {
			return
		}
		body := timerPayload(name, payload, next)
		id := t.o.Target.InvokeAsyncWith(body, fcrt.AsyncOptions{NoDestinations: !t.o.TimerDestinations})
		t.record(Delivery{Trigger: name, Time: next, Payload: body, Async: true, RequestID: id, Attempt: 1, Events: 1},
			func(s *Stats) { s.TimerFirings++ })
	}
}

// Publish puts an event on the default event bus: every enabled eventbridge trigger with the
// Default source whose pattern matches gets it, after the bus's delay, at least once. It
// returns how many rules matched.
func (t *Triggers) Publish(ev CloudEvent) (int, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("trigger: publish: %w", err)
	}
	return t.PublishJSON(body)
}

// PublishJSON is Publish for an event already in JSON, delivered byte for byte.
func (t *Triggers) PublishJSON(body []byte) (int, error) {
	t.mu.Lock()
	closed := t.closed
	t.stats.Published++
	t.mu.Unlock()
	if closed {
		return 0, errors.New("trigger: publish after Close")
	}
	matched := 0
	for _, r := range t.rules {
		ok, err := r.pattern.MatchJSON(body)
		if err != nil {
			return matched, fmt.Errorf("trigger: publish: %w", err)
		}
		if !ok {
			continue
		}
		matched++
		copies := 1
		var delays []time.Duration
		t.random(func(rng *rand.Rand) {
			if t.o.Bus.DuplicateRate > 0 && rng.Float64() < t.o.Bus.DuplicateRate {
				copies = 2
			}
			for range copies {
				delays = append(delays, t.o.Bus.delay(rng))
			}
		})
		t.count(func(s *Stats) {
			s.Matched++
			s.Duplicates += copies - 1
		})
		for _, d := range delays {
			t.begin()
			ok := t.spawn(func() {
				defer t.end()
				if t.clock.Sleep(t.ctx, d) != nil {
					return
				}
				t.deliverRule(r, body)
			})
			if !ok {
				t.end()
			}
		}
	}
	return matched, nil
}

func (b BusOptions) delay(rng *rand.Rand) time.Duration {
	if b.MaxDelay <= b.MinDelay {
		return b.MinDelay
	}
	return b.MinDelay + time.Duration(rng.Int64N(int64(b.MaxDelay-b.MinDelay)+1))
}

// deliverRule pushes one event to the function: asynchronously (FC's retries and
// destinations apply), or synchronously with EventBridge's default push retry.
func (t *Triggers) deliverRule(r *rule, body []byte) {
	if r.async {
		id := t.o.Target.InvokeAsyncWith(body, fcrt.AsyncOptions{})
		t.record(Delivery{Trigger: r.name, Time: t.clock.Now(), Payload: body, Async: true, RequestID: id, Attempt: 1, Events: 1}, nil)
		return
	}
	p := retryPolicy{strategy: BackoffRetry, attempts: 3, maxAge: 24 * time.Hour}
	start := t.clock.Now()
	for attempt := 1; ; attempt++ {
		errText := t.invokeSync(body)
		t.record(Delivery{Trigger: r.name, Time: t.clock.Now(), Payload: body, Attempt: attempt, Err: errText, Events: 1}, nil)
		if errText == "" || !t.retryWait(p, attempt, start) {
			return
		}
	}
}

// invokeSync invokes the function synchronously and returns the failure, "" if none.
func (t *Triggers) invokeSync(body []byte) string {
	res, err := t.o.Target.Invoke(t.ctx, body)
	switch {
	case err != nil:
		return err.Error()
	case res.Error != nil:
		return res.Error.ErrorType + ": " + res.Error.ErrorMessage
	}
	return ""
}
