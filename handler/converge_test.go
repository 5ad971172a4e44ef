package handler

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

// A surplus ENI whose detach fails is a failure of the event, handled as the error table says,
// never a success while the instance holds N+1. Fails on ca38816: "already-attached" with no
// dead letter while the instance kept both ENIs.
func TestSurplusDetachFailure(t *testing.T) {
	const inst = "i-bp1surplus00001"
	tests := []struct {
		name     string
		detach   func(calls int) error
		outcome  engine.Outcome
		code     string
		held     int
		dead     int
		detached bool
	}{
		{name: "transient, never passing: retried, then dead-lettered (the platform retries no more)",
			detach: func(int) error {
				return &cloud.APIError{Service: "ecs", API: "DetachNetworkInterface", Code: "InternalError", HTTPStatus: 500}
			},
			outcome: engine.OutcomeDeadLettered, code: "InternalError", held: 2, dead: 1},
		{name: "permanent: dead-lettered",
			detach:  func(int) error { return fakeError("DetachNetworkInterface", "Forbidden.RAM") },
			outcome: engine.OutcomeDeadLettered, code: "Forbidden.RAM", held: 2, dead: 1},
		{name: "transient once: retried and converged",
			detach: func(n int) error {
				if n == 1 {
					return &cloud.APIError{Service: "ecs", API: "DetachNetworkInterface", Err: errors.New("connection reset")}
				}
				return nil
			},
			outcome: engine.OutcomeAlreadyAttached, held: 1, detached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			c.addInstance(inst, "ecs.g7.large")
			enis := c.addENIs("s", 2)
			c.put(enis[0], cloud.StatusInUse, inst, 0)
			c.put(enis[1], cloud.StatusInUse, inst, 0)
			var mu sync.Mutex
			n := 0
			c.onDetach = func(string, string) (error, bool) {
				mu.Lock()
				defer mu.Unlock()
				n++
				return tt.detach(n), false
			}
			h, _ := fakeHandler(t, c, nil)
			resp, _ := invoke(t, h, directPayload(inst), 1500*time.Millisecond)
			r := resultFor(t, resp, inst)
			if r.Outcome != tt.outcome || r.Code != tt.code {
				t.Errorf("outcome %s %s (%s), want %s %s", r.Outcome, r.Code, r.Reason, tt.outcome, tt.code)
			}
			time.Sleep(2 * c.detachTime)
			if got := c.held(inst); len(got) != tt.held {
				t.Errorf("instance holds %v, want %d", got, tt.held)
			}
			if got := len(c.deadLetters()); got != tt.dead {
				t.Errorf("%d dead letters, want %d", got, tt.dead)
			}
			if tt.detached && len(r.Detached) != 1 {
				t.Errorf("result names detached %v, want the surplus", r.Detached)
			}
		})
	}
}

// Two invocations handle one instance at once: one attaches the ENI the ranking puts first,
// slowly; the other attaches another (a request naming it), quickly. Both must keep the same
// ENI, whatever the order their attaches finish in, and report the one the instance holds at
// the end. Fails on ca38816: the quick one ranked only InUse ENIs, kept and reported its own
// ENI, which the slow one then detached ("reported eni-a02, instance holds [eni-a01]").
func TestConcurrentInvocationsAgree(t *testing.T) {
	const inst = "i-bp1agree0000001"
	c := newFakeCloud()
	c.addInstance(inst, "ecs.g7.large")
	ids := c.addENIs("a", 3)
	ranked := engine.Rank(inst, ids)
	first, other := ranked[0], ranked[1]
	c.slow = map[string]time.Duration{first: 400 * time.Millisecond}
	// Both invocations list the pool before either attach lands: each attach waits for the
	// other (or 500ms).
	arrived := make(chan struct{}, 2)
	c.onAttach = func(string, string) (error, bool) {
		select {
		case arrived <- struct{}{}:
		default: // an attach after the first two (both dropped theirs and attach again)
		}
		deadline := time.After(500 * time.Millisecond)
		for len(arrived) < 2 {
			select {
			case <-deadline:
				return nil, false
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil, false
	}
	hA, logA := fakeHandler(t, c, nil) // separate handlers: separate FC instances share no memory
	hB, logB := fakeHandler(t, c, nil)
	var wg sync.WaitGroup
	var ra, rb *Response
	wg.Add(2)
	go func() { defer wg.Done(); ra, _ = invoke(t, hA, stateEvent(inst, "Running"), 3*time.Second) }()
	go func() {
		defer wg.Done()
		rb, _ = invoke(t, hB, `{"instanceId":"`+inst+`","networkInterfaceId":"`+other+`"}`, 3*time.Second)
	}()
	wg.Wait()
	time.Sleep(3 * c.detachTime)
	held := c.held(inst)
	if len(held) != 1 {
		t.Fatalf("instance holds %v, want exactly one", held)
	}
	for name, resp := range map[string]*Response{"A": ra, "B": rb} {
		r := resultFor(t, resp, inst)
		if r.NetworkInterfaceID != held[0] {
			t.Errorf("invocation %s reported %s (%s), instance holds %v", name, r.NetworkInterfaceID, r.Outcome, held)
		}
	}
	for name, logs := range map[string]*syncBuffer{"A": logA, "B": logB} {
		if want := `"holds":["` + held[0] + `"]`; !strings.Contains(logs.String(), want) {
			t.Errorf("invocation %s's outcome line does not say %s:\n%s", name, want, logs)
		}
	}
}
