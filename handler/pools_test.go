package handler

import (
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

// ENIPOOL_POOLS: a deployment serves only the pools it lists. An instance of another pool is
// skipped as not ours, whatever ENIs its pool holds; a Stopped instance of another pool keeps
// its ENIs. Empty serves every pool. Fails on 968df3d (Options had no Pools: the instance of
// pool "web" got an ENI from a deployment listing only "db", and its ENI was detached on
// Stopped).
func TestPoolsNotServedAreNotTouched(t *testing.T) {
	const inst = "i-bp1pools0000001"
	tests := []struct {
		name    string
		pools   []string
		event   string // "Running" or "Stopped"
		outcome engine.Outcome
		code    string
	}{
		{"any pool, Running", nil, "Running", engine.OutcomeAttached, ""},
		{"listed pool, Running", []string{"db", fakePool}, "Running", engine.OutcomeAttached, ""},
		{"pool not listed, Running", []string{"db"}, "Running", engine.OutcomeSkipped, cloud.CodeNotEligible},
		{"listed pool, Stopped", []string{fakePool}, "Stopped", engine.OutcomeDetached, ""},
		{"pool not listed, Stopped", []string{"db"}, "Stopped", engine.OutcomeSkipped, cloud.CodeStaleEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			c.addInstance(inst, "ecs.g7.large")
			enis := c.addENIs("p", 2)
			if tt.event == "Stopped" {
				c.put(enis[0], cloud.StatusInUse, inst, 0)
				c.setStatus(inst, "Stopped")
			}
			h, _ := fakeHandler(t, c, func(o *Options) { o.Pools = tt.pools })
			resp, _ := invoke(t, h, stateEvent(inst, tt.event), 2*time.Second)
			r := resultFor(t, resp, inst)
			if r.Outcome != tt.outcome || r.Code != tt.code {
				t.Errorf("outcome %s %s (%s), want %s %s", r.Outcome, r.Code, r.Reason, tt.outcome, tt.code)
			}
			held := c.held(inst)
			switch {
			case tt.outcome == engine.OutcomeSkipped && tt.event == "Running" && len(held) != 0:
				t.Errorf("instance of a pool not served holds %v", held)
			case tt.outcome == engine.OutcomeSkipped && tt.event == "Stopped" && len(held) != 1:
				t.Errorf("Stopped instance of a pool not served holds %v, want its ENI kept", held)
			}
		})
	}
}

func TestOptionsValidatePoolsAndGroups(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Options)
		ok     bool
	}{
		{"any", func(*Options) {}, true},
		{"listed", func(o *Options) { o.Pools, o.ScalingGroups = []string{"web"}, []string{"asg-1"} }, true},
		{"pattern in a pool", func(o *Options) { o.Pools = []string{"w*"} }, false},
		{"empty pool", func(o *Options) { o.Pools = []string{""} }, false},
		{"not a scaling group id", func(o *Options) { o.ScalingGroups = []string{"group-1"} }, false},
		{"warm pool not served", func(o *Options) {
			o.Pools = []string{"web"}
			o.Warm = engine.WarmOptions{Pool: "db", Max: 1, VSwitches: map[string][]string{"z": {"vsw-1"}}, SecurityGroups: []string{"sg-1"}}
		}, false},
	}
	for _, tt := range tests {
		o := DefaultOptions()
		tt.mutate(&o)
		if err := o.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
