package handler

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// authorise refuses what an event's channel may not ask for. A message may ask; only the
// channels that need more than the right to send to a queue may ask for more than an attach:
//   - an ad hoc action only from a direct invocation or the timer trigger, never from inside a
//     dead letter or FC record (process allows one per invocation);
//   - a release (Stopped, Deleted, a scale-in) not from the work queue, a dead letter or an FC
//     record: anyone who may send to the queue could otherwise cut an instance's network. The
//     next reconcile sends back the ENIs of a stopped instance, and ECS detaches those of a
//     released one itself. A scale-in notification straight from the work queue is also
//     dead-lettered: its hook notifies the wrong place, and the letter says so;
//   - nothing outside the function's own region and account, whatever the channel.
//
// What the cloud must confirm before anything destructive (a release's state, a lifecycle
// token) is checked where the work is done; this is only what the message may ask.
func (h *Handler) authorise(it *item, inv Invocation) {
	r := it.req
	if own := firstNonEmpty(inv.Region, h.opts.Region); r.Region != "" && own != "" && r.Region != own {
		h.refuse(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeForeign, "the event names region %s; this function serves %s", r.Region, own))
		return
	}
	if own := inv.AccountID; own != "" {
		for _, acc := range r.Accounts {
			if acc != own {
				h.refuse(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeForeign, "the event names account %s; this function serves account %s", acc, own))
				return
			}
		}
	}
	letter := r.Redrive != nil
	switch it.op {
	case opAction:
		if letter || (r.Channel != event.ChannelDirect && r.Channel != event.ChannelTimer) {
			h.refuse(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeNotAllowed, "action %q came %s: actions are taken only from a direct invocation or the timer trigger",
				r.Action.Name, carrier(r)))
			return
		}
		h.capAction(it)
	case opRelease:
		if !letter && r.Channel == event.ChannelQueue && r.Kind == event.KindLifecycle {
			// A scale-in hook notifying the work queue is a deployment mistake, not an
			// attack to shrug off: dead-lettered, so the operator sees what to change, while
			// the hook waits out its timeout.
			lc := r.Lifecycle
			h.refuse(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeReleaseRefused, "a scale-in lifecycle notification of %s came in a work-queue message, which may only ask for attaches: "+
				"its ENIs stay, and lifecycle action %s of hook %s is neither completed nor extended, so it waits out the hook's heartbeat timeout and ends on its default result (%s). "+
				"Fix: point scale-in hooks at EventBridge (NotificationArn acs:eventbridge:<region>:<account>:eventbus/default); only scale-out hooks may notify the work queue",
				r.InstanceID, fingerprint(lc.Token), lc.HookID, firstNonEmpty(lc.DefaultResult, "not given")))
			return
		}
		if letter || r.Channel == event.ChannelQueue {
			h.refuse(it, engine.OutcomeSkipped, cloud.Problemf(cloud.CodeReleaseRefused, "a release of %s came %s, which may only ask for attaches: not acted on (reconcile sends back a stopped instance's ENIs; ECS detaches a released one's)",
				r.InstanceID, carrier(r)))
		}
	}
}

func (h *Handler) refuse(it *item, o engine.Outcome, err error) {
	it.op = opDecided
	h.decide(it, o, err)
}

// carrier names the channel an event came on, for a reason.
func carrier(r event.Request) string {
	switch {
	case r.Redrive != nil && r.Redrive.FCDestination:
		return "in an FC destination record"
	case r.Redrive != nil:
		return "in a dead letter"
	case r.Channel == event.ChannelQueue:
		return "in a work-queue message"
	}
	return "by " + string(r.Channel)
}

// capAction keeps an action's max within the configured bound: a caller may ask for less work
// than the configuration allows, never more.
func (h *Handler) capAction(it *item) {
	a := it.req.Action
	limit := 0
	switch a.Name {
	case event.ActionReconcile:
		limit = h.opts.ReconcileMax
	case event.ActionRedrive:
		limit = h.opts.RedriveMax
	}
	if limit > 0 && a.Max > limit {
		capped := *a
		capped.Max = limit
		it.req.Action = &capped
	}
}

