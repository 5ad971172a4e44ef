// Package sim runs enipool's handler in deterministic simulations: thousands of small
// seeded fleets per test run, each in a testing/synctest bubble (virtual time: every wait
// is free), against an in-process cloud that calls the local cloud's own ECS, ESS and MNS
// rules (packages localcloud/ecs, ess, mns over a world.Store) without HTTP. After each
// scenario every invariant is checked (see check.go); a failing scenario prints its seed
// and the command that replays it.
//
// The types of package handler are used in adapter.go and run.go only, so that moving
// the cloud interfaces (issue 12) touches two files.
package sim

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ecs"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// epoch shifts the bubble's clock (which starts at 2000-01-01 UTC) into the present: ECS
// refuses to attach an ENI to a Running instance last started before 2018-04-01, and the
// store stamps launches and starts with its clock. The shifted clock still is the bubble's
// virtual time, only read later in the calendar.
// 2000-01-01 to 2026-01-01 is 26 years of 365 days and 7 leap days.
const epoch = (26*365 + 7) * 24 * time.Hour

// Now is the simulation's clock: the bubble's virtual time, shifted by epoch.
func Now() time.Time { return time.Now().Add(epoch) }

// simClock is the handler's clock in a bubble: Now shifted like the cloud's, sleeps on the
// bubble's virtual time.
type simClock struct{}

func (simClock) Now() time.Time { return Now() }

func (simClock) Sleep(ctx context.Context, d time.Duration) error { return clock.Real().Sleep(ctx, d) }

// DeadLetterQueue is the queue dead letters go to.
const DeadLetterQueue = "enipool-dlq"

// Cloud is the in-process local cloud of one scenario: the world's store and the ECS and
// MNS emulators over it, called through rpc.Service.Dispatch and mns.Server.Send.
type Cloud struct {
	World  *world.World
	Store  *world.Store
	Faults *fault.Injector
	ECS    *rpc.Service
	MNS    *mns.Server
	// Principal is who the function's calls are made as (the world's enipool-fn role).
	Principal auth.Principal
	// Calls logs every call the function made, for the invariants.
	Calls *CallLog
}

// NewCloud brings a cloud up from w on the simulation's clock. Call it inside the bubble.
func NewCloud(w *world.World) (*Cloud, error) {
	store, err := world.NewStore(w, Now)
	if err != nil {
		return nil, err
	}
	keys, authz, err := w.Identities(Now)
	if err != nil {
		return nil, err
	}
	p, ok := w.PrincipalNamed("enipool-fn")
	if !ok {
		return nil, fmt.Errorf("sim: the world has no enipool-fn role")
	}
	faults := fault.New(w.Faults, Now)
	svc, err := ecs.New(ecs.Config{Store: store, Auth: keys, RAM: authz, Faults: faults, Limiter: rpc.NewLimiter(w.Throttling)})
	if err != nil {
		return nil, err
	}
	m := mns.New(mns.Options{Keys: keys, Faults: faults, Account: w.Account.ID, Clock: Now})
	for _, q := range w.Queues {
		if err := m.CreateQueue(q); err != nil {
			return nil, err
		}
	}
	return &Cloud{World: w, Store: store, Faults: faults, ECS: svc, MNS: m, Principal: p, Calls: &CallLog{}}, nil
}

// Region is the world's (only) region.
func (c *Cloud) Region() string { return c.World.Regions[0].ID }

// ecs calls one ECS action as the function.
func (c *Cloud) ecs(ctx context.Context, action string, params url.Values) (any, string, error) {
	params.Set("RegionId", c.Region())
	return c.ECS.Dispatch(ctx, c.Principal, action, params)
}

// Call is one cloud call the function made.
type Call struct {
	Invocation int // index of the invocation (Report.Invocations)
	Service    string
	API        string
	At         time.Time // virtual time the call was sent
	Took       time.Duration
	Code       string // error code; "" on success and on transport failures
	Failed     bool
	Instance   string // the instance an attach or detach names
	ENI        string // the ENI an attach or detach names
}

// CallLog collects calls from concurrent invocations.
type CallLog struct {
	mu    sync.Mutex
	calls []Call
}

func (l *CallLog) add(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

// All returns the calls in the order they ended.
func (l *CallLog) All() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Call(nil), l.calls...)
}

type invocationKey struct{}

// withInvocation marks ctx as the context of invocation i, so its calls are logged as i's.
func withInvocation(ctx context.Context, i int) context.Context {
	return context.WithValue(ctx, invocationKey{}, i)
}

func invocationOf(ctx context.Context) int {
	i, _ := ctx.Value(invocationKey{}).(int)
	return i
}
