package engine

import (
	"sync"
	"time"
)

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
