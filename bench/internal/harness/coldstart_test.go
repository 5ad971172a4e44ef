package harness

import (
	"context"
	"testing"
	"time"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/fault"
)

// TestColdStartCorrectness runs the cold-start scenario once per series and checks what
// must hold whatever the timing: every run is a fresh process whose first invocation is
// cold, the function attaches over HTTPS in one series and over HTTP in another, the SDK
// floor describes over HTTPS, each run's second invocation is warm on the same process, and
// every measure was taken. Timings belong to `make bench`.
func TestColdStartCorrectness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function and hello: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const runs = 1
	r, err := ColdStart(ctx, ColdStartParams{Runs: runs, Cloud: CloudParams{Instances: 2 * runs, Pool: 2 * runs, Zones: 1, Seed: 1,
		RequestLatency: Duration(time.Millisecond), AttachSpread: fault.Spread{Median: fault.Duration(50 * time.Millisecond)}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []ColdSeries{r.Hello, r.Floor, r.HTTPS, r.HTTP} {
		if len(s.Samples) != runs {
			t.Fatalf("%s: %d samples, want %d", s.Name, len(s.Samples), runs)
		}
		for i, x := range s.Samples {
			if !x.ColdFlag || x.ColdStart <= 0 || x.PeakRSS <= 0 || x.RSSFile <= 0 {
				t.Errorf("%s run %d: cold %v, start %v, peak RSS %d, file RSS %d: want a measured cold start", s.Name, i, x.ColdFlag, x.ColdStart.D(), x.PeakRSS, x.RSSFile)
			}
			if s.Name == SeriesHello {
				continue
			}
			want := string(engine.OutcomeAttached)
			if s.Name == SeriesFloor {
				want = "described"
			}
			if x.Outcome != want || x.WarmOutcome != want || x.FirstCall <= 0 || x.WarmFirstCall <= 0 {
				t.Errorf("%s run %d: outcomes %s, %s, first calls %v, %v: want two attaches, both timed", s.Name, i, x.Outcome, x.WarmOutcome, x.FirstCall.D(), x.WarmFirstCall.D())
			}
		}
	}
	if r.Floor.Scheme != "https" || r.HTTPS.Scheme != "https" || r.HTTP.Scheme != "http" {
		t.Errorf("schemes %q, %q and %q, want https, https and http", r.Floor.Scheme, r.HTTPS.Scheme, r.HTTP.Scheme)
	}
	if r.StartRatio <= 0 || r.RSSRatio <= 0 || r.EnipoolInit.ClockMs <= 0 || r.HelloInit.ClockMs <= 0 {
		t.Errorf("ratios %v, %v, inits %v, %v: want them measured", r.StartRatio, r.RSSRatio, r.EnipoolInit.ClockMs, r.HelloInit.ClockMs)
	}
}
