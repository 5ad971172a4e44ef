package engine

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// RateControl says how one function instance paces its ECS calls. ECS throttles each API
// per account and region, and FC 3.0 runs every concurrent invocation in its own process,
// so no instance knows what the others send: a Throttling answer is the one signal they
// share.
type RateControl string

// The rate controls.
const (
	// RateAdaptive paces each ECS API on its own, as a CUBIC-like token bucket. A fresh
	// instance sends startBurst attaches at once, then rateStart per second, doubling every
	// second until ECS first answers Throttling; its other calls go unpaced until then. Each
	// Throttling answer to a call sent since the last cut cuts the rate by rateCut (to no
	// more than went through in the last second, no less than rateFloor); then the rate
	// grows back along a cubic, slowly near the rate it was cut from and faster beyond it,
	// up to the ceiling (AttachQPS for AttachNetworkInterface).
	RateAdaptive RateControl = "adaptive"
	// RateFixed paces AttachNetworkInterface at AttachQPS (0: not at all) and nothing else,
	// whatever ECS answers.
	RateFixed RateControl = "fixed"
)

// The adaptive control's figures. rateCut is the multiplicative decrease at a Throttling
// answer; cubic scales the growth after it, rate(t) = wmax (1 + cubic (t - K)^3), where wmax
// is the rate the cut came from and K the time at which the rate is back at it; rateFloor is
// the least rate a cut goes to, so that a throttled call is tried again within a second. They
// were chosen in the simulated burst (sim/burst.go, make burst): the README has the figures.
const (
	rateCut   = 0.7
	cubic     = 0.05
	rateFloor = 1.0
	// rateStart and startBurst are a fresh instance's attaches: startBurst at once (a batch
	// of the work queue's default size goes together), then rateStart per second, doubling
	// every second until ECS first answers Throttling.
	rateStart  = 10.0
	startBurst = 10
	// rateCap bounds the growth: far above any ECS quota, it no longer paces.
	rateCap = 1000.0
)

// sendWindow is how far back the sent calls are counted for the rate a first cut starts
// from.
const sendWindow = time.Second

// limiter paces one API's calls from this process. It is a token bucket: calls go at most
// rate per second, with a burst of half a second's worth (at least one call), which stays
// inside a server bucket of a second's worth even when calls bunch up on their way. An
// adaptive limiter sets its rate from what ECS answers (observe); rate 0 does not pace.
// A nil limiter does not pace.
type limiter struct {
	clock    clock.Clock
	adaptive bool
	ceiling  float64 // the most an adaptive rate grows to; 0: no ceiling

	mu     sync.Mutex
	rate   float64 // calls per second; 0: not pacing
	tokens float64
	filled time.Time // when tokens were last added
	// cutAt is when the rate was last cut (or the limiter made): a Throttling answer to a
	// call sent before it was sent at the old rate and does not cut again.
	cutAt time.Time
	// wmax is the rate the last cut came from, low the rate it cut to; slowStart is true
	// until the first cut.
	wmax, low float64
	slowStart bool
	// sent are the times of the calls sent in the last sendWindow, oldest first; passed
	// those of the calls that went through.
	sent, passed []time.Time
}

// maxNap bounds one sleep of a waiting call, so that a rate that grows meanwhile lets it go
// sooner than the rate it started waiting under would have.
const maxNap = 250 * time.Millisecond

func newLimiter(qps float64, clk clock.Clock) *limiter {
	if qps <= 0 {
		return nil
	}
	return &limiter{clock: clk, rate: qps}
}

// newAdaptiveLimiter returns an adaptive limiter. One that starts slow sends startBurst calls
// at once, then rateStart per second doubling every second until the first Throttling
// answer; one that does not is unpaced until then.
func newAdaptiveLimiter(ceiling float64, startSlow bool, clk clock.Clock) *limiter {
	l := &limiter{clock: clk, adaptive: true, ceiling: ceiling}
	if startSlow {
		l.rate, l.tokens = rateStart, startBurst
		if ceiling > 0 {
			l.rate = min(l.rate, ceiling)
		}
		l.wmax, l.low, l.cutAt, l.slowStart = l.rate, l.rate, clk.Now(), true
	}
	return l
}

// refill adds the tokens earned since the last refill at the current rate.
func (l *limiter) refill(now time.Time) {
	if l.rate > 0 && !l.filled.IsZero() {
		l.tokens = min(max(l.burst(), l.tokens), l.tokens+now.Sub(l.filled).Seconds()*l.rate)
	} else if l.rate > 0 && l.tokens == 0 {
		l.tokens = l.burst()
	}
	l.filled = now
}

