package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// runAction performs an ad hoc operation and returns the items it acted on.
func (h *Handler) runAction(ctx, finish context.Context, inv Invocation, it *item, resp *Response) []*item {
	a := it.req.Action
	clients, err := h.connect(ctx, inv, it.region)
	if err != nil {
		h.decide(it, engine.OutcomeRetry, &cloud.Problem{Code: cloud.CodeTransport, Msg: "cannot connect to region " + it.region, Err: err})
		return nil
	}
	switch a.Name {
	case event.ActionStatus:
		rep, n, err := h.engine.Status(ctx, clients.ECS, a.Pool)
		if err != nil {
			h.decide(it, engine.FailOutcome(err), err)
			return nil
		}
		resp.Report = rep
		h.decide(it, engine.OutcomeCompleted, nil)
		it.res.Reason = fmt.Sprintf("status of %d pool ENI(s)", n)
		return nil
	case event.ActionReconcile:
		rep, items := h.reconcile(ctx, inv, clients, it, a)
		resp.Report = rep
		return items
	case event.ActionRedrive:
		if it.held {
			h.decide(it, engine.OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "a redrive found in the dead-letter queue is not run again"))
			return nil
		}
		rep, items := h.redrive(ctx, finish, inv, clients, it, a)
		resp.Report = rep
		return items
	case event.ActionDetach:
		r := h.engine.Detach(ctx, clients.ECS, firstNonEmpty(a.InstanceID, it.req.InstanceID), it.req.ENIID)
		settle(it, r)
		if r.InstanceID != "" {
			it.res.InstanceID = r.InstanceID
		}
		return nil
	default:
		h.decide(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeUnsupported, "action %q is not handled", a.Name))
		return nil
	}
}

// reconcile runs the engine's reconcile for the action, and returns an item per instance it
// acted on: reported and logged, not dead-lettered (the next reconcile meets them again).
func (h *Handler) reconcile(ctx context.Context, inv Invocation, clients *cloud.Clients, it *item, a *event.Action) (*engine.ReconcileReport, []*item) {
	limit := a.Max
	if limit <= 0 {
		limit = h.opts.ReconcileMax
	}
	at := it.req.TriggerTime
	if at.IsZero() {
		at = h.clock.Now()
	}
	rep, results, err := h.engine.Reconcile(ctx, clients.ECS, inv.AccountID, a.Pool, limit, at)
	out := make([]*item, 0, len(results))
	for _, r := range results {
		out = append(out, h.synthetic(it, r.InstanceID, func(x *item) { settle(x, r); x.reportOnly = true }))
	}
	if err != nil {
		h.decide(it, engine.FailOutcome(err), err)
		return rep, out
	}
	h.decide(it, engine.OutcomeCompleted, nil)
	it.res.Reason = rep.Summary()
	return rep, out
}

// synthetic makes an item for an instance an action acted on. Its raw event is a direct
// invocation for that instance, so a dead letter of it redrives just that instance.
func (h *Handler) synthetic(parent *item, instance string, set func(*item)) *item {
	raw, _ := json.Marshal(map[string]string{"instanceId": instance, "regionId": parent.region})
	x := &item{req: event.Request{Kind: event.KindDirect, InstanceID: instance, Region: parent.region,
		Source: parent.req.Source, EventID: parent.req.EventID, Raw: raw},
		region: parent.region, op: opAttach, held: parent.held, message: parent.message}
	x.res = Result{InstanceID: instance, Source: x.req.Source, EventID: x.req.EventID}
	set(x)
	return x
}

// RedriveReport is the report of the redrive action.
type RedriveReport struct {
	Received   int `json:"received"`
	Redriven   int `json:"redriven"`
	Kept       int `json:"kept"`
	Unreadable int `json:"unreadable"`
	// Quarantined counts the letters that cannot be acted on (unreadable, or asking what a
	// letter may not) and came back quarantineAfter times: hidden in the queue for 12 hours
	// so they stop taking redrives' turns, listed in QuarantinedIDs.
	Quarantined    int      `json:"quarantined,omitempty"`
	QuarantinedIDs []string `json:"quarantinedIds,omitempty"`
}

