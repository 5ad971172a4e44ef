// Package fault decides, repeatably, which requests the local cloud answers badly: injected
// error codes, latency, dropped connections, attach rollbacks and service outages.
//
// Decisions are a pure function of the plan's seed, the service, the action and how many
// times that action was called before, so the n-th AttachNetworkInterface of a run meets the
// same fate every time the run is repeated with the same seed, whatever other actions do in
// between.
package fault

import (
	"fmt"
	"hash/fnv"
	"sync"
	"time"
)

// Plan is a fault schedule. The zero Plan injects nothing.
type Plan struct {
	// Seed makes the schedule repeatable; runs with equal seeds and call orders match.
	Seed int64 `json:"seed" yaml:"seed"`
	// Errors answer a share of calls with an error, or drop the connection.
	Errors []Rule `json:"errors,omitempty" yaml:"errors,omitempty"`
	// Latency delays calls before they are served.
	Latency []Latency `json:"latency,omitempty" yaml:"latency,omitempty"`
	// Outages make a service unavailable for a window of time.
	Outages []Outage `json:"outages,omitempty" yaml:"outages,omitempty"`
	// AttachRollback is the share of accepted attaches that later fall back to Available
	// instead of reaching InUse, as ECS does when an attach fails after being accepted.
	AttachRollback float64 `json:"attachRollback,omitempty" yaml:"attachRollback,omitempty"`
	// AttachRollbackLimit stops rollbacks after this many; 0 means no limit.
	AttachRollbackLimit int `json:"attachRollbackLimit,omitempty" yaml:"attachRollbackLimit,omitempty"`
}

// Rule injects an error into a share of calls. Empty Service or Action match any.
type Rule struct {
	Service    string  `json:"service,omitempty" yaml:"service,omitempty"`
	Action     string  `json:"action,omitempty" yaml:"action,omitempty"`
	Rate       float64 `json:"rate" yaml:"rate"`
	Code       string  `json:"code,omitempty" yaml:"code,omitempty"`
	HTTPStatus int     `json:"httpStatus,omitempty" yaml:"httpStatus,omitempty"`
	Message    string  `json:"message,omitempty" yaml:"message,omitempty"`
	// Reset drops the connection without an answer instead of answering with Code.
	Reset bool `json:"reset,omitempty" yaml:"reset,omitempty"`
	// Limit stops the rule after it has fired this many times; 0 means no limit. With Rate
	// 1 it makes "the first N calls fail" exact.
	Limit int `json:"limit,omitempty" yaml:"limit,omitempty"`
}

// Latency delays matching calls by Base plus a uniform draw in [0, Jitter), and with
// probability SpikeRate by Spike more, which gives a tail.
type Latency struct {
	Service   string   `json:"service,omitempty" yaml:"service,omitempty"`
	Action    string   `json:"action,omitempty" yaml:"action,omitempty"`
	Base      Duration `json:"base" yaml:"base"`
	Jitter    Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
	SpikeRate float64  `json:"spikeRate,omitempty" yaml:"spikeRate,omitempty"`
	Spike     Duration `json:"spike,omitempty" yaml:"spike,omitempty"`
}

// Outage makes Service answer every call with an unavailability error from Start to End,
// both measured from when the Injector was created (or from Injector.StartOutage).
type Outage struct {
	Service string   `json:"service" yaml:"service"`
	Start   Duration `json:"start" yaml:"start"`
	End     Duration `json:"end" yaml:"end"`
}

// Decision is what to do to one call.
type Decision struct {
	Delay  time.Duration
	Error  *Rule // non-nil: answer with this error (or drop the connection when Error.Reset)
	Outage bool  // the service is in an outage window
}

// Injector applies a Plan. It is safe for concurrent use.
type Injector struct {
	now   func() time.Time
	start time.Time

	mu     sync.Mutex
	plan   Plan
	counts map[string]uint64
	fired  map[int]int // rule index -> times fired, for Limit
	rolled int
	extra  []window
}

