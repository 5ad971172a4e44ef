package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
)

// The estimator comes down from a far-off first guess within a few attaches, then settles
// just above the true time with few polls that find the attach unfinished.
func TestEstimatorLearns(t *testing.T) {
	tests := []struct {
		name      string
		initial   time.Duration
		truth     time.Duration
		converged int // attaches after which the estimate is within [truth, 1.35 truth]
	}{
		{"guess far too long", 2 * time.Second, 280 * time.Millisecond, 10},
		{"guess too short", 100 * time.Millisecond, 280 * time.Millisecond, 10},
		{"guess right (probed down until a miss, then back)", 280 * time.Millisecond, 280 * time.Millisecond, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEstimator(tt.initial)
			misses := 0
			for i := range 1000 {
				// The poll goes out a little after it was due, as timers do.
				waited := e.get() + 3*time.Millisecond
				done := waited >= tt.truth
				if !done {
					misses++
				}
				e.observe(waited, done)
				if i+1 == tt.converged {
					if d := e.get(); d < tt.truth || d > tt.truth*135/100 {
						t.Fatalf("after %d attaches the estimate is %v, want within [%v, %v]", tt.converged, d, tt.truth, tt.truth*135/100)
					}
				}
			}
			if misses > 10 {
				t.Fatalf("%d of 1000 first polls missed, want few", misses)
			}
		})
	}
}

// Concurrent lookups of one instance type share a single call.
func TestTypeLookupsShareOneCall(t *testing.T) {
	c := &typeCache{m: map[string]cloud.InstanceType{}}
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(_ context.Context, ids []string) ([]cloud.InstanceType, error) {
		calls.Add(1)
		<-release
		var out []cloud.InstanceType
		for _, id := range ids {
			out = append(out, cloud.InstanceType{ID: id, ENIQuantity: 3})
		}
		return out, nil
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.lookup(context.Background(), []string{"ecs.g7.large"}, fetch); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls for 32 concurrent lookups, want 1", n)
	}
	if it, ok := c.get("ecs.g7.large"); !ok || it.ENIQuantity != 3 {
		t.Fatal("type not cached")
	}
}

// Concurrent polls sent with one estimate that turns out short raise it once, not once per
// poll, and the estimate then stays above the attach time for a long run of hits.
func TestEstimatorClusterOfMisses(t *testing.T) {
	e := newEstimator(300 * time.Millisecond)
	e.observe(303*time.Millisecond, false) // end of learning: 379 ms
	after := e.get()
	for range 6 { // six more polls that had gone out with the old estimate
		e.observe(303*time.Millisecond, false)
	}
	if got := e.get(); got != after {
		t.Fatalf("a cluster of misses raised the estimate to %v, want it to stay %v", got, after)
	}
	hits := 0
	for e.get() > 300*time.Millisecond {
		e.observe(e.get()+2*time.Millisecond, true)
		hits++
	}
	if hits < 100 {
		t.Fatalf("the estimate fell back below the attach time after %d hits, want a long run", hits)
	}
}
