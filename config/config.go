// Package config reads enipool's settings from environment variables, once, at start. Every
// error names the variable at fault. Variables lists them all with defaults and meanings;
// the README's configuration table is generated from it.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/enipool/enipool/alicloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
)

// Config is everything main needs to build the function.
type Config struct {
	Handler  handler.Options
	Cloud    alicloud.Options
	LogLevel slog.Level
	// FunctionTimeout is the function's timeout on the platform (s.yaml `timeout`), 0 when
	// not given. Only checked against at start: each invocation's deadline is the one obeyed.
	FunctionTimeout time.Duration
	// AccountID and Region stand in for what FC says per invocation when the function runs
	// outside FC (local runs).
	AccountID string
}

// Variable documents one environment variable.
type Variable struct {
	Name     string
	Default  string
	Required bool
	Meaning  string
}

// Variables returns every variable enipool reads, in the order of the README's table.
func Variables() []Variable {
	d := handler.DefaultOptions()
	return []Variable{
		{"ENIPOOL_DLQ_QUEUE", "", true, "MNS queue that receives dead letters (one message per failed event)."},
		{"ENIPOOL_TAG_KEY", d.TagKey, false, "Pool tag key. ENIs tagged `<key>=<pool>` form pool `<pool>`; an instance tagged `<key>=<pool>` gets ENIs from it."},
		{"ENIPOOL_POOLS", "", false, "Pool tag values this deployment serves, comma-separated; an instance of another pool is skipped (`enipool.InstanceNotInPool`). `*` (or empty) serves any pool; `make policy` renders only for a list or an explicit `*`, whose policy cannot be pinned to the pools (deploy/README.md)."},
		{"ENIPOOL_SCALING_GROUPS", "", false, "Scaling group ids whose lifecycle hooks this deployment serves, comma-separated. A notification of another group is refused (`enipool.LifecycleUnverified`). `*` (or empty) serves any; `make policy` renders only for a list or an explicit `*`, whose policy cannot be pinned to the groups (deploy/README.md)."},
		{"ENIPOOL_ENIS_PER_INSTANCE", strconv.Itoa(d.PerInstance), false, "Pool ENIs each instance should hold (1-16)."},
		{"ENIPOOL_REGION", "", false, "Region when neither the event nor FC names one (FC always does)."},
		{"ENIPOOL_ACCOUNT_ID", "", false, "Account id when FC does not give one (local runs); used to build the MNS endpoint."},
		{"ENIPOOL_ATTACH_TIME", d.AttachTime.String(), false, "First guess of the median time until a read shows an attach done; enipool learns the spread from its polls and places its first poll below it (docs/performance.md)."},
		{"ENIPOOL_DLQ_RESERVE", d.DeadLetterReserve.String(), false, "Time kept at the end of the invocation deadline for sending dead letters and completing lifecycle actions."},
		{"ENIPOOL_FUNCTION_TIMEOUT", "", false, "The function's timeout (s.yaml `timeout`), in seconds or as a duration. Not obeyed (each invocation's deadline is), only checked at start: a configuration whose ENIPOOL_DLQ_RESERVE, or reserve plus ENIPOOL_ATTACH_TIME, does not fit in it is refused."},
		{"ENIPOOL_PLATFORM_RETRIES", strconv.Itoa(d.PlatformRetries), false, "The platform's retries of a failed async invocation; must equal asyncInvokeConfig.maxAsyncRetryAttempts. On the last one enipool dead-letters transient failures itself."},
		{"ENIPOOL_CONCURRENCY", strconv.Itoa(d.Concurrency), false, "ECS calls one invocation makes at once (batches)."},
		{"ENIPOOL_RATE_CONTROL", string(d.RateControl), false, "How each function instance paces its ECS calls, per API. `adaptive`: a fresh instance sends 10 attaches at once, then 10 per second doubling every second, and its other calls unpaced, until ECS answers Throttling; each Throttling answer cuts that API's rate by 30% (no lower than 1/s), and it grows back along a cubic (README \"Bursts and the ECS rate limit\"). `fixed`: only AttachNetworkInterface, at ENIPOOL_ATTACH_QPS, whatever ECS answers."},
		{"ENIPOOL_ATTACH_QPS", "0", false, "AttachNetworkInterface calls per second per function instance: the ceiling of the adaptive rate, or the pinned rate with `ENIPOOL_RATE_CONTROL=fixed`; 0 means no ceiling (adaptive) or no pacing (fixed)."},
		{"ENIPOOL_STOPPED_ONLY_FAMILIES", strings.Join(d.StoppedOnlyFamilies, ","), false, "Instance families that must be Stopped to take an ENI; `none` for none."},
		{"ENIPOOL_RELEASE_ON", strings.Join(d.ReleaseOn, ","), false, "ECS states whose events send an instance's pool ENIs back to the pool: `Stopped`, `Deleted`, both, or `none`."},
		{"ENIPOOL_STALE_READ_BOUND", d.StaleReadBound.String(), false, "How long ECS reads may lag its writes. An accepted attach whose ENI still reads Available is taken for rolled back (and another ENI tried) only after this long; shorter risks a second ENI on an instance, longer delays the retry of an attach that really failed."},
		{"ENIPOOL_DETACH_TIME", d.DetachTime.String(), false, "First guess of how long a detach takes (learned, like ENIPOOL_ATTACH_TIME)."},
		{"ENIPOOL_LIFECYCLE_FAILURE_RESULT", d.LifecycleFailureResult, false, "How a scale-out lifecycle action is completed when an instance could not get its ENIs: `ABANDON` (Auto Scaling replaces it) or `CONTINUE`."},
		{"ENIPOOL_LIFECYCLE_HEARTBEAT", d.LifecycleHeartbeat.String(), false, "Timeout a lifecycle heartbeat asks for when lifecycle work is retried later."},
		{"ENIPOOL_LOW_WATERMARK", strconv.Itoa(d.LowWatermark), false, "A pool's zone with fewer Available ENIs is reported with a warning (reconcile, status)."},
		{"ENIPOOL_WARM_POOL", "", false, "Pool whose warm target reconcile keeps; empty turns the warm target off."},
		{"ENIPOOL_WARM_MIN_AVAILABLE", "0", false, "Warm target: Available ENIs to keep per zone."},
		{"ENIPOOL_WARM_MAX", "0", false, "Warm target: most pool ENIs per zone (all states); created ENIs beyond it are deleted."},
		{"ENIPOOL_WARM_VSWITCHES", "", false, "Warm target: `zone:vsw-id` pairs, comma-separated, where new ENIs are created."},
		{"ENIPOOL_WARM_SECURITY_GROUPS", "", false, "Warm target: security groups of new ENIs, comma-separated."},
		{"ENIPOOL_WARM_GRACE", d.Warm.Grace.String(), false, "Warm target: an ENI it created is deleted only when Available and older than this."},
		{"ENIPOOL_REDRIVE_MAX", strconv.Itoa(d.RedriveMax), false, "Dead letters one redrive handles unless the action says `max`."},
		{"ENIPOOL_MAX_CALLS", strconv.Itoa(d.MaxCalls), false, "ECS calls one invocation may make; beyond it, what is left is dead-lettered for a later redrive. Bounds what any one payload can cost the account's ECS quota."},
		{"ENIPOOL_MAX_DEAD_LETTERS", strconv.Itoa(d.MaxDeadLetters), false, "Dead letters one invocation may send; beyond it, the letters of each carrier message are folded into one holding the whole message, and the messages past it share one letter holding their raw events as a JSON array (one more per 64 KiB they take). None is left to the platform's retry."},
		{"ENIPOOL_RECONCILE_MAX", strconv.Itoa(d.ReconcileMax), false, "Instances one reconcile looks at unless the action says `max`."},
		{"ENIPOOL_RECONCILE_INTERVAL", d.ReconcileInterval.String(), false, "How often the reconcile timer fires (s.yaml). A fleet beyond ENIPOOL_RECONCILE_MAX is reconciled a window at a time: runs this far apart take consecutive windows, so every instance is reached within fleet/max runs."},
		{"ENIPOOL_DEFAULT_TIMEOUT", d.DefaultTimeout.String(), false, "Deadline of an invocation that has none (local runs)."},
		{"ENIPOOL_API_SCHEME", "https", false, "Scheme of the ECS and ESS APIs; `http` only for a local cloud that serves no TLS."},
		{"ENIPOOL_ECS_ENDPOINT", "ecs.{region}.aliyuncs.com", false, "ECS API host[:port]. In a VPC, `ecs-vpc.{region}.aliyuncs.com`."},
		{"ENIPOOL_ESS_ENDPOINT", "ess.{region}.aliyuncs.com", false, "Auto Scaling API host[:port]."},
		{"ENIPOOL_MNS_ENDPOINT", "https://{account}.mns.{region}.aliyuncs.com", false, "MNS endpoint; `{account}` and `{region}` are filled in. In a VPC, `http://{account}.mns.{region}-internal.aliyuncs.com`."},
		{"ENIPOOL_MNS_DIAL_ADDR", "", false, "Send MNS requests to this host:port without changing what is sent (the local cloud)."},
		{"ENIPOOL_API_CONNECT_TIMEOUT", "3s", false, "Connect timeout of each API request."},
		{"ENIPOOL_API_READ_TIMEOUT", "10s", false, "Read timeout of each API request (the invocation deadline bounds it further)."},
		{"ENIPOOL_LOG_LEVEL", "info", false, "debug, info, warn or error."},
	}
}

