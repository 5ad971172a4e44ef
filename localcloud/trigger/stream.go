package trigger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/enipool/enipool/localcloud/mns"
)

// Push retry strategies of an event stream (runOptions.retryStrategy.PushRetryStrategy).
const (
	BackoffRetry          = "BACKOFF_RETRY"
	ExponentialDecayRetry = "EXPONENTIAL_DECAY_RETRY"
)

// retryPolicy is a stream's retryStrategy.
type retryPolicy struct {
	strategy string
	attempts int           // retries after the first push
	maxAge   time.Duration // MaximumEventAgeInSeconds
}

// retryWait waits before retry n (n = 1 for the first) of a push that started at start, and
// reports whether to retry: false when the retries or the event's age are used up, or the
// triggers are closing. The intervals are EventBridge's: BACKOFF_RETRY waits a random 10-20 s,
// EXPONENTIAL_DECAY_RETRY 1 s, 2 s, 4 s, ... up to 512 s.
func (t *Triggers) retryWait(p retryPolicy, n int, start time.Time) bool {
	if n > p.attempts {
		return false
	}
	var d time.Duration
	if p.strategy == ExponentialDecayRetry {
		d = min(time.Second<<min(n-1, 9), 512*time.Second)
	} else {
		t.random(func(r *rand.Rand) { d = 10*time.Second + time.Duration(r.Int64N(int64(10*time.Second)+1)) })
	}
	if t.clock.Now().Add(d).Sub(start) > p.maxAge {
		return false
	}
	if t.clock.Sleep(t.ctx, d) != nil {
		return false
	}
	t.count(func(s *Stats) { s.Retries++ })
	return true
}

// stream is an eventbridge trigger with an MNS source: an EventBridge event stream from a
// queue to the function.
type stream struct {
	t           *Triggers
	name        string
	source      string // MNS-<function>-<trigger>
	queue       string
	region      string
	pattern     *Pattern
	decode      bool
	rawData     bool // eventSchema RawData: only each event's data
	count       int
	window      time.Duration
	retry       retryPolicy
	tolerateAll bool
	dlq         string
	tasks       int
}

// taken is a message the stream holds and the event made of it.
type taken struct {
	msg   mns.Message
	event CloudEvent
	json  []byte
}

func (t *Triggers) newStream(spec TriggerSpec, pat *Pattern) (*stream, error) {
	eb := spec.EventBridge
	src := eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters
	if src == nil || src.QueueName == "" {
		return nil, fmt.Errorf("%w: sourceMNSParameters.QueueName is missing", ErrInvalidProject)
	}
	if t.o.Queues == nil {
		return nil, fmt.Errorf("%w: an MNS event stream needs Options.Queues", ErrInvalidProject)
	}
	region := src.RegionID
	if region == "" {
		region = t.o.Function.Region
	}
	s := &stream{
		t:       t,
		name:    spec.Name,
		source:  "MNS-" + t.o.Function.Name + "-" + spec.Name,
		queue:   src.QueueName,
		region:  region,
		pattern: pat,
		decode:  src.IsBase64Decode == nil || *src.IsBase64Decode,
		rawData: eb.EventSinkConfig.DeliveryOption.EventSchema == "RawData",
		count:   1,
		retry:   retryPolicy{strategy: BackoffRetry, attempts: 3, maxAge: 24 * time.Hour},
		tasks:   1,
	}
	if ro := eb.RunOptions; ro != nil {
		if bw := ro.BatchWindow; bw != nil {
			if bw.CountBasedWindow < 0 || bw.CountBasedWindow > 10000 || bw.TimeBasedWindow < 0 || bw.TimeBasedWindow > 15 {
				return nil, fmt.Errorf("%w: batchWindow outside CountBasedWindow 1-10000, TimeBasedWindow 0-15", ErrInvalidProject)
			}
			s.count = max(bw.CountBasedWindow, 1)
			s.window = time.Duration(bw.TimeBasedWindow) * time.Second
		}
		if rs := ro.RetryStrategy; rs != nil {
			switch rs.PushRetryStrategy {
			case BackoffRetry, "":
			case ExponentialDecayRetry:
				s.retry.strategy, s.retry.attempts = ExponentialDecayRetry, 176
			default:
				return nil, fmt.Errorf("%w: unknown PushRetryStrategy %q", ErrInvalidProject, rs.PushRetryStrategy)
			}
			if rs.MaximumRetryAttempts != nil {
				s.retry.attempts = *rs.MaximumRetryAttempts
			}
			if rs.MaximumEventAgeInSeconds > 0 {
				s.retry.maxAge = time.Duration(rs.MaximumEventAgeInSeconds) * time.Second
			}
		}
		switch ro.ErrorsTolerance {
		case "ALL":
			s.tolerateAll = true
		case "NONE", "":
		default:
			return nil, fmt.Errorf("%w: unknown errorsTolerance %q", ErrInvalidProject, ro.ErrorsTolerance)
		}
		if ro.DeadLetterQueue != nil && ro.DeadLetterQueue.Arn != "" {
			q, err := QueueFromARN(ro.DeadLetterQueue.Arn)
			if err != nil {
				return nil, err
			}
			s.dlq = q
		}
		if ro.MaximumTasks > 0 {
			s.tasks = ro.MaximumTasks
		}
	}
	return s, nil
}

