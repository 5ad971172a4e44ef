package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/trigger"
)

// Producer is the principal the bench's work-queue messages are sent as: a producer outside
// the function, so that the audit of the function's own role does not count them.
const Producer = "bench-producer"

// QueueStats is what the work-queue stream did in a burst.
type QueueStats struct {
	// Trigger and Queue name s.yaml's work-queue trigger and its queue; CountBasedWindow and
	// TimeBasedWindowS its batch window, MaximumTasks the batches it pushes at once (0: the
	// stream's default, one).
	Trigger          string `json:"trigger"`
	Queue            string `json:"queue"`
	CountBasedWindow int    `json:"countBasedWindow"`
	TimeBasedWindowS int    `json:"timeBasedWindowS"`
	MaximumTasks     int    `json:"maximumTasks"`
	// VisibilityTimeoutS is the queue's: how long a message the stream took stays invisible.
	VisibilityTimeoutS int `json:"visibilityTimeoutS"`
	// Batches are the sizes of the batches the stream pushed, in push order (first pushes
	// only); Retries counts the stream's pushes again of a failed batch.
	Batches []int `json:"batches"`
	Retries int   `json:"retries"`
	// MessagesTaken counts the messages the stream received (a message seen twice, its
	// visibility timeout having passed, counts twice); DeadLettered the events the stream
	// wrote to its dead-letter queue.
	MessagesTaken int `json:"messagesTaken"`
	DeadLettered  int `json:"deadLettered"`
	// Again counts the events whose message reached the function more than once (a batch
	// retried, or a message taken again after its visibility timeout); their later handlings
	// find the work done. AgainOutcomes tallies those later handlings by outcome.
	Again         int            `json:"again"`
	AgainOutcomes map[string]int `json:"againOutcomes,omitempty"`
	// Drained is from the first send until the queue was empty and the stream idle: the
	// wall plus whatever the stream spent on messages already handled.
	Drained Duration `json:"drainedMs"`
	// Errors counts what went wrong outside the function (trigger.Triggers.Errors): a failed
	// delete of a message whose receipt handle had expired, a failed dead-letter write;
	// FirstErrors are the first few.
	Errors      int      `json:"errors"`
	FirstErrors []string `json:"firstErrors,omitempty"`
}

