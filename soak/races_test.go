package soak

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/world"
)

// TestStopWhileAttachUnconfirmed replays, deterministically, a race the soak meets now and
// then: an instance stops after its Running event's attach went through but before that
// invocation looked at it again. The Stopped event sends the ENI back; the Running
// invocation, finding its ENI gone, must not take another one for an instance that is now
// Stopped (with ENIPOOL_RELEASE_ON=Stopped, the default, Stopped instances hold none).
//
// The function's first guess of the attach time (1.5 s) is far above the cloud's (200 ms), so
// the Running invocation's first look comes after the Stopped event has been handled.
func TestStopWhileAttachUnconfirmed(t *testing.T) {
	skipShort(t)
	ck := &checker{t: t}
	defer ck.done()
	w, err := world.Generate(world.GenerateOptions{Instances: 1, Pool: 2, Zones: 1, PoolValue: pool,
		Attach: 200 * time.Millisecond, Detach: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fn, err := testbed.StartFunction(c, testbed.Function{Binary: functionBinary(), DeadLetterQueue: dlq, Timeout: 20 * time.Second, MaxInstances: 2,
		Env: map[string]string{"ENIPOOL_DLQ_RESERVE": "1s", "ENIPOOL_ATTACH_TIME": "1500ms", "ENIPOOL_DETACH_TIME": "100ms"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fn.Close() })
	const id = "i-gen000000001"
	invoke := func(payload string) handler.Result {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := fn.Invoke(ctx, []byte(payload))
		if err != nil {
			t.Error(err)
			return handler.Result{}
		}
		if res.Error != nil {
			t.Errorf("function error: %s", res.Error.ErrorMessage)
		}
		r, ok := oneResult(res.Payload)
		if !ok {
			t.Errorf("not one result: %s", res.Payload)
		}
		return r
	}

	running := make(chan handler.Result, 1)
	go func() { running <- invoke(stateChange(id, "Running", "")) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Store.ENIs(world.OnInstance(id), world.WithStatus(world.ENIInUse), world.Tagged(tagKey, pool))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Running event's attach never went through")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := setStatus(c, id, world.StatusStopped); err != nil {
		t.Fatal(err)
	}
	stopped := invoke(stateChange(id, "Stopped", ""))
	run := <-running
	if stopped.Outcome != engine.OutcomeDetached {
		t.Fatalf("Stopped event: %s %s, want detached (the race was not set up)", stopped.Outcome, stopped.Reason)
	}
	settle(c, 5*time.Second)
	if held := c.Store.ENIs(world.OnInstance(id), world.Tagged(tagKey, pool)); len(held) != 0 {
		ck.Errorf("the Stopped instance holds %d pool ENI(s) (%s %s); the Running event ended %s with %s after %d attempts",
			len(held), held[0].ID, held[0].Status, run.Outcome, run.NetworkInterfaceID, run.Attempts)
	}
}

// oneResult reads the only result of a response.
func oneResult(payload []byte) (handler.Result, bool) {
	var resp handler.Response
	if err := json.Unmarshal(payload, &resp); err != nil || len(resp.Results) != 1 {
		return handler.Result{}, false
	}
	return resp.Results[0], true
}
