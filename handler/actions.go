package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/event"
)

// runAction performs an ad hoc operation and returns the items it acted on.
func (h *Handler) runAction(ctx, finish context.Context, inv Invocation, it *item, resp *Response) []*item {
	a := it.req.Action
	clients, err := h.connect(ctx, inv, it.region)
	if err != nil {
		h.decide(it, OutcomeRetry, &cloud.Problem{Code: cloud.CodeTransport, Msg: "cannot connect to region " + it.region, Err: err})
		return nil
	}
	switch a.Name {
	case event.ActionStatus:
		enis, err := h.listPool(ctx, clients.ECS, a.Pool)
		if err != nil {
			h.decide(it, failOutcome(err), err)
			return nil
		}
		resp.Report = StatusReport{Pools: h.poolStatus(enis, true)}
		h.decide(it, OutcomeCompleted, nil)
		it.res.Reason = fmt.Sprintf("status of %d pool ENI(s)", len(enis))
		return nil
	case event.ActionReconcile:
		rep, items := h.reconcile(ctx, inv, clients, it, a)
		resp.Report = rep
		return items
	case event.ActionRedrive:
		if it.held {
			h.decide(it, OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "a redrive found in the dead-letter queue is not run again"))
			return nil
		}
		rep, items := h.redrive(ctx, finish, inv, clients, it, a)
		resp.Report = rep
		return items
	case event.ActionDetach:
		id := firstNonEmpty(a.InstanceID, it.req.InstanceID)
		if id == "" && it.req.ENIID != "" {
			var got []cloud.ENI
			err := h.retry(ctx, func(ctx context.Context) (err error) {
				got, err = clients.ECS.DescribeENIs(ctx, cloud.ENIQuery{IDs: []string{it.req.ENIID}})
				return err
			})
			if err != nil {
				h.decide(it, failOutcome(err), err)
				return nil
			}
			if len(got) == 1 {
				id = got[0].InstanceID
			}
		}
		if id == "" {
			h.decide(it, OutcomeSkipped, cloud.Problemf(cloud.CodeStaleEvent, "ENI %s is not attached to any instance", it.req.ENIID))
			return nil
		}
		r := &release{id: id, only: it.req.ENIID}
		h.releaseAll(ctx, clients.ECS, []*release{r})
		it.rel = r
		it.res.InstanceID = id
		return nil
	default:
		h.decide(it, OutcomeDeadLettered, cloud.Problemf(cloud.CodeUnsupported, "action %q is not handled", a.Name))
		return nil
	}
}

// listPool lists the ENIs of one pool, or of every pool when pool is empty.
func (h *Handler) listPool(ctx context.Context, ecs cloud.ECS, pool string) ([]cloud.ENI, error) {
	var enis []cloud.ENI
	err := h.retry(ctx, func(ctx context.Context) (err error) {
		enis, err = ecs.DescribeENIs(ctx, cloud.ENIQuery{TagKey: h.opts.TagKey, TagValue: pool})
		return err
	})
	return enis, err
}

// StatusReport is the report of the status action.
type StatusReport struct {
	Pools []PoolStatus `json:"pools"`
}

// PoolStatus counts one pool's ENIs per zone.
type PoolStatus struct {
	Pool  string       `json:"pool"`
	Zones []ZoneStatus `json:"zones"`
}

// ZoneStatus counts a pool's ENIs in one zone, and lists them for the status action.
type ZoneStatus struct {
	Zone              string `json:"zone"`
	Available         int    `json:"available"`
	Attaching         int    `json:"attaching"`
	InUse             int    `json:"inUse"`
	Detaching         int    `json:"detaching"`
	Total             int    `json:"total"`
	BelowLowWatermark bool   `json:"belowLowWatermark"`
	// ReleasedWithInstance counts the ENIs ECS deletes with the instance they are attached
	// to (DeleteOnRelease): each is lost to the pool if its instance is released first.
	ReleasedWithInstance int         `json:"releasedWithInstance"`
	ENIs                 []ENIStatus `json:"networkInterfaces,omitempty"`
}

// ENIStatus is one ENI in a status report: which instance holds it, with which address.
type ENIStatus struct {
	ID         string `json:"networkInterfaceId"`
	Status     string `json:"status"`
	InstanceID string `json:"instanceId,omitempty"`
	PrivateIP  string `json:"privateIpAddress,omitempty"`
	VSwitchID  string `json:"vSwitchId"`
	// DeleteOnRelease: ECS deletes the ENI with the instance it is attached to.
	DeleteOnRelease bool `json:"deleteOnRelease,omitempty"`
}

