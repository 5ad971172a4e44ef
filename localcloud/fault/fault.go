// Package fault decides, repeatably, which requests the local cloud answers badly: injected
// error codes, latency, dropped connections, attach rollbacks and service outages.
//
// Decisions are a pure function of the plan's seed, the service, the action and how many
// times that action was called before, so the n-th AttachNetworkInterface of a run meets the
// same fate every time the run is repeated with the same seed, whatever other actions do in
// between.
//
// # Realism
//
// Besides failures before the action, a plan can make the cloud as demanding as
// production, each knob off when absent:
//
//   - staleness: reads served from a view lagging the writes by a lag drawn per call,
//     uniform in [0, max] (Decision.Lag). ECS documents asynchronous ENI states and asks
//     callers to poll DescribeNetworkInterfaceAttribute
//     (https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-detachnetworkinterface);
//     it does not document how far a describe may lag. The bound and the uniform draw are
//     an assumption. Services count the reads whose answer differed from the current
//     state's (CountStaleRead).
//   - afterAction: the action is applied, then its answer is lost as a reset, an error
//     or a timeout (DecideAfter). Alibaba's SDKs retry on such failures and its APIs offer
//     ClientToken idempotency because of them
//     (https://www.alibabacloud.com/help/en/ecs/developer-reference/how-to-ensure-idempotence);
//     rates and holds are an assumption.
//   - responseLatency: latency on the way back, after the action was served (or refused:
//     a throttled or failed call's answer travels back too), besides the request latency
//     paid before it (Decision.ResponseDelay). Assumption in its figures.
//   - Spread: log-normal durations given median and p99, for attach and detach times
//     (world timing.attachSpread). The shape and figures are an assumption: no public
//     source gives ECS attach-time percentiles.
//
// Stats counts stale reads and lost answers, by service and action, for scenario and soak
// reports.
package fault

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
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
	// Staleness serves a share of reads from a view that lags the writes.
	Staleness []Staleness `json:"staleness,omitempty" yaml:"staleness,omitempty"`
	// AfterAction loses the answer of a share of calls whose action was applied.
	AfterAction []AfterRule `json:"afterAction,omitempty" yaml:"afterAction,omitempty"`
	// ResponseLatency delays answers after the action was served, as Latency delays
	// requests before it.
	ResponseLatency []Latency `json:"responseLatency,omitempty" yaml:"responseLatency,omitempty"`
}

// Staleness makes matching reads lag the writes: each call draws a lag uniform in
// [0, Max] and is served the state as it was that long ago, with probability Rate (0
// means every call). Empty Service or Action match any; services apply it to their read
// actions only.
type Staleness struct {
	Service string   `json:"service,omitempty" yaml:"service,omitempty"`
	Action  string   `json:"action,omitempty" yaml:"action,omitempty"`
	Max     Duration `json:"max" yaml:"max"`
	Rate    float64  `json:"rate,omitempty" yaml:"rate,omitempty"`
}

// After-action fault kinds.
const (
	// AfterReset drops the connection with a TCP RST instead of the answer.
	AfterReset = "reset"
	// AfterError answers an error (5xx by default) instead of the success.
	AfterError = "error"
	// AfterTimeout holds the answer for Hold (or until the client gives up), then drops
	// the connection.
	AfterTimeout = "timeout"
)

// AfterRule loses the answer of a share of applied calls: the action has taken effect
// (the attach started, the message is enqueued), then the client gets a reset, an error or
// nothing at all. Empty Service or Action match any.
type AfterRule struct {
	Service string  `json:"service,omitempty" yaml:"service,omitempty"`
	Action  string  `json:"action,omitempty" yaml:"action,omitempty"`
	Rate    float64 `json:"rate" yaml:"rate"`
	// Kind is reset, error or timeout.
	Kind string `json:"kind" yaml:"kind"`
	// Code, HTTPStatus and Message make the error of kind error [ServiceUnavailable 503].
	Code       string `json:"code,omitempty" yaml:"code,omitempty"`
	HTTPStatus int    `json:"httpStatus,omitempty" yaml:"httpStatus,omitempty"`
	Message    string `json:"message,omitempty" yaml:"message,omitempty"`
	// Hold is how long kind timeout keeps the client waiting before dropping the
	// connection; the client giving up ends it sooner [DefaultHold].
	Hold Duration `json:"hold,omitempty" yaml:"hold,omitempty"`
	// Limit stops the rule after it has fired this many times; 0 means no limit.
	Limit int `json:"limit,omitempty" yaml:"limit,omitempty"`
}

// DefaultHold is how long an after-action timeout holds the answer when the rule sets no
// Hold: longer than the SDKs' default read timeouts (10 s for alibaba-cloud-sdk-go ECS
// calls), so the client times out first.
const DefaultHold = 30 * time.Second

