package sim

import (
	"flag"
	"testing"
	"testing/synctest"

	"github.com/enipool/enipool/engine"
)

var (
	flagBurst         = flag.Bool("burst.measure", false, "measure the burst variants (TestBurstMeasure) and print their figures")
	flagBurstSeeds    = flag.Int("burst.seeds", 3, "with -burst.measure: seeds per variant")
	flagBurstTimeline = flag.Bool("burst.timeline", false, "with -burst.measure: print each burst's attaches and throttled calls per second")
)

// The default deployment attaches every launch of a 500-instance burst once, against a 20/s
// attach quota, with every invocation on its own function instance. No timing is asserted:
// make burst measures.
func TestBurst(t *testing.T) {
	p := DefaultBurst(1)
	if raceEnabled || testing.Short() {
		p.Launches = 200 // the race detector makes each call several times as costly
	}
	synctest.Test(t, func(t *testing.T) {
		res, err := Burst(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(res)
		if res.Attached != res.Params.Launches || res.Twice != 0 || res.DeadLetters != 0 {
			t.Errorf("attached %d of %d, %d twice, %d dead letters: want all once and no letters", res.Attached, res.Params.Launches, res.Twice, res.DeadLetters)
		}
	})
}

// TestBurstMeasure plays the burst's variants over a few seeds and prints their figures
// (make burst): the function unpaced, paced at a fixed rate and adaptive; FC's instance
// limit at the account's default (100), lifted, and bounded to 50 by reservedConcurrency;
// one event per invocation (EventBridge) or batches of 10 (the work queue).
func TestBurstMeasure(t *testing.T) {
	if !*flagBurst {
		t.Skip("measures only with -burst.measure (make burst)")
	}
	variants := []struct {
		name string
		set  func(*BurstParams)
	}{
		{"unpaced", func(p *BurstParams) { p.RateControl = engine.RateFixed }},
		{"fixed20", func(p *BurstParams) { p.RateControl = engine.RateFixed; p.ClientQPS = 20 }},
		{"adaptive", func(p *BurstParams) {}},
		{"unpaced-fc-unlimited", func(p *BurstParams) { p.RateControl = engine.RateFixed; p.FCInstances = 0 }},
		{"adaptive-fc-unlimited", func(p *BurstParams) { p.FCInstances = 0 }},
		{"unpaced-fc50", func(p *BurstParams) { p.RateControl = engine.RateFixed; p.FCInstances = 50 }},
		{"adaptive-fc50", func(p *BurstParams) { p.FCInstances = 50 }},
		{"unpaced-batch10", func(p *BurstParams) { p.RateControl = engine.RateFixed; p.Batch = 10 }},
		{"fixed0.4-batch10", func(p *BurstParams) { p.RateControl = engine.RateFixed; p.ClientQPS = 0.4; p.Batch = 10 }},
		{"adaptive-batch10", func(p *BurstParams) { p.Batch = 10 }},
		{"unpaced-batch100", func(p *BurstParams) { p.RateControl = engine.RateFixed; p.Batch = 100 }},
		{"adaptive-batch100", func(p *BurstParams) { p.Batch = 100 }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for seed := int64(1); seed <= int64(*flagBurstSeeds); seed++ {
				p := DefaultBurst(seed)
				v.set(&p)
				synctest.Test(t, func(t *testing.T) {
					res, err := Burst(p)
					if err != nil {
						t.Fatal(err)
					}
					t.Log(res)
					if *flagBurstTimeline {
						t.Log(res.Timeline())
					}
				})
			}
		})
	}
}
