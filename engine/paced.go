package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/enipool/enipool/cloud"
)

// Paced returns ecs with every call paced by this process's rate control (Config.RateControl):
// each API waits for its limiter before it goes out and tells it whether ECS answered
// Throttling. The handler wraps the clients of every invocation with it, so the pacing
// outlives the invocation as long as the process does.
func (eng *Engine) Paced(ecs cloud.ECS) cloud.ECS { return paced{ecs: ecs, rates: eng.rates} }

// errNotSent says a paced call never went out: its context ended while it waited for its
// turn. Such a call cannot have been applied.
var errNotSent = errors.New("not sent: the context ended while the call waited for its turn")

type paced struct {
	ecs   cloud.ECS
	rates *rates
}

// do runs fn as a call of api, paced.
func (p paced) do(ctx context.Context, api string, fn func(context.Context) error) error {
	l := p.rates.of(api)
	sent, err := l.wait(ctx)
	if err != nil {
		return &cloud.APIError{Service: "ecs", API: api, Err: fmt.Errorf("%w: %w", errNotSent, err)}
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
