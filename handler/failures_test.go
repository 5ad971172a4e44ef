package handler

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

func scaleOut(instance string) string {
	return `{"id":"hook-1","source":"acs.ess","specversion":"1.0","type":"ess:LifecycleHook:ScaleOut","aliyunregionid":"cn-hangzhou",` +
		`"aliyunpublishtime":"2024-05-01T10:05:00.000PRC","data":{"lifecycleHookId":"ash-bp1hook","lifecycleActionToken":"9C2E9DA7-F794-449A-ACF6-CEE24444F7BB",` +
		`"lifecycleHookName":"attach","scalingGroupId":"asg-bp1group","scalingGroupName":"web-asg","lifecycleTransition":"SCALE_OUT",` +
		`"defaultResult":"CONTINUE","requestId":"r","scalingActivityId":"asa-1","instanceIds":["` + instance + `"]}}`
}

// Failures that ended as a log line alone now end in a result the caller sees, with the
// outcome the error table gives. Fail on ca38816: the reconcile reported "completed" and the
// left-open lifecycle action had no result at all, only a warning line.
func TestFailuresAreResults(t *testing.T) {
	t.Run("stray look-up during reconcile", func(t *testing.T) {
		const holder = "i-bp1stray0000001"
		c := newFakeCloud()
		c.addInstance(holder, "ecs.g7.large")
		c.setStatus(holder, "Stopped") // a missed Stopped event: its ENI is a stray
		enis := c.addENIs("x", 1)
		c.put(enis[0], cloud.StatusInUse, holder, 0)
		c.describeErr = func(q cloud.InstanceQuery) error {
			if len(q.IDs) > 0 {
				return fakeError("DescribeInstances", "Forbidden.RAM")
			}
			return nil
		}
		h, _ := fakeHandler(t, c, nil)
		resp, _ := invoke(t, h, `{"action":"reconcile"}`, 2*time.Second)
		r := resp.Results[0]
		if r.Outcome == engine.OutcomeCompleted || r.Code != "Forbidden.RAM" || !strings.Contains(r.Reason, "holders") {
			t.Errorf("reconcile %s %s (%s), want its failure to look up the holders", r.Outcome, r.Code, r.Reason)
		}
		rep, _ := json.Marshal(resp.Report)
		if !strings.Contains(string(rep), `"errors"`) {
			t.Errorf("report does not carry the failure: %s", rep)
		}
		if got := c.state(enis[0]); got.Status != cloud.StatusInUse {
			t.Errorf("stray is %s: nothing should have been done without the look-up", got.Status)
		}
	})
	t.Run("heartbeat of a lifecycle action left open", func(t *testing.T) {
		const inst = "i-bp1beat00000001"
		c := newFakeCloud()
		c.addInstance(inst, "ecs.g7.large")
		c.addENIs("b", 1)
		c.onAttach = func(string, string) (error, bool) {
			return fakeError("AttachNetworkInterface", "Throttling.User"), false
		}
		c.heartbeatErr = func() error { return fakeError("RecordLifecycleActionHeartbeat", "Forbidden.RAM") }
		c.openAction(cloud.LifecycleHook{ID: "ash-bp1hook", ScalingGroupID: "asg-bp1group", Transition: "SCALE_OUT"}, "asa-1",
			"9C2E9DA7-F794-449A-ACF6-CEE24444F7BB", inst)
		h, _ := fakeHandler(t, c, func(o *Options) { o.PlatformRetries = 2 })
		resp, err := invoke(t, h, scaleOut(inst), time.Second)
		if err == nil {
			t.Fatal("the instance's transient failure should go back to the platform")
		}
		var beat *Result
		for i, r := range resp.Results {
			if r.InstanceID == "" && strings.Contains(r.Reason, "heartbeat") {
				beat = &resp.Results[i]
			}
		}
		if beat == nil || beat.Code != "Forbidden.RAM" || beat.Outcome != engine.OutcomeDeadLettered {
			t.Fatalf("results %+v: want one for the failed heartbeat, dead-lettered Forbidden.RAM", resp.Results)
		}
		if c.beats == 0 {
			t.Error("no heartbeat was sent")
		}
	})
}

// A redrive survives a transient failure to read the dead-letter queue: the read is retried
// as the error table says. Fail on d653a5d: one InternalError from BatchReceiveMessage
// failed the whole redrive (soak seed 338046027).
func TestRedriveRetriesTheQueueRead(t *testing.T) {
	c := newFakeCloud()
	failures := 2
	c.receiveErr = func() error {
		if failures == 0 {
			return nil
		}
		failures--
		return &cloud.APIError{Service: "mns", API: "BatchReceiveMessage", Code: "InternalError", HTTPStatus: 500, Message: "Interal error."}
	}
	h, _ := fakeHandler(t, c, nil)
	resp, err := invoke(t, h, `{"action":"redrive","max":20}`, 5*time.Second)
	if err != nil {
		t.Fatalf("redrive failed: %v", err)
	}
	if r := resp.Results[0]; r.Outcome != engine.OutcomeCompleted {
		t.Errorf("redrive %s %s (%s), want completed", r.Outcome, r.Code, r.Reason)
	}
	if got := c.count("BatchReceiveMessage"); got != 3 {
		t.Errorf("%d queue reads, want 3 (two failed, then the empty answer)", got)
	}
}
