package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// Calls that do not complete are tried maxTransportTries times, not until the deadline (an
// unreachable endpoint must not hold an invocation to its end); throttling, which the service
// answers, is retried until the call succeeds or the deadline comes.
func TestRetryBoundsTransportFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tries := 0
	unreached := &cloud.APIError{Service: "ecs", API: "DescribeInstances", Err: errors.New("connection reset by peer")}
	err := Retry(ctx, clock.Real(), func(context.Context) error { tries++; return unreached })
	if !errors.Is(err, unreached.Err) || tries != maxTransportTries {
		t.Fatalf("%d tries, error %v; want %d tries and the transport error", tries, err, maxTransportTries)
	}
	tries = 0
	throttled := &cloud.APIError{Service: "ecs", API: "DescribeInstances", Code: "Throttling", HTTPStatus: 400}
	err = Retry(ctx, clock.Real(), func(context.Context) error {
		if tries++; tries <= maxTransportTries+1 {
			return throttled
		}
		return nil
	})
	if err != nil || tries != maxTransportTries+2 {
		t.Fatalf("throttled: %d tries, error %v; want success after %d", tries, err, maxTransportTries+2)
	}
}

// TestBackoffJitter checks the two jitters' ranges over many draws. Full jitter is what spreads
// the retries of function instances that ECS throttled at the same moment: with retry's
// half-to-all jitter their next attempts fell within a factor of two of each other, and in the
// simulated 500-launch burst (make burst, adaptive) 1.41 calls were throttled per attach
// against 1.00 with full jitter (seeds 1-3).
func TestBackoffJitter(t *testing.T) {
	const draws = 400
	tests := []struct {
		name     string
		b        backoff
		lo, hi   time.Duration // every draw of the nth delay in [lo·2^n, hi·2^n]
		spanning bool          // the draws reach within 10% of both ends
	}{
		{"half to all", backoff{base: 200 * time.Millisecond, max: 3 * time.Second}, 100 * time.Millisecond, 200 * time.Millisecond, true},
		{"full", backoff{base: throttleBase, max: throttleMax, full: true}, 0, throttleBase, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for n := range 3 {
				lo, hi := tt.lo<<n, tt.hi<<n
				least, most := hi, lo
				for range draws {
					b := tt.b
					b.n = n
					d := b.next()
					if d < lo || d > hi {
						t.Fatalf("delay %d: %v outside [%v, %v]", n, d, lo, hi)
					}
					least, most = min(least, d), max(most, d)
				}
				if span := hi - lo; tt.spanning && (least > lo+span/10 || most < hi-span/10) {
					t.Errorf("delay %d: draws in [%v, %v] do not span [%v, %v]", n, least, most, lo, hi)
				}
			}
		})
	}
}
