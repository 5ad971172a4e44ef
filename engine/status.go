package engine

import (
	"context"
	"sort"

	"github.com/enipool/enipool/cloud"
)

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
func (eng *Engine) poolStatus(enis []cloud.ENI, detail bool) []PoolStatus {
	type key struct{ pool, zone string }
	zones := map[key]*ZoneStatus{}
	for _, e := range enis {
		k := key{e.Tags[eng.cfg.TagKey], e.Zone}
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
		z.BelowLowWatermark = z.Available < eng.cfg.LowWatermark
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

// Status reports the ENIs of pool (every pool when empty), per pool and zone, listing them.
// It returns how many ENIs it counted.
func (eng *Engine) Status(ctx context.Context, ecs cloud.ECS, pool string) (StatusReport, int, error) {
	enis, err := eng.listPool(ctx, ecs, pool)
	if err != nil {
		return StatusReport{}, 0, err
	}
	return StatusReport{Pools: eng.poolStatus(enis, true)}, len(enis), nil
}

// logWatermarks writes the pools' counts as one line, and a warning per zone below the low
// watermark.
func (eng *Engine) logWatermarks(pools []PoolStatus) {
	eng.log.Info("enipool.watermarks", "pools", pools, "lowWatermark", eng.cfg.LowWatermark)
	for _, p := range pools {
		for _, z := range p.Zones {
			if z.BelowLowWatermark {
				eng.log.Warn("enipool.pool-low", "pool", p.Pool, "zone", z.Zone, "available", z.Available,
					"total", z.Total, "lowWatermark", eng.cfg.LowWatermark)
			}
			if z.ReleasedWithInstance > 0 {
				eng.log.Warn("enipool.pool-at-risk", "pool", p.Pool, "zone", z.Zone, "releasedWithInstance", z.ReleasedWithInstance,
					"total", z.Total, "fix", "turn DeleteOnRelease off on the pool's ENIs (ModifyNetworkInterfaceAttribute), or ECS deletes each with the instance it is attached to")
			}
		}
	}
}
