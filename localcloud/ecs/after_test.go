package ecs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// TestFaultsAfterAction shows attach and detach applied and their answer lost: the ENI
// changes as if the call had succeeded, the client sees a dropped connection, a 5xx or a
// timeout, and the fault is counted and recorded. Without a rule the answer arrives.
func TestFaultsAfterAction(t *testing.T) {
	type call struct {
		action    string
		do        func(c *sdkecs.Client) error
		eni, want string // the ENI and the status the applied call leaves it in
	}
	attach := call{"AttachNetworkInterface", func(c *sdkecs.Client) error {
		_, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
		return err
	}, "eni-free1", world.ENIAttaching}
	detach := call{"DetachNetworkInterface", func(c *sdkecs.Client) error {
		_, err := c.DetachNetworkInterface(detachReq("i-ok2", "eni-inuse"))
		return err
	}, "eni-inuse", world.ENIDetaching}

	reset := func(t *testing.T, err error) {
		var se *sdkerrors.ServerError
		if err == nil || errors.As(err, &se) {
			t.Fatalf("err = %v, want a dropped connection", err)
		}
	}
	serverError := func(t *testing.T, err error) { wantCode(t, err, "ServiceUnavailable", 503) }
	timeout := func(t *testing.T, err error) {
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "timeout") {
			t.Fatalf("err = %v, want a client timeout", err)
		}
	}
	tests := []struct {
		name   string
		call   call
		rule   *fault.AfterRule
		check  func(*testing.T, error)
		record string // the Fault of the call's record
	}{
		{"attach reset", attach, &fault.AfterRule{Kind: fault.AfterReset}, reset, "after-action-reset"},
		{"attach 5xx", attach, &fault.AfterRule{Kind: fault.AfterError}, serverError, "after-action-error=ServiceUnavailable"},
		{"attach timeout", attach, &fault.AfterRule{Kind: fault.AfterTimeout, Hold: fault.Duration(5 * time.Second)}, timeout, "after-action-timeout,client-gone"},
		{"detach reset", detach, &fault.AfterRule{Kind: fault.AfterReset}, reset, "after-action-reset"},
		{"detach 5xx", detach, &fault.AfterRule{Kind: fault.AfterError, Code: "InternalError", HTTPStatus: 500},
			func(t *testing.T, err error) { wantCode(t, err, "InternalError", 500) }, "after-action-error=InternalError"},
		{"detach timeout", detach, &fault.AfterRule{Kind: fault.AfterTimeout, Hold: fault.Duration(5 * time.Second)}, timeout, "after-action-timeout,client-gone"},
		{"attach off", attach, nil, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w *world.World) {
				w.Timing.Attach = fault.Duration(time.Minute)
				w.Timing.Detach = fault.Duration(time.Minute)
				if tt.rule != nil {
					r := *tt.rule
					r.Service, r.Action, r.Rate = "ecs", tt.call.action, 1
					w.Faults.AfterAction = []fault.AfterRule{r}
				}
			})
			// A short client timeout, as a function's SDK would have, for the timeout kind.
			k := keys["root"]
			c, err := sdkecs.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false).WithTimeout(500*time.Millisecond),
				credentials.NewStaticAKCredentialsProvider(k[0], k[1]))
			if err != nil {
				t.Fatal(err)
			}
			c.Domain = e.host
			start := time.Now()
			err = tt.call.do(c)
			tt.check(t, err)
			if took := time.Since(start); tt.rule != nil && tt.rule.Kind == fault.AfterTimeout && took < 500*time.Millisecond {
				t.Fatalf("the timeout came after %v, before the client's own", took)
			}
			if got := e.eni(t, tt.call.eni); got.Status != tt.call.want {
				t.Fatalf("ENI %s is %s after the call; the action was not applied", tt.call.eni, got.Status)
			}
			want := 0
			if tt.rule != nil {
				want = 1
			}
			st := e.faults.Stats()
			if st.FaultsAfterAction != want {
				t.Fatalf("stats %+v, want %d faults after action", st, want)
			}
			if tt.rule != nil && st.FaultsAfterActionBy["ecs/"+tt.call.action+"/"+tt.rule.Kind] != 1 {
				t.Fatalf("stats %+v miss ecs/%s/%s", st, tt.call.action, tt.rule.Kind)
			}
			// The timeout's record is added when the server lets go; wait for it.
			deadline := time.Now().Add(5 * time.Second)
			var calls []record.Call
			for {
				calls = e.rec.Calls(record.Match("ecs", tt.call.action))
				if len(calls) == 1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(calls) != 1 || calls[0].Fault != tt.record {
				t.Fatalf("records %+v, want one with fault %q", calls, tt.record)
			}
		})
	}
}

// TestFaultsAfterActionAreSeeded shows the rate, the seed and the limit at work: a
// share of applied attaches lose their answer, the same ones in every run, and no more
// than the limit.
func TestFaultsAfterActionAreSeeded(t *testing.T) {
	run := func(limit int) []bool {
		e := newEnv(t, func(w *world.World) {
			w.Timing.Attach = fault.Duration(time.Millisecond)
			w.Timing.Detach = fault.Duration(time.Millisecond)
			w.Faults.AfterAction = []fault.AfterRule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 0.5, Kind: fault.AfterError, Limit: limit}}
		})
		c := e.client(t, "root")
		var lost []bool
		for range 16 {
			_, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
			lost = append(lost, err != nil)
			e.waitStatus(t, "eni-free1", world.ENIInUse) // applied either way
			if _, err := c.DetachNetworkInterface(detachReq("i-ok1", "eni-free1")); err != nil {
				t.Fatal(err)
			}
			e.waitStatus(t, "eni-free1", world.ENIAvailable)
		}
		n := 0
		for _, l := range lost {
			if l {
				n++
			}
		}
		if st := e.faults.Stats(); st.FaultsAfterAction != n {
			t.Fatalf("stats %+v, %d answers lost", st, n)
		}
		return lost
	}
	a, b := run(0), run(0)
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different fates: %v vs %v", a, b)
		}
		if a[i] {
			n++
		}
	}
	if n == 0 || n == len(a) {
		t.Fatalf("%d of %d answers lost at rate 0.5", n, len(a))
	}
	limited := run(2)
	m := 0
	for _, l := range limited {
		if l {
			m++
		}
	}
	if m != min(2, n) {
		t.Fatalf("limit 2: %d answers lost", m)
	}
}
