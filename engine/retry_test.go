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
