package handler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
)

// One invocation's ECS calls stop at MaxCalls: what is left is dead-lettered with
// enipool.CallBudgetExceeded, and no call goes out past the bound (issue 14, 6: one message
// made 1,209 ECS calls in 2 s).
func TestCallBudget(t *testing.T) {
	c := newFakeCloud()
	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("i-bp1budget%06d", i)
		c.addInstance(id, "ecs.g7.large")
		ids = append(ids, id)
	}
	c.addENIs("b", 30)
	const budget = 6
	h, _ := fakeHandler(t, c, func(o *Options) { o.MaxCalls = budget })
	resp, _ := invoke(t, h, directPayload(ids...), 3*time.Second)
	ecs := 0
	for _, api := range []string{"DescribeInstances", "DescribeInstanceTypes", "DescribeNetworkInterfaces", "AttachNetworkInterface", "DetachNetworkInterface"} {
		ecs += c.count(api)
	}
	if ecs > budget {
		t.Fatalf("%d cloud.ECS calls, budget %d", ecs, budget)
	}
	over := 0
	for _, r := range resp.Results {
		if r.Code == cloud.CodeBudget {
			over++
			if r.Outcome != engine.OutcomeDeadLettered {
				t.Errorf("%s: %s over budget, want dead-lettered", r.InstanceID, r.Outcome)
			}
		}
	}
	if over == 0 {
		t.Fatalf("no result says %s: %+v", cloud.CodeBudget, resp.Results)
	}
}

// Beyond MaxDeadLetters, the letters of one message fold into one that holds the whole
// message; nothing is lost (every result names a letter).
func TestDeadLetterCap(t *testing.T) {
	c := newFakeCloud()
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("i-bp1cap%09d", i)
		c.addInstance(id, "ecs.g7.large")
		ids = append(ids, id)
	}
	// No pool ENI at all: every instance is dead-lettered PoolExhausted.
	h, _ := fakeHandler(t, c, func(o *Options) { o.MaxDeadLetters = 5 })
	resp, _ := invoke(t, h, directPayload(ids...), 3*time.Second)
	letters := c.deadLetters()
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want the message's 12 folded into 1", len(letters))
	}
	env, err := deadletter.Parse([]byte(letters[0]))
	if err != nil {
		t.Fatal(err)
	}
	if env.InstanceID != "" || !strings.Contains(string(env.Event), ids[11]) || !strings.Contains(env.Reason, "12 events") {
		t.Errorf("folded letter names %q, reason %q; want the whole message", env.InstanceID, env.Reason)
	}
	for _, r := range resp.Results {
		if r.Outcome != engine.OutcomeDeadLettered || r.DeadLetterID == "" {
			t.Errorf("%s: %s letter %q, want dead-lettered in the folded letter", r.InstanceID, r.Outcome, r.DeadLetterID)
		}
	}
}