// BurstQueue runs p's burst through the work queue, as the README recommends for scale-out
// bursts: the launches are sent as p.Events messages to the queue of s.yaml's work-queue
// trigger at once, and that trigger, run by package trigger with s.yaml's settings (batch
// window, retry strategy, dead-letter queue, pushes at once), hands them to the function in
// synchronous batch invocations, as the MNS event stream does. Only enipool has a batch path:
// the peers' function takes one event per invocation.
//
// Each message's body is a direct request, {"instanceId","regionId"}, as the simulation's
// work-queue rows (sim/burst.go) send it. The deployment the README recommends sends the
// scale-out hook's notifications instead; those name the same instance and add Auto Scaling
// calls (the lifecycle completion), not ECS calls, and the bench's world has no scaling group.
//
// An event's latency runs from its message's send to the end of the first invocation that
// handled it (the first push of a batch holding it that succeeded), and its floor is the EventBridge burst's (Floors: 3L + its attach time + its
// quota wait), nothing added for the batch window: all p.Events messages are in the queue
// before the stream has cut its first batch, so each batch fills to CountBasedWindow at once
// and the time window binds only a last, partial batch; whatever the window and the pushes'
// order cost is the deployment's, and the figures must show it. The wall floor is the same.
func BurstQueue(ctx context.Context, bins Functions, p BurstParams) (*BurstResult, error) {
	if p.Policy != Enipool {
		return nil, fmt.Errorf("harness: burst through the work queue: %s has no batch path (the peers take one event per invocation)", p.Policy)
	}
	if p.Cloud.Instances < p.Events || p.Cloud.Pool < p.Events {
		return nil, fmt.Errorf("harness: burst: %d events need as many instances and pool ENIs (have %d, %d)", p.Events, p.Cloud.Instances, p.Cloud.Pool)
	}
	spec, qs, err := workQueue(bins.Spec, p.QueueTasks)
	if err != nil {
		return nil, err
	}
	b, err := NewBed(p.Cloud)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	// The world creates its queues with MNS's defaults (a 30 s visibility); the deployment
	// creates the work queue with a longer one.
	if err := b.Cloud.MNS.SetQueueAttributes(qs.Queue, mns.QueueConfig{VisibilityTimeout: WorkQueueVisibility}); err != nil {
		return nil, fmt.Errorf("harness: the work queue %s of trigger %s: %w", qs.Queue, qs.Trigger, err)
	}
	qs.VisibilityTimeoutS = int(WorkQueueVisibility / time.Second)
	if err := b.Start(p.Policy, bins, FunctionOptions{MaxInstances: p.MaxInstances}); err != nil {
		return nil, err
	}
	rt := b.Runtime(p.Policy)
	rec := &recorder{rt: rt}
	tr, err := trigger.Start(trigger.Options{Function: spec, Target: rec, Queues: b.Cloud.MNS, AccountID: b.Cloud.AccountID,
		Only: []string{qs.Trigger}})
	if err != nil {
		return nil, fmt.Errorf("harness: starting trigger %s: %w", qs.Trigger, err)
	}
	defer tr.Close() // before b.Close: the stream stops before the function and the queues

	ids := make([]string, p.Events)
	sent := make(map[string]time.Time, p.Events)
	byBody := make(map[string]string, p.Events)
	start := time.Now()
	for i := range ids {
		ids[i] = InstanceID(i)
		body := Direct(ids[i], b.Cloud.Region)
		byBody[string(body)] = ids[i]
		sent[ids[i]] = time.Now()
		if _, err := b.Cloud.MNS.Send(ctx, Producer, qs.Queue, body); err != nil {
			return nil, fmt.Errorf("harness: sending launch %d to %s: %w", i, qs.Queue, err)
		}
	}
	if err := drained(ctx, b, tr, qs.Queue); err != nil {
		return nil, err
	}
	qs.Drained = Duration(time.Since(start))
	if err := b.WaitAll(ctx); err != nil { // nothing is asynchronous here; a check, not a wait
		return nil, err
	}

	events, err := rec.events(ids, sent, byBody, &qs)
	if err != nil {
		return nil, err
	}
	st := tr.Stats()
	qs.Retries, qs.MessagesTaken, qs.DeadLettered = st.Retries, st.MessagesTaken, st.DeadLettered
	for _, d := range tr.Deliveries() {
		if d.Attempt == 1 {
			qs.Batches = append(qs.Batches, d.Events)
		}
	}
	errs := tr.Errors()
	qs.Errors = len(errs)
	for _, e := range errs[:min(3, len(errs))] {
		qs.FirstErrors = append(qs.FirstErrors, e.Error())
	}
	// The function's own calls: the producer's sends are not the function's.
	res := b.burstResult(p, start, ids, events, b.AuditOf(ctx, ids, RoleOf(p.Policy)))
	res.Queue = &qs
	return res, nil
}

// workQueue finds the function's MNS event stream (the work-queue trigger) in spec and
// returns spec, its maximumTasks replaced by tasks unless 0, and the stream's settings.
func workQueue(spec trigger.FunctionSpec, tasks int) (trigger.FunctionSpec, QueueStats, error) {
	spec.Triggers = slices.Clone(spec.Triggers)
	for i, t := range spec.Triggers {
		eb := t.EventBridge
		if eb == nil || !eb.TriggerEnable || eb.EventSourceConfig.EventSourceType != "MNS" {
			continue
		}
		src := eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters
		if src == nil {
			continue
		}
		if tasks > 0 {
			// A copy: the caller's spec keeps s.yaml's settings.
			ebc := *eb
			ro := trigger.RunOptionsSpec{}
			if eb.RunOptions != nil {
				ro = *eb.RunOptions
			}
			ro.MaximumTasks = tasks
			ebc.RunOptions = &ro
			spec.Triggers[i].EventBridge = &ebc
			eb = &ebc
		}
		qs := QueueStats{Trigger: t.Name, Queue: src.QueueName}
		if ro := eb.RunOptions; ro != nil {
			qs.MaximumTasks = ro.MaximumTasks
			if bw := ro.BatchWindow; bw != nil {
				qs.CountBasedWindow, qs.TimeBasedWindowS = bw.CountBasedWindow, bw.TimeBasedWindow
			}
		}
		return spec, qs, nil
	}
	return spec, QueueStats{}, errors.New("harness: s.yaml has no enabled MNS queue trigger")
}