// poolStatus counts enis per pool and zone, sorted, listing them when detail is set.
func (h *Handler) poolStatus(enis []cloud.ENI, detail bool) []PoolStatus {
	type key struct{ pool, zone string }
	zones := map[key]*ZoneStatus{}
	for _, e := range enis {
		k := key{e.Tags[h.opts.TagKey], e.Zone}
		z, ok := zones[k]
		if !ok {
			z = &ZoneStatus{Zone: e.Zone}
			zones[k] = z
		}
		z.Total++
		switch e.Status {
		case cloud.StatusAvailable:
			z.Available++
		case cloud.StatusAttaching:
			z.Attaching++
		case cloud.StatusInUse:
			z.InUse++
		case cloud.StatusDetaching:
			z.Detaching++
		}
		if e.DeleteOnRelease {
			z.ReleasedWithInstance++
		}
		if detail {
			z.ENIs = append(z.ENIs, ENIStatus{ID: e.ID, Status: e.Status, InstanceID: e.InstanceID, PrivateIP: e.PrivateIP,
				VSwitchID: e.VSwitchID, DeleteOnRelease: e.DeleteOnRelease})
		}
	}
	byPool := map[string]*PoolStatus{}
	var out []PoolStatus
	keys := make([]key, 0, len(zones))
	for k := range zones {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].pool != keys[j].pool {
			return keys[i].pool < keys[j].pool
		}
		return keys[i].zone < keys[j].zone
	})
	for _, k := range keys {
		z := zones[k]
		z.BelowLowWatermark = z.Available < h.opts.LowWatermark
		sort.Slice(z.ENIs, func(i, j int) bool { return z.ENIs[i].ID < z.ENIs[j].ID })
		p, ok := byPool[k.pool]
		if !ok {
			out = append(out, PoolStatus{Pool: k.pool})
			p = &out[len(out)-1]
			byPool[k.pool] = p
		}
		p.Zones = append(p.Zones, *z)
	}
	return out
}

// ReconcileReport is the report of the reconcile action.
type ReconcileReport struct {
	Instances int `json:"instances"`
	// Truncated counts the instances of the fleet left to other runs (see Coverage).
	Truncated       int       `json:"truncated,omitempty"`
	Coverage        *Coverage `json:"coverage,omitempty"`
	Attached        int       `json:"attached"`
	AlreadyAttached int       `json:"alreadyAttached"`
	Released        int       `json:"released"`
	// Foreign lists pool ENIs attached to instances without the pool tag, left alone.
	Foreign []string `json:"foreign,omitempty"`
	Failed  int      `json:"failed"`
	// Errors names what the reconcile could not look at (it then ends as a failure).
	Errors []string     `json:"errors,omitempty"`
	Pools  []PoolStatus `json:"pools"`
	Warm   *WarmReport  `json:"warm,omitempty"`
}

// reconcile repairs what missed events left: eligible Running instances without their
// ENIs get them, instances holding too many drop the surplus, pool ENIs on instances that
// are not eligible go back to the pool; then it reports the watermarks and keeps the warm
// target.
func (h *Handler) reconcile(ctx context.Context, inv Invocation, clients *cloud.Clients, it *item, a *event.Action) (*ReconcileReport, []*item) {
	rep := &ReconcileReport{}
	limit := a.Max
	if limit <= 0 {
		limit = h.opts.ReconcileMax
	}
	var insts []cloud.Instance
	err := h.retry(ctx, func(ctx context.Context) (err error) {
		insts, err = clients.ECS.DescribeInstances(ctx, cloud.InstanceQuery{TagKey: h.opts.TagKey, TagValue: a.Pool, Status: "Running"})
		return err
	})
	if err != nil {
		h.decide(it, failOutcome(err), err)
		return rep, nil
	}
	sort.Slice(insts, func(i, j int) bool { return insts[i].ID < insts[j].ID })
	insts, rep.Coverage = h.window(insts, limit, firstNonZero(it.req.TriggerTime, h.clock.Now()))
	rep.Truncated = rep.Coverage.Fleet - len(insts)
	rep.Instances = len(insts)

	var out []*item
	eligible := map[string]string{} // instance -> pool
	var ts []*target
	for i := range insts {
		in := insts[i]
		t := newTarget(in.ID, "", false)
		t.inst, t.lookedAt = &in, h.clock.Now() // the listing just made
		ts = append(ts, t)
		eligible[in.ID] = in.Tags[h.opts.TagKey]
	}
	if len(ts) > 0 {
		(&engine{h: h, ecs: clients.ECS, account: inv.AccountID, targets: ts}).run(ctx)
	}
	for _, t := range ts {
		switch t.outcome {
		case OutcomeAlreadyAttached:
			rep.AlreadyAttached++
			continue
		case OutcomeAttached:
			rep.Attached++
		default:
			rep.Failed++
		}
		out = append(out, h.synthetic(it, t.id, func(x *item) { x.target = t; x.reportOnly = true }))
	}

	enis, err := h.listPool(ctx, clients.ECS, a.Pool)
	if err != nil {
		h.decide(it, failOutcome(err), err)
		return rep, out
	}
	rels, strayErr := h.strays(ctx, clients.ECS, enis, eligible, rep)
	if strayErr != nil {
		rep.Errors = append(rep.Errors, strayErr.Error())
	}
	if len(rels) > 0 {
		h.releaseAll(ctx, clients.ECS, rels)
		for _, r := range rels {
			if r.outcome == OutcomeDetached {
				rep.Released++
			}
			out = append(out, h.synthetic(it, r.id, func(x *item) { x.rel = r; x.op = opRelease; x.reportOnly = true }))
		}
		if enis, err = h.listPool(ctx, clients.ECS, a.Pool); err != nil {
			h.decide(it, failOutcome(err), err)
			return rep, out
		}
	}
	if h.opts.Warm.Enabled() && (a.Pool == "" || a.Pool == h.opts.Warm.Pool) {
		rep.Warm = h.warm(ctx, clients.ECS, enis)
	}
	rep.Pools = h.poolStatus(enis, false)
	h.logWatermarks(rep.Pools)
	summary := fmt.Sprintf("reconciled %d instance(s): %d attached, %d already attached, %d released, %d failed",
		rep.Instances, rep.Attached, rep.AlreadyAttached, rep.Released, rep.Failed)
	if strayErr != nil {
		// The strays stay where they are: the reconcile failed at that, and says so.
		h.decide(it, failOutcome(strayErr), &cloud.Problem{Code: codeOrTransport(strayErr), Msg: summary, Err: strayErr})
		return rep, out
	}
	h.decide(it, OutcomeCompleted, nil)
	it.res.Reason = summary + fmt.Sprintf(" (window %d of %d of a fleet of %d)", rep.Coverage.Window, rep.Coverage.Windows, rep.Coverage.Fleet)
	return rep, out
}

