// Package clock is the one clock of the engine and the handler: every wait, deadline and
// timestamp goes through a Clock, so that a test or a simulation decides what time it is.
// Only Real (and main.go, and the SDK adapters) read the system clock.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d, or until ctx is done. It returns nil once d has passed, and ctx's
	// error when ctx ends first (at once when d <= 0 and ctx has ended).
	Sleep(ctx context.Context, d time.Duration) error
}

// Real returns the system clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Deadline returns ctx bounded to d from c's now: context.WithTimeout on the injected clock.
func Deadline(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, c.Now().Add(d))
}

// Left returns how long ctx has before its deadline, and false when it has none. It is
// measured on the clock ctx's timers run on (the system's, or a synctest bubble's virtual
// time), not on an injected Clock, whose calendar may be shifted (the simulation's is): only
// a duration to a context's deadline means the same on both.
func Left(ctx context.Context) (time.Duration, bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return time.Until(d), true
}
