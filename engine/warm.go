package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/enipool/enipool/cloud"
)

// Tags enipool puts on the ENIs its warm target creates: only ENIs carrying ManagedTag=true
// are ever deleted, and only when Available, older than the grace period, and beyond Max.
const (
	ManagedTag = "enipool:managed"
)

// WarmReport says what one run of the warm target did.
type WarmReport struct {
	Pool    string   `json:"pool"`
	Created []string `json:"created"`
	Deleted []string `json:"deleted"`
	Errors  []string `json:"errors,omitempty"`
}

// warm keeps the warm target of the configured pool, given a listing of the pool: per zone,
// it creates ENIs until MinAvailable are Available (never beyond Max in the zone), and
// deletes ENIs it created while the zone holds more than Max.
func (eng *Engine) warm(ctx context.Context, ecs cloud.ECS, enis []cloud.ENI) *WarmReport {
	w := eng.cfg.Warm
	rep := &WarmReport{Pool: w.Pool, Created: []string{}, Deleted: []string{}}
	zones := make([]string, 0, len(w.VSwitches))
	for z := range w.VSwitches {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, zone := range zones {
		var avail, total int
		var trimmable []cloud.ENI
		for _, e := range enis {
			if e.Tags[eng.cfg.TagKey] != w.Pool || e.Zone != zone {
				continue
			}
			total++
			if e.Status == cloud.StatusAvailable {
				avail++
				if e.Tags[ManagedTag] == "true" && !e.Created.IsZero() && eng.clock.Now().Sub(e.Created) >= w.Grace {
					trimmable = append(trimmable, e)
				}
			}
		}
		if n := min(w.MinAvailable-avail, w.Max-total); n > 0 {
			vsws := w.VSwitches[zone]
			for i := range n {
				spec := cloud.ENISpec{
					VSwitchID:        vsws[(total+i)%len(vsws)],
					SecurityGroupIDs: w.SecurityGroups,
					Tags:             map[string]string{eng.cfg.TagKey: w.Pool, ManagedTag: "true"},
					Description:      "enipool warm pool " + w.Pool,
					// The same token for the same slot: a retried or concurrent run creates
					// the slot's ENI once.
					ClientToken: clientToken(w.Pool, zone, strconv.Itoa(total+i)),
				}
				var eni cloud.ENI
				err := eng.Retry(ctx, func(ctx context.Context) (err error) {
					eni, err = ecs.CreateENI(ctx, spec)
					return err
				})
				if err != nil {
					rep.Errors = append(rep.Errors, fmt.Sprintf("create in %s: %v", zone, err))
					break
				}
				rep.Created = append(rep.Created, eni.ID)
			}
		}
		if excess := total - w.Max; excess > 0 {
			sort.Slice(trimmable, func(i, j int) bool { return trimmable[i].Created.Before(trimmable[j].Created) })
			for _, e := range trimmable[:min(excess, len(trimmable))] {
				err := eng.Retry(ctx, func(ctx context.Context) error { return ecs.DeleteENI(ctx, e.ID) })
				if err != nil {
					rep.Errors = append(rep.Errors, fmt.Sprintf("delete %s: %v", e.ID, err))
					continue
				}
				rep.Deleted = append(rep.Deleted, e.ID)
			}
		}
	}
	if len(rep.Created)+len(rep.Deleted)+len(rep.Errors) > 0 {
		eng.log.Info("enipool.warm", "pool", w.Pool, "created", rep.Created, "deleted", rep.Deleted, "errors", rep.Errors)
	}
	return rep
}

// clientToken derives an idempotency token (at most 64 ASCII characters) from parts.
func clientToken(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "enipool-" + hex.EncodeToString(sum[:24])
}
