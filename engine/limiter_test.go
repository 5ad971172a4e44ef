package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// step is one thing done to a limiter at a moment of virtual time (from the start).
type step struct {
	at time.Duration
	// send calls go out, one after the other, each answered (throttled or not) as it goes.
	send      int
	throttled bool
	// together sends every call of the step before any answer comes back (20 ms later).
	together bool
	// wantWaits are how long each call waited for its turn.
	wantWaits []time.Duration
	// wantRate is the rate after the step (nil: not checked).
	wantRate *float64
}

// The limiter under the injected clock, in virtual time: what each call waits, and how the
// adaptive rate moves with ECS's answers.
func TestLimiter(t *testing.T) {
	rate := func(r float64) *float64 { return &r }
	ms := func(d ...int) []time.Duration {
		out := make([]time.Duration, len(d))
		for i, v := range d {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name     string
		fixed    float64 // > 0: a fixed limiter at this rate
		ceiling  float64 // an adaptive limiter's ceiling
		steps    []step
		disabled bool // the limiter is nil (fixed at 0)
		// unpacedStart makes an adaptive limiter that does not pace until the first
		// Throttling answer (every API but AttachNetworkInterface).
		unpacedStart bool
	}{
		{name: "fixed: half a second's worth at once, then paced", fixed: 20, steps: []step{
			{send: 12, wantWaits: ms(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 50), wantRate: rate(20)},
		}},
		{name: "fixed: a Throttling answer changes nothing", fixed: 2, steps: []step{
			{send: 2, throttled: true, wantWaits: ms(0, 500), wantRate: rate(2)},
		}},
		{name: "fixed at 0 does not pace", disabled: true, steps: []step{
			{send: 30, wantWaits: make([]time.Duration, 30)},
		}},
		{name: "adaptive: a fresh instance sends a few at once, then paces", ceiling: rateStart, steps: []step{
			{send: startBurst + 2, wantWaits: append(make([]time.Duration, startBurst), time.Second/rateStart, time.Second/rateStart),
				wantRate: rate(rateStart)},
		}},
		{name: "adaptive: a fresh instance doubles its rate every second until throttled", steps: []step{
			{send: 1, wantWaits: ms(0), wantRate: rate(rateStart)},
			{at: 3 * time.Second, send: 1, wantWaits: ms(0), wantRate: rate(rateStart * 8)},
		}},
		{name: "adaptive: other APIs go unpaced until the first Throttling answer", unpacedStart: true, steps: []step{
			{send: 40, wantWaits: make([]time.Duration, 40), wantRate: rate(0)},
			{at: 100 * time.Millisecond, send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(41 * rateCut)},
		}},
		{name: "adaptive: a Throttling answer cuts the rate", ceiling: rateStart, steps: []step{
			{send: startBurst, wantWaits: make([]time.Duration, startBurst)},
			{at: time.Second, send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateStart * rateCut)},
			// The next call waits a whole interval of the new rate.
			{at: time.Second, send: 1, wantWaits: []time.Duration{time.Duration(math.Round(float64(time.Second) / (rateStart * rateCut)))}},
		}},
		{name: "adaptive: a cut goes no higher than what went through in the last second", steps: []step{
			{send: startBurst, together: true, throttled: true, wantWaits: make([]time.Duration, startBurst), wantRate: rate(rateFloor)},
		}},
		{name: "adaptive: answers to calls sent before a cut cut once", ceiling: rateStart, steps: []step{
			{send: startBurst, wantWaits: make([]time.Duration, startBurst)},
			{at: 10 * time.Millisecond, send: 2, together: true, throttled: true, wantRate: rate(rateStart * rateCut)},
			// Sent after the cut: cuts again, to what went through since (nothing): the floor.
			{at: 3 * time.Second, send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateFloor)},
		}},
		{name: "adaptive: grows back slowly near the rate it was cut from, faster beyond", steps: []step{
			{send: startBurst, wantWaits: make([]time.Duration, startBurst)},
			{at: 500 * time.Millisecond, send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateStart * rateCut)},
			{at: 500*time.Millisecond + regrowK, send: 1, wantWaits: ms(0), wantRate: rate(rateStart)},
			{at: 500*time.Millisecond + regrowK + 4*time.Second, send: 1, wantWaits: ms(0), wantRate: rate(rateStart * (1 + cubic*64))},
		}},
		{name: "adaptive: grows no higher than the ceiling", ceiling: 3, steps: []step{
			{send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateFloor)},
			{at: time.Minute, send: 1, wantWaits: ms(0), wantRate: rate(3)},
		}},
		{name: "adaptive: never below the floor", steps: []step{
			{send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateFloor)},
			{at: 5 * time.Second, send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateFloor)},
			{at: 10 * time.Second, send: 1, throttled: true, wantWaits: ms(0), wantRate: rate(rateFloor)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := clock.Real() // in the bubble, virtual time
				var l *limiter
				switch {
				case tt.disabled:
					l = newLimiter(0, clk)
				case tt.fixed > 0:
					l = newLimiter(tt.fixed, clk)
				default:
					l = newAdaptiveLimiter(tt.ceiling, !tt.unpacedStart, clk)
				}
				start := clk.Now()
				for i, s := range tt.steps {
					if err := clk.Sleep(context.Background(), start.Add(s.at).Sub(clk.Now())); err != nil {
						t.Fatal(err)
					}
					var sent []time.Time
					for c := range s.send {
						before := clk.Now()
						at, _, err := l.wait(context.Background(), 0)
						if err != nil {
							t.Fatal(err)
						}
						// Within a millisecond: the rate grows a little with each call that goes through.
						if waited := clk.Now().Sub(before); c < len(s.wantWaits) && (waited-s.wantWaits[c]).Abs() > time.Millisecond {
							t.Errorf("step %d, call %d waited %v, want %v", i, c, waited, s.wantWaits[c])
						}
						if !s.together {
							l.observe(at, s.throttled)
							continue
						}
						sent = append(sent, at)
					}
					if len(sent) > 0 {
						if err := clk.Sleep(context.Background(), 20*time.Millisecond); err != nil {
							t.Fatal(err)
						}
						for _, at := range sent {
							l.observe(at, s.throttled)
						}
					}
					if got := l.currentRate(); s.wantRate != nil && math.Abs(got-*s.wantRate) > 1e-6*max(1, *s.wantRate) {
						t.Errorf("after step %d the rate is %v, want %v", i, got, *s.wantRate)
					}
				}
			})
		})
	}
}

