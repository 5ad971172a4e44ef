package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/world"
)

// An attach that ECS accepts and later rolls back (the ENI falls back to Available) is
// noticed at confirmation, and the next ENI is attached.
func TestAttachRollbackTakesNextENI(t *testing.T) {
	t.Parallel()
	const a = "i-bp1rollback0001"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 3),
		mutate: func(w *world.World) { w.Faults.AttachRollback, w.Faults.AttachRollbackLimit = 1, 1 }}), bedOptions{})
	r := result(t, b.mustInvoke(running(a)), a)
	if r.Outcome != engine.OutcomeAttached || r.Attempts != 2 {
		t.Fatalf("got %s after %d attempts, want attached after 2", r.Outcome, r.Attempts)
	}
	first := engine.Rank(a, []string{"eni-p01", "eni-p02", "eni-p03"})[0]
	if r.NetworkInterfaceID == first {
		t.Fatalf("attached %s, the ENI whose attach rolled back", first)
	}
	if e, _ := b.cloud.Store.ENI(first); e.Status != "Available" {
		t.Fatalf("the rolled-back ENI is %s", e.Status)
	}
	if got := b.inUse(a); len(got) != 1 || got[0] != r.NetworkInterfaceID {
		t.Fatalf("instance holds %v", got)
	}
}

// Under a throttling storm (a tight quota on Attach plus random Throttling.User on every
// call) every instance still gets its ENI inside the deadline, with nothing dead-lettered.
func TestThrottlingStorm(t *testing.T) {
	t.Parallel()
	insts, ids := instances("storm", 12, zoneH)
	w := newWorld(t, spec{instances: insts, enis: poolENIs("p", zoneH, 14), mutate: func(w *world.World) {
		w.Throttling = append([]world.Throttle{{Service: "ecs", Action: "AttachNetworkInterface", QPS: 4, Burst: 2}}, w.Throttling...)
		w.Faults.Errors = append(w.Faults.Errors, fault.Rule{Service: "ecs", Rate: 0.3, Code: "Throttling.User", HTTPStatus: 400,
			Message: "Request was denied due to user flow control."})
	}})
	b := newBed(t, w, bedOptions{max: 12, timeout: 30 * time.Second})
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := result(t, b.mustInvoke(running(id)), id); r.Outcome != engine.OutcomeAttached {
				t.Errorf("%s: %s %s", id, r.Outcome, r.Reason)
			}
		}()
	}
	wg.Wait()
	throttled := 0
	for _, c := range b.cloud.Calls.Calls() {
		if strings.HasPrefix(c.Code, "Throttling") {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("the storm throttled nothing: the test proves nothing")
	}
	for _, id := range ids {
		if len(b.inUse(id)) != 1 {
			t.Errorf("%s holds %v", id, b.inUse(id))
		}
	}
	if len(b.deadLetters()) != 0 {
		t.Errorf("%d dead letters", len(b.deadLetters()))
	}
	t.Logf("%d calls throttled", throttled)
}

// While the dead-letter queue is down, the function cannot dead-letter: it returns an error,
// so the platform keeps the event. Asynchronously invoked, FC retries; once the queue is back
// the dead letter arrives, once.
func TestDeadLetterQueueOutage(t *testing.T) {
	t.Parallel()
	const a = "i-bp1outage000001"
	w := newWorld(t, spec{instances: []world.Instance{inst(a, zoneI)}, enis: poolENIs("h", zoneH, 1)}) // zone i: exhausted
	b := newBed(t, w, bedOptions{env: map[string]string{"ENIPOOL_PLATFORM_RETRIES": "3", "ENIPOOL_DLQ_RESERVE": "1s"}, timeout: 4 * time.Second,
		async: fcrt.AsyncConfig{MaxRetryAttempts: 3, Backoff: func(int) time.Duration { return time.Second }}})
	// Outages longer than the function's timeout, so one attempt cannot ride them out.
	b.cloud.Faults.StartOutage("mns", 6*time.Second)

	// Synchronously: an error, and nothing in the queue.
	resp, ferr := b.invoke(running(a))
	if ferr == nil || len(resp.Results) == 1 && resp.Results[0].Outcome != engine.OutcomeFailed {
		t.Fatalf("during the outage: error %v, results %+v; want an error and a failed outcome", ferr, resp.Results)
	}
	if n := len(b.cloud.MNS.Messages(dlq)); n != 0 {
		t.Fatalf("%d messages in the queue during its outage", n)
	}

	// Asynchronously: FC retries until the queue is back; the event is dead-lettered once.
	b.cloud.Faults.EndOutages("mns")
	b.cloud.Faults.StartOutage("mns", 6*time.Second)
	b.fn.InvokeAsync([]byte(running(a)))
	waitAsync(t, b)
	dl := b.deadLetters()
	if len(dl) != 1 || dl[0].InstanceID != a || dl[0].Error.Code != cloud.CodePoolExhausted {
		t.Fatalf("after the outage the queue holds %+v, want one dead letter for %s", dl, a)
	}
	if n := len(b.cloud.MNS.Messages(dlq)); n != 1 {
		t.Fatalf("%d messages in the queue, want 1 (nothing twice, nothing from onFailure)", n)
	}
	tasks := b.fn.AsyncTasks()
	if len(tasks) != 1 || tasks[0].AlreadyRetriedTimes == 0 {
		t.Fatalf("async task %+v: the platform should have retried", tasks)
	}
}