// drained waits until the queue holds no message (each was taken, pushed and deleted) and
// the stream has no batch in progress.
func drained(ctx context.Context, b *Bed, tr *trigger.Triggers, queue string) error {
	for {
		// A message the stream has taken stays in the queue, inactive, until its batch's
		// push ended and it was deleted; only then does the stream leave its batch.
		if len(b.Cloud.MNS.Messages(queue)) == 0 {
			return tr.Idle(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: waiting for the work queue to drain: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// recorder is the stream's target: the function's runtime, with each synchronous push kept
// for the events' latencies and outcomes.
type recorder struct {
	rt     *fcrt.Runtime
	mu     sync.Mutex
	pushes []push
}

type push struct {
	payload []byte
	res     *fcrt.Result
	err     error
	end     time.Time // when Invoke returned: the end when the runtime has no record
}

// Invoke runs a push and keeps it.
func (r *recorder) Invoke(ctx context.Context, payload []byte) (*fcrt.Result, error) {
	res, err := r.rt.Invoke(ctx, payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, push{payload: payload, res: res, err: err, end: time.Now()})
	return res, err
}

// InvokeAsyncWith passes through: the work-queue stream invokes synchronously.
func (r *recorder) InvokeAsyncWith(payload []byte, o fcrt.AsyncOptions) string {
	return r.rt.InvokeAsyncWith(payload, o)
}

// events makes one Event per instance from the pushes that held its message, in push order:
// the first push that succeeded ends it and gives its outcome; the failed pushes before it
// count in its latency; the later ones, which find the work done, are counted in qs.
func (r *recorder) events(ids []string, sent map[string]time.Time, byBody map[string]string, qs *QueueStats) ([]*Event, error) {
	ends := map[string]fcrt.Invocation{}
	for _, inv := range r.rt.Invocations() {
		ends[inv.RequestID] = inv
	}
	r.mu.Lock()
	pushes := slices.Clone(r.pushes)
	r.mu.Unlock()
	byInstance := map[string]*Event{}
	for _, id := range ids {
		byInstance[id] = &Event{Policy: Enipool, Instance: id, Lane: -1, enqueued: sent[id], Outcome: "no answer"}
	}
	again := map[string]bool{}
	for _, ps := range pushes {
		var batch []struct {
			Data struct {
				MessageBody string `json:"messageBody"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ps.payload, &batch); err != nil {
			return nil, fmt.Errorf("harness: a push of the work-queue stream is not a batch of CloudEvents: %w", err)
		}
		end, cold, status, errText := ps.end, false, fcrt.StatusFailed, ""
		results := map[string]handler.Result{}
		switch {
		case ps.err != nil:
			errText = ps.err.Error()
		case ps.res.Error != nil:
			errText = ps.res.Error.ErrorMessage
		default:
			status = fcrt.StatusSucceeded
			var resp handler.Response
			if err := json.Unmarshal(ps.res.Payload, &resp); err == nil {
				for _, x := range resp.Results {
					results[x.InstanceID] = x
				}
			}
		}
		if ps.res != nil {
			cold = ps.res.ColdStart
			if inv, ok := ends[ps.res.RequestID]; ok && !inv.Start.IsZero() {
				end = inv.Start.Add(inv.Duration)
			}
		}
		for _, m := range batch {
			ev := byInstance[byBody[m.Data.MessageBody]]
			if ev == nil {
				return nil, fmt.Errorf("harness: the stream pushed a message the bench did not send: %q", m.Data.MessageBody)
			}
			outcome := "failed"
			if status == fcrt.StatusSucceeded {
				outcome = batchOutcome(results, ev.Instance)
			}
			if ev.Attempts == 0 {
				ev.Cold = cold
			}
			ev.Attempts++
			if ev.Status == fcrt.StatusSucceeded {
				again[ev.Instance] = true
				if qs.AgainOutcomes == nil {
					qs.AgainOutcomes = map[string]int{}
				}
				qs.AgainOutcomes[outcome]++
				continue
			}
			ev.end, ev.Status, ev.Error, ev.Outcome = end, status, errText, outcome
			ev.Latency = Duration(end.Sub(ev.enqueued))
		}
	}
	qs.Again = len(again)
	out := make([]*Event, len(ids))
	for i, id := range ids {
		out[i] = byInstance[id]
	}
	return out, nil
}

// batchOutcome is the outcome of instance's result in a batch's answer, as Collect names them.
func batchOutcome(results map[string]handler.Result, instance string) string {
	x, ok := results[instance]
	switch {
	case !ok:
		return "no result"
	case x.Code != "" && x.Outcome != "attached":
		return string(x.Outcome) + ":" + x.Code
	}
	return string(x.Outcome)
}
