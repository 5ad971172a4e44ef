package ecs_test

import (
	"slices"
	"testing"
	"time"

	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// TestAttachDurationsSpread attaches and detaches one ENI many times through the SDK on a
// stopped clock and shows each operation taking its own drawn duration: the ENI is
// Attaching (Detaching) until exactly its recorded due time and InUse (Available) from
// then on, the durations follow the configured median and have a long tail, and the same
// seed gives the same durations. Without a spread every attach takes the fixed time.
func TestAttachDurationsSpread(t *testing.T) {
	const n = 60
	tests := []struct {
		name   string
		timing world.Timing
		check  func(t *testing.T, attach, detach []time.Duration)
	}{
		{
			name: "log-normal",
			timing: world.Timing{
				AttachSpread: fault.Spread{Median: fault.Duration(2 * time.Second), P99: fault.Duration(8 * time.Second)},
				DetachSpread: fault.Spread{Median: fault.Duration(time.Second), P99: fault.Duration(4 * time.Second), Max: fault.Duration(3 * time.Second)},
			},
			check: func(t *testing.T, attach, detach []time.Duration) {
				a := slices.Sorted(slices.Values(attach))
				if med := a[n/2]; med < 1400*time.Millisecond || med > 2800*time.Millisecond {
					t.Errorf("attach median %v, want about 2s", med)
				}
				if a[n-1] < 4*time.Second {
					t.Errorf("longest attach %v: no long tail", a[n-1])
				}
				if a[0] > 1500*time.Millisecond {
					t.Errorf("shortest attach %v", a[0])
				}
				d := slices.Sorted(slices.Values(detach))
				if d[0] == d[n-1] || d[n-1] > 3*time.Second {
					t.Errorf("detaches span %v..%v, want a spread capped at 3s", d[0], d[n-1])
				}
			},
		},
		{
			name:   "off",
			timing: world.Timing{Attach: fault.Duration(150 * time.Millisecond), Detach: fault.Duration(100 * time.Millisecond)},
			check: func(t *testing.T, attach, detach []time.Duration) {
				for i := range attach {
					if attach[i] != 150*time.Millisecond || detach[i] != 100*time.Millisecond {
						t.Fatalf("operation %d took %v / %v, want the fixed 150ms / 100ms", i, attach[i], detach[i])
					}
				}
			},
		},
	}
	run := func(t *testing.T, timing world.Timing) (attach, detach []time.Duration) {
		clk := newClock()
		e := newEnvClock(t, clk.now, func(w *world.World) { w.Timing = timing })
		c := e.client(t, "root")
		attr := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
		attr.NetworkInterfaceId = "eni-free1"
		status := func() string {
			r, err := c.DescribeNetworkInterfaceAttribute(attr)
			if err != nil {
				t.Fatal(err)
			}
			return r.Status
		}
		// step makes one operation and walks the clock to its end, checking the ENI on
		// both sides of the due time; it returns the operation's recorded duration.
		step := func(op, during, after string, call func() error) time.Duration {
			if err := call(); err != nil {
				t.Fatal(err)
			}
			ops := e.store.Operations()
			o := ops[len(ops)-1]
			if o.Op != op || o.ENI != "eni-free1" || o.Outcome != "" || o.Due.Sub(o.Accepted) != o.Duration {
				t.Fatalf("recorded %+v", o)
			}
			clk.advance(o.Duration - time.Millisecond)
			if s := status(); s != during {
				t.Fatalf("%s 1ms before its end: ENI %s, want %s", op, s, during)
			}
			clk.advance(time.Millisecond)
			if s := status(); s != after {
				t.Fatalf("%s at its end: ENI %s, want %s", op, s, after)
			}
			ops = e.store.Operations()
			if done := ops[len(ops)-1]; done.Outcome != after || !done.Ended.Equal(o.Due) {
				t.Fatalf("ended %+v", done)
			}
			return o.Duration
		}
		for range n {
			attach = append(attach, step("attach", world.ENIAttaching, world.ENIInUse, func() error {
				_, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
				return err
			}))
			detach = append(detach, step("detach", world.ENIDetaching, world.ENIAvailable, func() error {
				_, err := c.DetachNetworkInterface(detachReq("i-ok1", "eni-free1"))
				return err
			}))
		}
		return attach, detach
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attach, detach := run(t, tt.timing)
			tt.check(t, attach, detach)
			again, _ := run(t, tt.timing)
			if !slices.Equal(attach, again) {
				t.Fatalf("same seed, different durations:\n%v\n%v", attach, again)
			}
		})
	}
}
