package trigger

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFakeClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFakeClock(start)
	ctx := ctxT(t)
	woke := make(chan time.Duration, 2)
	for _, d := range []time.Duration{time.Second, 3 * time.Second} {
		go func() {
			if c.Sleep(ctx, d) == nil {
				woke <- d
			}
		}()
	}
	if err := c.WaitForSleepers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Second)
	if got := <-woke; got != time.Second {
		t.Fatalf("woke the %v sleep, want the 1s one", got)
	}
	if c.Sleepers() != 1 {
		t.Fatalf("%d sleepers, want the 3s one left", c.Sleepers())
	}
	c.Advance(time.Second)
	if got := <-woke; got != 3*time.Second {
		t.Fatalf("woke %v, want 3s", got)
	}
	if !c.Now().Equal(start.Add(3 * time.Second)) {
		t.Errorf("Now %v", c.Now())
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- c.Sleep(cctx, time.Hour) }()
	if err := c.WaitForSleepers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Sleep = %v", err)
	}
	if c.Sleepers() != 0 {
		t.Errorf("a canceled Sleep stays registered")
	}
}

func TestScaledClock(t *testing.T) {
	c := NewScaledClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1000)
	begin := time.Now()
	if err := c.Sleep(ctxT(t), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if real := time.Since(begin); real > 2*time.Second {
		t.Errorf("a 10 s sleep at 1000x took %v", real)
	}
	if elapsed := c.Now().Sub(c.Start); elapsed < 10*time.Second {
		t.Errorf("the clock moved %v, want at least 10 s", elapsed)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Sleep = %v", err)
	}
}