// HoldFor is the rule's Hold, or DefaultHold.
func (r AfterRule) HoldFor() time.Duration {
	if r.Hold > 0 {
		return r.Hold.D()
	}
	return DefaultHold
}

// MaxStaleness is the longest lag any staleness rule of the plan may draw.
func (p Plan) MaxStaleness() time.Duration {
	var m time.Duration
	for _, s := range p.Staleness {
		m = max(m, s.Max.D())
	}
	return m
}

// Problems checks the plan and returns one error per bad field, each message starting
// with the field's path inside the plan ("staleness[0].max: ...").
func (p Plan) Problems() []error {
	var out []error
	add := func(path, format string, args ...any) {
		out = append(out, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	rate := func(path string, r float64) {
		if r < 0 || r > 1 {
			add(path, "must be in [0, 1], got %v", r)
		}
	}
	for i, r := range p.Errors {
		rate(fmt.Sprintf("errors[%d].rate", i), r.Rate)
	}
	lat := func(name string, ls []Latency) {
		for i, l := range ls {
			if l.Base < 0 || l.Jitter < 0 || l.Spike < 0 {
				add(fmt.Sprintf("%s[%d]", name, i), "durations must not be negative")
			}
			rate(fmt.Sprintf("%s[%d].spikeRate", name, i), l.SpikeRate)
		}
	}
	lat("latency", p.Latency)
	lat("responseLatency", p.ResponseLatency)
	rate("attachRollback", p.AttachRollback)
	for i, s := range p.Staleness {
		if s.Max <= 0 {
			add(fmt.Sprintf("staleness[%d].max", i), "must be a positive duration")
		}
		rate(fmt.Sprintf("staleness[%d].rate", i), s.Rate)
	}
	for i, r := range p.AfterAction {
		path := fmt.Sprintf("afterAction[%d]", i)
		rate(path+".rate", r.Rate)
		switch r.Kind {
		case AfterReset, AfterTimeout:
		case AfterError:
			if r.HTTPStatus != 0 && (r.HTTPStatus < 400 || r.HTTPStatus > 599) {
				add(path+".httpStatus", "must be an error status (4xx or 5xx), got %d", r.HTTPStatus)
			}
		default:
			add(path+".kind", "must be reset, error or timeout, got %q", r.Kind)
		}
		if r.Hold < 0 {
			add(path+".hold", "must not be negative")
		}
		if r.Limit < 0 {
			add(path+".limit", "must not be negative")
		}
	}
	return out
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
	// Lag is how far behind the writes a read is served; 0 means the current state.
	Lag time.Duration
	// ResponseDelay delays the answer once the action has been served.
	ResponseDelay time.Duration
}

// Injector applies a Plan. It is safe for concurrent use.
type Injector struct {
	now   func() time.Time
	start time.Time

	mu         sync.Mutex
	plan       Plan
	counts     map[string]uint64
	fired      map[int]int // rule index -> times fired, for Limit
	afterFired map[int]int // after-action rule index -> times fired, for Limit
	rolled     int
	extra      []window
	stats      Stats
}

// Stats counts what the realism knobs did to a run, for scenario and soak reports.
type Stats struct {
	// StaleReads counts reads whose answer differed from what the current state would
	// have given, because they were served from a lagging view.
	StaleReads int `json:"staleReads"`
	// FaultsAfterAction counts applied calls whose answer was lost.
	FaultsAfterAction int `json:"faultsAfterAction"`
	// StaleReadsBy counts stale reads by "service/action".
	StaleReadsBy map[string]int `json:"staleReadsBy,omitempty"`
	// FaultsAfterActionBy counts lost answers by "service/action/kind".
	FaultsAfterActionBy map[string]int `json:"faultsAfterActionBy,omitempty"`
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
	return &Injector{now: now, start: now(), plan: plan, counts: make(map[string]uint64), fired: make(map[int]int),
		afterFired: make(map[int]int)}
}

// Stats returns what the injector counted so far.
func (in *Injector) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.stats
	s.StaleReadsBy = maps.Clone(s.StaleReadsBy)
	s.FaultsAfterActionBy = maps.Clone(s.FaultsAfterActionBy)
	return s
}

// CountStaleRead records that a read of service/action was answered from a view older
// than the truth. Services call it when the lagging answer differs from the current one.
func (in *Injector) CountStaleRead(service, action string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stats.StaleReads++
	if in.stats.StaleReadsBy == nil {
		in.stats.StaleReadsBy = map[string]int{}
	}
	in.stats.StaleReadsBy[service+"/"+action]++
}

// DecideAfter says whether the answer of a call of service/action whose action was
// applied is lost, and how; nil means answer normally. It counts the applied calls of each
// action apart from Decide's, so the n-th applied AttachNetworkInterface meets the same
// fate in every run with the same seed, and it counts every fault it returns in Stats:
// call it only once the action has taken effect, and act on what it returns.
func (in *Injector) DecideAfter(service, action string) *AfterRule {
	in.mu.Lock()
	defer in.mu.Unlock()
	key := service + "/" + action
	n := in.counts[key+"#applied"]
	in.counts[key+"#applied"] = n + 1
	for i := range in.plan.AfterAction {
		r := &in.plan.AfterAction[i]
		if r.Limit > 0 && in.afterFired[i] >= r.Limit {
			continue
		}
		if matches(r.Service, r.Action, service, action) && in.draw(key, n, "after", i) < r.Rate {
			in.afterFired[i]++
			in.stats.FaultsAfterAction++
			if in.stats.FaultsAfterActionBy == nil {
				in.stats.FaultsAfterActionBy = map[string]int{}
			}
			in.stats.FaultsAfterActionBy[key+"/"+r.Kind]++
			rule := *r
			return &rule
		}
	}
	return nil
}

// SetPlan replaces the plan; call counts carry on, so a run stays repeatable when a test
// changes the plan at the same point. The new plan's limits count from zero.
func (in *Injector) SetPlan(p Plan) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.plan = p
	in.fired = make(map[int]int)
	in.afterFired = make(map[int]int)
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
		if matches(l.Service, l.Action, service, action) {
			d.Delay += in.latency(l, key, n, "", i)
		}
	}
	for i, l := range in.plan.ResponseLatency {
		if matches(l.Service, l.Action, service, action) {
			d.ResponseDelay += in.latency(l, key, n, "response", i)
		}
	}
	for i, s := range in.plan.Staleness {
		if !matches(s.Service, s.Action, service, action) || s.Max <= 0 {
			continue
		}
		if s.Rate > 0 && in.draw(key, n, "stale-rate", i) >= s.Rate {
			continue
		}
		// The first matching rule decides, as for errors.
		d.Lag = time.Duration(in.draw(key, n, "stale", i) * float64(s.Max))
		break
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

// latency draws one call's delay from l. phase keeps request and response draws apart;
// it is empty for the request half, so existing schedules are unchanged.
func (in *Injector) latency(l Latency, key string, n uint64, phase string, i int) time.Duration {
	d := l.Base.D()
	if l.Jitter > 0 {
		d += time.Duration(in.draw(key, n, phase+"jitter", i) * float64(l.Jitter))
	}
	if l.SpikeRate > 0 && in.draw(key, n, phase+"spike", i) < l.SpikeRate {
		d += l.Spike.D()
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
	return Uniform(in.plan.Seed, fmt.Sprintf("%s|%d|%s|%d", key, n, purpose, i))
}

// Uniform returns a number in [0, 1) that depends only on seed and key: the building block
// of every seeded decision, for packages that draw their own (attach durations).
func Uniform(seed int64, key string) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s", seed, key)
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

// Spread is a log-normal distribution of durations given by its median and its 99th
// percentile, the shape of a process that is usually quick with a long tail. P99 equal to
// Median (or unset) means every draw is Median. Max, when set, caps the draws so a world
// cannot produce an absurd outlier.
type Spread struct {
	Median Duration `json:"median" yaml:"median"`
	P99    Duration `json:"p99,omitempty" yaml:"p99,omitempty"`
	Max    Duration `json:"max,omitempty" yaml:"max,omitempty"`
}

// z99 is the standard normal quantile of 0.99.
const z99 = 2.3263478740408408

// IsZero reports whether the spread is unset.
func (s Spread) IsZero() bool { return s.Median == 0 && s.P99 == 0 && s.Max == 0 }

// Quantile returns the duration at probability u in [0, 1): the inverse of the
// distribution function, so a uniform u gives a log-normal draw.
func (s Spread) Quantile(u float64) time.Duration {
	m := float64(s.Median)
	if m <= 0 {
		return 0
	}
	d := m
	if s.P99 > s.Median {
		sigma := math.Log(float64(s.P99)/m) / z99
		// Keep u off 0 so Erfinv stays finite; 1e-12 is far below any tail a run can see.
		u = min(max(u, 1e-12), 1-1e-12)
		d = m * math.Exp(sigma*math.Sqrt2*math.Erfinv(2*u-1))
	}
	if s.Max > 0 {
		d = min(d, float64(s.Max))
	}
	return time.Duration(d)
}

// Problems checks the spread; paths are relative to it ("p99: ...").
func (s Spread) Problems() []error {
	var out []error
	switch {
	case s.Median <= 0:
		out = append(out, errors.New("median: must be a positive duration"))
	case s.P99 != 0 && s.P99 < s.Median:
		out = append(out, errors.New("p99: must not be below the median"))
	case s.Max != 0 && s.Max < s.Median:
		out = append(out, errors.New("max: must not be below the median"))
	}
	return out
}
