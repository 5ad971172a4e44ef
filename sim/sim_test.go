package sim

import (
	"flag"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var (
	flagSeed  = flag.Int64("sim.seed", 0, "replay the scenario of this seed only")
	flagN     = flag.Int("sim.n", 0, "how many scenarios to run (default 10000; 300 with -short; 200 under -race)")
	flagStart = flag.Int64("sim.start", 1, "the first seed")
	// Goroutines runnable at the same virtual instant run in any order, and the fault plan
	// draws by call order: a replay is the same scenario, not always the same interleaving.
	flagRepeat = flag.Int("sim.repeat", 20, "with -sim.seed: how many times to play it")
)

// maxReported bounds the failing seeds reported in full; the run stops after them.
const maxReported = 20

// TestSim plays scenarios of consecutive seeds, each in its own synctest bubble, and checks
// every invariant after each. A failure names its seed and the command replaying it.
func TestSim(t *testing.T) {
	start, n := *flagStart, int64(*flagN)
	switch {
	case *flagSeed != 0:
		start, n = *flagSeed, int64(*flagRepeat)
	case n > 0:
	case raceEnabled:
		n = 200
	case testing.Short():
		n = 300
	default:
		n = 10000
	}
	var next, ran, failed atomic.Int64
	known := map[string]int{}
	var mu sync.Mutex
	var failing []int64
	begin := time.Now()
	workers := runtime.GOMAXPROCS(0)
	t.Run("play", func(t *testing.T) {
		for w := range workers {
			t.Run(fmt.Sprint(w), func(t *testing.T) {
				t.Parallel()
				for failed.Load() < maxReported {
					i := next.Add(1) - 1
					if i >= n {
						return
					}
					seed := start + i
					if *flagSeed != 0 {
						seed = *flagSeed
					}
					var bad []string
					var scenario string
					// The bubble's test never fails: a failure there would end this worker.
					// What broke is reported outside, and the next seed runs.
					synctest.Test(t, func(*testing.T) {
						s := New(seed)
						scenario = s.String()
						rep, err := Run(s)
						if err != nil {
							bad = []string{err.Error()}
							return
						}
						var k []string
						bad, k = Check(rep)
						mu.Lock()
						for _, d := range k {
							known[d]++
						}
						mu.Unlock()
						if *flagSeed != 0 && len(bad) > 0 {
							t.Log(rep.Trace())
						}
					})
					ran.Add(1)
					if len(bad) > 0 {
						failed.Add(1)
						mu.Lock()
						failing = append(failing, seed)
						mu.Unlock()
						t.Errorf("seed %d (%s) breaks %d invariant(s):\n  %s\nreplay: go test ./sim -run '^TestSim$' -sim.seed=%d -v",
							seed, scenario, len(bad), strings.Join(bad, "\n  "), seed)
					}
				}
			})
		}
	})
	last := start + n - 1
	if *flagSeed != 0 {
		last = start
	}
	t.Logf("sim: %d scenarios, seeds %d..%d, %d failed %v, %v wall on %d workers; known defects met (the reconcile repaired them): %v",
		ran.Load(), start, last, failed.Load(), failing, time.Since(begin).Round(time.Millisecond), workers, known)
}