// Coverage says which part of the fleet one reconcile looked at. A fleet larger than the
// reconcile limit is cut, by instance id, into Windows windows of at most that many instances,
// and successive runs take them in turn.
type Coverage struct {
	Fleet   int    `json:"fleet"`
	Window  int    `json:"window"` // 1-based
	Windows int    `json:"windows"`
	From    string `json:"from,omitempty"` // first instance id of the window
	To      string `json:"to,omitempty"`   // last instance id of the window
}

// window picks the part of the fleet (sorted by id) this run reconciles. The turn comes from
// the run's time, the timer's trigger time when there is one, counted in ReconcileInterval:
// runs one interval apart take consecutive windows, with no memory shared between them (each
// may run in a fresh FC instance), so every instance is reached within Windows runs.
func (h *Handler) window(insts []cloud.Instance, limit int, at time.Time) ([]cloud.Instance, *Coverage) {
	cov := &Coverage{Fleet: len(insts), Window: 1, Windows: 1}
	if len(insts) > limit {
		cov.Windows = (len(insts) + limit - 1) / limit
		turn := at.UnixNano() / int64(max(h.opts.ReconcileInterval, time.Second))
		cov.Window = int(((turn%int64(cov.Windows))+int64(cov.Windows))%int64(cov.Windows)) + 1
		lo := (cov.Window - 1) * limit
		insts = insts[lo:min(lo+limit, len(insts))]
	}
	if len(insts) > 0 {
		cov.From, cov.To = insts[0].ID, insts[len(insts)-1].ID
	}
	return insts, cov
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// strays finds pool ENIs held by instances of the pool tag that should not hold them: an
// instance tagged for another pool, or a Stopped one when Stopped instances give their ENIs
// back (a missed Stopped event). Each becomes a release of just that ENI. Pool ENIs on
// instances without the pool tag are not enipool's to take back: they are counted in the
// report and logged, and left alone.
func (h *Handler) strays(ctx context.Context, ecs cloud.ECS, enis []cloud.ENI, eligible map[string]string, rep *ReconcileReport) ([]*release, error) {
	holders := map[string][]cloud.ENI{}
	for _, e := range enis {
		if e.InstanceID == "" || (e.Status != cloud.StatusInUse && e.Status != cloud.StatusAttaching) {
			continue
		}
		if pool, ok := eligible[e.InstanceID]; ok && pool == e.Tags[h.opts.TagKey] {
			continue
		}
		holders[e.InstanceID] = append(holders[e.InstanceID], e)
	}
	if len(holders) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(holders))
	for id := range holders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var insts []cloud.Instance
	if err := h.retry(ctx, func(ctx context.Context) (err error) {
		insts, err = ecs.DescribeInstances(ctx, cloud.InstanceQuery{IDs: ids})
		return err
	}); err != nil {
		return nil, fmt.Errorf("cannot look up the holders of %d pool ENI(s) on instances it did not reconcile: %w", len(ids), err)
	}
	byID := map[string]cloud.Instance{}
	for _, in := range insts {
		byID[in.ID] = in
	}
	var out []*release
	for _, id := range ids {
		in, found := byID[id]
		for _, e := range holders[id] {
			pool, has := e.Tags[h.opts.TagKey], in.Tags[h.opts.TagKey]
			switch {
			case !found:
				continue // released: ECS detaches its ENIs itself
			case has == "":
				rep.Foreign = append(rep.Foreign, e.ID+" on "+id)
				h.log.Warn("enipool.foreign-holder", "networkInterfaceId", e.ID, "pool", pool, "instanceId", id,
					"reason", "a pool ENI is attached to an instance without the pool tag; enipool leaves it alone")
				continue
			case has == pool && in.Status != "Stopped":
				continue // eligible: beyond this run's limit, or starting
			case has == pool && !h.releasesOnStop(&in):
				continue // Stopped instances keep their ENIs
			}
			out = append(out, &release{id: id, only: e.ID})
		}
	}
	return out, nil
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

// logWatermarks writes the pools' counts as one line, and a warning per zone below the low
// watermark.
func (h *Handler) logWatermarks(pools []PoolStatus) {
	h.log.Info("enipool.watermarks", "pools", pools, "lowWatermark", h.opts.LowWatermark)
	for _, p := range pools {
		for _, z := range p.Zones {
			if z.BelowLowWatermark {
				h.log.Warn("enipool.pool-low", "pool", p.Pool, "zone", z.Zone, "available", z.Available,
					"total", z.Total, "lowWatermark", h.opts.LowWatermark)
			}
			if z.ReleasedWithInstance > 0 {
				h.log.Warn("enipool.pool-at-risk", "pool", p.Pool, "zone", z.Zone, "releasedWithInstance", z.ReleasedWithInstance,
					"total", z.Total, "fix", "turn DeleteOnRelease off on the pool's ENIs (ModifyNetworkInterfaceAttribute), or ECS deletes each with the instance it is attached to")
			}
		}
	}
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
		msgs, err := clients.DeadLetters.Receive(ctx, min(16, limit-rep.Received), time.Second)
		if err != nil {
			h.decide(it, failOutcome(err), err)
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
		var sub Response
		batch = h.process(ctx, finish, inv, batch, &sub)
		for _, x := range batch {
			if x.message != "" && !slices.Contains(byMsg[x.message], x) {
				byMsg[x.message] = append(byMsg[x.message], x)
			}
		}
		for _, m := range msgs {
			ok, stuck := true, false
			for _, x := range byMsg[m.ID] {
				switch h.outcomeOf(x) {
				case OutcomeAttached, OutcomeAlreadyAttached, OutcomeDetached, OutcomeCompleted, OutcomeSkipped:
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
			if err := h.retry(ctx, func(ctx context.Context) error { return clients.DeadLetters.Delete(ctx, m.ReceiptHandle) }); err != nil {
				rep.Kept++
				h.log.Warn("redrive: could not delete a handled dead letter; it will be handled again", "messageId", m.ID, "error", err.Error())
				continue
			}
			rep.Redriven++
		}
		out = append(out, batch...)
	}
	h.decide(it, OutcomeCompleted, nil)
	it.res.Reason = fmt.Sprintf("redrove %d of %d dead letter(s); %d kept, %d quarantined", rep.Redriven, rep.Received, rep.Kept, rep.Quarantined)
	return rep, out
}

// quarantine hides a letter that cannot be acted on for quarantineFor: it stays in the queue
// for an operator, and stops coming back to every redrive. A letter that cannot be hidden is
// kept as it is.
func (h *Handler) quarantine(ctx context.Context, dlq cloud.DeadLetters, m cloud.Message, rep *RedriveReport) {
	if err := h.retry(ctx, func(ctx context.Context) error { return dlq.Hide(ctx, m.ReceiptHandle, quarantineFor) }); err != nil {
		rep.Kept++
		h.log.Warn("enipool.quarantine-failed", "messageId", m.ID, "error", err.Error())
		return
	}
	rep.Quarantined++
	rep.QuarantinedIDs = append(rep.QuarantinedIDs, m.ID)
	h.log.Warn("enipool.quarantined", "messageId", m.ID, "dequeueCount", m.DequeueCount, "code", cloud.CodeQuarantined,
		"reason", fmt.Sprintf("a dead letter that cannot be acted on came back %d times: hidden for %s; read it in the queue and delete it", m.DequeueCount, quarantineFor))
}
