package mns_test

import (
	"context"
	"errors"
	"testing"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/record"
)

// Send stores the message and returns its id, meets the SendMessage fault plan like
// Deliver, and records the call as the principal's.
func TestSendInProcess(t *testing.T) {
	tests := []struct {
		name   string
		plan   fault.Plan
		stored int
		fails  func(error) bool
	}{
		{name: "sent", stored: 1},
		{name: "error before", plan: fault.Plan{Errors: []fault.Rule{{Service: "mns", Rate: 1, Code: mns.CodeServiceUnavailable, HTTPStatus: 503}}},
			fails: func(err error) bool {
				var e *mns.Error
				return errors.As(err, &e) && e.Code == mns.CodeServiceUnavailable
			}},
		{name: "answer lost", plan: fault.Plan{AfterAction: []fault.AfterRule{{Service: "mns", Rate: 1, Kind: fault.AfterReset}}}, stored: 1,
			fails: func(err error) bool { return errors.Is(err, mns.ErrConnectionReset) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &record.Recorder{}
			s := mns.New(mns.Options{Account: "1234567890123456", Faults: fault.New(tt.plan, nil), Recorder: rec})
			if err := s.CreateQueue("dlq"); err != nil {
				t.Fatal(err)
			}
			id, err := s.Send(context.Background(), "enipool-fn", "dlq", []byte("hello"))
			switch {
			case tt.fails == nil && err != nil:
				t.Fatal(err)
			case tt.fails != nil && !tt.fails(err):
				t.Fatalf("err %v", err)
			}
			msgs := s.Messages("dlq")
			if len(msgs) != tt.stored {
				t.Fatalf("%d messages stored, want %d", len(msgs), tt.stored)
			}
			if err == nil && msgs[0].ID != id {
				t.Errorf("Send returned id %q, the queue holds %q", id, msgs[0].ID)
			}
			calls := rec.Calls()
			if len(calls) != 1 || calls[0].Principal != "enipool-fn" || calls[0].Params["via"] != "in-process" {
				t.Errorf("recorded %+v", calls)
			}
		})
	}
}
