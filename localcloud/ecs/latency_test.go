package ecs_test

import (
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// TestLatencyOnBothHalves shows where each half of a call's latency falls: request
// latency is paid before the action (the ENI stays Available meanwhile), response latency
// after it (the ENI is already Attaching while the client still waits). Both are recorded.
func TestLatencyOnBothHalves(t *testing.T) {
	const d = 400 * time.Millisecond
	lat := []fault.Latency{{Service: "ecs", Action: "AttachNetworkInterface", Base: fault.Duration(d)}}
	tests := []struct {
		name              string
		request, response []fault.Latency
		fault             string // the call record's Fault
	}{
		{"request", lat, nil, "delay=400ms"},
		{"response", nil, lat, "response-delay=400ms"},
		{"both", lat, lat, "delay=400ms,response-delay=400ms"},
		{"none", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w *world.World) {
				w.Timing.Attach = fault.Duration(time.Minute)
				w.Faults.Latency = tt.request
				w.Faults.ResponseLatency = tt.response
			})
			c := e.client(t, "root")
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
				done <- err
			}()
			var applied time.Duration // when the ENI was first seen Attaching
			inFlight := false         // whether the call was still waiting then
			var took time.Duration
			for took == 0 {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					took = time.Since(start)
				case <-time.After(5 * time.Millisecond):
				}
				if applied == 0 && e.eni(t, "eni-free1").Status == world.ENIAttaching {
					applied, inFlight = time.Since(start), took == 0
				}
			}
			want := time.Duration(len(tt.request)+len(tt.response)) * d
			if took < want {
				t.Fatalf("the call took %v, want at least %v", took, want)
			}
			if len(tt.request) > 0 && applied < d {
				t.Fatalf("applied %v after the start, before the request latency ended", applied)
			}
			if len(tt.response) > 0 && !inFlight {
				t.Fatalf("the ENI was not seen Attaching while the answer was delayed (seen at %v, call took %v)", applied, took)
			}
			calls := e.rec.Calls(record.Match("ecs", "AttachNetworkInterface"))
			if len(calls) != 1 || calls[0].Fault != tt.fault || !calls[0].OK() {
				t.Fatalf("records %+v, want one success with fault %q", calls, tt.fault)
			}
		})
	}
}

// TestRefusalsPayBothHalves shows that an answer the cloud refuses (throttled, an injected
// error, an outage) travels back like any other: the call takes both halves of its latency,
// and its record says so. A dropped connection has no answer to carry back.
func TestRefusalsPayBothHalves(t *testing.T) {
	const d = 300 * time.Millisecond
	lat := []fault.Latency{{Service: "ecs", Action: "AttachNetworkInterface", Base: fault.Duration(d)}}
	tests := []struct {
		name   string
		mutate func(*world.World)
		code   string // the call's error code; empty for a dropped connection
		took   time.Duration
		fault  string
	}{
		{"throttled", func(w *world.World) {
			w.Throttling = []world.Throttle{{Service: "ecs", Action: "AttachNetworkInterface", QPS: 0.001, Burst: 1}}
		}, "Throttling.User", 2 * d, "delay=300ms,response-delay=300ms"},
		{"injected error", func(w *world.World) {
			w.Faults.Errors = []fault.Rule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1, Code: "InternalError", HTTPStatus: 500}}
		}, "InternalError", 2 * d, "delay=300ms,error=InternalError,response-delay=300ms"},
		{"outage", func(w *world.World) {
			w.Faults.Outages = []fault.Outage{{Service: "ecs", End: fault.Duration(time.Hour)}}
		}, "ServiceUnavailable", 2 * d, "delay=300ms,outage,response-delay=300ms"},
		{"dropped connection", func(w *world.World) {
			w.Faults.Errors = []fault.Rule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1, Reset: true}}
		}, "", d, "delay=300ms,reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w *world.World) {
				w.Faults.Latency, w.Faults.ResponseLatency = lat, lat
				tt.mutate(w)
			})
			c := e.client(t, "root")
			if tt.name == "throttled" {
				// The bucket holds one token: the first attach takes it, the second is refused.
				if _, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1")); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			_, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
			took := time.Since(start)
			if err == nil {
				t.Fatal("the call succeeded")
			}
			if took < tt.took {
				t.Errorf("the refusal took %v, want at least %v", took, tt.took)
			}
			calls := e.rec.Calls(record.Match("ecs", "AttachNetworkInterface"))
			last := calls[len(calls)-1]
			if last.Code != tt.code || last.Fault != tt.fault {
				t.Errorf("record: code %q fault %q, want %q %q", last.Code, last.Fault, tt.code, tt.fault)
			}
		})
	}
}
