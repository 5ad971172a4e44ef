package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/enipool/enipool/cloud"
)

// listPool lists the ENIs of one pool, or of every pool when pool is empty.
func (eng *Engine) listPool(ctx context.Context, ecs cloud.ECS, pool string) ([]cloud.ENI, error) {
	var enis []cloud.ENI
	err := eng.Retry(ctx, func(ctx context.Context) (err error) {
		enis, err = ecs.DescribeENIs(ctx, cloud.ENIQuery{TagKey: eng.cfg.TagKey, TagValue: pool})
		return err
	})
	return enis, err
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

// Reconcile repairs what missed events left in pool (every pool when empty): eligible
// Running instances without their ENIs get them, instances holding too many drop the surplus,
// pool ENIs on instances that are not eligible go back to the pool; then it reports the
// watermarks and keeps the warm target. It looks at at most limit instances, the window of
// the fleet whose turn it is at at. It returns the report, a Result per instance it acted on
// (attaches first, then releases), and the error that kept it from finishing, if any; the
// report's Summary says what it did.
func (eng *Engine) Reconcile(ctx context.Context, ecs cloud.ECS, account, pool string, limit int, at time.Time) (*ReconcileReport, []Result, error) {
	rep := &ReconcileReport{}
	var insts []cloud.Instance
	err := eng.Retry(ctx, func(ctx context.Context) (err error) {
		insts, err = ecs.DescribeInstances(ctx, cloud.InstanceQuery{TagKey: eng.cfg.TagKey, TagValue: pool, Status: "Running"})
		return err
	})
	if err != nil {
		return rep, nil, err
	}
	sort.Slice(insts, func(i, j int) bool { return insts[i].ID < insts[j].ID })
	insts, rep.Coverage = eng.window(insts, limit, at)
	rep.Truncated = rep.Coverage.Fleet - len(insts)
	rep.Instances = len(insts)

	var out []Result
	eligible := map[string]string{} // instance -> pool
	var ts []*target
	for i := range insts {
		in := insts[i]
		t := newTarget(in.ID, "", false)
		t.inst, t.lookedAt = &in, eng.clock.Now() // the listing just made
		ts = append(ts, t)
		eligible[in.ID] = in.Tags[eng.cfg.TagKey]
	}
	eng.attach(ctx, ecs, account, ts)
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
		out = append(out, t.result())
	}

	enis, err := eng.listPool(ctx, ecs, pool)
	if err != nil {
		return rep, out, err
	}
	rels, strayErr := eng.strays(ctx, ecs, enis, eligible, rep)
	if strayErr != nil {
		rep.Errors = append(rep.Errors, strayErr.Error())
	}
	if len(rels) > 0 {
		eng.releaseAll(ctx, ecs, rels)
		for _, r := range rels {
			if r.outcome == OutcomeDetached {
				rep.Released++
			}
			out = append(out, r.result())
		}
		if enis, err = eng.listPool(ctx, ecs, pool); err != nil {
			return rep, out, err
		}
	}
	if eng.cfg.Warm.Enabled() && (pool == "" || pool == eng.cfg.Warm.Pool) {
		rep.Warm = eng.warm(ctx, ecs, enis)
	}
	rep.Pools = eng.poolStatus(enis, false)
	eng.logWatermarks(rep.Pools)
	if strayErr != nil {
		// The strays stay where they are: the reconcile failed at that, and says so.
		return rep, out, &cloud.Problem{Code: cloud.CodeOrTransport(strayErr), Msg: rep.counts(), Err: strayErr}
	}
	return rep, out, nil
}

// counts says what a reconcile did to the instances.
func (rep *ReconcileReport) counts() string {
	return fmt.Sprintf("reconciled %d instance(s): %d attached, %d already attached, %d released, %d failed",
		rep.Instances, rep.Attached, rep.AlreadyAttached, rep.Released, rep.Failed)
}

// Summary says what a finished reconcile did, and which window of the fleet it looked at.
func (rep *ReconcileReport) Summary() string {
	return rep.counts() + fmt.Sprintf(" (window %d of %d of a fleet of %d)", rep.Coverage.Window, rep.Coverage.Windows, rep.Coverage.Fleet)
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
func (eng *Engine) window(insts []cloud.Instance, limit int, at time.Time) ([]cloud.Instance, *Coverage) {
	cov := &Coverage{Fleet: len(insts), Window: 1, Windows: 1}
	if len(insts) > limit {
		cov.Windows = (len(insts) + limit - 1) / limit
		turn := at.UnixNano() / int64(max(eng.cfg.ReconcileInterval, time.Second))
		cov.Window = int(((turn%int64(cov.Windows))+int64(cov.Windows))%int64(cov.Windows)) + 1
		lo := (cov.Window - 1) * limit
		insts = insts[lo:min(lo+limit, len(insts))]
	}
	if len(insts) > 0 {
		cov.From, cov.To = insts[0].ID, insts[len(insts)-1].ID
	}
	return insts, cov
}

// strays finds pool ENIs held by instances of the pool tag that should not hold them: an
// instance tagged for another pool, or a Stopped one when Stopped instances give their ENIs
// back (a missed Stopped event). Each becomes a release of just that ENI. Pool ENIs on
// instances without the pool tag are not enipool's to take back: they are counted in the
// report and logged, and left alone.
func (eng *Engine) strays(ctx context.Context, ecs cloud.ECS, enis []cloud.ENI, eligible map[string]string, rep *ReconcileReport) ([]*giveBack, error) {
	holders := map[string][]cloud.ENI{}
	for _, e := range enis {
		if e.InstanceID == "" || (e.Status != cloud.StatusInUse && e.Status != cloud.StatusAttaching) {
			continue
		}
		if pool, ok := eligible[e.InstanceID]; ok && pool == e.Tags[eng.cfg.TagKey] {
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
	if err := eng.Retry(ctx, func(ctx context.Context) (err error) {
		insts, err = ecs.DescribeInstances(ctx, cloud.InstanceQuery{IDs: ids})
		return err
	}); err != nil {
		return nil, fmt.Errorf("cannot look up the holders of %d pool ENI(s) on instances it did not reconcile: %w", len(ids), err)
	}
	byID := map[string]cloud.Instance{}
	for _, in := range insts {
		byID[in.ID] = in
	}
	var out []*giveBack
	for _, id := range ids {
		in, found := byID[id]
		for _, e := range holders[id] {
			pool, has := e.Tags[eng.cfg.TagKey], in.Tags[eng.cfg.TagKey]
			switch {
			case !found:
				continue // released: ECS detaches its ENIs itself
			case has == "":
				rep.Foreign = append(rep.Foreign, e.ID+" on "+id)
				eng.log.Warn("enipool.foreign-holder", "networkInterfaceId", e.ID, "pool", pool, "instanceId", id,
					"reason", "a pool ENI is attached to an instance without the pool tag; enipool leaves it alone")
				continue
			case has == pool && in.Status != "Stopped":
				continue // eligible: beyond this run's limit, or starting
			case has == pool && !eng.releasesOnStop(&in):
				continue // Stopped instances keep their ENIs
			}
			out = append(out, &giveBack{id: id, only: e.ID})
		}
	}
	return out, nil
}
