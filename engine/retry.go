package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// backoff yields capped exponential delays, jittered: by default each delay is between half
// and all of base·2^n; with full it is anywhere from 0 to base·2^n.
type backoff struct {
	base, max time.Duration
	full      bool
	n         int
}

func (b *backoff) next() time.Duration {
	d := b.base << min(b.n, 20)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	if b.full {
		return rand.N(d + 1)
	}
	return d/2 + rand.N(d/2+1)
}

// maxTransportTries bounds the calls retry makes that do not complete (timeouts, resets,
// refused connections): an endpoint that cannot be reached does not hold the invocation to
// its deadline. Throttling and 5xx answers are retried until the deadline: the service is
// there and says when to come back.
const maxTransportTries = 4

// Retry runs fn until it succeeds, fails with an error that is not transient (see
// Classify), fails to complete maxTransportTries times, or ctx ends; it then returns fn's
// last error. Transient errors back off, capped and jittered.
func Retry(ctx context.Context, clk clock.Clock, fn func(context.Context) error) error {
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
