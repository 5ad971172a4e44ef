package harness

import (
	"context"
	"testing"
	"time"
)

// TestBurstCorrectness runs the burst scenario at a small scale and checks only what must
// hold whatever the timing: every instance the pool can serve ends with exactly one pool ENI,
// no ENI is attached twice, and the shortfall, and only it, is dead-lettered as an exhausted
// pool. Timings belong to `make bench`.
func TestBurstCorrectness(t *testing.T) {
	cloud := func(pool int) CloudParams {
		return CloudParams{Instances: 40, Pool: pool, Zones: 2, Seed: 1,
			Latency: Duration(2 * time.Millisecond), AttachTime: Duration(50 * time.Millisecond),
			ThrottleQPS: 40, ThrottleBurst: 5}
	}
	fast := Duration(50 * time.Millisecond) // the first guess: keeps the test short
	tests := []struct {
		name string
		p    BurstParams
	}{
		{"pool = burst, paced", BurstParams{Cloud: cloud(40), Events: 40, Concurrency: 8, AttachQPS: 40, FirstGuess: fast}},
		{"pool = burst, unpaced, throttled", BurstParams{Cloud: cloud(40), Events: 40, Concurrency: 8, FirstGuess: fast}},
		{"pool = burst, MNS batches of 10", BurstParams{Cloud: cloud(40), Events: 40, Concurrency: 8, AttachQPS: 40, BatchSize: 10, FirstGuess: fast}},
		{"pool < burst, paced", BurstParams{Cloud: cloud(30), Events: 40, Concurrency: 8, AttachQPS: 40, FirstGuess: fast}},
		{"pool < burst, MNS batches of 10", BurstParams{Cloud: cloud(30), Events: 40, Concurrency: 8, AttachQPS: 40, BatchSize: 10, FirstGuess: fast}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := Burst(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			a := r.Audit
			t.Logf("%d ECS calls, %d throttled, %d lost races, %d dead letters", a.ECSCalls, a.Throttled, a.LostRaces, len(a.DeadLetters))
			want := min(tt.p.Events, tt.p.Cloud.Pool)
			shortfall := tt.p.Events - want
			if a.Attached != want {
				t.Errorf("%d instances hold exactly one pool ENI InUse, want %d (bare: %v, more than one: %v)", a.Attached, want, a.Bare, a.Multi)
			}
			if n := a.DoubleAttaches(); n != 0 {
				t.Errorf("%d double attaches: %+v", n, a)
			}
			if r.Exhausted.Shortfall != shortfall {
				t.Fatalf("the check computed a shortfall of %d, want %d", r.Exhausted.Shortfall, shortfall)
			}
			if len(a.DeadLetters) != shortfall || r.Exhausted.Valid != shortfall || a.OtherDLQMessages != 0 {
				t.Errorf("%d dead letters (%d naming the exhausted pool and zone, %d other messages), want %d: %v",
					len(a.DeadLetters), r.Exhausted.Valid, a.OtherDLQMessages, shortfall, r.Exhausted.Problems)
			}
			if r.Outcomes.Errors != 0 {
				t.Errorf("%d invocations returned an error to the platform: %v", r.Outcomes.Errors, r.Outcomes.ByOutcome)
			}
			if got := r.Outcomes.ByOutcome["attached"]; got != want {
				t.Errorf("the handler reported %d attached, the cloud %d: %v", got, want, r.Outcomes.ByOutcome)
			}
		})
	}
}
