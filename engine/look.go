package engine

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/enipool/enipool/cloud"
)

// describe looks the instances up (unless the caller already did) and checks what can be
// checked before an attach: eligibility, state, VPC, the instance type's rules and ENI limit.
func (e *attachRun) describe(ctx context.Context) bool {
	retry := backoff{base: time.Second, max: 5 * time.Second}
	var todo []*target
	for _, t := range e.active() {
		if t.inst == nil {
			todo = append(todo, t)
		} else {
			e.precheck(t)
		}
	}
	for len(todo) > 0 {
		starting, ok := e.lookInstances(ctx, todo)
		if !ok {
			return false
		}
		if len(starting) == 0 {
			break
		}
		if err := e.eng.clock.Sleep(ctx, retry.next()); err != nil {
			for _, t := range starting {
				t.finish(OutcomeRetry, cloud.Problemf(cloud.CodeNotReady, "instance %s is still %s", t.id, t.inst.Status))
			}
			return len(e.active()) > 0
		}
		todo = starting
	}
	return len(e.active()) > 0 && e.checkTypes(ctx)
}

func isStarting(i *cloud.Instance) bool {
	return i != nil && (i.Status == "Pending" || i.Status == "Starting")
}

// precheck settles what the instance record alone decides; it reports true when the
// instance is still starting and must be looked up again.
func (e *attachRun) precheck(t *target) bool {
	i, o := t.inst, e.eng.cfg
	switch {
	case i == nil:
		t.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeNotFound, "instance %s does not exist", t.id))
		return false
	case i.Tags[o.TagKey] == "":
		t.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeNotEligible, "instance %s has no %s tag", t.id, o.TagKey))
		return false
	case !o.Serves(i.Tags[o.TagKey]):
		t.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeNotEligible, "instance %s is in pool %q, which this deployment does not serve (ENIPOOL_POOLS %s)",
			t.id, i.Tags[o.TagKey], strings.Join(o.Pools, ",")))
		return false
	case isStarting(i):
		return true
	case i.Status == "Stopped" && !t.allowStopped:
		t.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s is Stopped now; the Running event is out of date", t.id))
		return false
	case i.Status == "Stopped" && e.eng.releasesOnStop(i):
		t.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent,
			"instance %s is Stopped, and Stopped instances give their ENIs back (ENIPOOL_RELEASE_ON): it gets them when it runs", t.id))
		return false
	case i.Status != "Running" && i.Status != "Stopped":
		t.finish(OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "instance %s is %s", t.id, i.Status))
		return false
	case i.VpcID == "":
		t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeNoVPC, "instance %s is not in a VPC", t.id))
		return false
	}
	t.pool = i.Tags[o.TagKey]
	if i.Status == "Running" {
		if e.eng.stoppedOnly(i) {
			t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeRequiresStopped,
				"instance type %s (family %s) requires the instance to be Stopped to attach an ENI; stop %s and redrive, or use another type",
				i.Type, family(i), t.id))
			return false
		}
		if !i.StartTime.IsZero() && i.StartTime.Before(rebootCutoff()) {
			t.finish(OutcomeDeadLettered, cloud.Problemf(cloud.CodeRebootRequired,
				"instance %s was last started %s, before 2018-04-01: reboot it (RebootInstance), then redrive",
				t.id, i.StartTime.UTC().Format("2006-01-02")))
			return false
		}
	}
	return false
}

// stoppedOnly reports whether the instance's family takes ENIs only while Stopped.
func (eng *Engine) stoppedOnly(i *cloud.Instance) bool {
	return slices.Contains(eng.cfg.StoppedOnlyFamilies, family(i))
}

// releasesOnStop reports whether a Stopped instance gives its pool ENIs back. Instances of
// families that take ENIs only while Stopped keep them: they could not get them back running.
func (eng *Engine) releasesOnStop(i *cloud.Instance) bool {
	return slices.Contains(eng.cfg.ReleaseOn, "Stopped") && !eng.stoppedOnly(i)
}

func family(i *cloud.Instance) string {
	if i.Family != "" {
		return i.Family
	}
	// ecs.t5-lc1m1.small -> ecs.t5; ecs.g7.large -> ecs.g7
	parts := strings.SplitN(i.Type, ".", 3)
	if len(parts) < 2 {
		return i.Type
	}
	f := parts[0] + "." + parts[1]
	if k := strings.IndexByte(f, '-'); k > 0 {
		f = f[:k]
	}
	return f
}

