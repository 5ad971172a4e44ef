// Package peer re-implements, for the benchmark, the ENI confirmation policies users run
// today, from their published parameters, so that `make bench` drives them through the same
// harness, the same FC instance model and the same world as enipool:
//
//   - Terway's ENI status wait (AliyunContainerService/terway, WaitENIStatus in the
//     controller's attach task): a first check 3 s after the attach, then a Kubernetes
//     wait.Backoff of 3 s, factor 1.5, jitter 0.5, 8 steps;
//   - the Alibaba Cloud OOS lifecycle-hook template
//     (ACS-ESS-LifeCycleCreateNetworkInterfaceAndEipAndAttachToInstance): ACS::WaitFor the ENI
//     InUse, 15 s apart, 7 retries, constant delay; its first check goes out at once;
//   - a fixed-interval poller, 2 s apart, as the AWS boto waiters poll (first check at once).
//
// Each does what those users' functions do around the wait: read the instance, list the
// pool's Available ENIs in its zone, take one, attach it, and poll DescribeNetworkInterfaces
// for it on the policy's schedule until it is InUse. What none of the published schedules
// says (what to do on Throttling, on a lost race) is the same for all three and is kind to
// them: a throttled call is retried with the AWS SDKs' standard-mode backoff (uniform in
// [0, min(2^n s, 20 s))), and a lost race lists again and takes another ENI at random.
package peer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// Policy is a confirmation schedule: the first check First after the attach is answered,
// then waits of Interval, multiplied by Factor after each, each stretched by a uniform share
// in [0, Jitter) of itself (Kubernetes' wait.Jitter), Checks checks in all.
type Policy struct {
	Name     string        `json:"name"`
	First    time.Duration `json:"firstNs"`
	Interval time.Duration `json:"intervalNs"`
	Factor   float64       `json:"factor"`
	Jitter   float64       `json:"jitter"`
	Checks   int           `json:"checks"`
	// Source names where the parameters come from.
	Source string `json:"source"`
}

// Terway is Terway's ENI status wait.
func Terway() Policy {
	return Policy{Name: "terway", First: 3 * time.Second, Interval: 3 * time.Second, Factor: 1.5, Jitter: 0.5, Checks: 8,
		Source: "Terway WaitENIStatus: initial delay 3 s, then wait.Backoff{3 s, x1.5, jitter 0.5, 8 steps}"}
}

// OOS is the OOS lifecycle-hook template's wait.
func OOS() Policy {
	return Policy{Name: "oos", Interval: 15 * time.Second, Factor: 1, Checks: 8,
		Source: "OOS ESS lifecycle-hook template: ACS::WaitFor InUse, Retries 7, Delay 15 s, DelayType Constant"}
}

// Fixed is a fixed-interval poller.
func Fixed() Policy {
	return Policy{Name: "fixed2s", Interval: 2 * time.Second, Factor: 1, Checks: 60,
		Source: "fixed-interval poller, 2 s apart, as the AWS boto waiters poll"}
}

// Policies returns the peers in the order the bench reports them.
func Policies() []Policy { return []Policy{Terway(), OOS(), Fixed()} }

