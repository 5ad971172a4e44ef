package engine

import (
	"context"
	"time"

	"github.com/enipool/enipool/cloud"
)

// Paced returns ecs with every call paced by this process's rate control (Config.RateControl):
// each API waits for its limiter before it goes out and tells it whether ECS answered
// Throttling. The handler wraps the clients of every invocation with it, so the pacing
// outlives the invocation as long as the process does.
func (eng *Engine) Paced(ecs cloud.ECS) cloud.ECS { return paced{ecs: ecs, rates: eng.rates} }

// notSent is the error of a paced call that never went out, so cannot have been applied:
// its context ended while it waited for its turn, or its turn was further off than its caller
// waits (After says about when it comes).
type notSent struct {
	After time.Duration
	Err   error
}

func (n *notSent) Error() string { return "not sent: " + n.Err.Error() }

func (n *notSent) Unwrap() error { return n.Err }

// attachWait is the longest an attach waits for its turn inside the call. Longer, the call
// comes back not sent and the engine tries again when its turn comes, looking at the
// instance again first if that look has aged meanwhile (instanceFresh): an attach never goes
// out on a look older than that, however long the pacing holds it.
const attachWait = 250 * time.Millisecond

type paced struct {
	ecs   cloud.ECS
	rates *rates
}

// do runs fn as a call of api, paced.
func (p paced) do(ctx context.Context, api string, fn func(context.Context) error) error {
	l := p.rates.of(api)
	most := time.Duration(0)
	if api == apiAttach {
		most = attachWait
	}
	sent, after, err := l.wait(ctx, most)
	if err != nil {
		return &cloud.APIError{Service: "ecs", API: api, Err: &notSent{After: after, Err: err}}
	}
	err = fn(ctx)
	l.observe(sent, throttled(err))
	return err
}

func (p paced) DescribeInstances(ctx context.Context, q cloud.InstanceQuery) (out []cloud.Instance, err error) {
	err = p.do(ctx, "DescribeInstances", func(ctx context.Context) (err error) {
		out, err = p.ecs.DescribeInstances(ctx, q)
		return err
	})
	return out, err
}

func (p paced) DescribeInstanceTypes(ctx context.Context, types []string) (out []cloud.InstanceType, err error) {
	err = p.do(ctx, "DescribeInstanceTypes", func(ctx context.Context) (err error) {
		out, err = p.ecs.DescribeInstanceTypes(ctx, types)
		return err
	})
	return out, err
}

func (p paced) DescribeENIs(ctx context.Context, q cloud.ENIQuery) (out []cloud.ENI, err error) {
	err = p.do(ctx, "DescribeNetworkInterfaces", func(ctx context.Context) (err error) {
		out, err = p.ecs.DescribeENIs(ctx, q)
		return err
	})
	return out, err
}

func (p paced) AttachENI(ctx context.Context, eniID, instanceID string) error {
	return p.do(ctx, apiAttach, func(ctx context.Context) error { return p.ecs.AttachENI(ctx, eniID, instanceID) })
}

func (p paced) DetachENI(ctx context.Context, eniID, instanceID string) error {
	return p.do(ctx, "DetachNetworkInterface", func(ctx context.Context) error { return p.ecs.DetachENI(ctx, eniID, instanceID) })
}

func (p paced) CreateENI(ctx context.Context, spec cloud.ENISpec) (out cloud.ENI, err error) {
	err = p.do(ctx, "CreateNetworkInterface", func(ctx context.Context) (err error) {
		out, err = p.ecs.CreateENI(ctx, spec)
		return err
	})
	return out, err
}

func (p paced) DeleteENI(ctx context.Context, eniID string) error {
	return p.do(ctx, "DeleteNetworkInterface", func(ctx context.Context) error { return p.ecs.DeleteENI(ctx, eniID) })
}