// burst is how many calls may go at once: half a second's worth, at least one; an adaptive
// limiter's first startBurst.
func (l *limiter) burst() float64 { return max(1, l.rate/2) }

// wait blocks until a call may go, or ctx is done; it returns when the call went. When
// longer than most (0: any wait), a call does not wait: wait returns errPaced and about how
// long the call would have waited.
func (l *limiter) wait(ctx context.Context, most time.Duration) (time.Time, time.Duration, error) {
	if l == nil {
		return time.Time{}, 0, ctx.Err()
	}
	for {
		if err := ctx.Err(); err != nil {
			return time.Time{}, 0, err
		}
		l.mu.Lock()
		now := l.clock.Now()
		l.refill(now)
		if l.rate <= 0 || l.tokens >= 1 {
			if l.rate > 0 {
				l.tokens--
			}
			if l.adaptive {
				l.sent = append(l.sent, now)
			}
			l.mu.Unlock()
			return now, 0, nil
		}
		// At least a millisecond: a token short by a rounding error must not spin.
		need := max(time.Millisecond, time.Duration((1-l.tokens)/l.rate*float64(time.Second)))
		l.mu.Unlock()
		if most > 0 && need > most {
			return time.Time{}, need, errPaced
		}
		if err := l.clock.Sleep(ctx, min(need, maxNap)); err != nil {
			return time.Time{}, 0, err
		}
	}
}

// errPaced says a call would have waited longer than its caller allows.
var errPaced = errors.New("paced: the call's turn is further off than its caller waits")

// observe tells an adaptive limiter how a call sent at sent was answered.
func (l *limiter) observe(sent time.Time, throttled bool) {
	if l == nil || !l.adaptive {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.forget(now)
	l.refill(now)
	if throttled {
		if !sent.Before(l.cutAt) {
			// Cut from what was really sent when that was less than the rate allowed, and
			// to no more than what went through: in a storm of many instances that is about
			// this instance's share of the quota.
			from := float64(max(len(l.sent), 1)) / sendWindow.Seconds()
			if l.rate > 0 && l.rate < from {
				from = l.rate
			}
			through := float64(len(l.passed)) / sendWindow.Seconds()
			l.rate = max(rateFloor, min(rateCut*from, through))
			l.cutAt = now
			l.wmax, l.low, l.slowStart = max(from, l.rate), l.rate, false
			// The next call waits a whole interval of the new rate.
			l.tokens = min(l.tokens, 0)
		}
		return
	}
	l.passed = append(l.passed, now)
	if l.rate > 0 {
		if l.slowStart {
			l.rate = max(l.rate, l.low*math.Exp2(now.Sub(l.cutAt).Seconds()))
		} else {
			k := math.Cbrt((1 - l.low/l.wmax) / cubic)
			t := now.Sub(l.cutAt).Seconds() - k
			l.rate = max(l.rate, l.wmax*(1+cubic*t*t*t))
		}
		l.rate = min(l.rate, rateCap)
		if l.ceiling > 0 {
			l.rate = min(l.rate, l.ceiling)
		}
	}
}

// forget drops the calls sent and passed longer than sendWindow ago.
func (l *limiter) forget(now time.Time) {
	l.sent = recent(l.sent, now)
	l.passed = recent(l.passed, now)
}

func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > sendWindow {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

// currentRate returns the rate the limiter paces at (0: not pacing).
func (l *limiter) currentRate() float64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// rates are the limiters of one process, one per ECS API.
type rates struct {
	clock   clock.Clock
	control RateControl
	attach  float64 // AttachQPS

	mu sync.Mutex
	m  map[string]*limiter
}

func newRates(control RateControl, attachQPS float64, clk clock.Clock) *rates {
	return &rates{clock: clk, control: control, attach: attachQPS, m: map[string]*limiter{}}
}

// of returns the limiter of api; nil when api is not paced.
func (r *rates) of(api string) *limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.m[api]
	if !ok {
		switch {
		case r.control == RateFixed && api == apiAttach:
			l = newLimiter(r.attach, r.clock)
		case r.control == RateFixed:
		case api == apiAttach:
			l = newAdaptiveLimiter(r.attach, true, r.clock)
		default:
			l = newAdaptiveLimiter(0, false, r.clock)
		}
		r.m[api] = l
	}
	return l
}

// apiAttach is the API AttachQPS paces.
const apiAttach = "AttachNetworkInterface"

// throttled reports whether err is a Throttling answer of the error table's.
func throttled(err error) bool {
	if err == nil {
		return false
	}
	_, rule := cloud.Classify(err)
	return rule.Code == "Throttling*" || rule.Code == "Rejected.Throttling"
}
