package handler

import (
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

// What Auto Scaling cannot confirm gets no work and no completion: a transient failure of a
// read goes back to the platform, an extra instance is refused and does not sway the result.
// (It needs the Lifecycle reads this branch adds, so it does not compile on 968df3d; its
// end-to-end twins in e2e/cloudproof_test.go were run there and fail.)
func TestLifecycleVerification(t *testing.T) {
	const token = "9C2E9DA7-F794-449A-ACF6-CEE24444F7BB"
	hook := cloud.LifecycleHook{ID: "ash-bp1hook", ScalingGroupID: "asg-bp1group", Transition: "SCALE_OUT"}
	scaleOutOf := func(ids ...string) string {
		return strings.Replace(scaleOut(ids[0]), `"instanceIds":["`+ids[0]+`"]`, `"instanceIds":["`+strings.Join(ids, `","`)+`"]`, 1)
	}
	tests := []struct {
		name      string
		essErr    bool
		outcomes  map[string]engine.Outcome
		completes int
	}{
		{"Auto Scaling unreachable", true, map[string]engine.Outcome{"i-bp1real0000001": engine.OutcomeRetry, "i-bp1extra000001": engine.OutcomeRetry}, 0},
		{"an extra instance", false, map[string]engine.Outcome{"i-bp1real0000001": engine.OutcomeAttached, "i-bp1extra000001": engine.OutcomeDeadLettered}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			c.addInstance("i-bp1real0000001", "ecs.g7.large")
			c.addInstance("i-bp1extra000001", "ecs.g7.large")
			c.addENIs("v", 2)
			c.openAction(hook, "asa-1", token, "i-bp1real0000001")
			if tt.essErr {
				c.essErr = func(string) error { return fakeError("DescribeLifecycleHooks", "ServiceUnavailable") }
			}
			h, _ := fakeHandler(t, c, func(o *Options) { o.PlatformRetries = 2 })
			resp, _ := invoke(t, h, scaleOutOf("i-bp1real0000001", "i-bp1extra000001"), 2*time.Second)
			for _, r := range resp.Results {
				if want, ok := tt.outcomes[r.InstanceID]; ok && r.Outcome != want {
					t.Errorf("%s: %s %s (%s), want %s", r.InstanceID, r.Outcome, r.Code, r.Reason, want)
				}
				if strings.Contains(r.Reason, token) {
					t.Errorf("a result carries the token: %q", r.Reason)
				}
			}
			if len(c.completes) != tt.completes || (tt.completes == 1 && c.completes[0] != token+":CONTINUE") {
				t.Errorf("completions %v, want %d CONTINUE", c.completes, tt.completes)
			}
		})
	}
}