// Load reads the configuration through getenv (os.Getenv in production).
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	h := handler.DefaultOptions()
	c := Config{}

	dlq := r.str("ENIPOOL_DLQ_QUEUE", "")
	if dlq == "" {
		r.fail("ENIPOOL_DLQ_QUEUE", errors.New("is required: the MNS queue that receives dead letters"))
	} else if !validQueueName(dlq) {
		r.fail("ENIPOOL_DLQ_QUEUE", fmt.Errorf("%q is not an MNS queue name (1-120 letters, digits and hyphens, starting with a letter)", dlq))
	}
	h.TagKey = r.str("ENIPOOL_TAG_KEY", h.TagKey)
	h.Pools = r.anyList("ENIPOOL_POOLS")
	h.ScalingGroups = r.anyList("ENIPOOL_SCALING_GROUPS")
	h.PerInstance = r.intIn("ENIPOOL_ENIS_PER_INSTANCE", h.PerInstance, 1, 16)
	h.Region = r.str("ENIPOOL_REGION", "")
	c.AccountID = r.str("ENIPOOL_ACCOUNT_ID", "")
	h.AttachTime = r.duration("ENIPOOL_ATTACH_TIME", h.AttachTime, time.Millisecond, time.Minute)
	h.DeadLetterReserve = r.duration("ENIPOOL_DLQ_RESERVE", h.DeadLetterReserve, 0, time.Minute)
	h.PlatformRetries = r.intIn("ENIPOOL_PLATFORM_RETRIES", h.PlatformRetries, 0, 8)
	h.Concurrency = r.intIn("ENIPOOL_CONCURRENCY", h.Concurrency, 1, 256)
	h.RateControl = engine.RateControl(r.oneOf("ENIPOOL_RATE_CONTROL", string(h.RateControl), string(engine.RateAdaptive), string(engine.RateFixed)))
	h.AttachQPS = r.float("ENIPOOL_ATTACH_QPS", 0)
	if fam := r.str("ENIPOOL_STOPPED_ONLY_FAMILIES", ""); fam != "" {
		h.StoppedOnlyFamilies = nil
		if fam != "none" {
			for f := range strings.SplitSeq(fam, ",") {
				if f = strings.TrimSpace(f); f != "" {
					h.StoppedOnlyFamilies = append(h.StoppedOnlyFamilies, f)
				}
			}
		}
	}
	h.DefaultTimeout = r.duration("ENIPOOL_DEFAULT_TIMEOUT", h.DefaultTimeout, time.Second, time.Hour)
	if rel := r.str("ENIPOOL_RELEASE_ON", ""); rel != "" {
		h.ReleaseOn = nil
		if rel != "none" {
			for st := range strings.SplitSeq(rel, ",") {
				switch st = strings.TrimSpace(st); st {
				case "Stopped", "Deleted":
					h.ReleaseOn = append(h.ReleaseOn, st)
				default:
					r.fail("ENIPOOL_RELEASE_ON", fmt.Errorf("has %q: want Stopped, Deleted or none", st))
				}
			}
		}
	}
	h.DetachTime = r.duration("ENIPOOL_DETACH_TIME", h.DetachTime, time.Millisecond, time.Minute)
	h.StaleReadBound = r.duration("ENIPOOL_STALE_READ_BOUND", h.StaleReadBound, 0, time.Minute)
	h.LifecycleFailureResult = strings.ToUpper(r.oneOf("ENIPOOL_LIFECYCLE_FAILURE_RESULT", "abandon", "abandon", "continue"))
	h.LifecycleHeartbeat = r.duration("ENIPOOL_LIFECYCLE_HEARTBEAT", h.LifecycleHeartbeat, 30*time.Second, 6*time.Hour)
	h.LowWatermark = r.intIn("ENIPOOL_LOW_WATERMARK", h.LowWatermark, 0, 100000)
	h.Warm.Pool = r.str("ENIPOOL_WARM_POOL", "")
	h.Warm.MinAvailable = r.intIn("ENIPOOL_WARM_MIN_AVAILABLE", 0, 0, 10000)
	h.Warm.Max = r.intIn("ENIPOOL_WARM_MAX", 0, 0, 10000)
	h.Warm.VSwitches = r.zoneVSwitches("ENIPOOL_WARM_VSWITCHES")
	h.Warm.SecurityGroups = r.list("ENIPOOL_WARM_SECURITY_GROUPS")
	h.Warm.Grace = r.duration("ENIPOOL_WARM_GRACE", h.Warm.Grace, 0, 30*24*time.Hour)
	if h.Warm.Pool != "" && (len(h.Warm.VSwitches) == 0 || len(h.Warm.SecurityGroups) == 0 || h.Warm.Max < h.Warm.MinAvailable) {
		r.fail("ENIPOOL_WARM_POOL", errors.New("is set, so ENIPOOL_WARM_VSWITCHES and ENIPOOL_WARM_SECURITY_GROUPS are needed and ENIPOOL_WARM_MAX must be >= ENIPOOL_WARM_MIN_AVAILABLE"))
	}
	if h.Warm.Pool != "" && !h.Serves(h.Warm.Pool) {
		r.fail("ENIPOOL_WARM_POOL", fmt.Errorf("%q is not among ENIPOOL_POOLS (%s)", h.Warm.Pool, strings.Join(h.Pools, ",")))
	}
	for _, g := range h.ScalingGroups {
		if !strings.HasPrefix(g, "asg-") || strings.ContainsAny(g, "*? ") {
			r.fail("ENIPOOL_SCALING_GROUPS", fmt.Errorf("has %q: want scaling group ids such as asg-bp1abc", g))
		}
	}
	h.RedriveMax = r.intIn("ENIPOOL_REDRIVE_MAX", h.RedriveMax, 1, 10000)
	h.MaxCalls = r.intIn("ENIPOOL_MAX_CALLS", h.MaxCalls, 100, 1_000_000)
	h.MaxDeadLetters = r.intIn("ENIPOOL_MAX_DEAD_LETTERS", h.MaxDeadLetters, 1, 10000)
	h.ReconcileMax = r.intIn("ENIPOOL_RECONCILE_MAX", h.ReconcileMax, 1, 100000)
	h.ReconcileInterval = r.duration("ENIPOOL_RECONCILE_INTERVAL", h.ReconcileInterval, time.Second, 24*time.Hour)

	c.Cloud = alicloud.Options{
		Scheme:          r.oneOf("ENIPOOL_API_SCHEME", "https", "https", "http"),
		ECSEndpoint:     r.str("ENIPOOL_ECS_ENDPOINT", ""),
		ESSEndpoint:     r.str("ENIPOOL_ESS_ENDPOINT", ""),
		MNSEndpoint:     r.str("ENIPOOL_MNS_ENDPOINT", ""),
		MNSDialAddr:     r.str("ENIPOOL_MNS_DIAL_ADDR", ""),
		DeadLetterQueue: dlq,
		ConnectTimeout:  r.duration("ENIPOOL_API_CONNECT_TIMEOUT", 3*time.Second, 100*time.Millisecond, time.Minute),
		ReadTimeout:     r.duration("ENIPOOL_API_READ_TIMEOUT", 10*time.Second, 100*time.Millisecond, 5*time.Minute),
	}
	switch lvl := r.oneOf("ENIPOOL_LOG_LEVEL", "info", "debug", "info", "warn", "error"); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	}
	c.FunctionTimeout = r.seconds("ENIPOOL_FUNCTION_TIMEOUT", time.Second, 24*time.Hour)
	r.checkTimeouts(h, c.FunctionTimeout)
	c.Handler = h
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, err
	}
	if err := h.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func validQueueName(s string) bool {
	if len(s) == 0 || len(s) > 120 || !isLetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// reader collects every error, so one start reports every bad variable at once.
type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(name string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s %w", name, err))
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) intIn(name string, def, lo, hi int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, fmt.Errorf("= %q: want a whole number from %d to %d", v, lo, hi))
		return def
	}
	return n
}

