package handler

import (
	"context"
	"sort"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// runEvents does the attaches and releases of planned items, region by region, then
// completes their lifecycle actions; it returns the items with one item per completion.
// Actions are not its business: process runs them, and redrive, which runs the letters of
// the dead-letter queue through here, never runs one.
func (h *Handler) runEvents(ctx, finish context.Context, inv Invocation, items []*item) []*item {
	byRegion := map[string][]*item{}
	for _, it := range items {
		if it.op == opAttach || it.op == opRelease {
			byRegion[it.region] = append(byRegion[it.region], it)
		}
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions) // one in practice: authorise refuses every region but the function's own
	for _, region := range regions {
		h.runRegion(ctx, inv, region, byRegion[region])
	}
	return append(items, h.completeLifecycles(finish, inv, items)...)
}

// runRegion does the attaches and releases of one region: attaches first, then releases,
// each checking the instance's current state, so out-of-order events settle on what the
// instance is now.
func (h *Handler) runRegion(ctx context.Context, inv Invocation, region string, items []*item) {
	clients, err := h.connect(ctx, inv, region)
	if err != nil {
		for _, it := range items {
			h.decide(it, engine.OutcomeRetry, &cloud.Problem{Code: cloud.CodeTransport, Msg: "cannot connect to region " + region, Err: err})
			it.op = opDecided
		}
		return
	}
	h.verifyLifecycles(ctx, clients.Lifecycle, items)
	h.heartbeatRetries(ctx, inv, clients, items)
	// One attach per instance and one release per instance and check, whatever the number
	// of events asking: the engine's result settles every item that asked.
	var attaches []engine.AttachRequest
	attachers := map[string][]*item{}
	type releaseKey struct {
		id    string
		check engine.Check
	}
	var releases []engine.ReleaseRequest
	releasers := map[releaseKey][]*item{}
	for _, it := range items {
		switch it.op {
		case opAttach:
			id := it.req.InstanceID
			if _, ok := attachers[id]; !ok {
				direct := it.req.Kind != event.KindECSStateChange && it.req.Kind != event.KindECSNotification
				attaches = append(attaches, engine.AttachRequest{InstanceID: id, ENIID: it.req.ENIID, AllowStopped: direct})
			}
			attachers[id] = append(attachers[id], it)
		case opRelease:
			k := releaseKey{it.req.InstanceID, it.check}
			if _, ok := releasers[k]; !ok {
				releases = append(releases, engine.ReleaseRequest{InstanceID: k.id, Check: k.check})
			}
			// The latest event's time: it is the one the instance's state must be judged by.
			for i := range releases {
				if releases[i].InstanceID == k.id && releases[i].Check == k.check && it.req.Time.After(releases[i].Since) {
					releases[i].Since = it.req.Time
				}
			}
			releasers[k] = append(releasers[k], it)
		}
	}
	if len(attaches) > 0 {
		for _, r := range h.engine.Attach(ctx, clients.ECS, inv.AccountID, attaches) {
			for _, it := range attachers[r.InstanceID] {
				settle(it, r)
			}
		}
	}
	if len(releases) > 0 {
		for i, r := range h.engine.Release(ctx, clients.ECS, releases) {
			for _, it := range releasers[releaseKey{releases[i].InstanceID, releases[i].Check}] {
				settle(it, r)
			}
		}
	}
}

// settle writes the engine's result for the item's instance into the item's result.
func settle(it *item, r engine.Result) {
	res := &it.res
	res.Outcome, it.err = r.Outcome, r.Err
	res.Attempts, res.APICalls, res.RequestIDs = r.Attempts, r.Calls, r.RequestIDs
	res.Pool, res.Zone, res.Detached = r.Pool, r.Zone, r.Detached
	res.ENIs = nil
	for _, k := range r.ENIs {
		res.ENIs = append(res.ENIs, ENIRef{ID: k.ID, PrivateIP: k.PrivateIP})
	}
	it.tried, it.vpc = r.Tried, r.VpcID
}
