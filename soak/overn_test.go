package soak

import (
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/world"
)

// The over-N bound holds the function to the time the instance was Running: ECS refuses a
// detach while it is Stopping, and a Stopped instance's ENIs are its Stopped event's release.
// On af0cae3 the judge held all 9 s against the bound (soak seed 893465738: N+1 through a
// stop, 8.9 s, the function unable to detach while the instance was Stopping).
func TestOverNCountsRunningTimeOnly(t *testing.T) {
	w, err := world.Generate(world.GenerateOptions{Instances: 1, Pool: 2, Zones: 1, PoolKey: tagKey})
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inst, a, b := w.Instances[0].ID, w.ENIs[0].ID, w.ENIs[1].ID
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	changes := []world.Change{
		{Kind: world.KindENI, ID: a, Instance: inst, From: world.ENIAvailable, To: world.ENIAttaching, At: at(0)},
		{Kind: world.KindENI, ID: b, Instance: inst, From: world.ENIAvailable, To: world.ENIAttaching, At: at(1)},
		{Kind: world.KindInstance, ID: inst, Instance: inst, From: world.StatusRunning, To: world.StatusStopping, At: at(2)},
		{Kind: world.KindInstance, ID: inst, Instance: inst, From: world.StatusStopping, To: world.StatusStopped, At: at(7)},
		{Kind: world.KindENI, ID: a, Instance: inst, From: world.ENIInUse, To: world.ENIDetaching, At: at(10)},
	}
	ivs := overNIntervals(changes, nil, c, 1, at(60))
	if len(ivs) != 1 {
		t.Fatalf("%d intervals, want 1: %+v", len(ivs), ivs)
	}
	iv := ivs[0]
	if iv.length() != 9*time.Second || iv.running() != time.Second {
		t.Errorf("interval of %v, %v of it Running; want 9s, 1s (Stopping 5s and Stopped 3s do not count)", iv.length(), iv.running())
	}
}
