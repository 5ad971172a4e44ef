package handler

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/engine"
)

// Options configure a Handler. The config package fills them from the environment.
type Options struct {
	// TagKey is the pool tag's key: an ENI tagged TagKey=<name> is in pool <name>, and an
	// instance tagged TagKey=<name> asks for an ENI of pool <name>.
	TagKey string
	// Pools are the pool tag values this deployment serves: an instance tagged with another
	// value is skipped (CodeNotEligible) and an ENI of another pool is never touched. Empty
	// means any value (the RAM policy then cannot pin the pools either).
	Pools []string
	// PerInstance is how many pool ENIs each instance should hold (N).
	PerInstance int
	// Region is used when neither the event nor the platform names one.
	Region string
	// AttachTime is the first guess of how long an attach takes; the handler learns the
	// real figure as it confirms attaches and polls when an attach is expected to be done.
	AttachTime time.Duration
	// DeadLetterReserve is kept free at the end of the invocation deadline for sending dead
	// letters and completing lifecycle actions.
	DeadLetterReserve time.Duration
	// DefaultTimeout bounds an invocation whose context has no deadline (local runs).
	DefaultTimeout time.Duration
	// PlatformRetries is how often the platform retries a failed asynchronous invocation
	// (the asyncInvokeConfig's maxAsyncRetryAttempts). On the last one, the handler
	// dead-letters transient failures itself instead of returning an error, so the dead
	// letter carries its own reason.
	PlatformRetries int
	// Concurrency bounds the ECS calls one invocation makes at once.
	Concurrency int
	// RateControl is how this process paces its ECS calls: engine.RateAdaptive (each API
	// slows down at ECS's Throttling answers and speeds up again while calls go through) or
	// engine.RateFixed (AttachQPS only). Empty means adaptive.
	RateControl engine.RateControl
	// AttachQPS is, under adaptive rate control, the most AttachNetworkInterface calls per
	// second this process ever sends (0: no ceiling); under fixed rate control, the rate it
	// sends them at (0: not paced). ECS throttles per account and region.
	AttachQPS float64
	// StoppedOnlyFamilies are instance type families whose instances must be Stopped for an
	// ENI attach (shared and burstable families).
	StoppedOnlyFamilies []string
	// ReleaseOn are the ECS states whose events send an instance's pool ENIs back to the pool
	// ("Stopped", "Deleted").
	ReleaseOn []string
	// StaleReadBound is how long ECS reads may lag its writes: an accepted attach whose ENI
	// still reads Available is taken for rolled back only after this long.
	StaleReadBound time.Duration
	// DetachTime is the first guess of how long a detach takes (learned like AttachTime).
	DetachTime time.Duration
	// LifecycleFailureResult is how a scale-out lifecycle action is completed when an
	// instance could not get its ENIs: "ABANDON" (Auto Scaling replaces the instance) or
	// "CONTINUE".
	LifecycleFailureResult string
	// ScalingGroups, when not empty, are the only Auto Scaling groups whose lifecycle
	// actions enipool acts on and completes; a lifecycle notification of any other group
	// is refused (CodeLifecycleUnverified). Empty means any group.
	ScalingGroups []string
	// LifecycleHeartbeat is the timeout a heartbeat asks for when lifecycle work goes back to
	// the platform for a retry, so the hook does not expire meanwhile.
	LifecycleHeartbeat time.Duration
	// LowWatermark: a pool's zone with fewer Available ENIs than this is reported with a
	// warning.
	LowWatermark int
	// Warm keeps a minimum of Available ENIs per zone in one pool (optional).
	Warm engine.WarmOptions
	// RedriveMax bounds the dead letters one redrive handles, unless the action says.
	RedriveMax int
	// ReconcileMax bounds the instances one reconcile looks at, unless the action says.
	ReconcileMax int
	// ReconcileInterval is how often the reconcile timer fires. A fleet larger than
	// ReconcileMax is reconciled a window at a time, runs one interval apart taking
	// consecutive windows.
	ReconcileInterval time.Duration
	// MaxCalls bounds the ECS calls of one invocation (0: no bound; the pages of one
	// describe count as one). A call beyond it fails with enipool.CallBudgetExceeded, and its
	// event is dead-lettered for a later redrive.
	MaxCalls int
	// MaxDeadLetters bounds the dead letters one invocation sends. Beyond it, the dead
	// letters of one carrier message are folded into one that holds the whole message, and
	// the messages past the bound share one letter holding their raw events as a JSON array
	// (one more per 64 KiB they take beyond one message; see letters).
	MaxDeadLetters int
	// Logger receives one JSON line per outcome. Nil discards.
	Logger *slog.Logger
	// Clock is the clock of every wait, deadline and timestamp; nil means clock.Real().
	Clock clock.Clock
}

// Serves reports whether the deployment serves pool (any pool when Pools is empty).
func (o Options) Serves(pool string) bool {
	return pool != "" && (len(o.Pools) == 0 || slices.Contains(o.Pools, pool))
}

// engineConfig is the part of the options the engine works by.
func (o Options) engineConfig(log *slog.Logger) engine.Config {
	return engine.Config{
		TagKey:              o.TagKey,
		Pools:               o.Pools,
		PerInstance:         o.PerInstance,
		AttachTime:          o.AttachTime,
		DetachTime:          o.DetachTime,
		Concurrency:         o.Concurrency,
		AttachQPS:           o.AttachQPS,
		RateControl:         o.RateControl,
		StoppedOnlyFamilies: o.StoppedOnlyFamilies,
		ReleaseOn:           o.ReleaseOn,
		StaleReadBound:      o.StaleReadBound,
		LowWatermark:        o.LowWatermark,
		Warm:                o.Warm,
		ReconcileInterval:   o.ReconcileInterval,
		Clock:               o.Clock,
		Logger:              log,
	}
}

