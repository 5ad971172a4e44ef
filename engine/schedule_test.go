package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// oneAttachECS is an ECS with one instance and one pool ENI whose attach takes attachTime;
// it records when each read of the ENIs was sent after the attach was accepted.
type oneAttachECS struct {
	clk        clock.Clock
	attachTime time.Duration

	mu       sync.Mutex
	accepted time.Time
	onto     string
	polls    []time.Duration
}

var errNotHere = errors.New("not in this test's ECS")

func (c *oneAttachECS) DescribeInstances(context.Context, cloud.InstanceQuery) ([]cloud.Instance, error) {
	return []cloud.Instance{{ID: "i-1", Zone: "z1", VpcID: "vpc-1", Type: "ecs.g7.large", Status: "Running",
		Tags: map[string]string{"enipool": "web"}, ENIs: []string{"eni-primary"}}}, nil
}

func (c *oneAttachECS) DescribeInstanceTypes(_ context.Context, types []string) ([]cloud.InstanceType, error) {
	return []cloud.InstanceType{{ID: types[0], ENIQuantity: 3}}, nil
}

func (c *oneAttachECS) DescribeENIs(_ context.Context, q cloud.ENIQuery) ([]cloud.ENI, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clk.Now()
	eni := cloud.ENI{ID: "eni-1", Status: cloud.StatusAvailable, VpcID: "vpc-1", Zone: "z1", Type: "Secondary",
		Tags: map[string]string{"enipool": "web"}}
	if !c.accepted.IsZero() {
		c.polls = append(c.polls, now.Sub(c.accepted))
		eni.InstanceID, eni.Status = c.onto, cloud.StatusAttaching
		if now.Sub(c.accepted) >= c.attachTime {
			eni.Status = cloud.StatusInUse
		}
	}
	if q.InstanceID != "" && eni.InstanceID != q.InstanceID {
		return nil, nil
	}
	return []cloud.ENI{eni}, nil
}

func (c *oneAttachECS) AttachENI(_ context.Context, eniID, instanceID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accepted, c.onto = c.clk.Now(), instanceID
	return nil
}

func (c *oneAttachECS) DetachENI(context.Context, string, string) error { return errNotHere }
func (c *oneAttachECS) CreateENI(context.Context, cloud.ENISpec) (cloud.ENI, error) {
	return cloud.ENI{}, errNotHere
}
func (c *oneAttachECS) DeleteENI(context.Context, string) error { return errNotHere }

// The attach loop polls an accepted attach on the estimator's schedule and on nothing else:
// the first poll when the schedule says, then each pollGrowth times as late, so the poll that
// confirms an attach comes at most pollGrowth times (or minPoll) after it is done, whether it
// takes a tenth of the guess or twenty times it. A look the loop takes for the kept ENI
// (converge's watch) once paced the polls on its own.
func TestAttachPollsOnSchedule(t *testing.T) {
	for _, d := range []time.Duration{150 * time.Millisecond, 700 * time.Millisecond, 2 * time.Second, 9 * time.Second, 40 * time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := clock.Real() // the bubble's clock
				eng := New(Config{TagKey: "enipool", PerInstance: 1, Concurrency: 1, AttachTime: 2 * time.Second, DetachTime: time.Second,
					StaleReadBound: 5 * time.Second, Clock: clk})
				ecs := &oneAttachECS{clk: clk, attachTime: d}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				res := eng.Attach(ctx, ecs, "", []AttachRequest{{InstanceID: "i-1"}})
				if len(res) != 1 || res[0].Outcome != OutcomeAttached || ecs.onto != "i-1" {
					t.Fatalf("result %+v, ENI on %q; want attached to i-1", res, ecs.onto)
				}
				// What a fresh estimator would have scheduled: the loop's own learning moves
				// the schedule only after the confirmation.
				want := newEstimator(2 * time.Second)
				at, polls := confirmAt(want, 0, d)
				if len(ecs.polls) != polls || ecs.polls[len(ecs.polls)-1] != at {
					t.Fatalf("polls sent at %v after acceptance, want %d ending at %v", ecs.polls, polls, at)
				}
				if bound := max(want.firstPoll(0), time.Duration(float64(d)*pollGrowth), d+minPoll); at > bound {
					t.Fatalf("confirmed by the poll sent %v after acceptance, want by %v", at, bound)
				}
			})
		})
	}
}
