package handler

import (
	"context"
	"errors"
	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// rank orders candidate ENIs by rendezvous (highest random weight) hashing of (key, ENI id):
// every invocation that handles the same instance ranks the pool the same way, so duplicates
// of one event go for the same ENI and the attach call itself settles who wins, while
// different instances spread over the pool.
func rank(key string, enis []cloud.ENI) []cloud.ENI {
	out := append([]cloud.ENI(nil), enis...)
	sort.SliceStable(out, func(i, j int) bool {
		si, sj := score(key, out[i].ID), score(key, out[j].ID)
		if si != sj {
			return si > sj
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Rank returns eniIDs in the order the handler tries them for an instance. The order is
// rendezvous hashing of (instance, ENI): stable as the pool grows or shrinks, so an instance
// that comes back (stop/start, or a replacement with the same id) tends to get the same ENI,
// and its IP, again.
func Rank(instanceID string, eniIDs []string) []string {
	enis := make([]cloud.ENI, len(eniIDs))
	for i, id := range eniIDs {
		enis[i] = cloud.ENI{ID: id}
	}
	out := make([]string, len(eniIDs))
	for i, e := range rank(instanceID, enis) {
		out[i] = e.ID
	}
	return out
}

func score(key, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(id))
	// FNV's low bits mix poorly on similar ids; a finalizer spreads them.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// backoff yields capped exponential delays with full jitter.
type backoff struct {
	base, max time.Duration
	n         int
}

func (b *backoff) next() time.Duration {
	d := b.base << min(b.n, 20)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

// maxTransportTries bounds the calls retry makes that do not complete (timeouts, resets,
// refused connections): an endpoint that cannot be reached does not hold the invocation to
// its deadline. Throttling and 5xx answers are retried until the deadline: the service is
// there and says when to come back.
const maxTransportTries = 4

// retry runs fn on the handler's clock (see retry).
func (h *Handler) retry(ctx context.Context, fn func(context.Context) error) error {
	return retry(ctx, h.clock, fn)
}

// retry runs fn until it succeeds, fails with an error that is not transient (see
// Classify), fails to complete maxTransportTries times, or ctx ends; it then returns fn's
// last error. Transient errors back off, capped and jittered.
func retry(ctx context.Context, clk clock.Clock, fn func(context.Context) error) error {
	b := backoff{base: 100 * time.Millisecond, max: 2 * time.Second}
	unreached := 0
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if a, _ := cloud.Classify(err); a != cloud.VerdictRetry {
			return err
		}
		if ae := (*cloud.APIError)(nil); errors.As(err, &ae) && ae.Code == "" {
			if unreached++; unreached >= maxTransportTries {
				return err
			}
		}
		if clk.Sleep(ctx, b.next()) != nil {
			return err
		}
	}
}

// limiter is a token bucket that paces calls to qps per second with a burst of half a
// second's worth, which stays inside a server bucket of a second's worth even when calls
// bunch up on their way. A nil limiter does not limit.
type limiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
	burst    time.Duration
	clock    clock.Clock
}

func newLimiter(qps float64, clk clock.Clock) *limiter {
	if qps <= 0 {
		return nil
	}
	iv := time.Duration(float64(time.Second) / qps)
	return &limiter{interval: iv, burst: time.Second / 2, clock: clk}
}

// wait blocks until a call may go, or ctx is done.
func (l *limiter) wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := l.clock.Now()
	// burst/interval calls may go at once: the first at floor, the last at now.
	if floor := now.Add(l.interval - l.burst); l.next.Before(floor) {
		l.next = floor
	}
	at := l.next
	l.next = l.next.Add(l.interval)
	l.mu.Unlock()
	if err := l.clock.Sleep(ctx, at.Sub(now)); err != nil {
		// Give the slot back so a cancelled waiter does not slow the others.
		l.mu.Lock()
		l.next = l.next.Add(-l.interval)
		l.mu.Unlock()
		return err
	}
	return nil
}

// estimator learns how long attaches (or detaches) take, so the first confirmation poll goes
// out when one is expected to be done: earlier wastes a call, later wastes time. It starts
// from the configured guess, which may be far off, and learns in two phases. Until a poll
// first finds the work unfinished, every poll that finds it done cuts the estimate by a
// quarter, so a guess of 2 s comes down to 300 ms in about seven attaches. After that first
// miss it sits a little above the attach time: a miss raises it to 1.25 times that poll's
// wait, and each hit lowers it by 1/1024. The slow descent matters under concurrency: by the
// time a poll misses, others already went out with the same estimate and miss too, so each
// descent below the attach time costs a cluster of misses (one extra call each).
type estimator struct {
	mu       sync.Mutex
	d        time.Duration
	min      time.Duration
	max      time.Duration
	learning bool
}

func newEstimator(initial time.Duration) *estimator {
	return &estimator{d: initial, min: 20 * time.Millisecond, max: 30 * time.Second, learning: true}
}

func (e *estimator) get() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.d
}

// observe records a poll sent waited after the work was accepted, and whether it found the
// work done. Polls sent before the estimate say nothing about it.
func (e *estimator) observe(waited time.Duration, done bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A poll goes out a little after it was due (timers overshoot): within a tenth of the
	// estimate it still speaks for the estimate.
	switch {
	case done && waited <= e.d+e.d/10 && e.learning:
		e.d = max(e.min, e.d*3/4)
	case done && waited <= e.d+e.d/10:
		e.d = max(e.min, e.d-e.d/1024)
	case !done && waited >= e.d*9/10:
		// Misses of one cluster raise the estimate once, not once each.
		e.learning = false
		e.d = min(e.max, max(e.d, waited+waited/4))
	}
}

// claims remembers which ENIs this process is attaching to which instance, so concurrent
// invocations in one process do not race each other for the same ENI. Across processes the
// attach call itself is the claim.
type claims struct {
	mu    sync.Mutex
	ttl   time.Duration
	m     map[string]claim
	clock clock.Clock
}

type claim struct {
	instance string
	until    time.Time
}

func newClaims(ttl time.Duration, clk clock.Clock) *claims {
	return &claims{ttl: ttl, m: make(map[string]claim), clock: clk}
}

// take claims eni for instance unless another instance holds a live claim on it.
func (c *claims) take(eni, instance string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if cl, ok := c.m[eni]; ok && cl.instance != instance && now.Before(cl.until) {
		return false
	}
	if len(c.m) > 4096 {
		for id, cl := range c.m {
			if !now.Before(cl.until) {
				delete(c.m, id)
			}
		}
	}
	c.m[eni] = claim{instance: instance, until: now.Add(c.ttl)}
	return true
}

// drop forgets any claim on eni, as when it goes back to the pool.
func (c *claims) drop(eni string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, eni)
}

// release drops instance's claim on eni.
func (c *claims) release(eni, instance string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[eni]; ok && cl.instance == instance {
		delete(c.m, eni)
	}
}