func (r *reader) float(name string, def float64) float64 {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		r.fail(name, fmt.Errorf("= %q: want a number >= 0", v))
		return def
	}
	return f
}

func (r *reader) duration(name string, def, lo, hi time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		r.fail(name, fmt.Errorf("= %q: want a duration such as 2s or 500ms, from %v to %v", v, lo, hi))
		return def
	}
	return d
}

// seconds reads a duration given as whole seconds (how FC states timeouts) or as a Go
// duration; 0 when unset.
func (r *reader) seconds(name string, lo, hi time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < lo || d > hi {
		r.fail(name, fmt.Errorf("= %q: want whole seconds such as 120, or a duration such as 2m, from %v to %v", v, lo, hi))
		return 0
	}
	return d
}

// checkTimeouts refuses timings that cannot work together: every invocation would run out of
// time before doing anything (the reserve takes it all), or before its first attach could be
// confirmed. Such a function would only ever produce deadline failures.
func (r *reader) checkTimeouts(h handler.Options, function time.Duration) {
	if h.DeadLetterReserve >= h.DefaultTimeout {
		r.fail("ENIPOOL_DLQ_RESERVE", fmt.Errorf("(%v) must be shorter than ENIPOOL_DEFAULT_TIMEOUT (%v): the reserve leaves the work no time", h.DeadLetterReserve, h.DefaultTimeout))
	}
	if function == 0 {
		return
	}
	switch {
	case h.DeadLetterReserve >= function:
		r.fail("ENIPOOL_DLQ_RESERVE", fmt.Errorf("(%v) must be shorter than ENIPOOL_FUNCTION_TIMEOUT (%v): the reserve leaves the work no time", h.DeadLetterReserve, function))
	case h.DeadLetterReserve+h.AttachTime >= function:
		r.fail("ENIPOOL_ATTACH_TIME", fmt.Errorf("(%v) plus ENIPOOL_DLQ_RESERVE (%v) must be shorter than ENIPOOL_FUNCTION_TIMEOUT (%v): no attach could be confirmed in time", h.AttachTime, h.DeadLetterReserve, function))
	}
}