// maxTypesPerCall is the most instance types one DescribeInstanceTypes call may name.
const maxTypesPerCall = 10

// checkTypes learns the ENI quota of the instances' types (cached for the process) and
// refuses instances that have no room for their ENIs.
func (e *attachRun) checkTypes(ctx context.Context) bool {
	var types []string
	seen := map[string]bool{}
	for _, t := range e.active() {
		if !seen[t.inst.Type] {
			seen[t.inst.Type] = true
			types = append(types, t.inst.Type)
		}
	}
	// ECS takes 1 to 10 types per call. A look-up that fails leaves its types unknown
	// rather than failing the instances: the quota is only a pre-check, and ECS refuses an
	// attach beyond it (EniPerInstanceLimitExceeded) anyway.
	err := e.eng.types.lookup(ctx, types, func(ctx context.Context, missing []string) ([]cloud.InstanceType, error) {
		var all []cloud.InstanceType
		for chunk := range slices.Chunk(missing, maxTypesPerCall) {
			var served []*target
			for _, t := range e.active() {
				if slices.Contains(chunk, t.inst.Type) {
					served = append(served, t)
				}
			}
			var got []cloud.InstanceType
			err := e.call(ctx, served, func(ctx context.Context) (err error) {
				got, err = e.ecs.DescribeInstanceTypes(ctx, chunk)
				return err
			})
			if err != nil {
				e.eng.log.Warn("enipool.instance-types-unknown", "instanceTypes", chunk, "error", err.Error(),
					"reason", "the ENI quota of these types is not checked before attaching; ECS still enforces it")
				continue
			}
			all = append(all, got...)
		}
		return all, nil
	})
	if err != nil {
		e.failAll(ctx, e.active(), err)
		return false
	}
	for _, t := range e.active() {
		if it, ok := e.eng.types.get(t.inst.Type); ok {
			t.quota = it.ENIQuantity
		}
	}
	return true
}

// listPools lists each pool the targets need once, in full (any status), so one listing
// shows both the candidates and what each instance already holds.
func (e *attachRun) listPools(ctx context.Context, ts []*target) bool {
	groups := map[groupKey][]*target{}
	for _, t := range ts {
		groups[t.group()] = append(groups[t.group()], t)
	}
	keys := make([]groupKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].pool+keys[i].vpc < keys[j].pool+keys[j].vpc })
	for _, k := range keys {
		members := groups[k]
		var got []cloud.ENI
		sent := e.eng.clock.Now()
		err := e.call(ctx, members, func(ctx context.Context) (err error) {
			sent = e.eng.clock.Now()
			got, err = e.ecs.DescribeENIs(ctx, cloud.ENIQuery{VpcID: k.vpc, TagKey: e.eng.cfg.TagKey, TagValue: k.pool})
			return err
		})
		if err != nil {
			e.failAll(ctx, members, err)
			continue
		}
		for _, id := range e.idsInGroup(k) {
			delete(e.view, id)
			e.viewSent[id] = sent
		}
		for _, eni := range got {
			e.see(eni, sent)
		}
		e.listed[k] = e.eng.clock.Now()
	}
	return len(e.active()) > 0
}

func (e *attachRun) idsInGroup(k groupKey) []string {
	var ids []string
	for id, eni := range e.view {
		if eni.VpcID == k.vpc && eni.Tags[e.eng.cfg.TagKey] == k.pool {
			ids = append(ids, id)
		}
	}
	return ids
}

// lookInstances describes the targets' instances in one call and prechecks each; it returns
// those still starting, and false when the call failed (the targets are then finished).
func (e *attachRun) lookInstances(ctx context.Context, ts []*target) ([]*target, bool) {
	ids := make([]string, 0, len(ts))
	for _, t := range ts {
		ids = append(ids, t.id)
	}
	var got []cloud.Instance
	sent := e.eng.clock.Now()
	if err := e.call(ctx, ts, func(ctx context.Context) (err error) {
		got, err = e.ecs.DescribeInstances(ctx, cloud.InstanceQuery{IDs: ids})
		return err
	}); err != nil {
		e.failAll(ctx, ts, err)
		return nil, false
	}
	found := make(map[string]*cloud.Instance, len(got))
	for i := range got {
		found[got[i].ID] = &got[i]
	}
	var starting []*target
	for _, t := range ts {
		t.inst, t.lookedAt = found[t.id], sent
		if e.precheck(t) {
			starting = append(starting, t)
		}
		e.holdOn(t)
	}
	return starting, true
}