// regrowK is how long after a cut from rateStart the rate is back at rateStart:
// cbrt((1 - rateCut) / cubic) seconds.
var regrowK = time.Duration(math.Cbrt((1-rateCut)/cubic) * float64(time.Second))

// A waiter whose context ends takes no turn: the next call does not wait for it.
func TestLimiterCancelledWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.Real()
		l := newLimiter(1, clk)
		if _, _, err := l.wait(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, _, err := l.wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the waiter's context ended and wait returned %v", err)
		}
		before := clk.Now()
		if _, _, err := l.wait(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		if waited := clk.Now().Sub(before); waited != 900*time.Millisecond {
			t.Fatalf("the next call waited %v, want 900ms (the turn the cancelled waiter did not take)", waited)
		}
	})
}

// A call whose turn is further off than its caller waits does not wait: it learns about when
// its turn comes, and takes none.
func TestLimiterWaitsAtMost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.Real()
		l := newLimiter(2, clk) // one at once, then one every 500 ms
		if _, _, err := l.wait(context.Background(), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		before := clk.Now()
		_, after, err := l.wait(context.Background(), 100*time.Millisecond)
		if !errors.Is(err, errPaced) || after != 500*time.Millisecond || clk.Now() != before {
			t.Fatalf("wait returned after %v, %v, having waited %v; want errPaced at once, turn in 500ms", after, err, clk.Now().Sub(before))
		}
		if _, _, err := l.wait(context.Background(), time.Second); err != nil || clk.Now().Sub(before) != 500*time.Millisecond {
			t.Fatalf("a caller that waits a second got its turn after %v (%v), want 500ms", clk.Now().Sub(before), err)
		}
	})
}

