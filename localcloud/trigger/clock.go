package trigger

import (
	"context"
	"sync"
	"time"
)

// Clock is the time the triggers run on: when a timer fires, how long a batch window stays
// open, how long a retry waits, the time stamped on events. Tests pass a FakeClock (virtual
// time moved by hand) or a ScaledClock (real time, faster).
type Clock interface {
	Now() time.Time
	// Sleep waits d on this clock; it returns ctx.Err() if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is wall-clock time.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d in real time.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error { return sleepReal(ctx, d) }

func sleepReal(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ScaledClock runs Factor times faster than real time from Start: a 2 s batch window lasts
// 2 ms of real time at Factor 1000. Now reports the scaled time, so events carry times as
// far apart as they would be on the platform.
type ScaledClock struct {
	Start  time.Time
	Factor float64
	origin time.Time // real time at Start; set by NewScaledClock
}

// NewScaledClock returns a clock that starts at start and runs factor times faster.
func NewScaledClock(start time.Time, factor float64) *ScaledClock {
	if factor <= 0 {
		factor = 1
	}
	return &ScaledClock{Start: start, Factor: factor, origin: time.Now()}
}

// Now is Start plus the scaled real time since the clock was made.
func (c *ScaledClock) Now() time.Time {
	return c.Start.Add(time.Duration(float64(time.Since(c.origin)) * c.Factor))
}

// Sleep waits d/Factor of real time.
func (c *ScaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleepReal(ctx, time.Duration(float64(d)/c.Factor))
}

// FakeClock is virtual time: it stands still until Advance moves it, and a Sleep ends when
// Advance reaches its end. Safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	changed chan struct{} // closed and replaced whenever the set of waiters changes
}

type fakeWaiter struct {
	until time.Time
	done  chan struct{}
}

// NewFakeClock returns a FakeClock standing at now.
func NewFakeClock(now time.Time) *FakeClock {
	return &FakeClock{now: now, changed: make(chan struct{})}
}

// Now returns the virtual time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep waits until Advance has moved the clock by d.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	if d <= 0 {
		c.mu.Unlock()
		return ctx.Err()
	}
	w := &fakeWaiter{until: c.now.Add(d), done: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.notifyLocked()
	c.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		for i, x := range c.waiters {
			if x == w {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				break
			}
		}
		c.notifyLocked()
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock by d and wakes every Sleep that ends by then.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.until.After(c.now) {
			kept = append(kept, w)
			continue
		}
		close(w.done)
	}
	c.waiters = kept
	c.notifyLocked()
}

// WaitForSleepers blocks until at least n Sleeps are pending, so that a test advances the
// clock only once the goroutines it drives are waiting on it. It returns ctx.Err() if ctx
// ends first.
func (c *FakeClock) WaitForSleepers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		have, changed := len(c.waiters), c.changed
		c.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sleepers returns how many Sleeps are pending.
func (c *FakeClock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
