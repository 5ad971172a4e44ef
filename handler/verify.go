package handler

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// verifyLifecycles checks every lifecycle notification among items with Auto Scaling before
// anything is done on its word. A notification's hook, token, transition, scaling group,
// activity and instance list are claims. The hook must exist (DescribeLifecycleHooks), with
// the claimed transition and scaling group and, when ENIPOOL_SCALING_GROUPS is set, one of
// those groups; Auto Scaling must list an action of the hook with the token
// (DescribeLifecycleActions, for the claimed scaling activity or those of the claimed
// instances, DescribeScalingInstances). Only the instances that action names count:
//
//   - the action is pending: each of its instances in the transition's wait state
//     (Pending:Wait, Removing:Wait) gets its work, counts towards the completion, and the
//     action is completed or extended;
//   - the action has ended (completed or timed out: a late or repeated notification):
//     nothing is completed or extended; a scale-out's instances are attached as a direct
//     invocation would attach them (the attach checks the instance with ECS), a scale-in's
//     keep their ENIs (CodeStaleEvent);
//   - any other claim, and any instance the action does not name, is refused with
//     CodeLifecycleUnverified: no attach, no detach, no completion, a dead letter.
//
// The dead letter of one instance of a lifecycle event (its action was completed or timed out
// when it was written) is not verified: its instance is attached as a direct invocation would
// attach it, and nothing is completed or extended (lifecycleGroups). A letter never releases:
// authorise refuses a scale-in from a letter before it gets here.
func (h *Handler) verifyLifecycles(ctx context.Context, lc cloud.Lifecycle, items []*item) {
	type claim struct {
		lc    *event.Lifecycle
		items []*item
	}
	byToken := map[string]*claim{}
	var claims []*claim
	for _, it := range items {
		l := it.req.Lifecycle
		if l == nil || it.req.Err != nil || (it.op != opAttach && it.op != opRelease) {
			continue
		}
		if rd := it.req.Redrive; rd != nil && rd.InstanceID != "" {
			it.proof = proofRedriven
			continue
		}
		key := l.HookID + "|" + l.Token
		c, ok := byToken[key]
		if !ok {
			c = &claim{lc: l}
			byToken[key] = c
			claims = append(claims, c)
		}
		c.items = append(c.items, it)
	}
	for _, c := range claims {
		fp := fingerprint(c.lc.Token)
		v, err := h.verifyAction(ctx, lc, c.lc)
		for _, it := range c.items {
			id := it.req.InstanceID
			switch {
			case err != nil && isRefusal(err):
				h.refuseClaim(it, err)
			case err != nil:
				it.op, it.proof = opDecided, proofRefused
				h.decide(it, engine.FailOutcome(err), &cloud.Problem{Code: cloud.CodeOrTransport(err), Err: err,
					Msg: fmt.Sprintf("cannot check lifecycle action %s of hook %s with Auto Scaling: nothing done on its word", fp, c.lc.HookID)})
			case !v.named[id]:
				h.refuseClaim(it, cloud.Problemf(cloud.CodeLifecycleUnverified, "instance %s is not one lifecycle action %s of hook %s names (per Auto Scaling): nothing done on the notification's word",
					id, fp, c.lc.HookID))
			case v.status != cloud.LifecyclePending && it.op == opRelease:
				it.op, it.proof = opDecided, proofRefused
				h.decide(it, engine.OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "lifecycle action %s of hook %s is %s (%s) already: Auto Scaling no longer holds instance %s for removal, its ENIs stay",
					fp, c.lc.HookID, v.status, firstNonEmpty(v.result, "no result"), id))
			case v.status != cloud.LifecyclePending:
				it.proof = proofClosed // attached as a direct invocation would be; nothing completed
			case !v.waiting[id]:
				h.refuseClaim(it, cloud.Problemf(cloud.CodeLifecycleUnverified, "instance %s is not in %s in scaling group %s, though lifecycle action %s of hook %s names it: nothing done on the notification's word",
					id, waitState(c.lc.Transition), v.group, fp, c.lc.HookID))
			default:
				it.proof = proofVerified
			}
		}
	}
}

// refuseClaim settles an item whose lifecycle claim Auto Scaling did not confirm.
func (h *Handler) refuseClaim(it *item, err error) {
	it.op, it.proof = opDecided, proofRefused
	h.decide(it, engine.OutcomeDeadLettered, err)
}

// isRefusal reports whether err is a refusal of the claim, not a failed call.
func isRefusal(err error) bool {
	code, _ := cloud.CodeOf(err)
	return code == cloud.CodeLifecycleUnverified
}

func waitState(transition string) string {
	if transition == event.TransitionScaleIn {
		return cloud.StateRemovingWait
	}
	return cloud.StatePendingWait
}

// confirmation is what Auto Scaling says of one lifecycle notification.
type confirmation struct {
	group          string          // the hook's scaling group
	status, result string          // the action's
	named          map[string]bool // claimed instances the action names
	waiting        map[string]bool // claimed instances in the transition's wait state in the group
}

