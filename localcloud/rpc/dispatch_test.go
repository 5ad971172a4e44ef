package rpc_test

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// Dispatch applies what ServeHTTP applies after authentication, in the same order, with
// its waits on the caller's (here virtual) clock.
func TestDispatch(t *testing.T) {
	root := auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: account}
	tests := []struct {
		name    string
		plan    fault.Plan
		limit   []world.Throttle
		params  url.Values
		code    string // want an *rpc.Error with this code
		lost    bool   // want ErrAnswerLost
		applied bool   // the action ran
		took    time.Duration
	}{
		{name: "served", params: url.Values{"Name": {"x"}}, applied: true},
		{name: "unknown parameter", params: url.Values{"Nope": {"x"}}, code: "UnsupportedParameter"},
		{name: "error before", plan: fault.Plan{Errors: []fault.Rule{{Rate: 1, Code: "InternalError", HTTPStatus: 500}}}, code: "InternalError"},
		{name: "reset before", plan: fault.Plan{Errors: []fault.Rule{{Rate: 1, Reset: true}}}, lost: true},
		{name: "outage", plan: fault.Plan{Outages: []fault.Outage{{Service: "test", End: fault.Duration(time.Hour)}}}, code: "ServiceUnavailable"},
		{name: "throttled", limit: []world.Throttle{{Service: "test", QPS: 0.001, Burst: 0}}, code: "Throttling.User"},
		{name: "latency", plan: fault.Plan{Latency: []fault.Latency{{Base: fault.Duration(3 * time.Second)}},
			ResponseLatency: []fault.Latency{{Base: fault.Duration(2 * time.Second)}}}, applied: true, took: 5 * time.Second},
		{name: "throttled answer travels back", limit: []world.Throttle{{Service: "test", QPS: 0.001, Burst: 0}},
			plan: fault.Plan{Latency: []fault.Latency{{Base: fault.Duration(3 * time.Second)}},
				ResponseLatency: []fault.Latency{{Base: fault.Duration(2 * time.Second)}}}, code: "Throttling.User", took: 5 * time.Second},
		{name: "injected error travels back", plan: fault.Plan{Errors: []fault.Rule{{Rate: 1, Code: "InternalError", HTTPStatus: 500}},
			ResponseLatency: []fault.Latency{{Base: fault.Duration(2 * time.Second)}}}, code: "InternalError", took: 2 * time.Second},
		{name: "a dropped connection has no way back", plan: fault.Plan{Errors: []fault.Rule{{Rate: 1, Reset: true}},
			ResponseLatency: []fault.Latency{{Base: fault.Duration(2 * time.Second)}}}, lost: true},
		{name: "reset after", plan: fault.Plan{AfterAction: []fault.AfterRule{{Rate: 1, Kind: fault.AfterReset}}}, lost: true, applied: true},
		{name: "error after", plan: fault.Plan{AfterAction: []fault.AfterRule{{Rate: 1, Kind: fault.AfterError}}}, code: "ServiceUnavailable", applied: true},
		{name: "timeout after", plan: fault.Plan{AfterAction: []fault.AfterRule{{Rate: 1, Kind: fault.AfterTimeout, Hold: fault.Duration(20 * time.Second)}}},
			lost: true, applied: true, took: 20 * time.Second},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			var ran atomic.Int32
			svc, err := rpc.NewService(rpc.Options{Service: "test", Version: testVer, Auth: auth.NewStore(nil),
				Faults: fault.New(tt.plan, nil), Limiter: rpc.NewLimiter(tt.limit)},
				rpc.Action{Name: "Ping", Params: []string{"Name"}, Handle: func(_ context.Context, c *rpc.Call) (any, error) {
					ran.Add(1)
					return c.Get("Name"), nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			params := tt.params
			if params == nil {
				params = url.Values{}
			}
			start := time.Now()
			res, id, err := svc.Dispatch(context.Background(), root, "Ping", params)
			var re *rpc.Error
			switch {
			case tt.code != "" && (!errors.As(err, &re) || re.Code != tt.code):
				t.Errorf("%s: err %v, want code %s", tt.name, err, tt.code)
			case tt.lost && !errors.Is(err, rpc.ErrAnswerLost):
				t.Errorf("%s: err %v, want ErrAnswerLost", tt.name, err)
			case tt.code == "" && !tt.lost && (err != nil || res != params.Get("Name")):
				t.Errorf("%s: %v, %v", tt.name, res, err)
			}
			if id == "" {
				t.Errorf("%s: no request id", tt.name)
			}
			if got := ran.Load() == 1; got != tt.applied {
				t.Errorf("%s: applied %v, want %v", tt.name, got, tt.applied)
			}
			if took := time.Since(start); took != tt.took {
				t.Errorf("%s: took %v of virtual time, want %v", tt.name, took, tt.took)
			}
		})
	}
}

// A caller that gives up during a wait gets its context's error at once.
func TestDispatchHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc, err := rpc.NewService(rpc.Options{Service: "test", Version: testVer, Auth: auth.NewStore(nil),
			Faults: fault.New(fault.Plan{Latency: []fault.Latency{{Base: fault.Duration(time.Minute)}}}, nil)},
			rpc.Action{Name: "Ping", Handle: func(context.Context, *rpc.Call) (any, error) { return nil, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if _, _, err := svc.Dispatch(ctx, auth.Principal{}, "Ping", url.Values{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the deadline", err)
		}
		if took := time.Since(start); took != time.Second {
			t.Fatalf("took %v, want the 1s deadline", took)
		}
	})
}
