package engine

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// confirmAt runs the schedule of e for work accepted w after its event began that a read
// first shows done v after acceptance (every read fresh): it returns when, after acceptance,
// the poll that confirms it is sent, and how many polls it took.
func confirmAt(e *estimator, w, v time.Duration) (at time.Duration, polls int) {
	at = e.firstPoll(w)
	for polls = 1; at < v; polls++ {
		at = e.nextPoll(w, at)
	}
	return at, polls
}

// Whatever an attach takes, the poll that confirms it goes out at most pollGrowth times (or
// minPoll) later than it could have, counted from the event's beginning, once it is past the
// first poll; the first poll sits below the guess, so an attach as long as guessed is never
// confirmed later than that. An attach that waited for the quota is polled less often.
func TestScheduleBoundsEveryAttachTime(t *testing.T) {
	for _, guess := range []time.Duration{300 * time.Millisecond, 2 * time.Second, 20 * time.Second} {
		e := newEstimator(guess)
		if first := e.firstPoll(0); first >= guess || first < minPoll {
			t.Fatalf("guess %v: first poll at %v, want in [%v, %v)", guess, first, minPoll, guess)
		}
		for _, w := range []time.Duration{0, 60 * time.Millisecond, 20 * time.Second} {
			for v := 10 * time.Millisecond; v <= 2*time.Minute; v = v * 11 / 10 {
				at, polls := confirmAt(e, w, v)
				bound := max(time.Duration(float64(w+v)*pollGrowth), w+v+minPoll)
				if time.Duration(float64(w)*(pollGrowth-1)) < e.firstPoll(0) {
					// Accepted soon after the event began: work done before the first poll
					// waits for it (a wait long enough bounds even that).
					bound = max(bound, w+e.firstPoll(0))
				}
				if at < v || w+at > bound {
					t.Errorf("guess %v, attach of %v accepted %v into its event: confirmed by the poll sent %v after acceptance, want in [%v, %v]",
						guess, v, w, at, v, bound-w)
				}
				if _, fresh := confirmAt(e, 0, v); polls > fresh {
					t.Errorf("guess %v, attach of %v accepted %v into its event: %d polls, more than the %d of one accepted at once", guess, v, w, polls, fresh)
				}
			}
		}
	}
}

// world draws how long after acceptance the read sent at a given time shows an attach done.
type world struct {
	name string
	// attach draws an attach's own time; lag a read's lag behind the writes.
	attach func(r *rand.Rand) time.Duration
	lag    time.Duration
}

func fixed(d time.Duration) func(*rand.Rand) time.Duration {
	return func(*rand.Rand) time.Duration { return d }
}

// logNormal draws from the log-normal of the given median and 99th percentile.
func logNormal(median, p99 time.Duration) func(*rand.Rand) time.Duration {
	sigma := math.Log(float64(p99)/float64(median)) / 2.326
	return func(r *rand.Rand) time.Duration {
		return time.Duration(float64(median) * math.Exp(sigma*r.NormFloat64()))
	}
}

// Learning from censored polls: from a guess far off either way, with attach times that
// spread and reads that lag, the first poll comes to sit low in the distribution (so the
// geometric schedule bounds the ratio for most attaches) while the polls per attach stay
// near the budget. A miss raises nothing by itself: the old estimator ratcheted up to the
// slow tail when reads lagged or attach times spread.
func TestEstimatorLearns(t *testing.T) {
	tests := []struct {
		name  string
		guess time.Duration
		world world
		// firstBelow is the share of attaches the learned first poll must come before (before
		// the first read that shows them done).
		firstBelow float64
	}{
		{"guess far too long", 2 * time.Second, world{"fixed 280 ms", fixed(280 * time.Millisecond), 0}, 1},
		{"guess too short", 100 * time.Millisecond, world{"fixed 280 ms", fixed(280 * time.Millisecond), 0}, 1},
		{"guess right, long tail", 2 * time.Second, world{"median 2 s, p99 8 s", logNormal(2*time.Second, 8*time.Second), 0}, 0.8},
		{"guess far too short, long tail", 200 * time.Millisecond, world{"median 2 s, p99 8 s", logNormal(2*time.Second, 8*time.Second), 0}, 0.8},
		{"long tail, reads up to 1 s stale", 2 * time.Second, world{"median 2 s, p99 8 s", logNormal(2*time.Second, 8*time.Second), time.Second}, 0.8},
		{"short attaches, reads up to 1 s stale", 2 * time.Second, world{"fixed 300 ms", fixed(300 * time.Millisecond), time.Second}, 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			e := newEstimator(tt.guess)
			polls, n := 0, 0
			for i := range 500 {
				d := tt.world.attach(r)
				var at, missed time.Duration
				k := 0
				for at = e.firstPoll(0); ; at = e.nextPoll(0, at) {
					k++
					lag := time.Duration(r.Float64() * float64(tt.world.lag))
					if at-lag >= d {
						break
					}
					missed = at
				}
				e.observe(missed, at)
				if i >= 100 { // learned
					polls += k
					n++
				}
			}
			// The share of fresh attaches the first poll comes before, counted to when a
			// read shows them done: a poll aimed at ECS's own time would miss on every
			// lagging read.
			first, below := e.firstPoll(0), 0
			for range 1000 {
				if tt.world.attach(r)+time.Duration(r.Float64()*float64(tt.world.lag)) > first {
					below++
				}
			}
			if share := float64(below) / 1000; share < tt.firstBelow {
				t.Errorf("%s: the first poll (%v) comes before %.0f%% of the reads that show an attach done, want at least %.0f%%",
					tt.world.name, first, 100*share, 100*tt.firstBelow)
			}
			// The budget is what the learned distribution predicts; reads that lag make
			// each attach's time vary poll to poll, which costs a little more.
			if mean := float64(polls) / float64(n); mean > pollBudget+1 {
				t.Errorf("%s: %.2f polls per attach, want at most %v", tt.world.name, mean, pollBudget+1)
			}
		})
	}
}

// Concurrent polls sent on one schedule that all find their attaches unfinished change
// nothing: only a confirmed attach is an observation, and it weighs one.
func TestEstimatorClusterOfMisses(t *testing.T) {
	e := newEstimator(300 * time.Millisecond)
	before := e.firstPoll(0)
	for range 8 {
		e.observe(before, before*13/10) // each missed at the first poll, confirmed at the second
	}
	after := e.firstPoll(0)
	if after > before*13/10 {
		t.Fatalf("eight attaches confirmed by the second poll moved the first poll from %v to %v, past the second poll", before, after)
	}
}