type window struct {
	service    string
	start, end time.Time
}

// New returns an Injector for plan. now is the clock; nil means time.Now.
func New(plan Plan, now func() time.Time) *Injector {
	if now == nil {
		now = time.Now
	}
	return &Injector{now: now, start: now(), plan: plan, counts: make(map[string]uint64), fired: make(map[int]int)}
}

// SetPlan replaces the plan; call counts carry on, so a run stays repeatable when a test
// changes the plan at the same point. The new plan's limits count from zero.
func (in *Injector) SetPlan(p Plan) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.plan = p
	in.fired = make(map[int]int)
	in.rolled = 0
}

// Plan returns the current plan.
func (in *Injector) Plan() Plan {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.plan
}

// StartOutage makes service unavailable from now for d.
func (in *Injector) StartOutage(service string, d time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.now()
	in.extra = append(in.extra, window{service: service, start: now, end: now.Add(d)})
}

// EndOutages ends every outage of service started with StartOutage.
func (in *Injector) EndOutages(service string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	kept := in.extra[:0]
	for _, w := range in.extra {
		if w.service != service {
			kept = append(kept, w)
		}
	}
	in.extra = kept
}

// Decide says what happens to the next call of service/action, and counts it.
func (in *Injector) Decide(service, action string) Decision {
	in.mu.Lock()
	defer in.mu.Unlock()
	key := service + "/" + action
	n := in.counts[key]
	in.counts[key] = n + 1

	var d Decision
	now := in.now()
	for _, o := range in.plan.Outages {
		if o.Service == service && !now.Before(in.start.Add(o.Start.D())) && now.Before(in.start.Add(o.End.D())) {
			d.Outage = true
		}
	}
	for _, w := range in.extra {
		if w.service == service && !now.Before(w.start) && now.Before(w.end) {
			d.Outage = true
		}
	}
	for i, l := range in.plan.Latency {
		if !matches(l.Service, l.Action, service, action) {
			continue
		}
		d.Delay += l.Base.D()
		if l.Jitter > 0 {
			d.Delay += time.Duration(in.draw(key, n, "jitter", i) * float64(l.Jitter))
		}
		if l.SpikeRate > 0 && in.draw(key, n, "spike", i) < l.SpikeRate {
			d.Delay += l.Spike.D()
		}
	}
	for i := range in.plan.Errors {
		r := &in.plan.Errors[i]
		if r.Limit > 0 && in.fired[i] >= r.Limit {
			continue
		}
		if matches(r.Service, r.Action, service, action) && in.draw(key, n, "error", i) < r.Rate {
			in.fired[i]++
			rule := *r
			d.Error = &rule
			break
		}
	}
	return d
}

// RollbackAttach says whether the next accepted attach rolls back to Available.
func (in *Injector) RollbackAttach() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	const key = "ecs/attach-rollback"
	n := in.counts[key]
	in.counts[key] = n + 1
	if in.plan.AttachRollbackLimit > 0 && in.rolled >= in.plan.AttachRollbackLimit {
		return false
	}
	if in.plan.AttachRollback > 0 && in.draw(key, n, "rollback", 0) < in.plan.AttachRollback {
		in.rolled++
		return true
	}
	return false
}

func matches(ruleService, ruleAction, service, action string) bool {
	return (ruleService == "" || ruleService == service) && (ruleAction == "" || ruleAction == action)
}

// draw returns a uniform number in [0, 1) determined by the seed, the call and the purpose.
func (in *Injector) draw(key string, n uint64, purpose string, i int) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d|%s|%d", in.plan.Seed, key, n, purpose, i)
	x := splitmix64(h.Sum64())
	return float64(x>>11) / (1 << 53)
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Duration is a time.Duration written as a Go duration string ("20ms", "1.5s") in JSON and
// YAML world files.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("fault: duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}