// DefaultStoppedOnlyFamilies are the shared and burstable families (ECS docs "Shared instance
// families" and "Burstable instance overview") whose instances must be Stopped to take an ENI.
func DefaultStoppedOnlyFamilies() []string {
	return []string{"ecs.t5", "ecs.t6", "ecs.s6", "ecs.xn4", "ecs.n4", "ecs.mn4", "ecs.e4", "ecs.n1", "ecs.n2", "ecs.e3"}
}

// DefaultOptions returns the defaults the config package starts from.
func DefaultOptions() Options {
	return Options{
		TagKey:                 "enipool",
		PerInstance:            1,
		AttachTime:             2 * time.Second,
		DeadLetterReserve:      3 * time.Second,
		DefaultTimeout:         60 * time.Second,
		PlatformRetries:        2,
		Concurrency:            16,
		RateControl:            engine.RateAdaptive,
		StoppedOnlyFamilies:    DefaultStoppedOnlyFamilies(),
		ReleaseOn:              []string{"Stopped", "Deleted"},
		DetachTime:             2 * time.Second,
		StaleReadBound:         5 * time.Second,
		LifecycleFailureResult: "ABANDON",
		LifecycleHeartbeat:     300 * time.Second,
		LowWatermark:           2,
		Warm:                   engine.WarmOptions{Grace: 10 * time.Minute},
		RedriveMax:             10,
		ReconcileMax:           200,
		ReconcileInterval:      5 * time.Minute,
		MaxCalls:               3000,
		MaxDeadLetters:         50,
	}
}

// Validate reports the first invalid option.
func (o Options) Validate() error {
	var errs []error
	if strings.TrimSpace(o.TagKey) == "" {
		errs = append(errs, errors.New("TagKey is empty"))
	}
	for _, p := range o.Pools {
		if strings.TrimSpace(p) == "" || strings.ContainsAny(p, "*?,") {
			errs = append(errs, fmt.Errorf("pool %q: want a tag value without *, ? or a comma", p))
		}
	}
	if o.Warm.Pool != "" && !o.Serves(o.Warm.Pool) {
		errs = append(errs, fmt.Errorf("the warm pool %q is not among the pools served %v", o.Warm.Pool, o.Pools))
	}
	for _, g := range o.ScalingGroups {
		if !strings.HasPrefix(g, "asg-") || strings.ContainsAny(g, "*?, ") {
			errs = append(errs, fmt.Errorf("scaling group %q is not a scaling group id (asg-...)", g))
		}
	}
	if o.PerInstance < 1 || o.PerInstance > 16 {
		errs = append(errs, fmt.Errorf("PerInstance %d is outside 1..16", o.PerInstance))
	}
	if o.AttachTime <= 0 {
		errs = append(errs, fmt.Errorf("AttachTime %v must be positive", o.AttachTime))
	}
	if o.DeadLetterReserve < 0 || o.DefaultTimeout <= 0 || o.DeadLetterReserve >= o.DefaultTimeout {
		errs = append(errs, errors.New("DeadLetterReserve must be >= 0 and shorter than DefaultTimeout, which must be > 0"))
	}
	if o.PlatformRetries < 0 || o.PlatformRetries > 8 {
		errs = append(errs, fmt.Errorf("PlatformRetries %d is outside 0..8", o.PlatformRetries))
	}
	if o.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d must be at least 1", o.Concurrency))
	}
	if r := o.LifecycleFailureResult; r != "ABANDON" && r != "CONTINUE" {
		errs = append(errs, fmt.Errorf("LifecycleFailureResult %q is neither ABANDON nor CONTINUE", r))
	}
	for _, st := range o.ReleaseOn {
		if st != "Stopped" && st != "Deleted" {
			errs = append(errs, fmt.Errorf("ReleaseOn state %q is neither Stopped nor Deleted", st))
		}
	}
	if o.Warm.Pool != "" && (o.Warm.MinAvailable < 0 || o.Warm.Max < o.Warm.MinAvailable || len(o.Warm.VSwitches) == 0 || len(o.Warm.SecurityGroups) == 0) {
		errs = append(errs, errors.New("the warm target needs vSwitches, security groups, and 0 <= MinAvailable <= Max"))
	}
	if o.RedriveMax < 1 || o.ReconcileMax < 1 || o.DetachTime <= 0 || o.LifecycleHeartbeat < 30*time.Second {
		errs = append(errs, errors.New("redrive and reconcile limits must be >= 1, DetachTime > 0, LifecycleHeartbeat >= 30s"))
	}
	if o.ReconcileInterval < time.Second {
		errs = append(errs, fmt.Errorf("ReconcileInterval %v must be at least 1s", o.ReconcileInterval))
	}
	if o.StaleReadBound < 0 {
		errs = append(errs, fmt.Errorf("StaleReadBound %v must not be negative", o.StaleReadBound))
	}
	if o.RateControl != "" && o.RateControl != engine.RateAdaptive && o.RateControl != engine.RateFixed {
		errs = append(errs, fmt.Errorf("RateControl %q is neither %s nor %s", o.RateControl, engine.RateAdaptive, engine.RateFixed))
	}
	if o.AttachQPS < 0 {
		errs = append(errs, fmt.Errorf("AttachQPS %v must not be negative", o.AttachQPS))
	}
	return errors.Join(errs...)
}