func (r *reader) list(name string) []string {
	var out []string
	for v := range strings.SplitSeq(r.str(name, ""), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// anyList reads a list in which "*" alone means any: nil, as an empty list. The policy
// command (deploy/cmd/policy) renders no policy for an empty one, so "*" is how a deployer
// says any on purpose; "*" among other values is refused.
func (r *reader) anyList(name string) []string {
	l := r.list(name)
	if slices.Contains(l, "*") {
		if len(l) > 1 {
			r.fail(name, errors.New("has * among other values: * alone means any"))
		}
		return nil
	}
	return l
}

// zoneVSwitches reads "zone:vsw,zone:vsw" pairs.
func (r *reader) zoneVSwitches(name string) map[string][]string {
	pairs := r.list(name)
	if len(pairs) == 0 {
		return nil
	}
	out := map[string][]string{}
	for _, p := range pairs {
		zone, vsw, ok := strings.Cut(p, ":")
		if !ok || zone == "" || !strings.HasPrefix(vsw, "vsw-") {
			r.fail(name, fmt.Errorf("has %q: want zone:vsw-id pairs such as cn-hangzhou-h:vsw-bp1abc", p))
			continue
		}
		out[zone] = append(out[zone], vsw)
	}
	return out
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(r.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, fmt.Errorf("= %q: want one of %s", v, strings.Join(allowed, ", ")))
	return def
}
