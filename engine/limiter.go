package engine

import (
	"context"
	"sync"
	"time"

	"github.com/enipool/enipool/clock"
)

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
