package sim

import (
	"fmt"
	"sort"
	"strings"
)

// Trace renders the report as a timeline: deliveries with their invocations and results,
// then every call by virtual time. A replayed seed prints it (-v).
func (r *Report) Trace() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s\n", r.Scenario.Seed, r.Scenario)
	for _, m := range r.Scenario.Fleet {
		fmt.Fprintf(&b, "  %s zone=%s pool=%q fits=%v disturbed=%q\n", m.ID, m.Zone, m.Pool, m.Fits, r.Disturbed[m.ID])
	}
	for i, d := range r.Deliveries {
		fmt.Fprintf(&b, "delivery %d: %s %s %s at %v\n", i, d.ID, d.State, d.Instance, d.At)
		for _, k := range d.Invocations {
			inv := r.Invocations[k]
			fmt.Fprintf(&b, "  invocation %d retry=%d %s..%s err=%q\n", k, inv.RetryCount,
				inv.Start.Format("15:04:05.000"), inv.End.Format("15:04:05.000"), inv.Err)
			for _, res := range inv.Results {
				fmt.Fprintf(&b, "    %s %s %s enis=%v dl=%s calls=%d: %s\n", res.Instance, res.Outcome, res.Code, res.ENIs,
					res.DeadLetterID, res.APICalls, res.Reason)
			}
		}
	}
	calls := append([]Call(nil), r.Calls...)
	sort.SliceStable(calls, func(i, j int) bool { return calls[i].At.Before(calls[j].At) })
	for _, c := range calls {
		fmt.Fprintf(&b, "  %s inv=%d %s %s %s %s took=%v code=%q failed=%v\n", c.At.Format("15:04:05.000"), c.Invocation,
			c.API, c.Instance, c.ENI, "", c.Took, c.Code, c.Failed)
	}
	ids := make([]string, 0, len(r.ENIs))
	for id := range r.ENIs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := r.ENIs[id]
		if e.Type != "Primary" {
			fmt.Fprintf(&b, "  end: %s %s on %q tags=%v\n", e.ID, e.Status, e.InstanceID, e.Tags)
		}
	}
	return b.String()
}