// start runs the poller, which cuts batches, and maximumTasks pushers.
func (s *stream) start() {
	t := s.t
	ctx, stop := context.WithCancel(t.ctx)
	batches := make(chan []taken)
	t.wg.Go(func() {
		defer close(batches)
		s.poll(ctx, batches)
	})
	for range s.tasks {
		t.wg.Go(func() {
			for b := range batches {
				ok := s.push(ctx, b)
				t.end()
				if !ok {
					stop() // errorsTolerance NONE: the stream stops
				}
			}
		})
	}
	t.wg.Go(func() {
		<-t.ctx.Done()
		stop()
	})
}

// poll cuts batches: a batch starts with the first message and is pushed when it holds
// CountBasedWindow messages or TimeBasedWindow has passed since it started.
func (s *stream) poll(ctx context.Context, out chan<- []taken) {
	t := s.t
	failing := false // report a failing queue once, not once a second
	for ctx.Err() == nil {
		first, err := t.o.Queues.Receive(ctx, s.queue, 30*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, mns.ErrMessageNotExist) {
				if !failing {
					t.fail(fmt.Errorf("trigger %s: receive from %s: %w", s.name, s.queue, err))
				}
				failing = true
				if t.clock.Sleep(ctx, time.Second) != nil {
					return
				}
			}
			continue
		}
		failing = false
		t.begin()
		batch := s.appendTaken(nil, first)
		if s.count > 1 {
			batch = s.fill(ctx, batch)
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			t.end()
			return
		}
	}
}

// fill adds messages to batch until it is full or the window closes.
func (s *stream) fill(ctx context.Context, batch []taken) []taken {
	t := s.t
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := 30 * time.Second
	if s.window > 0 {
		t.wg.Go(func() {
			_ = t.clock.Sleep(wctx, s.window)
			cancel()
		})
	} else {
		wait = 0 // no window: only what is already there
	}
	for len(batch) < s.count {
		m, err := t.o.Queues.Receive(wctx, s.queue, wait)
		if err != nil {
			if wctx.Err() == nil && s.window > 0 && errors.Is(err, mns.ErrMessageNotExist) {
				continue // the long poll ended without a message; the window is still open
			}
			break // the window closed, or the queue failed: push what there is
		}
		batch = s.appendTaken(batch, m)
	}
	return batch
}

// appendTaken makes m's event and keeps it in the batch unless the stream's pattern drops it;
// a dropped message is deleted, as the stream has consumed it.
func (s *stream) appendTaken(batch []taken, m mns.Message) []taken {
	t := s.t
	body := m.Body
	if s.decode {
		if dec, err := base64.StdEncoding.DecodeString(string(body)); err == nil && utf8.Valid(dec) {
			body = dec
		}
	}
	ev := MNSQueueMessage(s.region, t.o.AccountID, s.queue, s.source, m.ID, body, m.EnqueueTime, t.clock.Now())
	b, _ := json.Marshal(ev)
	t.count(func(st *Stats) { st.MessagesTaken++ })
	if ok, err := s.pattern.MatchJSON(b); err != nil || !ok {
		t.count(func(st *Stats) { st.Filtered++ })
		_ = t.o.Queues.Delete(s.queue, m.ReceiptHandle)
		return batch
	}
	return append(batch, taken{msg: m, event: ev, json: b})
}

// push delivers a batch synchronously, retries it per retryStrategy, and then deletes its
// messages, after writing them to the dead-letter queue if the retries ran out. It reports
// false when the stream must stop (errorsTolerance NONE and the batch failed): its messages
// then stay in the queue.
func (s *stream) push(ctx context.Context, batch []taken) bool {
	t := s.t
	if len(batch) == 0 {
		return true
	}
	payload := s.payload(batch)
	start := t.clock.Now()
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return true
		}
		errText := t.invokeSync(payload)
		t.record(Delivery{Trigger: s.name, Time: t.clock.Now(), Payload: payload, Attempt: attempt, Err: errText, Events: len(batch)},
			func(st *Stats) {
				if attempt == 1 {
					st.Batches++
				}
			})
		if errText == "" {
			s.ack(batch)
			return true
		}
		if !t.retryWait(s.retry, attempt, start) {
			break
		}
	}
	if ctx.Err() != nil {
		return true
	}
	if !s.tolerateAll {
		t.count(func(st *Stats) { st.Stopped++ })
		t.fail(fmt.Errorf("trigger %s: a batch failed after its retries and errorsTolerance is NONE: the stream stopped", s.name))
		return false
	}
	if s.dlq != "" {
		for _, e := range batch {
			if err := t.o.Queues.Deliver(ctx, s.dlq, e.json); err != nil {
				t.fail(fmt.Errorf("trigger %s: dead-letter %s: %w", s.name, e.msg.ID, err))
				continue
			}
			t.count(func(st *Stats) { st.DeadLettered++ })
		}
	}
	s.ack(batch)
	return true
}

// payload is what the function receives: event streaming pushes an array, of whole events
// (CloudEvents) or of their data (RawData).
func (s *stream) payload(batch []taken) []byte {
	items := make([]json.RawMessage, len(batch))
	for i, e := range batch {
		items[i] = e.json
		if s.rawData {
			items[i] = e.event.Data
		}
	}
	b, _ := json.Marshal(items)
	return b
}

// ack deletes the batch's messages from the queue. A handle that expired (the message
// became visible again during long retries) fails: that message will come again, as
// at-least-once delivery allows.
func (s *stream) ack(batch []taken) {
	for _, e := range batch {
		if err := s.t.o.Queues.Delete(s.queue, e.msg.ReceiptHandle); err != nil {
			s.t.fail(fmt.Errorf("trigger %s: delete %s: %w", s.name, e.msg.ID, err))
		}
	}
}
