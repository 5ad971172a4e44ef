package handler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// proof is what Auto Scaling said of an item's lifecycle claim.
type proof int

const (
	proofNone     proof = iota // not a lifecycle item, or not looked at
	proofVerified              // the action is open for its hook, of the transition claimed, and holds the instance
	proofRefused               // Auto Scaling did not confirm the claim, or could not be asked
	proofClosed                // Auto Scaling lists the action, ended: a late or repeated notification
	proofRedriven              // the dead letter of one instance: its action was ended when it was written
)

// fingerprint names a lifecycle action token in results and logs without giving it away:
// whoever holds a token may complete the action.
func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token#" + hex.EncodeToString(sum[:4])
}

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
// The dead letter of one instance of a lifecycle event (its action was completed when it was
// written) is not verified: a scale-out's instance is attached as a direct invocation would
// be, and a scale-in's instance is released only if ECS no longer knows it
// (checkLifecycleClosed).
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
			if it.op == opRelease {
				it.check = engine.CheckLifecycleClosed
			}
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

// verdict is what Auto Scaling says of one lifecycle notification.
type verdict struct {
	group          string          // the hook's scaling group
	status, result string          // the action's
	named          map[string]bool // claimed instances the action names
	waiting        map[string]bool // claimed instances in the transition's wait state in the group
}

