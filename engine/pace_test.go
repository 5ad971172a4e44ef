package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
)

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