// verifyAction asks Auto Scaling about one lifecycle notification. A claim Auto Scaling does
// not confirm is a *Problem with CodeLifecycleUnverified; a failed call is the call's error.
func (h *Handler) verifyAction(ctx context.Context, lc cloud.Lifecycle, l *event.Lifecycle) (*confirmation, error) {
	refused := func(format string, args ...any) (*confirmation, error) {
		return nil, cloud.Problemf(cloud.CodeLifecycleUnverified, "lifecycle action %s of hook %s: %s: nothing done on the notification's word, and it is not completed",
			fingerprint(l.Token), l.HookID, fmt.Sprintf(format, args...))
	}
	allowed := func(group string) bool {
		return len(h.opts.ScalingGroups) == 0 || slices.Contains(h.opts.ScalingGroups, group)
	}
	if l.ScalingGroupID != "" && !allowed(l.ScalingGroupID) {
		return refused("scaling group %s is not one enipool serves (ENIPOOL_SCALING_GROUPS)", l.ScalingGroupID)
	}
	var hook cloud.LifecycleHook
	var found bool
	if err := h.engine.Retry(ctx, func(ctx context.Context) (err error) {
		hook, found, err = lc.LifecycleHook(ctx, l.HookID)
		return err
	}); err != nil {
		return nil, err
	}
	switch {
	case !found:
		return refused("Auto Scaling has no such hook")
	case l.ScalingGroupID != "" && hook.ScalingGroupID != l.ScalingGroupID:
		return refused("the hook belongs to scaling group %s, not %s as claimed", hook.ScalingGroupID, l.ScalingGroupID)
	case !allowed(hook.ScalingGroupID):
		return refused("scaling group %s is not one enipool serves (ENIPOOL_SCALING_GROUPS)", hook.ScalingGroupID)
	case hook.Transition != l.Transition:
		return refused("the hook is a %s hook, not %s as claimed", hook.Transition, l.Transition)
	}
	v := &confirmation{group: hook.ScalingGroupID, named: map[string]bool{}, waiting: map[string]bool{}}
	instances := func(activity string) ([]cloud.ScalingInstance, error) {
		var insts []cloud.ScalingInstance
		err := h.engine.Retry(ctx, func(ctx context.Context) (err error) {
			insts, err = lc.ScalingInstances(ctx, hook.ScalingGroupID, activity, l.InstanceIDs)
			return err
		})
		return insts, err
	}
	// find looks for the action among the scaling activity's.
	find := func(activity string) (*cloud.LifecycleAction, error) {
		var actions []cloud.LifecycleAction
		if err := h.engine.Retry(ctx, func(ctx context.Context) (err error) {
			actions, err = lc.LifecycleActions(ctx, activity, "")
			return err
		}); err != nil {
			return nil, err
		}
		for i, a := range actions {
			if a.Token == l.Token && a.HookID == l.HookID {
				return &actions[i], nil
			}
		}
		return nil, nil
	}
	// The action is looked for under the scaling activity the notification names, else
	// under those Auto Scaling gives the claimed instances.
	var action *cloud.LifecycleAction
	activity := l.ScalingActivityID
	if activity != "" {
		a, err := find(activity)
		if err != nil {
			return nil, err
		}
		action = a
	}
	var tried []string
	if action == nil {
		insts, err := instances("")
		if err != nil {
			return nil, err
		}
		for _, si := range insts {
			act := si.ScalingActivityID
			if act == "" || act == l.ScalingActivityID || slices.Contains(tried, act) {
				continue
			}
			tried = append(tried, act)
			a, err := find(act)
			if err != nil {
				return nil, err
			}
			if a != nil {
				action, activity = a, act
				break
			}
		}
	}
	if action == nil {
		if l.ScalingActivityID != "" {
			tried = append([]string{l.ScalingActivityID}, tried...)
		}
		if len(tried) == 0 {
			return refused("the notification names no scaling activity and none of its %d instance(s) is in scaling group %s", len(l.InstanceIDs), hook.ScalingGroupID)
		}
		return refused("Auto Scaling lists no action of the hook with that token for scaling activit%s %s",
			plural(len(tried), "y", "ies"), strings.Join(tried, ", "))
	}
	v.status, v.result = action.Status, action.Result
	for _, id := range action.InstanceIDs {
		if slices.Contains(l.InstanceIDs, id) {
			v.named[id] = true
		}
	}
	if v.status != cloud.LifecyclePending {
		return v, nil
	}
	// Which of them the action holds now: the transition's wait state in the hook's group.
	insts, err := instances(activity)
	if err != nil {
		return nil, err
	}
	want := waitState(l.Transition)
	for _, si := range insts {
		if (si.ScalingGroupID == "" || si.ScalingGroupID == hook.ScalingGroupID) && si.LifecycleState == want {
			v.waiting[si.InstanceID] = true
		}
	}
	return v, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
