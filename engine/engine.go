// Package engine gives instances their pool ENIs and takes them back: the attach path of
// docs/attach.md, releases, reconciles, the warm target and the pools' status. An Engine
// keeps what is worth keeping for the life of a process (instance types, how long attaches
// and detaches take, the pacing of its ECS calls, which ENIs this process is attaching); each call works
// on the ECS it is given and returns one Result per instance.
package engine

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// Config configures an Engine. The handler fills it from its Options, whose documentation
// says what each field means.
type Config struct {
	TagKey              string
	Pools               []string
	PerInstance         int
	AttachTime          time.Duration
	DetachTime          time.Duration
	Concurrency         int
	AttachQPS           float64
	RateControl         RateControl
	StoppedOnlyFamilies []string
	ReleaseOn           []string
	StaleReadBound      time.Duration
	LowWatermark        int
	Warm                WarmOptions
	ReconcileInterval   time.Duration
	// Clock is the clock of every wait and timestamp; nil means clock.Real().
	Clock clock.Clock
	// Logger receives the engine's own lines (warm target, watermarks); nil discards.
	Logger *slog.Logger
}

// Serves reports whether the deployment serves pool (any pool when Pools is empty).
func (c Config) Serves(pool string) bool {
	return pool != "" && (len(c.Pools) == 0 || slices.Contains(c.Pools, pool))
}

// WarmOptions configure the warm target: enipool creates pool ENIs (tagged, with a client
// token) until each configured zone has MinAvailable Available ones, never beyond Max pool
// ENIs per zone, and deletes only ENIs it created, only when Available, older than Grace and
// beyond Max.
type WarmOptions struct {
	Pool           string              // the pool to keep warm; empty disables the warm target
	MinAvailable   int                 // per zone
	Max            int                 // pool ENIs per zone, all states
	VSwitches      map[string][]string // zone -> vSwitches to create ENIs in
	SecurityGroups []string
	Grace          time.Duration
}

// Enabled reports whether the warm target is on.
func (w WarmOptions) Enabled() bool { return w.Pool != "" && len(w.VSwitches) > 0 }

// Engine is safe for concurrent use. Make one per process with New and share it.
type Engine struct {
	cfg        Config
	clock      clock.Clock
	log        *slog.Logger
	types      *typeCache
	claims     *claims
	attachTime *estimator
	detachTime *estimator
	rates      *rates
}

// New returns an Engine; the caller has validated cfg.
func New(cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	return &Engine{
		cfg:        cfg,
		clock:      cfg.Clock,
		log:        log,
		types:      &typeCache{m: map[string]cloud.InstanceType{}},
		claims:     newClaims(time.Minute, cfg.Clock),
		attachTime: newEstimator(cfg.AttachTime),
		detachTime: newEstimator(cfg.DetachTime),
		rates:      newRates(cfg.RateControl, cfg.AttachQPS, cfg.Clock),
	}
}

// Result is how the work on one instance ended: the one place its outcome is held.
type Result struct {
	InstanceID string
	Outcome    Outcome
	// Err is the error behind a dead-letter, skip or retry outcome.
	Err   error
	Pool  string
	Zone  string
	VpcID string
	// ENIs are the pool ENIs the instance holds at the end of an attach, the first N by rank.
	ENIs []cloud.ENI
	// Detached are the ENIs detached from the instance.
	Detached []string
	// Tried are the ENIs an attach tried for it (attached, or refused), sorted.
	Tried      []string
	Attempts   int
	Calls      int
	RequestIDs []string
}

// Retry runs fn with the error table's retry policy on the engine's clock (see Retry).
func (eng *Engine) Retry(ctx context.Context, fn func(context.Context) error) error {
	return Retry(ctx, eng.clock, fn)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