// redrive takes dead letters off the queue and handles them again. A message is deleted only
// when everything it held ended well; the rest stay in the queue (they come back after the
// queue's visibility timeout), so a redrive never loses one.
func (h *Handler) redrive(ctx, finish context.Context, inv Invocation, clients *cloud.Clients, it *item, a *event.Action) (*RedriveReport, []*item) {
	rep := &RedriveReport{}
	limit := a.Max
	if limit <= 0 {
		limit = h.opts.RedriveMax
	}
	var out []*item
	seen := map[string]bool{}
	for rep.Received < limit && ctx.Err() == nil {
		var msgs []cloud.Message
		err := h.engine.Retry(ctx, func(ctx context.Context) (err error) {
			// A read whose answer is lost leaves its messages invisible until the queue's
			// visibility timeout: they come back to a later redrive, never lost.
			msgs, err = clients.DeadLetters.Receive(ctx, min(16, limit-rep.Received), time.Second)
			return err
		})
		if err != nil {
			h.decide(it, engine.FailOutcome(err), err)
			return rep, out
		}
		fresh := msgs[:0]
		for _, m := range msgs {
			// A letter kept earlier in this run is back (the queue's visibility timeout is
			// shorter than the run): it had its turn.
			if !seen[m.ID] {
				seen[m.ID] = true
				fresh = append(fresh, m)
			}
		}
		if len(fresh) == 0 {
			break
		}
		msgs = fresh
		rep.Received += len(msgs)
		byMsg := map[string][]*item{}
		var batch []*item
		for _, m := range msgs {
			reqs := event.Decode(m.Body, event.Options{})
			for i := range reqs {
				// Whatever the body holds, it was read from a queue others may write to (raw
				// events moved there, FC records, forged envelopes): it is a letter, which may
				// only ask for attaches, whatever its form claims.
				reqs[i].Channel = event.ChannelQueue
				if reqs[i].Redrive == nil {
					reqs[i].Redrive = &event.Redrive{RedriveCount: 1}
				}
			}
			items := h.newItems(reqs)
			for _, x := range items {
				x.held, x.message = true, m.ID
			}
			byMsg[m.ID] = items
			batch = append(batch, items...)
		}
		for _, x := range batch {
			h.plan(x, inv) // a letter asking for an action is refused here (authorise)
		}
		batch = h.runEvents(ctx, finish, inv, batch)
		for _, x := range batch {
			if x.message != "" && !slices.Contains(byMsg[x.message], x) {
				byMsg[x.message] = append(byMsg[x.message], x)
			}
		}
		for _, m := range msgs {
			ok, stuck := true, false
			for _, x := range byMsg[m.ID] {
				switch x.res.Outcome {
				case engine.OutcomeAttached, engine.OutcomeAlreadyAttached, engine.OutcomeDetached, engine.OutcomeCompleted, engine.OutcomeSkipped:
				default:
					ok = false
				}
				if x.req.Err != nil {
					rep.Unreadable++
				}
				stuck = stuck || cannotAct(x)
			}
			if !ok && stuck && m.DequeueCount >= quarantineAfter {
				h.quarantine(ctx, clients.DeadLetters, m, rep)
				continue
			}
			if !ok {
				rep.Kept++
				continue
			}
			if err := h.engine.Retry(ctx, func(ctx context.Context) error { return clients.DeadLetters.Delete(ctx, m.ReceiptHandle) }); err != nil {
				rep.Kept++
				h.log.Warn("redrive: could not delete a handled dead letter; it will be handled again", "messageId", m.ID, "error", err.Error())
				continue
			}
			rep.Redriven++
		}
		out = append(out, batch...)
	}
	h.decide(it, engine.OutcomeCompleted, nil)
	it.res.Reason = fmt.Sprintf("redrove %d of %d dead letter(s); %d kept, %d quarantined", rep.Redriven, rep.Received, rep.Kept, rep.Quarantined)
	return rep, out
}

// quarantine hides a letter that cannot be acted on for quarantineFor: it stays in the queue
// for an operator, and stops coming back to every redrive. A letter that cannot be hidden is
// kept as it is.
func (h *Handler) quarantine(ctx context.Context, dlq cloud.DeadLetters, m cloud.Message, rep *RedriveReport) {
	if err := h.engine.Retry(ctx, func(ctx context.Context) error { return dlq.Hide(ctx, m.ReceiptHandle, quarantineFor) }); err != nil {
		rep.Kept++
		h.log.Warn("enipool.quarantine-failed", "messageId", m.ID, "error", err.Error())
		return
	}
	rep.Quarantined++
	rep.QuarantinedIDs = append(rep.QuarantinedIDs, m.ID)
	h.log.Warn("enipool.quarantined", "messageId", m.ID, "dequeueCount", m.DequeueCount, "code", cloud.CodeQuarantined,
		"reason", fmt.Sprintf("a dead letter that cannot be acted on came back %d times: hidden for %s; read it in the queue and delete it", m.DequeueCount, quarantineFor))
}