// oneAction refuses every action of an invocation that asks for more than one: each may
// cost hundreds of calls, and one payload must not multiply them.
func (h *Handler) oneAction(actions []*item) []*item {
	if len(actions) <= 1 {
		return actions
	}
	for _, it := range actions {
		h.refuse(it, engine.OutcomeDeadLettered, cloud.Problemf(cloud.CodeNotAllowed, "the payload asks for %d actions: one per invocation", len(actions)))
	}
	return nil
}

// budget bounds the ECS calls of one invocation, so that no payload can make the function
// spend the account's ECS quota (which every other caller of ECS in the account shares).
// Each call takes its unit before it goes out, so calls made at once cannot overshoot it.
type budget struct {
	max  int64
	used atomic.Int64
}

type budgetKey struct{}

// withBudget returns ctx whose ECS calls (through budgeted) are bounded by max (0: no bound).
func withBudget(ctx context.Context, max int) context.Context {
	if max <= 0 {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, &budget{max: int64(max)})
}

// spent takes one call from ctx's budget, or reports an error when it is used up.
func spent(ctx context.Context, api string) error {
	b, ok := ctx.Value(budgetKey{}).(*budget)
	if !ok || b.used.Add(1) <= b.max {
		return nil
	}
	return &cloud.APIError{Service: "ecs", API: api, Code: cloud.CodeBudget,
		Message: "the invocation used its " + strconv.FormatInt(b.max, 10) + " ECS calls (ENIPOOL_MAX_CALLS)"}
}

// budgeted is an ECS that refuses calls once the invocation's budget is spent.
type budgeted struct{ cloud.ECS }

func (b budgeted) DescribeInstances(ctx context.Context, q cloud.InstanceQuery) ([]cloud.Instance, error) {
	if err := spent(ctx, "DescribeInstances"); err != nil {
		return nil, err
	}
	return b.ECS.DescribeInstances(ctx, q)
}

func (b budgeted) DescribeInstanceTypes(ctx context.Context, types []string) ([]cloud.InstanceType, error) {
	if err := spent(ctx, "DescribeInstanceTypes"); err != nil {
		return nil, err
	}
	return b.ECS.DescribeInstanceTypes(ctx, types)
}

func (b budgeted) DescribeENIs(ctx context.Context, q cloud.ENIQuery) ([]cloud.ENI, error) {
	if err := spent(ctx, "DescribeNetworkInterfaces"); err != nil {
		return nil, err
	}
	return b.ECS.DescribeENIs(ctx, q)
}

func (b budgeted) AttachENI(ctx context.Context, eniID, instanceID string) error {
	if err := spent(ctx, "AttachNetworkInterface"); err != nil {
		return err
	}
	return b.ECS.AttachENI(ctx, eniID, instanceID)
}

func (b budgeted) DetachENI(ctx context.Context, eniID, instanceID string) error {
	if err := spent(ctx, "DetachNetworkInterface"); err != nil {
		return err
	}
	return b.ECS.DetachENI(ctx, eniID, instanceID)
}

func (b budgeted) CreateENI(ctx context.Context, spec cloud.ENISpec) (cloud.ENI, error) {
	if err := spent(ctx, "CreateNetworkInterface"); err != nil {
		return cloud.ENI{}, err
	}
	return b.ECS.CreateENI(ctx, spec)
}

func (b budgeted) DeleteENI(ctx context.Context, eniID string) error {
	if err := spent(ctx, "DeleteNetworkInterface"); err != nil {
		return err
	}
	return b.ECS.DeleteENI(ctx, eniID)
}

// connect returns the clients of the invocation's session in region, their ECS calls paced
// by the process's rate control and bound by the invocation's budget.
func (h *Handler) connect(ctx context.Context, inv Invocation, region string) (*cloud.Clients, error) {
	c, err := h.conn.Connect(ctx, cloud.Session{Region: region, AccountID: inv.AccountID, Credentials: inv.Credentials})
	if err != nil {
		return nil, err
	}
	bc := *c
	bc.ECS = h.engine.Paced(budgeted{c.ECS})
	return &bc, nil
}

// quarantineAfter is how many times a dead letter that cannot be acted on (unreadable, or
// asking what a letter may not) is received before redrive stops trying it.
const quarantineAfter = 3

// quarantineFor is how long a quarantined letter stays invisible: MNS's longest visibility
// timeout (43200 s, ChangeMessageVisibility's documented maximum). It stays in the queue for
// an operator to read and delete; it no longer takes a redrive's turn.
const quarantineFor = 12 * time.Hour
