package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/record"
)

// SingleParams configure the single-event scenario: every policy side by side in one
// world, each with Lanes lanes that send PerLane events one after the other, each for an
// instance not seen before. A policy's function may run Lanes instances, so FC gives each
// lane's first event a new, cold instance and reuses the warm ones after.
type SingleParams struct {
	// Cloud's Instances, Pool and PoolOf are set by Single: every lane has a pool of its own,
	// so that events of other lanes never race it for an ENI (they would not be single).
	Cloud    CloudParams `json:"cloud"`
	Policies []string    `json:"policies"`
	Lanes    int         `json:"lanes"`
	PerLane  int         `json:"perLane"`
	// PeerScale multiplies the peers' schedules (0: as published).
	PeerScale float64 `json:"peerScale,omitempty"`
}

// SinglePolicy is what the scenario measured of one policy.
type SinglePolicy struct {
	Policy string   `json:"policy"`
	Events []*Event `json:"events"`
	// Warm sums up the events served by a reused instance, Cold those that started one.
	Warm Summary `json:"warm"`
	Cold Summary `json:"cold"`
	// ECSCallsPerEvent is the policy's ECS calls (by its role) over its events.
	ECSCallsPerEvent float64 `json:"ecsCallsPerEvent"`
	Audit            Audit   `json:"audit"`
	Instances        int     `json:"fcInstances"`
	// Outcomes counts the events by the function's answer.
	Outcomes map[string]int `json:"outcomes"`
}

// SingleResult is what the scenario measured.
type SingleResult struct {
	Params   SingleParams             `json:"params"`
	Policies map[string]*SinglePolicy `json:"policies"`
	Wall     Duration                 `json:"wallMs"`
}

// Single runs the single-event scenario.
func Single(ctx context.Context, bins Functions, p SingleParams) (*SingleResult, error) {
	if p.Lanes < 1 || p.PerLane < 1 || len(p.Policies) == 0 {
		return nil, fmt.Errorf("harness: single: lanes (%d), events per lane (%d) and policies (%v) must be set", p.Lanes, p.PerLane, p.Policies)
	}
	// A lane's slot of instances and ENIs is a whole number of rounds over the zones, so its
	// pool has an ENI in each of its instances' zones.
	z := max(1, p.Cloud.Zones)
	slot := (p.PerLane + z - 1) / z * z
	lanes := len(p.Policies) * p.Lanes
	p.Cloud.Instances, p.Cloud.Pool = lanes*slot, lanes*slot
	p.Cloud.PoolOf = func(i int) string { return fmt.Sprintf("lane%03d", i/slot) }
	b, err := NewBed(p.Cloud)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	for _, pol := range p.Policies {
		if err := b.Start(pol, bins, FunctionOptions{MaxInstances: p.Lanes, PeerScale: p.PeerScale}); err != nil {
			return nil, err
		}
	}
	res := &SingleResult{Params: p, Policies: map[string]*SinglePolicy{}}
	type laneOut struct {
		tickets []Ticket
		err     error
	}
	outs := make([]laneOut, lanes)
	start := time.Now()
	var wg sync.WaitGroup
	for pi, pol := range p.Policies {
		for l := range p.Lanes {
			lane := pi*p.Lanes + l
			wg.Go(func() {
				for e := range p.PerLane {
					t := b.Submit(pol, InstanceID(lane*slot+e))
					outs[lane].tickets = append(outs[lane].tickets, t)
					if err := waitTask(ctx, b.Runtime(pol), t.RequestID); err != nil {
						outs[lane].err = err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	res.Wall = Duration(time.Since(start))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ops := b.Cloud.Store.Operations()
	for pi, pol := range p.Policies {
		sp := &SinglePolicy{Policy: pol}
		var ids []string
		for l := range p.Lanes {
			lane := pi*p.Lanes + l
			if outs[lane].err != nil {
				return nil, fmt.Errorf("harness: single: %s lane %d: %w", pol, l, outs[lane].err)
			}
			for _, ev := range b.Collect(outs[lane].tickets) {
				ev.Lane = lane
				sp.Events = append(sp.Events, ev)
				ids = append(ids, ev.Instance)
			}
		}
		Floors(sp.Events, ops, p.Cloud, false)
		Polls(sp.Events, b.Cloud.Calls.Calls(func(c record.Call) bool { return c.Principal == RoleOf(pol) }))
		var warm, cold []*Event
		for _, ev := range sp.Events {
			if ev.Cold {
				cold = append(cold, ev)
			} else {
				warm = append(warm, ev)
			}
		}
		sp.Warm, sp.Cold = Summarize(warm), Summarize(cold)
		sp.Outcomes = tallyEvents(sp.Events)
		sp.Audit = b.AuditOf(ctx, ids, RoleOf(pol))
		sp.ECSCallsPerEvent = float64(sp.Audit.ECSCalls) / float64(len(sp.Events))
		sp.Instances = b.Runtime(pol).Stats().InstancesStarted
		res.Policies[pol] = sp
	}
	return res, nil
}

// waitTask waits until the asynchronous invocation id has settled: run, retried as FC
// retries, and its destination record delivered.
func waitTask(ctx context.Context, rt *fcrt.Runtime, id string) error {
	for {
		for _, t := range rt.AsyncTasks() {
			if t.RequestID == id && (t.DestinationStatus == fcrt.DestinationSucceeded || t.DestinationStatus == fcrt.DestinationFailed) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
