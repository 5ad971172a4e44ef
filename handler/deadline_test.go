package handler

import (
	"errors"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
)

// A look at a starting instance still in flight when the work's deadline comes ends as the
// deadline ends it: NotReady, what kept the instance waiting, not the transport error of the
// call the deadline cut short. Fails on 7eddfb4: the dead letter said enipool.TransportError
// ("Client.Timeout exceeded"), which e2e TestScaleOutHookGivesUpWithAbandon met under load.
func TestDeadlineDuringALookIsNotATransportError(t *testing.T) {
	const inst = "i-bp1deadline0001"
	c := newFakeCloud()
	c.addInstance(inst, "ecs.g7.large")
	c.addENIs("d", 1)
	c.setStatus(inst, "Pending")
	h, _ := fakeHandler(t, c, nil)
	// The work's deadline: the invocation's 1.5 s less the 200 ms dead-letter reserve.
	deadline := time.Now().Add(1300 * time.Millisecond)
	looks := 0
	c.describeErr = func(cloud.InstanceQuery) error {
		if looks++; looks == 1 {
			return nil
		}
		time.Sleep(time.Until(deadline) + 20*time.Millisecond) // the call is cut by the deadline
		return &cloud.APIError{Service: "ecs", API: "DescribeInstances",
			Err: errors.New("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")}
	}
	resp, _ := invoke(t, h, directPayload(inst), 1500*time.Millisecond)
	if r := resultFor(t, resp, inst); r.Code != cloud.CodeNotReady {
		t.Fatalf("outcome %s %s (%s), want %s", r.Outcome, r.Code, r.Reason, cloud.CodeNotReady)
	}
}

// An attach that ECS keeps refusing as unavailable, whose last try the deadline cuts short,
// ends with the code ECS gave, not the transport error of the cut call. Fails on f6c2f9d:
// the result said enipool.DeadlineExceeded with "Client.Timeout exceeded", which e2e
// TestQueueEventsDeadLetterTransientFailures met under a loaded make test.
func TestDeadlineCutAttachKeepsItsCause(t *testing.T) {
	const inst = "i-bp1deadcause001"
	c := newFakeCloud()
	c.addInstance(inst, "ecs.g7.large")
	c.addENIs("c", 1)
	h, _ := fakeHandler(t, c, nil)
	// The work's deadline: the invocation's 1.5 s less the 200 ms dead-letter reserve.
	deadline := time.Now().Add(1300 * time.Millisecond)
	tries := 0
	c.onAttach = func(string, string) (error, bool) {
		if tries++; tries < 3 {
			return fakeError("AttachNetworkInterface", "ServiceUnavailable"), false
		}
		time.Sleep(time.Until(deadline) + 20*time.Millisecond) // the call is cut by the deadline
		return &cloud.APIError{Service: "ecs", API: "AttachNetworkInterface",
			Err: errors.New("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")}, false
	}
	resp, _ := invoke(t, h, directPayload(inst), 1500*time.Millisecond)
	if r := resultFor(t, resp, inst); r.Code != "ServiceUnavailable" {
		t.Fatalf("outcome %s %s (%s) after %d tries, want ServiceUnavailable", r.Outcome, r.Code, r.Reason, tries)
	}
}
