package engine

import (
	"sync"
	"time"

	"github.com/enipool/enipool/clock"
)

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
	instance  string
	at, until time.Time
}

func newClaims(ttl time.Duration, clk clock.Clock) *claims {
	return &claims{ttl: ttl, m: make(map[string]claim), clock: clk}
}

// take claims eni for instance unless another instance holds a live claim on it. A claim
// taken before freeAsOf is not live: a read that shows the world after it shows the ENI
// Available, so whatever the claimant did with it is over (rolled back, detached, or never
// sent), and FC runs one invocation at a time per instance, so the claimant's run has
// usually ended (sim seed 4248: a released ENI stayed blocked for a minute).
func (c *claims) take(eni, instance string, freeAsOf time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if cl, ok := c.m[eni]; ok && cl.instance != instance && now.Before(cl.until) && !cl.at.Before(freeAsOf) {
		return false
	}
	if len(c.m) > 4096 {
		for id, cl := range c.m {
			if !now.Before(cl.until) {
				delete(c.m, id)
			}
		}
	}
	c.m[eni] = claim{instance: instance, at: now, until: now.Add(c.ttl)}
	return true
}

// forget drops any claim on eni, whoever holds it: the ENI went back to the pool.
func (c *claims) forget(eni string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, eni)
}

// unclaim drops instance's claim on eni.
func (c *claims) unclaim(eni, instance string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[eni]; ok && cl.instance == instance {
		delete(c.m, eni)
	}
}
