package trigger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/mns"
)

// withWorkQueue returns spec with only its work-queue trigger, changed by edit (on a copy).
func withWorkQueue(t *testing.T, spec FunctionSpec, edit func(eb *EventBridgeSpec)) FunctionSpec {
	t.Helper()
	i := slices.IndexFunc(spec.Triggers, func(tr TriggerSpec) bool { return tr.Name == "work-queue" })
	if i < 0 {
		t.Fatal("s.yaml has no work-queue trigger")
	}
	tr := spec.Triggers[i]
	var eb EventBridgeSpec
	b, _ := json.Marshal(tr.EventBridge)
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&eb)
	}
	tr.EventBridge = &eb
	spec.Triggers = []TriggerSpec{tr}
	return spec
}

func newQueues(t *testing.T, names ...string) *mns.Server {
	t.Helper()
	s := mns.New(mns.Options{Account: testAccount})
	for _, n := range names {
		if err := s.CreateQueue(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Close)
	return s
}

func send(t *testing.T, q *mns.Server, queue string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if err := q.Deliver(ctxT(t), queue, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
}

// batchEvents decodes a pushed batch.
func batchEvents(t *testing.T, b []byte) []CloudEvent {
	t.Helper()
	var evs []CloudEvent
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatalf("a batch is not an array of events: %v\n%s", err, b)
	}
	return evs
}

func bodyOf(t *testing.T, ev CloudEvent) string {
	t.Helper()
	var d mnsData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d.MessageBody
}

// TestStreamMatchesPublishedSample pushes messages through s.yaml's work-queue trigger: the
// function gets one array whose every element has the keys and types of fc-runtime-go-sdk's
// README_MNS_Queue sample, the source the trigger's pattern names, and bodies decoded per
// IsBase64Decode.
func TestStreamMatchesPublishedSample(t *testing.T) {
	spec := project(t)
	sample := decode(t, readSample(t, "mns-queue.json"))
	plain := `{"instanceId":"i-1"}`
	encoded := base64.StdEncoding.EncodeToString([]byte(`{"instanceId":"i-2"}`))
	tests := []struct {
		name   string
		decode bool
		want   []string
	}{
		{"IsBase64Decode true (s.yaml)", true, []string{plain, `{"instanceId":"i-2"}`, "TEST", "not base64!"}},
		{"IsBase64Decode false", false, []string{plain, encoded, "TEST", "not base64!"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := withWorkQueue(t, spec, func(eb *EventBridgeSpec) {
				*eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters.IsBase64Decode = tt.decode
			})
			q := newQueues(t, "enipool-work", "enipool-dlq")
			// "TEST" is valid base64 of bytes that are not text: it arrives as sent.
			send(t, q, "enipool-work", plain, encoded, "TEST", "not base64!")
			rt, dir := echoFunction(t, fn, "", nil)
			tr, err := Start(Options{Function: fn, Target: rt, Queues: q, AccountID: testAccount,
				Clock: NewScaledClock(time.Now(), 1000)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			waitFor(t, "the queue to empty", func() bool { return len(q.Messages("enipool-work")) == 0 })
			if err := tr.Idle(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			got := received(t, dir)
			if len(got) != 1 {
				t.Fatalf("the function ran %d times, want one batch", len(got))
			}
			if d := shapeDiff("$", []any{sample}, decode(t, got[0])); d != "" {
				t.Fatalf("delivered %s\ndiffers from the published sample: %s", got[0], d)
			}
			evs := batchEvents(t, got[0])
			var bodies []string
			for _, ev := range evs {
				bodies = append(bodies, bodyOf(t, ev))
				if ev.Source != "MNS-enipool-work-queue" || ev.Type != TypeMNSSendMessage ||
					ev.Subject != "acs:mns:cn-hangzhou:"+testAccount+":queues/enipool-work" {
					t.Errorf("event %+v", ev)
				}
			}
			if !slices.Equal(bodies, tt.want) {
				t.Errorf("bodies %q, want %q", bodies, tt.want)
			}
		})
	}
}

// TestStreamBatchWindows shows batches cut by CountBasedWindow and by TimeBasedWindow.
func TestStreamBatchWindows(t *testing.T) {
	spec := project(t)
	tests := []struct {
		name        string
		count, secs int
		before      int   // messages in the queue when the stream starts
		later       int   // messages sent one by one, each after the previous batch's window
		want        []int // batch sizes
	}{
		{name: "s.yaml: 10 or 2 s", count: 10, secs: 2, before: 25, want: []int{10, 10, 5}},
		{name: "count 1", count: 1, secs: 2, before: 3, want: []int{1, 1, 1}},
		{name: "time window cuts small batches", count: 10, secs: 1, later: 3, want: []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := withWorkQueue(t, spec, func(eb *EventBridgeSpec) {
				eb.RunOptions.BatchWindow.CountBasedWindow = tt.count
				eb.RunOptions.BatchWindow.TimeBasedWindow = tt.secs
				eb.RunOptions.MaximumTasks = 1 // batches arrive in the order they were cut
			})
			q := newQueues(t, "enipool-work", "enipool-dlq")
			for i := range tt.before {
				send(t, q, "enipool-work", fmt.Sprintf(`{"n":%d}`, i))
			}
			rt, dir := echoFunction(t, fn, "", nil)
			tr, err := Start(Options{Function: fn, Target: rt, Queues: q, AccountID: testAccount,
				Clock: NewScaledClock(time.Now(), 100)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			for i := range tt.later {
				send(t, q, "enipool-work", fmt.Sprintf(`{"later":%d}`, i))
				waitFor(t, "the batch", func() bool { return len(received(t, dir)) == i+1 })
			}
			waitFor(t, "the queue to empty", func() bool { return len(q.Messages("enipool-work")) == 0 })
			if err := tr.Idle(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			var sizes []int
			for _, b := range received(t, dir) {
				sizes = append(sizes, len(batchEvents(t, b)))
			}
			if !slices.Equal(sizes, tt.want) {
				t.Errorf("batch sizes %v, want %v", sizes, tt.want)
			}
		})
	}
}

// TestStreamRetriesAndDeadLetters fails every batch holding a poisoned message: the stream
// retries it per retryStrategy, then, with errorsTolerance ALL, writes the event to the
// dead-letter queue and goes on; with NONE it stops and leaves the rest in the queue.
func TestStreamRetriesAndDeadLetters(t *testing.T) {
	spec := project(t)
	tests := []struct {
		name       string
		tolerance  string
		strategy   string
		retries    int
		wantPushes int // pushes of the poisoned batch
		wantDLQ    int
		wantLeft   int // messages left in the work queue
		wantOK     int // other messages that reached the function
	}{
		{name: "s.yaml: ALL, 3 retries", tolerance: "ALL", strategy: BackoffRetry, retries: 3, wantPushes: 4, wantDLQ: 1, wantOK: 2},
		{name: "exponential, 1 retry", tolerance: "ALL", strategy: ExponentialDecayRetry, retries: 1, wantPushes: 2, wantDLQ: 1, wantOK: 2},
		{name: "NONE stops the stream", tolerance: "NONE", strategy: BackoffRetry, retries: 2, wantPushes: 3, wantLeft: 2, wantOK: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := withWorkQueue(t, spec, func(eb *EventBridgeSpec) {
				ro := eb.RunOptions
				ro.BatchWindow.CountBasedWindow = 1
				ro.ErrorsTolerance = tt.tolerance
				ro.RetryStrategy.PushRetryStrategy = tt.strategy
				ro.RetryStrategy.MaximumRetryAttempts = &tt.retries
				// One push at a time: NONE stops the stream before the batch after the
				// poisoned one is pushed.
				ro.MaximumTasks = 1
			})
			q := newQueues(t, "enipool-work", "enipool-dlq")
			send(t, q, "enipool-work", `{"ok":1}`, `{"poison":true}`, `{"ok":2}`)
			rt, dir := echoFunction(t, fn, "poison", nil)
			tr, err := Start(Options{Function: fn, Target: rt, Queues: q, AccountID: testAccount,
				Clock: NewScaledClock(time.Now(), 1000), Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if tt.tolerance == "NONE" {
				waitFor(t, "the stream to stop", func() bool { return tr.Stats().Stopped == 1 })
			} else {
				waitFor(t, "the queue to empty", func() bool { return len(q.Messages("enipool-work")) == 0 })
			}
			if err := tr.Idle(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			var poisoned, ok int
			for _, b := range received(t, dir) {
				if strings.Contains(string(b), "poison") {
					poisoned++
				} else {
					ok++
				}
			}
			if poisoned != tt.wantPushes || ok != tt.wantOK {
				t.Errorf("poisoned batch pushed %d times, others %d; want %d and %d", poisoned, ok, tt.wantPushes, tt.wantOK)
			}
			if got := tr.Stats().Retries; got != tt.wantPushes-1 {
				t.Errorf("Stats.Retries = %d, want %d", got, tt.wantPushes-1)
			}
			dlq := q.Messages("enipool-dlq")
			if len(dlq) != tt.wantDLQ {
				t.Fatalf("dead-letter queue holds %d, want %d", len(dlq), tt.wantDLQ)
			}
			for _, m := range dlq {
				var ev CloudEvent
				if err := json.Unmarshal(m.Body, &ev); err != nil || !strings.Contains(bodyOf(t, ev), "poison") {
					t.Errorf("dead letter %s is not the poisoned event (%v)", m.Body, err)
				}
			}
			if left := len(q.Messages("enipool-work")); left != tt.wantLeft {
				t.Errorf("%d messages left in the work queue, want %d", left, tt.wantLeft)
			}
		})
	}
}

// TestStreamPatternFilters drops events the trigger's pattern does not match, as the
// generated source must match eventRuleFilterPattern for anything to arrive.
func TestStreamPatternFilters(t *testing.T) {
	spec := project(t)
	fn := withWorkQueue(t, spec, func(eb *EventBridgeSpec) {
		eb.EventRuleFilterPattern = `{"source":["MNS-some-other-function-work-queue"]}`
	})
	q := newQueues(t, "enipool-work", "enipool-dlq")
	send(t, q, "enipool-work", `{"a":1}`, `{"a":2}`)
	rt, dir := echoFunction(t, fn, "", nil)
	tr, err := Start(Options{Function: fn, Target: rt, Queues: q, AccountID: testAccount, Clock: NewScaledClock(time.Now(), 1000)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	waitFor(t, "the queue to empty", func() bool { return len(q.Messages("enipool-work")) == 0 })
	if err := tr.Idle(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(received(t, dir)); n != 0 {
		t.Errorf("the function ran %d times, want 0", n)
	}
	if s := tr.Stats(); s.Filtered != 2 || s.MessagesTaken != 2 {
		t.Errorf("stats %+v, want 2 taken and 2 filtered", s)
	}
}

// TestStreamMaximumTasks: the stream pushes up to maximumTasks batches at once, and no more.
func TestStreamMaximumTasks(t *testing.T) {
	spec := project(t)
	for _, tasks := range []int{1, 3} {
		t.Run(fmt.Sprint(tasks), func(t *testing.T) {
			fn := withWorkQueue(t, spec, func(eb *EventBridgeSpec) {
				eb.RunOptions.BatchWindow.CountBasedWindow = 1
				eb.RunOptions.MaximumTasks = tasks
			})
			q := newQueues(t, "enipool-work", "enipool-dlq")
			rt, _ := echoFunction(t, fn, "", nil)
			gate := &gatedTarget{Target: rt, open: make(chan struct{})}
			tr, err := Start(Options{Function: fn, Target: gate, Queues: q, AccountID: testAccount, Clock: NewScaledClock(time.Now(), 1000)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			send(t, q, "enipool-work", `{"a":1}`, `{"a":2}`, `{"a":3}`)
			waitFor(t, "the pushes to start", func() bool { return gate.waiting() == tasks })
			time.Sleep(20 * time.Millisecond) // would a further push start? It must not.
			if n := gate.waiting(); n != tasks {
				t.Errorf("%d pushes at once, want %d", n, tasks)
			}
			close(gate.open)
			waitFor(t, "the queue to empty", func() bool { return len(q.Messages("enipool-work")) == 0 })
		})
	}
}

// gatedTarget holds synchronous invocations until open is closed, counting those waiting.
type gatedTarget struct {
	Target
	open chan struct{}
	mu   sync.Mutex
	n    int
}

func (g *gatedTarget) Invoke(ctx context.Context, payload []byte) (*fcrt.Result, error) {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
	<-g.open
	return g.Target.Invoke(ctx, payload)
}

func (g *gatedTarget) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