// A transient failure of an event from the MNS work queue is dead-lettered at once, with the
// action "retry": the queue trigger invokes synchronously, without a retry count, and its
// own dead-letter queue would get the bare event instead of an envelope.
func TestQueueEventsDeadLetterTransientFailures(t *testing.T) {
	t.Parallel()
	const a = "i-bp1queue0000001"
	w := newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 2), mutate: func(w *world.World) {
		w.Faults.Errors = append(w.Faults.Errors, fault.Rule{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1,
			Code: "ServiceUnavailable", HTTPStatus: 503})
	}})
	b := newBed(t, w, bedOptions{timeout: 4 * time.Second})
	msg := fmt.Sprintf(`{"id":"q-1","source":"MNS-enipool-work-queue","specversion":"1.0","type":"mns:Queue:SendMessage",
"subject":"acs:mns:cn-hangzhou:1234567890123456:queues/enipool-work","data":{"requestId":"r","messageId":"M1","messageBody":%q}}`, direct(a))
	resp, ferr := b.invoke(msg)
	if ferr != nil {
		t.Fatalf("function error %s: a queue event must not bounce back to the stream", ferr.ErrorMessage)
	}
	r := result(t, resp, a)
	if r.Outcome != engine.OutcomeDeadLettered || r.Verdict != cloud.VerdictRetry || r.Code != "ServiceUnavailable" {
		t.Fatalf("got %s %s (%s)", r.Outcome, r.Code, r.Verdict)
	}
	dl := b.deadLetters()
	if len(dl) != 1 || dl[0].Verdict != "retry" || dl[0].Source != "mns:enipool-work" {
		t.Fatalf("dead letters %+v", dl)
	}
}

// A transient failure goes back to FC, which retries; on its last retry (the retry count FC
// passes equals ENIPOOL_PLATFORM_RETRIES) the function dead-letters the event itself, so the
// queue holds enipool's envelope with the reason, and FC's onFailure gets nothing.
func TestLastPlatformRetryDeadLettersItself(t *testing.T) {
	t.Parallel()
	const a = "i-bp1lastretry001"
	w := newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 1), mutate: func(w *world.World) {
		w.Faults.Errors = append(w.Faults.Errors, fault.Rule{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1,
			Code: "InternalError", HTTPStatus: 500})
	}})
	// A 2 s reserve: the dead letter goes out in the reserve less the final 0.5 s, and with
	// 1 s of it a loaded make test once ran the send past its deadline (the letter arrived,
	// its answer came too late, and FC's record followed it).
	b := newBed(t, w, bedOptions{env: map[string]string{"ENIPOOL_PLATFORM_RETRIES": "2", "ENIPOOL_DLQ_RESERVE": "2s"}, timeout: 4 * time.Second,
		async: fcrt.AsyncConfig{MaxRetryAttempts: 2, Backoff: func(int) time.Duration { return 100 * time.Millisecond }}})
	b.fn.InvokeAsync([]byte(running(a)))
	waitAsync(t, b)
	msgs := b.cloud.MNS.Messages(dlq)
	dl := b.deadLetters()
	if len(msgs) != 1 || len(dl) != 1 {
		t.Fatalf("%d messages, %d envelopes: want exactly one envelope and no FC record", len(msgs), len(dl))
	}
	env := dl[0]
	if env.FCRetryCount != 2 || env.Error.Code != "InternalError" || env.InstanceID != a || string(env.Event) != running(a) {
		t.Fatalf("envelope %+v", env)
	}
	var retries []int
	for _, inv := range b.fn.Invocations() {
		retries = append(retries, inv.RetryCount)
	}
	if len(retries) != 3 {
		t.Fatalf("invocations with retry counts %v, want 0, 1, 2", retries)
	}
}
