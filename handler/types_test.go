package handler

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/enipool/enipool/engine"
)

// A batch whose instances have more than 10 distinct instance types asks ECS for them at most
// 10 at a time, and one look-up that fails does not fail the instances it did not concern.
// Fails on ca38816: one call named all 12 types, ECS refused it (InvalidParameter), and
// failAll dead-lettered all 12 instances.
func TestInstanceTypesLookedUpTenAtATime(t *testing.T) {
	tests := []struct {
		name     string
		types    int
		typesErr func([]string) error
	}{
		{name: "12 types", types: 12},
		{name: "25 types", types: 25},
		{name: "one look-up refused: its instances go ahead without the quota check", types: 12,
			typesErr: func(ts []string) error {
				if slices.Contains(ts, "ecs.g7.t11") {
					return fakeError("DescribeInstanceTypes", "InvalidParameter")
				}
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			c.typesErr = tt.typesErr
			var ids []string
			for i := range tt.types {
				id := fmt.Sprintf("i-bp1types%08d", i)
				c.addInstance(id, fmt.Sprintf("ecs.g7.t%d", i))
				ids = append(ids, id)
			}
			c.addENIs("p", tt.types)
			h, _ := fakeHandler(t, c, nil)
			resp, err := invoke(t, h, directPayload(ids...), 3*time.Second)
			if err != nil {
				t.Fatalf("invocation error: %v", err)
			}
			for _, id := range ids {
				if r := resultFor(t, resp, id); r.Outcome != engine.OutcomeAttached {
					t.Errorf("%s: %s %s (%s), want attached", id, r.Outcome, r.Code, r.Reason)
				}
				if got := c.held(id); len(got) != 1 {
					t.Errorf("%s holds %v, want one pool ENI", id, got)
				}
			}
			for _, call := range c.typeCalls {
				if len(call) > 10 {
					t.Errorf("DescribeInstanceTypes named %d types: ECS takes 1 to 10", len(call))
				}
			}
			if dl := c.deadLetters(); len(dl) != 0 {
				t.Errorf("%d dead letters, want none", len(dl))
			}
		})
	}
}