// Separate processes, each with its own adaptive limiter and a backlog of calls, against one
// server bucket: whatever their number, they converge on the quota with few throttled calls,
// and none is starved.
func TestLimitersConverge(t *testing.T) {
	const quota, burst = 20.0, 20
	tests := []struct {
		processes int
		// maxThrottled bounds the throttled calls per call that went through.
		maxThrottled float64
	}{
		// Measured 0.022, 0.131 and 0.577: the bounds leave room for the scheduling of
		// goroutines, not for a change of the control. 20 processes at the floor (1/s each)
		// already send the whole quota: they cannot back off further, the cost of a floor that
		// keeps a lone instance trying every second.
		{1, 0.05},
		{5, 0.2},
		{20, 0.7},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d processes", tt.processes), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := clock.Real()
				srv := &bucket{rate: quota, tokens: burst, max: burst, last: clk.Now()}
				run := 120 * time.Second
				ctx, cancel := clock.Deadline(context.Background(), clk, run)
				defer cancel()
				ok := make([]int, tt.processes)
				var throttledCalls int
				var mu sync.Mutex
				var wg sync.WaitGroup
				for p := range tt.processes {
					l := newAdaptiveLimiter(0, true, clk)
					wg.Go(func() {
						for {
							sent, _, err := l.wait(ctx, 0)
							if err != nil {
								return
							}
							// 20 ms on the way, as a call's latency.
							if clk.Sleep(ctx, 20*time.Millisecond) != nil {
								return
							}
							got := srv.take(clk.Now())
							l.observe(sent, !got)
							mu.Lock()
							if got {
								ok[p]++
							} else {
								throttledCalls++
							}
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				total := 0
				for _, n := range ok {
					total += n
				}
				rate := float64(total) / run.Seconds()
				t.Logf("%d processes: %.1f calls/s through, %d throttled for %d (%.3f per call)", tt.processes, rate, throttledCalls, total, float64(throttledCalls)/float64(total))
				if rate < 0.8*quota {
					t.Errorf("%d processes sent %.1f calls/s through, want at least 80%% of the quota (%v/s)", tt.processes, rate, quota)
				}
				if r := float64(throttledCalls) / float64(total); r > tt.maxThrottled {
					t.Errorf("%d processes: %d throttled calls for %d that went through (%.3f per call), want <= %v", tt.processes, throttledCalls, total, r, tt.maxThrottled)
				}
				for p, n := range ok {
					if float64(n) < 0.25*float64(total)/float64(tt.processes) {
						t.Errorf("process %d got %d calls through of %d, less than a quarter of its share", p, n, total)
					}
				}
			})
		})
	}
}

// bucket is a server's token bucket (as ECS throttles an API per account).
type bucket struct {
	mu                sync.Mutex
	rate, tokens, max float64
	last              time.Time
}

func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.max, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Only the error table's throttling codes count as throttled.
func TestThrottled(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&cloud.APIError{Code: "Throttling"}, true},
		{&cloud.APIError{Code: "Throttling.User"}, true},
		{&cloud.APIError{Code: "Throttling.Api"}, true},
		{&cloud.APIError{Code: "Rejected.Throttling"}, true},
		{&cloud.APIError{Code: "ServiceUnavailable", HTTPStatus: 503}, false},
		{&cloud.APIError{Code: "QpsLimitExceeded"}, false}, // MNS's, not ECS's
		{&cloud.APIError{Err: context.DeadlineExceeded}, false},
	}
	for _, tt := range tests {
		if got := throttled(tt.err); got != tt.want {
			t.Errorf("throttled(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
