package ess_test

import (
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	sdkess "github.com/aliyun/alibaba-cloud-sdk-go/services/ess"

	"github.com/enipool/enipool/localcloud/ess"
)

func (e *env) viewer(t *testing.T) *sdkess.Client {
	t.Helper()
	return e.client(t, credentials.NewStaticAKCredentialsProvider("LTAIviewer", "viewer-secret"))
}

// states returns each named instance's LifecycleState in the group, through the SDK.
func states(t *testing.T, c *sdkess.Client, group, activity string, ids ...string) map[string]string {
	t.Helper()
	r := sdkess.CreateDescribeScalingInstancesRequest()
	r.ScalingGroupId, r.ScalingActivityId = group, activity
	r.InstanceId = &ids
	r.PageSize = requests.NewInteger(50)
	resp, err := c.DescribeScalingInstances(r)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, si := range resp.ScalingInstances.ScalingInstance {
		if si.ScalingGroupId != group {
			t.Errorf("%s listed in group %s, asked for %s", si.InstanceId, si.ScalingGroupId, group)
		}
		out[si.InstanceId] = si.LifecycleState
	}
	if resp.TotalCount != len(out) {
		t.Errorf("TotalCount %d, %d listed", resp.TotalCount, len(out))
	}
	return out
}

// Instances wait in the state of their lifecycle action's transition and move on with its
// result, as CompleteLifecycleAction's reference describes.
func TestScalingInstanceStates(t *testing.T) {
	e := newEnv(t)
	c := e.viewer(t)
	e.svc.AddInstances("asg-web", "i-in")
	tokOut, _ := e.svc.StartLifecycleAction("ash-web", "i-new1", "i-new2")
	if got := states(t, c, "asg-web", "", "i-in", "i-new1", "i-new2", "i-1", "i-nope"); got["i-in"] != ess.StateInService ||
		got["i-new1"] != ess.StatePendingWait || got["i-new2"] != ess.StatePendingWait || got["i-1"] != ess.StatePendingWait || len(got) != 4 {
		t.Fatalf("before completion: %v", got)
	}
	role := e.role(t)
	if err := complete(role, "ash-web", tokOut, "CONTINUE", ""); err != nil {
		t.Fatal(err)
	}
	if got := states(t, c, "asg-web", "", "i-new1", "i-new2"); got["i-new1"] != ess.StateInService || got["i-new2"] != ess.StateInService {
		t.Fatalf("after CONTINUE: %v", got)
	}
	// The world's pending action times out on its hook's default result (ABANDON): out.
	e.clock.advance(11 * time.Minute)
	if got := states(t, c, "asg-web", "", "i-1"); len(got) != 0 {
		t.Fatalf("after an ABANDON timeout: %v", got)
	}
}

// A scale-in holds its instances in Removing:Wait; ROLLBACK keeps them, CONTINUE removes them.
func TestScalingInstanceScaleIn(t *testing.T) {
	e := newEnv(t)
	c := e.viewer(t)
	role := e.role(t)
	e.svc.AddInstances("asg-other", "i-a", "i-b")
	ta, _ := e.svc.StartLifecycleAction("ash-in", "i-a")
	tb, _ := e.svc.StartLifecycleAction("ash-in", "i-b")
	if got := states(t, c, "asg-other", "", "i-a", "i-b"); got["i-a"] != ess.StateRemovingWait || got["i-b"] != ess.StateRemovingWait {
		t.Fatalf("waiting: %v", got)
	}
	a, _ := e.svc.LifecycleAction(ta)
	if got := states(t, c, "asg-other", a.ScalingActivityID, "i-a", "i-b"); len(got) != 1 || got["i-a"] != ess.StateRemovingWait {
		t.Fatalf("filtered by i-a's activity: %v", got)
	}
	if err := complete(role, "ash-in", ta, "ROLLBACK", ""); err != nil {
		t.Fatal(err)
	}
	if err := complete(role, "ash-in", tb, "CONTINUE", ""); err != nil {
		t.Fatal(err)
	}
	if got := states(t, c, "asg-other", "", "i-a", "i-b"); got["i-a"] != ess.StateInService || len(got) != 1 {
		t.Fatalf("after ROLLBACK and CONTINUE: %v", got)
	}
}

// DescribeLifecycleHooks answers a hook by id with its group and transition; the other reads
// take RAM's word per scaling group, and the SDK's parameters.
func TestDescribeLifecycleHooksAndRAM(t *testing.T) {
	e := newEnv(t)
	r := sdkess.CreateDescribeLifecycleHooksRequest()
	r.LifecycleHookId = &[]string{"ash-in", "ash-nope"}
	resp, err := e.viewer(t).DescribeLifecycleHooks(r)
	if err != nil {
		t.Fatal(err)
	}
	if hs := resp.LifecycleHooks.LifecycleHook; len(hs) != 1 || hs[0].LifecycleHookId != "ash-in" ||
		hs[0].ScalingGroupId != "asg-other" || hs[0].LifecycleTransition != "SCALE_IN" || resp.TotalCount != 1 {
		t.Fatalf("hooks %+v", resp.LifecycleHooks)
	}
	// The role's policy grants no Describe action.
	_, err = e.role(t).DescribeLifecycleHooks(r)
	wantCode(t, err, "Forbidden.RAM", 403)
	si := sdkess.CreateDescribeScalingInstancesRequest()
	si.ScalingGroupId = "asg-web"
	_, err = e.role(t).DescribeScalingInstances(si)
	wantCode(t, err, "Forbidden.RAM", 403)
	ids := make([]string, 21)
	for i := range ids {
		ids[i] = "i-x"
	}
	many := sdkess.CreateDescribeScalingInstancesRequest() // a request is signed once: a new one
	many.ScalingGroupId, many.InstanceId = "asg-web", &ids
	_, err = e.viewer(t).DescribeScalingInstances(many)
	wantCode(t, err, "InvalidParameter", 400)
}
