package handler

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
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

// More carrier messages than MaxDeadLetters: those past the cap share a letter whose event is
// a JSON array of their raw events, split only where 64 KiB requires, unreadable messages
// apart from those with work to redo; nothing is left failed for the platform to retry. On
// main the messages past the cap failed ("not dead-lettered"), failing the invocation.
func TestDeadLetterOverflow(t *testing.T) {
	pad := strings.Repeat("x", 15000)
	tests := []struct {
		name     string
		max      int
		elems    []string // the payload's elements, each its own carrier message
		letters  int
		overflow [][]string // per overflow letter (in order), the markers of its messages
	}{
		{
			// 12 unreadable messages, 3 letters: 2 of their own, 10 in the third.
			name: "small unreadable messages", max: 3,
			elems:   bogus(12, ""),
			letters: 3, overflow: [][]string{markers(2, 12)},
		},
		{
			// 15 kB each: 4 fit in 64 KiB, so the 10 past the first 2 take 3 letters.
			name: "large unreadable messages", max: 3,
			elems:   bogus(12, pad),
			letters: 5, overflow: [][]string{markers(2, 6), markers(6, 10), markers(10, 12)},
		},
		{
			// Unreadable and readable messages past the cap (1 of its own) are packed apart.
			name: "unreadable and readable messages", max: 3,
			elems: []string{`{"bogus":"m00"}`, `{"instanceId":"i-bp1ovf000000001","m":"m01"}`, `{"bogus":"m02"}`,
				`{"instanceId":"i-bp1ovf000000002","m":"m03"}`, `{"bogus":"m04"}`},
			letters: 3, overflow: [][]string{{"m02", "m04"}, {"m01", "m03"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			c.addInstance("i-bp1ovf000000001", "ecs.g7.large")
			c.addInstance("i-bp1ovf000000002", "ecs.g7.large") // no pool ENI: PoolExhausted
			h, _ := fakeHandler(t, c, func(o *Options) { o.MaxDeadLetters = tt.max })
			resp, err := invoke(t, h, "["+strings.Join(tt.elems, ",")+"]", 3*time.Second)
			if err != nil {
				t.Fatalf("invocation failed: %v", err)
			}
			for _, r := range resp.Results {
				if r.Outcome != engine.OutcomeDeadLettered || r.DeadLetterID == "" {
					t.Errorf("%s: %s letter %q (%s), want dead-lettered", r.InstanceID, r.Outcome, r.DeadLetterID, r.Reason)
				}
			}
			letters := c.deadLetters()
			if len(letters) != tt.letters {
				t.Fatalf("%d letters, want %d", len(letters), tt.letters)
			}
			var got [][]string
			seen := map[string]int{}
			for _, body := range letters {
				if len(body) > deadletter.MaxMessageBytes {
					t.Errorf("a letter of %d bytes", len(body))
				}
				env, err := deadletter.Parse([]byte(body))
				if err != nil || env.EventTruncated {
					t.Fatalf("letter %.200s: %v, truncated %v", body, err, env != nil && env.EventTruncated)
				}
				var in []string
				for _, r := range event.Decode([]byte(body), event.Options{}) {
					var m struct{ Bogus, M string }
					_ = json.Unmarshal(r.Raw, &m)
					in = append(in, strings.TrimLeft(m.Bogus+m.M, "x"))
				}
				for _, m := range in {
					seen[m]++
				}
				if strings.HasPrefix(string(env.Event), "[") {
					got = append(got, in)
				}
			}
			for i := range tt.elems {
				if m := fmt.Sprintf("m%02d", i); seen[m] != 1 {
					t.Errorf("message %s decodes from %d letters, want 1", m, seen[m])
				}
			}
			// Letters go out at once, in no order.
			sort.Slice(got, func(i, j int) bool { return got[i][0] < got[j][0] })
			sort.Slice(tt.overflow, func(i, j int) bool { return tt.overflow[i][0] < tt.overflow[j][0] })
			if fmt.Sprint(got) != fmt.Sprint(tt.overflow) {
				t.Errorf("overflow letters hold %v, want %v", got, tt.overflow)
			}
		})
	}
}

// bogus returns n unreadable events (no known form), marked m00... after pad.
func bogus(n int, pad string) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf(`{"bogus":"%sm%02d"}`, pad, i))
	}
	return out
}

// markers returns the marks of messages from to to-1.
func markers(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("m%02d", i))
	}
	return out
}
