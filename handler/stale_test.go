package handler

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

// Reads that lag writes: an accepted attach invisible to DescribeNetworkInterfaces for a while
// is pending, not rolled back, so no second ENI is attached. Fails on ca38816: each attach was
// taken for a rollback and the next ENI attached: "dead-lettered enipool.PoolExhausted,
// instance holds [eni-v01 eni-v02 eni-v03]" (and "already-attached eni-v02" holding all three
// when the first answer was lost).
func TestStaleReadIsNotRollback(t *testing.T) {
	const inst = "i-bp1stale0000001"
	tests := []struct {
		name string
		lose bool // the attach is applied and its answer lost
	}{
		{name: "accepted, invisible for 300ms"},
		{name: "applied, answer lost, invisible for 300ms", lose: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			c.addInstance(inst, "ecs.g7.large")
			c.addENIs("v", 3)
			var mu sync.Mutex
			lost := false
			c.onAttach = func(string, string) (error, bool) {
				mu.Lock()
				defer mu.Unlock()
				if tt.lose && !lost {
					lost = true
					return &cloud.APIError{Service: "ecs", API: "AttachNetworkInterface", Err: errors.New("read: connection reset by peer")}, true
				}
				return nil, false
			}
			c.lag = func(string) time.Duration { return 300 * time.Millisecond }
			h, _ := fakeHandler(t, c, func(o *Options) { o.StaleReadBound = time.Second })
			resp, _ := invoke(t, h, directPayload(inst), 3*time.Second)
			time.Sleep(400 * time.Millisecond) // anything attached meanwhile becomes visible
			r := resultFor(t, resp, inst)
			held := c.held(inst)
			if len(held) != 1 || r.NetworkInterfaceID != held[0] || r.Outcome != engine.OutcomeAttached {
				t.Errorf("outcome %s (%s) reported %s, instance holds %v; want attached, holding exactly that one", r.Outcome, r.Reason, r.NetworkInterfaceID, held)
			}
		})
	}
}
