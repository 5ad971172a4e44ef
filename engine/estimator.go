package engine

import (
	"math"
	"sync"
	"time"
)

// The confirmation schedule. An attach (or detach) is confirmed by a read that shows it done,
// and how long that takes spreads widely from one attach to the next: ECS's own time has a
// long tail, and a read may lag the writes. A schedule tuned to a typical time is late by
// the whole gap for a short attach and cannot know a long one, so the polls are spaced
// geometrically instead: each poll waits a fixed fraction of the time since the event began.
// An attach a read can first show v after acceptance, accepted w after the event began, is
// then confirmed by a poll sent at most pollGrowth·(w+v) after the event began, whatever v
// is, once v is past the first poll: latency ÷ floor is bounded for every attach time, not
// only the typical one. Counting from the event rather than from the acceptance costs
// nothing for a single event (w is three calls) and saves polls where they buy nothing: an
// attach that waited for the account's quota in a burst has a floor as long as that wait,
// and a poll more or less soon after it hardly moves its ratio. What remains
// to choose is the first poll, and it decides the calls: the earlier it goes out, the more
// attaches it finds unfinished. The estimator learns the distribution of v and puts the
// first poll as early as the call budget (pollBudget) allows.
const (
	// pollGrowth is the ratio of two successive polls' times since acceptance. It comes from
	// the ratio targets: the confirming poll comes at most pollGrowth times as late as the
	// first read that could have shown the attach done (the tail, target 1.5), and √1.3 ≈ 1.14
	// times as late in the middle of a gap (the median, target 1.15).
	pollGrowth = 1.3
	// pollBudget is how many polls an attach may cost on average, as the learned distribution
	// predicts them. With the describe, the listing and the attach, an event then costs about
	// seven ECS calls, within twice the cheapest published schedule's (Terway's, about four).
	pollBudget = 4.0
	// maxWaitGap caps what the wait before the acceptance adds to a gap. The bound above needs
	// no cap, but a burst's wall time is its last event's end, and that event, accepted late
	// after waiting for the quota, would be polled as sparsely as its long floor allows: 0.3
	// times a 25 s wait would add 7 s to the burst.
	maxWaitGap = 2 * time.Second
)

// Bins of the learned distribution: log-spaced from binLow, each binRatio wide, the first
// and last open-ended: 20 ms to 150 s in steps of a quarter.
const (
	bins     = 40
	binLow   = 20 * time.Millisecond
	binRatio = 1.25
	// priorWeight is what the configured guess weighs against observations, each of which
	// weighs one; priorSpread is its log-normal σ: the p99 about ten times the median, since
	// the guess may be far off.
	priorWeight = 4.0
	priorSpread = 1.0
	// forget is how much every weight keeps at each observation: the estimator follows about
	// the last 1/(1-forget) = 32 attaches, so a region that slows down is tracked.
	forget = 1 - 1.0/32
)

// estimator learns how long after acceptance a read first shows an attach (or a detach)
// done, and times the confirmation polls from it. Observations are censored: the poll that
// found the work done bounds that time from above, the last poll that found it unfinished
// (or did not show it yet) from below. Each is spread over the bins it covers in proportion
// to the weight they hold (a step of the self-consistency estimator for interval-censored
// data), so a memory of fixed size learns a whole distribution from polls that never see the
// moment the work finished. The lag of reads is learned with it: a poll aimed at when ECS is
// done rather than at when a read shows it would find the work unfinished on every stale
// read. Nothing but the bound raises an estimate: a miss is not taken for a lower bound past
// the poll that made it, so a cluster of concurrent misses moves nothing.
type estimator struct {
	mu    sync.Mutex
	w     [bins]float64
	first time.Duration
}

func newEstimator(guess time.Duration) *estimator {
	e := &estimator{}
	mu := math.Log(max(guess, binLow).Seconds())
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-(math.Log(x)-mu)/(priorSpread*math.Sqrt2)) }
	for i := range bins {
		lo, hi := cdf(binEdge(i)), 1.0
		if i == 0 {
			lo = 0
		}
		if i < bins-1 {
			hi = cdf(binEdge(i + 1))
		}
		// No bin is empty: an observation anywhere finds weight to follow.
		e.w[i] = priorWeight * max(hi-lo, 1e-6)
	}
	e.first = e.plan()
	return e
}