// ByName returns the peer named name.
func ByName(name string) (Policy, bool) {
	for _, p := range Policies() {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}

// Scaled returns p with every duration multiplied by f: the harness's correctness test runs
// the schedules' shapes ten times faster, as it runs its world.
func (p Policy) Scaled(f float64) Policy {
	p.First = time.Duration(float64(p.First) * f)
	p.Interval = time.Duration(float64(p.Interval) * f)
	return p
}

// Waits returns the wait before each check: Checks of them, the first First. rnd draws
// uniforms in [0, 1) for the jitter.
func (p Policy) Waits(rnd func() float64) []time.Duration {
	out := make([]time.Duration, 0, p.Checks)
	if p.Checks > 0 {
		out = append(out, p.First)
	}
	d := float64(p.Interval)
	for len(out) < p.Checks {
		w := d
		if p.Jitter > 0 {
			w += rnd() * p.Jitter * d
		}
		out = append(out, time.Duration(w))
		d *= p.Factor
	}
	return out
}

// Result is what one attach did.
type Result struct {
	Policy   string `json:"policy"`
	Instance string `json:"instanceId"`
	ENI      string `json:"eni,omitempty"`
	// Checks counts the confirmation polls; Calls every ECS call; Throttled the calls
	// answered Throttling; LostRaces the attaches answered InvalidEniState.
	Checks    int `json:"checks"`
	Calls     int `json:"calls"`
	Throttled int `json:"throttled"`
	LostRaces int `json:"lostRaces"`
}

// Errors Attach returns.
var (
	ErrNoENI     = errors.New("peer: no Available pool ENI in the instance's zone")
	ErrNotInUse  = errors.New("peer: the ENI was not InUse after the policy's last check")
	ErrNotFound  = errors.New("peer: instance not found")
	ErrNoPoolTag = errors.New("peer: instance carries no pool tag")
)

// Attacher runs a policy against ECS.
type Attacher struct {
	ECS    cloud.ECS
	TagKey string
	Policy Policy
	// Sleep waits d or until ctx ends; nil means the real clock's.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand draws uniforms in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

func (a *Attacher) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	return clock.Real().Sleep(ctx, d)
}

func (a *Attacher) rand() float64 {
	if a.Rand != nil {
		return a.Rand()
	}
	return rand.Float64()
}

// call runs one ECS call, retrying it while it is throttled.
func (a *Attacher) call(ctx context.Context, r *Result, fn func() error) error {
	for n := 1; ; n++ {
		r.Calls++
		err := fn()
		if !throttled(err) {
			return err
		}
		r.Throttled++
		if err := a.sleep(ctx, time.Duration(a.rand()*float64(min(time.Second<<min(n, 5), 20*time.Second)))); err != nil {
			return fmt.Errorf("peer: waiting out a throttle: %w", err)
		}
	}
}

func throttled(err error) bool {
	var ae *cloud.APIError
	return errors.As(err, &ae) && (strings.HasPrefix(ae.Code, "Throttling") || ae.Code == "Rejected.Throttling")
}

func lostRace(err error) bool {
	var ae *cloud.APIError
	return errors.As(err, &ae) && ae.Code == "InvalidOperation.InvalidEniState"
}

// Attach gives the instance an Available ENI of its pool and waits on the policy's schedule
// until ECS says it is InUse.
func (a *Attacher) Attach(ctx context.Context, instanceID string) (Result, error) {
	r := Result{Policy: a.Policy.Name, Instance: instanceID}
	var insts []cloud.Instance
	err := a.call(ctx, &r, func() (err error) {
		insts, err = a.ECS.DescribeInstances(ctx, cloud.InstanceQuery{IDs: []string{instanceID}})
		return err
	})
	if err != nil {
		return r, err
	}
	if len(insts) != 1 {
		return r, fmt.Errorf("%w: %s", ErrNotFound, instanceID)
	}
	in := insts[0]
	pool := in.Tags[a.TagKey]
	if pool == "" {
		return r, fmt.Errorf("%w: %s (key %s)", ErrNoPoolTag, instanceID, a.TagKey)
	}
	for r.ENI == "" {
		var enis []cloud.ENI
		err := a.call(ctx, &r, func() (err error) {
			enis, err = a.ECS.DescribeENIs(ctx, cloud.ENIQuery{VpcID: in.VpcID, Status: cloud.StatusAvailable, TagKey: a.TagKey, TagValue: pool})
			return err
		})
		if err != nil {
			return r, err
		}
		var free []string
		for _, e := range enis {
			if e.Zone == in.Zone && e.Status == cloud.StatusAvailable {
				free = append(free, e.ID)
			}
		}
		if len(free) == 0 {
			return r, fmt.Errorf("%w: %s, pool %s, zone %s", ErrNoENI, instanceID, pool, in.Zone)
		}
		eni := free[int(a.rand()*float64(len(free)))%len(free)]
		err = a.call(ctx, &r, func() error { return a.ECS.AttachENI(ctx, eni, instanceID) })
		switch {
		case lostRace(err):
			r.LostRaces++
		case err != nil:
			return r, err
		default:
			r.ENI = eni
		}
	}
	for _, w := range a.Policy.Waits(a.rand) {
		if err := a.sleep(ctx, w); err != nil {
			return r, fmt.Errorf("peer: confirming %s: %w", r.ENI, err)
		}
		r.Checks++
		var enis []cloud.ENI
		err := a.call(ctx, &r, func() (err error) {
			enis, err = a.ECS.DescribeENIs(ctx, cloud.ENIQuery{IDs: []string{r.ENI}})
			return err
		})
		if err != nil {
			return r, err
		}
		if len(enis) == 1 && enis[0].Status == cloud.StatusInUse && enis[0].InstanceID == instanceID {
			return r, nil
		}
	}
	return r, fmt.Errorf("%w: %s on %s after %d checks", ErrNotInUse, r.ENI, instanceID, r.Checks)
}
