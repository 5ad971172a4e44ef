// Package harness runs enipool's benchmark scenarios through the production code path: the
// handler built the way main.go builds it (config from the function's environment, the
// alicloud adapters over the real SDKs) talking over loopback to a local cloud, and, where
// process start and memory matter, the built binary under the local FC runtime.
//
// Every figure it returns is measured: wall clocks around invocations, the cloud's own call
// records, the cloud's final state and the dead-letter queue. Nothing is derived from what
// the handler is expected to do.
package harness

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enipool/enipool/alicloud"
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/config"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// Names every generated world uses.
const (
	// DeadLetterQueue is the queue the function dead-letters to.
	DeadLetterQueue = testbed.DeadLetterQueue
	// PoolTagKey and PoolName are the pool tag world.Generate puts on instances and ENIs.
	PoolTagKey = "enipool"
	PoolName   = "web"
	// Role is the world principal the function runs as.
	Role = testbed.Role
	// FunctionTimeout is the invocation deadline the in-process handler gets: s.yaml's timeout.
	FunctionTimeout = 120 * time.Second
)

// CloudParams shape a generated local cloud (world.Generate) and its timing and limits.
type CloudParams struct {
	Instances int `json:"instances"` // Running instances, all tagged for the pool
	Pool      int `json:"pool"`      // Available pool ENIs
	Zones     int `json:"zones"`     // instances and ENIs go round-robin over the zones
	// Latency (L) delays every ECS call before it is served (fault.Latency, no jitter).
	Latency Duration `json:"latencyMs"`
	// AttachTime (T) is how long an accepted attach stays Attaching (world timing, no jitter).
	AttachTime Duration `json:"attachTimeMs"`
	// ThrottleQPS and ThrottleBurst rate-limit ECS AttachNetworkInterface per account with a
	// token bucket (world throttling rule, Throttling.User when empty); QPS 0 means no rule.
	ThrottleQPS   float64 `json:"throttleQps,omitempty"`
	ThrottleBurst int     `json:"throttleBurst,omitempty"`
	// Seed is the fault plan's seed. Latency has no random part, so it changes nothing today;
	// it is recorded so that a run with faults added stays repeatable.
	Seed int64 `json:"seed"`
}

// World generates the world the parameters describe.
func (p CloudParams) World() (*world.World, error) {
	o := world.GenerateOptions{
		Instances: p.Instances,
		Pool:      p.Pool,
		Zones:     p.Zones,
		PoolKey:   PoolTagKey,
		PoolValue: PoolName,
		Attach:    p.AttachTime.D(),
		Faults:    fault.Plan{Seed: p.Seed},
	}
	// Generate reads zeros as its defaults; the harness computes with these numbers, so they
	// must be what the world gets.
	if p.Instances < 1 || p.Pool < 1 || p.Zones < 1 || p.AttachTime <= 0 {
		return nil, fmt.Errorf("harness: instances (%d), pool (%d), zones (%d) and the attach time (%v) must be set",
			p.Instances, p.Pool, p.Zones, p.AttachTime.D())
	}
	if p.ThrottleQPS > 0 && p.ThrottleBurst < 1 {
		// The cloud's bucket starts with Burst tokens and holds at most Burst: 0 admits nothing.
		return nil, fmt.Errorf("harness: a throttling rule needs a bucket of at least 1, not %d", p.ThrottleBurst)
	}
	if p.Latency > 0 {
		o.Faults.Latency = []fault.Latency{{Service: "ecs", Base: fault.Duration(p.Latency)}}
	}
	if p.ThrottleQPS > 0 {
		o.Throttling = []world.Throttle{{Service: "ecs", Action: "AttachNetworkInterface", QPS: p.ThrottleQPS, Burst: p.ThrottleBurst}}
	}
	return world.Generate(o)
}

// InstanceID returns the id world.Generate gives its i-th instance (0-based).
func InstanceID(i int) string { return fmt.Sprintf("i-gen%09d", i+1) }

// Bed is a local cloud with the handler built in this process the way main.go builds it.
type Bed struct {
	Cloud   *localcloud.Cloud
	Handler *handler.Handler
	inv     handler.Invocation
	seq     atomic.Int64
}

// NewBed starts a cloud for p and builds the handler from the function's environment as
// testbed.StartFunction would set it (testbed.FunctionEnv), plus env. One set of STS credentials
// of the function's role serves every invocation, as FC reuses a role's token until it
// rotates it: the connector keeps its SDK clients between invocations, as in a warm instance.
func NewBed(p CloudParams, env map[string]string) (*Bed, error) {
	c, err := newCloud(p)
	if err != nil {
		return nil, err
	}
	h, inv, err := buildHandler(c, env)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Bed{Cloud: c, Handler: h, inv: inv}, nil
}

func buildHandler(c *localcloud.Cloud, env map[string]string) (*handler.Handler, handler.Invocation, error) {
	full := testbed.FunctionEnv(c, DeadLetterQueue)
	maps.Copy(full, env)
	cfg, err := config.Load(func(k string) string { return full[k] })
	if err != nil {
		return nil, handler.Invocation{}, fmt.Errorf("harness: config: %w", err)
	}
	// main.go logs one JSON line per outcome to stdout; the lines are formatted here too, so
	// their cost counts, and then dropped.
	cfg.Handler.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: cfg.LogLevel}))
	conn, err := alicloud.NewConnector(cfg.Cloud)
	if err != nil {
		return nil, handler.Invocation{}, err
	}
	h, err := handler.New(cfg.Handler, conn)
	if err != nil {
		return nil, handler.Invocation{}, err
	}
	key, err := c.AssumeRole(Role, 4*time.Hour)
	if err != nil {
		return nil, handler.Invocation{}, err
	}
	inv := handler.Invocation{
		FunctionName: "enipool",
		Region:       c.Region,
		AccountID:    c.AccountID,
		Credentials:  cloud.Credentials{AccessKeyID: key.ID, AccessKeySecret: key.Secret, SecurityToken: key.Token},
	}
	return h, inv, nil
}

// Close stops the cloud.
func (b *Bed) Close() { b.Cloud.Close() }

// Done is one finished invocation.
type Done struct {
	Start    time.Time
	Duration time.Duration
	Resp     *handler.Response
	Err      error
}

// Invoke runs one invocation of the handler with FC's deadline, as main.go's fc.Start
// handler would.
func (b *Bed) Invoke(ctx context.Context, payload []byte) Done {
	ctx, cancel := context.WithTimeout(ctx, FunctionTimeout)
	defer cancel()
	inv := b.inv
	inv.RequestID = fmt.Sprintf("1-bench-%08d", b.seq.Add(1))
	start := time.Now()
	resp, err := b.Handler.Invoke(ctx, inv, payload)
	return Done{Start: start, Duration: time.Since(start), Resp: resp, Err: err}
}

// Drive invokes every payload with conc invocations in flight (conc goroutines, each taking
// the next payload when its invocation returns). It returns what each returned, in payload
// order, and the wall time from the first start to the last return.
func (b *Bed) Drive(ctx context.Context, payloads [][]byte, conc int) ([]Done, time.Duration) {
	out := make([]Done, len(payloads))
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range max(1, conc) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = b.Invoke(ctx, payloads[i])
			}
		}()
	}
	for i := range payloads {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, time.Since(start)
}

// Duration is a time.Duration that reads and writes as milliseconds in JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d in milliseconds, to the hundredth.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d)/float64(time.Millisecond), 'f', 2, 64), nil
}
