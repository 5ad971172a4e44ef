package ecs_test

import (
	"errors"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

func TestThrottlingUser(t *testing.T) {
	e := newEnv(t, func(w *world.World) {
		w.Throttling = []world.Throttle{{Service: "ecs", Action: "AttachNetworkInterface", QPS: 0.01, Burst: 2}}
	})
	c := e.client(t, "root")
	for _, eni := range []string{"eni-free1", "eni-free2"} {
		if _, err := c.AttachNetworkInterface(attachReq("i-ok1", eni)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.AttachNetworkInterface(attachReq("i-ok2", "eni-free3"))
	if se := wantCode(t, err, "Throttling.User", 400); se.Message() != "Request was denied due to user flow control." {
		t.Fatalf("message %q", se.Message())
	}
	if x := e.eni(t, "eni-free3"); x.Status != world.ENIAvailable {
		t.Fatalf("throttled attach changed the ENI: %s", x.Status)
	}
	// Describe calls are not limited by the attach bucket.
	if _, err := c.DescribeNetworkInterfaces(sdkecs.CreateDescribeNetworkInterfacesRequest()); err != nil {
		t.Fatal(err)
	}
}

func TestOutageAndReset(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	e.faults.StartOutage("ecs", time.Hour)
	_, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
	wantCode(t, err, "ServiceUnavailable", 503)
	e.faults.EndOutages("ecs")

	e.faults.SetPlan(fault.Plan{Errors: []fault.Rule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1, Reset: true}}})
	_, err = c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
	var se *sdkerrors.ServerError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("err = %v, want a dropped connection", err)
	}
	if x := e.eni(t, "eni-free1"); x.Status != world.ENIAvailable {
		t.Fatalf("a faulted attach changed the ENI: %s", x.Status)
	}
	calls := e.rec.Calls(record.Match("ecs", "AttachNetworkInterface"))
	if len(calls) != 2 || calls[0].Fault != "outage" || calls[1].Fault != "reset" {
		t.Fatalf("records %+v", calls)
	}
}
