package rpc

import (
	"sync"
	"time"

	"github.com/enipool/enipool/localcloud/world"
)

// Limiter enforces per-action rate limits with token buckets, one bucket per
// (service, action, account), as ECS throttles per API and account. Rules come from the
// world's throttling list; the first rule matching a call applies, and a call no rule
// matches is never throttled. It is safe for concurrent use; share one Limiter between
// services.
type Limiter struct {
	rules []world.Throttle

	mu      sync.Mutex
	buckets map[[3]string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a Limiter for rules.
func NewLimiter(rules []world.Throttle) *Limiter {
	return &Limiter{rules: rules, buckets: map[[3]string]*bucket{}}
}

// Allow takes a token for one call and reports whether there was one.
func (l *Limiter) Allow(service, action, account string, now time.Time) bool {
	if l == nil {
		return true
	}
	var rule *world.Throttle
	for i := range l.rules {
		r := &l.rules[i]
		if (r.Service == "" || r.Service == service) && (r.Action == "" || r.Action == action) {
			rule = r
			break
		}
	}
	if rule == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [3]string{service, action, account}
	b := l.buckets[k]
	if b == nil {
		b = &bucket{tokens: float64(rule.Burst), last: now}
		l.buckets[k] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(float64(rule.Burst), b.tokens+dt*rule.QPS)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
