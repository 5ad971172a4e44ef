package handler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