// verifyAction asks Auto Scaling about one lifecycle notification. A claim Auto Scaling does
// not confirm is a *Problem with CodeLifecycleUnverified; a failed call is the call's error.
func (h *Handler) verifyAction(ctx context.Context, lc cloud.Lifecycle, l *event.Lifecycle) (*verdict, error) {
	refused := func(format string, args ...any) (*verdict, error) {
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
	v := &verdict{group: hook.ScalingGroupID, named: map[string]bool{}, waiting: map[string]bool{}}
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

// lifecycleGroup is the instances of one lifecycle action (one token).
type lifecycleGroup struct {
	lc     *event.Lifecycle
	region string
	items  []*item
}

func lifecycleGroups(items []*item) []*lifecycleGroup {
	byToken := map[string]*lifecycleGroup{}
	var out []*lifecycleGroup
	for _, it := range items {
		lc := it.req.Lifecycle
		if lc == nil || it.req.Err != nil {
			continue
		}
		if it.req.Redrive != nil || it.proof != proofVerified {
			// A dead letter or FC record is redriven as the attach of its instances, never
			// as a completion: the action was completed (or timed out) when the letter was
			// written, and a letter is only a claim. Nor does a notification Auto Scaling did
			// not vouch for (or was not asked about) complete, extend or sway an action.
			continue
		}
		key := lc.HookID + "|" + lc.Token
		g, ok := byToken[key]
		if !ok {
			g = &lifecycleGroup{lc: lc, region: it.region}
			byToken[key] = g
			out = append(out, g)
		}
		g.items = append(g.items, it)
	}
	return out
}

// completeLifecycles completes every lifecycle action the items belong to, once per token:
// CONTINUE when every instance got (or, on scale-in, gave back) its ENIs, else the
// configured failure result (ABANDON by default, so Auto Scaling replaces an instance rather
// than run it without its network). When the work goes back to the platform for a retry,
// the action is left open and its heartbeat extended instead. It returns one item per
// completion.
func (h *Handler) completeLifecycles(ctx context.Context, inv Invocation, items []*item) []*item {
	single := singleEvent(items)
	var out []*item
	for _, g := range lifecycleGroups(items) {
		ready, failed, pending := 0, 0, 0
		for _, it := range g.items {
			switch it.res.Outcome {
			case engine.OutcomeAttached, engine.OutcomeAlreadyAttached, engine.OutcomeDetached, engine.OutcomeSkipped:
				ready++
			case engine.OutcomeRetry:
				pending++
			default:
				failed++
			}
		}
		if pending > 0 && single && inv.RetryCount < h.opts.PlatformRetries {
			// The platform retries the event: leave the action open, and extend it so the
			// hook does not time out before the retry. A heartbeat that fails is a result of
			// its own: the hook may now time out on its default result.
			clients, err := h.conn.Connect(ctx, cloud.Session{Region: g.region, AccountID: inv.AccountID, Credentials: inv.Credentials})
			if err == nil {
				err = h.heartbeat(ctx, clients, g.lc)
			}
			if err != nil {
				it := h.lifecycleItem(g)
				h.decide(it, engine.FailOutcome(err), &cloud.Problem{Code: cloud.CodeOrTransport(err), Err: err,
					Msg: fmt.Sprintf("lifecycle action %s of hook %s left open for the platform's retry, but its heartbeat failed: it may time out on its default result (%s)",
						fingerprint(g.lc.Token), g.lc.HookID, firstNonEmpty(g.lc.DefaultResult, "unknown"))})
				out = append(out, it)
			}
			continue
		}
		result := "CONTINUE"
		if failed+pending > 0 && g.lc.Transition == event.TransitionScaleOut {
			result = h.opts.LifecycleFailureResult
		}
		it := h.lifecycleItem(g)
		var calls atomic.Int64
		cctx := cloud.WithCallObserver(ctx, func(cloud.Call) { calls.Add(1) })
		clients, err := h.conn.Connect(cctx, cloud.Session{Region: g.region, AccountID: inv.AccountID, Credentials: inv.Credentials})
		if err == nil {
			err = h.engine.Retry(cctx, func(ctx context.Context) error {
				return clients.Lifecycle.Complete(ctx, g.lc.HookID, g.lc.Token, result)
			})
		}
		it.res.APICalls += int(calls.Load())
		summary := fmt.Sprintf("lifecycle action %s of hook %s (%s): %s; %d of %d instance(s) ready",
			fingerprint(g.lc.Token), g.lc.HookID, g.lc.Transition, result, ready, len(g.items))
		for _, x := range g.items {
			if x.beatErr != nil {
				summary += "; an earlier heartbeat failed: " + x.beatErr.Error()
				break
			}
		}
		switch {
		case err == nil:
			h.decide(it, engine.OutcomeCompleted, nil)
			it.res.Reason = summary
		default:
			h.decide(it, engine.FailOutcome(err), &cloud.Problem{Code: cloud.CodeOrTransport(err), Msg: summary + ": completion failed", Err: err})
		}
		out = append(out, it)
	}
	return out
}

// lifecycleItem makes the item that reports on a lifecycle action as a whole.
func (h *Handler) lifecycleItem(g *lifecycleGroup) *item {
	it := &item{req: g.items[0].req, region: g.region, op: opDecided, held: g.items[0].held, message: g.items[0].message}
	it.req.InstanceID = ""
	it.res = Result{Source: it.req.Source, EventID: it.req.EventID}
	return it
}

// heartbeatRetries extends the lifecycle actions of a retried or redriven event before
// working on it again: the platform's retry delays may outlast the hook's timeout.
func (h *Handler) heartbeatRetries(ctx context.Context, inv Invocation, clients *cloud.Clients, items []*item) {
	seen := map[string]bool{}
	for _, it := range items {
		lc := it.req.Lifecycle
		if lc == nil || it.proof != proofVerified || inv.RetryCount == 0 || it.req.Redrive != nil || seen[lc.Token] {
			continue
		}
		seen[lc.Token] = true
		if err := h.heartbeat(ctx, clients, lc); err != nil {
			// Reported with the action's completion, or again by the heartbeat that leaves
			// it open.
			for _, x := range items {
				if x.req.Lifecycle != nil && x.req.Lifecycle.Token == lc.Token {
					x.beatErr = err
				}
			}
		}
	}
}

func (h *Handler) heartbeat(ctx context.Context, clients *cloud.Clients, lc *event.Lifecycle) error {
	return h.engine.Retry(ctx, func(ctx context.Context) error {
		return clients.Lifecycle.Heartbeat(ctx, lc.HookID, lc.Token, h.opts.LifecycleHeartbeat)
	})
}
