package mns_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	alimns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/record"
)

// TestSendLosesItsAnswer shows SendMessage applied and its answer lost: the message is
// stored, the client sees a reset, a 5xx or a timeout, and the fault is counted and
// recorded. A reset makes the SDK's HTTP client (fasthttp) resend, so the message is
// stored twice: the duplicate a dead-letter reader must expect. Without a rule the answer
// arrives and one message is stored.
func TestSendLosesItsAnswer(t *testing.T) {
	tests := []struct {
		name   string
		rule   *fault.AfterRule
		check  func(error) bool
		stored int    // messages in the queue afterwards
		fault  string // the Fault of the first SendMessage record
	}{
		{"reset, then the silent resend succeeds", &fault.AfterRule{Kind: fault.AfterReset, Limit: 1},
			func(err error) bool { return err == nil }, 2, "after-action-reset"},
		{"5xx", &fault.AfterRule{Kind: fault.AfterError}, func(err error) bool { return hasCode(err, mns.CodeServiceUnavailable) }, 1, "after-action-error"},
		{"timeout", &fault.AfterRule{Kind: fault.AfterTimeout, Hold: fault.Duration(5 * time.Second), Limit: 1},
			func(err error) bool { return err != nil && strings.Contains(strings.ToLower(err.Error()), "timeout") }, 1, "after-action-timeout"},
		{"off", nil, func(err error) bool { return err == nil }, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustCreate("dlq", mns.QueueConfig{})
			plan := fault.Plan{Seed: 7}
			if tt.rule != nil {
				r := *tt.rule
				r.Service, r.Action, r.Rate = "mns", "SendMessage", 1
				plan.AfterAction = []fault.AfterRule{r}
			}
			e.faults.SetPlan(plan)
			q := alimns.NewMNSQueue("dlq", e.client(clientSpec{endpoint: e.srv.Endpoint(), id: e.role.ID,
				secret: e.role.Secret, token: e.role.Token, timeoutSecond: 1}))
			_, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8})
			if !tt.check(err) {
				t.Fatalf("err = %v", err)
			}
			deadline := time.Now().Add(6 * time.Second)
			for len(e.srv.Messages("dlq")) < tt.stored && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := len(e.srv.Messages("dlq")); n != tt.stored {
				t.Fatalf("%d messages stored, want %d", n, tt.stored)
			}
			want := 0
			if tt.rule != nil {
				want = 1
			}
			if st := e.faults.Stats(); st.FaultsAfterAction != want {
				t.Fatalf("stats %+v, want %d", st, want)
			}
			for time.Now().Before(deadline) && len(e.rec.Calls(func(c record.Call) bool { return c.Action == "SendMessage" })) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			if tt.fault != "" {
				first := e.rec.Calls(func(c record.Call) bool { return c.Action == "SendMessage" })
				if len(first) == 0 || first[0].Fault != tt.fault {
					t.Fatalf("records %+v, want the first with fault %q", first, tt.fault)
				}
			}
		})
	}
}

// TestDeliverLosesItsAnswer shows the FC destination's in-process send under an
// after-action fault: the dead letter is stored and Deliver still fails, so the runtime
// retries and the queue may hold it twice.
func TestDeliverLosesItsAnswer(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	e.faults.SetPlan(fault.Plan{AfterAction: []fault.AfterRule{{Service: "mns", Action: "SendMessage", Rate: 1, Kind: fault.AfterError}}})
	err := e.srv.Deliver(context.Background(), "dlq", []byte("dead"))
	var me *mns.Error
	if !errors.As(err, &me) || me.Code != mns.CodeServiceUnavailable {
		t.Fatalf("err = %v", err)
	}
	if n := len(e.srv.Messages("dlq")); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
	if st := e.faults.Stats(); st.FaultsAfterActionBy["mns/SendMessage/error"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	if c := e.lastCall("SendMessage"); c.Fault != "after-action-error" || c.HTTPStatus != 503 {
		t.Fatalf("recorded %+v", c)
	}
}

// TestResponseLatency shows MNS latency on the way back: the message is stored while the
// sender still waits for its answer, and the record says so. Without it the answer is
// not held.
func TestResponseLatency(t *testing.T) {
	for _, delay := range []time.Duration{400 * time.Millisecond, 0} {
		t.Run(delay.String(), func(t *testing.T) {
			e := newEnv(t)
			e.mustCreate("dlq", mns.QueueConfig{})
			if delay > 0 {
				e.faults.SetPlan(fault.Plan{ResponseLatency: []fault.Latency{{Service: "mns", Action: "SendMessage", Base: fault.Duration(delay)}}})
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := e.queue("dlq").SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8})
				done <- err
			}()
			storedInFlight := false
			var took time.Duration
			for took == 0 {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					took = time.Since(start)
				case <-time.After(5 * time.Millisecond):
					if len(e.srv.Messages("dlq")) == 1 {
						storedInFlight = true
					}
				}
			}
			if took < delay || (delay > 0 && !storedInFlight) {
				t.Fatalf("took %v, stored while in flight: %v", took, storedInFlight)
			}
			wantFault := ""
			if delay > 0 {
				wantFault = "response-delay"
			}
			if c := e.lastCall("SendMessage"); c.Fault != wantFault || c.HTTPStatus != 201 {
				t.Fatalf("recorded %+v", c)
			}
		})
	}
}
