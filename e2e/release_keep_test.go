package e2e

import (
	"encoding/json"
	"testing"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// ECS deletes an ENI with the instance it is attached to unless its DeleteOnRelease is off
// ("Retain and reuse an ENI", https://www.alibabacloud.com/help/doc-detail/2938787.html), so a
// pool ENI still attached when Auto Scaling releases its instance is lost with its address.
// The status action counts such ENIs per zone, the reconcile warns of them, and the warm
// target never creates one. On
// 46cee93 neither was so: the pool shrank silently on every release.
func TestPoolENIsReleasedWithInstanceAreReported(t *testing.T) {
	t.Parallel()
	keep := false
	kept := poolENIs("k", zoneH, 2)
	for i := range kept {
		kept[i].DeleteOnRelease = &keep
	}
	enis := append(poolENIs("d", zoneH, 3), kept...) // 3 with ECS's default: deleted with the instance
	b := newBed(t, newWorld(t, spec{enis: enis, mutate: withWarmPolicy(t, vswI)}), bedOptions{env: map[string]string{
		"ENIPOOL_WARM_POOL": pool, "ENIPOOL_WARM_MIN_AVAILABLE": "2", "ENIPOOL_WARM_MAX": "4",
		"ENIPOOL_WARM_VSWITCHES": "cn-hangzhou-i:" + vswI, "ENIPOOL_WARM_SECURITY_GROUPS": "sg-testweb001"}})

	resp := b.mustInvoke(`{"action":"status","pool":"web"}`)
	var rep engine.StatusReport
	raw, _ := json.Marshal(resp.Report) // decoded generically with the response
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("status report: %v (%s)", err, raw)
	}
	got := map[string]int{}
	for _, p := range rep.Pools {
		for _, z := range p.Zones {
			got[z.Zone] = z.ReleasedWithInstance
		}
	}
	if got[zoneH] != 3 {
		t.Errorf("zone h reports %d ENIs deleted with their instance, want 3: %+v", got[zoneH], resp)
	}
	// The warm target fills zone i: every ENI it creates outlives its instances.
	b.mustInvoke(`{"action":"reconcile"}`)
	// Reconcile (the timer's action) warns of them in its log.
	warned := 0
	for _, l := range b.waitLines(1, "enipool.pool-at-risk") {
		if l["msg"] == "enipool.pool-at-risk" && l["zone"] == zoneH && l["releasedWithInstance"] == 3.0 {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d enipool.pool-at-risk warnings for zone h with 3 ENIs, want 1", warned)
	}
	created := 0
	for _, e := range b.cloud.Store.ENIs(world.Tagged("enipool:managed", "true")) {
		created++
		if e.ReleasedWithInstance() {
			t.Errorf("%s was created to be deleted with its instance", e.ID)
		}
	}
	if created != 2 {
		t.Fatalf("the warm target created %d ENIs in zone i, want 2", created)
	}
}