// binEdge returns the lower edge of bin i, in seconds.
func binEdge(i int) float64 { return binLow.Seconds() * math.Pow(binRatio, float64(i)) }

// firstPoll returns how long after the work was accepted its first poll goes out, for work
// accepted waited after its event began: when the budget places it, or a fraction
// pollGrowth-1 of that wait (at most maxWaitGap) when that is later. Then even work done
// before the first poll is confirmed within pollGrowth times its event's time.
func (e *estimator) firstPoll(waited time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.first, min(maxWaitGap, time.Duration(float64(waited)*(pollGrowth-1))))
}

// nextPoll returns how long after acceptance the poll after one sent last after acceptance
// goes out, for work accepted waited after its event began: pollGrowth times as late as the
// last, counted from the event's beginning (the wait before acceptance adding at most
// maxWaitGap), at least minPoll after it, and never before the first poll (a look taken early
// for another reason does not pull the schedule forward).
func (e *estimator) nextPoll(waited, last time.Duration) time.Duration {
	grow := func(d time.Duration) time.Duration { return time.Duration(float64(d) * (pollGrowth - 1)) }
	return max(e.firstPoll(waited), last+max(minPoll, grow(last)+min(maxWaitGap, grow(waited))))
}

// observe records one piece of work confirmed done by a poll sent done after acceptance,
// the last poll before it that found it unfinished having been sent missed after (zero when
// none did).
func (e *estimator) observe(missed, done time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	lo := math.Log(max(missed, binLow).Seconds())
	hi := math.Log(max(done, binLow).Seconds())
	var share [bins]float64
	total := 0.0
	for i := range bins {
		// Bin i covers [edge(i), edge(i+1)) in log time; the first and last reach past
		// binLow and the last edge, where the observation is clamped.
		a, b := math.Log(binEdge(i)), math.Log(binEdge(i+1))
		ov := min(b, hi) - max(a, lo)
		switch {
		case lo >= hi && lo >= a && (lo < b || i == bins-1):
			ov = b - a // a point (both bounds in one place): the bin that holds it
		case ov <= 0:
			continue
		}
		share[i] = e.w[i] * ov / (b - a)
		total += share[i]
	}
	for i := range bins {
		e.w[i] *= forget
		if total > 0 {
			e.w[i] += share[i] / total
		}
	}
	e.first = e.plan()
}

// plan returns the earliest first poll whose expected polls per attach, under the learned
// distribution and the geometric schedule, fit pollBudget.
func (e *estimator) plan() time.Duration {
	lo, hi := math.Log(minPoll.Seconds()), math.Log(binEdge(bins))
	if e.expectedPolls(math.Exp(lo)) <= pollBudget {
		return minPoll
	}
	for range 40 {
		mid := (lo + hi) / 2
		if e.expectedPolls(math.Exp(mid)) <= pollBudget {
			hi = mid
		} else {
			lo = mid
		}
	}
	return time.Duration(math.Exp(hi) * float64(time.Second)).Round(time.Millisecond)
}

// expectedPolls returns how many polls an attach accepted at once takes on average when the
// first goes out first seconds after acceptance: one for an attach shown done by then, and
// one more for each growth by pollGrowth it takes to reach the rest (each bin at its middle).
func (e *estimator) expectedPolls(first float64) float64 {
	sum, n := 0.0, 0.0
	for i := range bins {
		v := math.Sqrt(binEdge(i) * binEdge(i+1))
		p := 1.0
		if v > first {
			p += math.Ceil(math.Log(v/first) / math.Log(pollGrowth))
		}
		sum += e.w[i] * p
		n += e.w[i]
	}
	return sum / n
}

// quantile returns the learned time by which the share q of attaches shows done (within
// its bin, interpolated in log time).
func (e *estimator) quantile(q float64) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	total := 0.0
	for _, w := range e.w {
		total += w
	}
	acc := 0.0
	for i, w := range e.w {
		if acc+w >= q*total {
			f := (q*total - acc) / w
			a, b := math.Log(binEdge(i)), math.Log(binEdge(i+1))
			return time.Duration(math.Exp(a+f*(b-a)) * float64(time.Second))
		}
		acc += w
	}
	return time.Duration(binEdge(bins) * float64(time.Second))
}

// typical returns the learned median: the time the looks at what an invocation did not start
// itself (and so cannot time from its acceptance) are spaced from.
func (e *estimator) typical() time.Duration { return e.quantile(0.5) }
