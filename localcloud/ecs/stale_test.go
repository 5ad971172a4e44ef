package ecs_test

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

// clock is a stopped clock that starts at the real time, so requests the SDK signs with
// the real time stay inside the replay window; only the test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// TestStaleReads shows each describe action served from a view lagging the writes by a
// lag drawn per call: one second after a write, with lags uniform in [0, 2s], some calls
// see the write and some do not, every call that does not is counted as stale (and noted
// in its record), and the same seed gives the same sequence. Without staleness every
// call sees the write and nothing is counted.
func TestStaleReads(t *testing.T) {
	const calls = 40
	type read func(t *testing.T, c *sdkecs.Client) (fresh bool)
	attachFree1 := func(t *testing.T, e *env, c *sdkecs.Client) {
		if _, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		action string
		write  func(t *testing.T, e *env, c *sdkecs.Client)
		read   read
	}{
		{
			name: "attribute sees the attach", action: "DescribeNetworkInterfaceAttribute", write: attachFree1,
			read: func(t *testing.T, c *sdkecs.Client) bool {
				r := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
				r.NetworkInterfaceId = "eni-free1"
				resp, err := c.DescribeNetworkInterfaceAttribute(r)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case resp.Status == world.ENIAttaching && resp.InstanceId == "i-ok1":
					return true
				case resp.Status == world.ENIAvailable && resp.InstanceId == "":
					return false
				}
				t.Fatalf("ENI is %s on %q: neither the truth nor the past", resp.Status, resp.InstanceId)
				return false
			},
		},
		{
			name: "list by instance sees the attach", action: "DescribeNetworkInterfaces", write: attachFree1,
			read: func(t *testing.T, c *sdkecs.Client) bool {
				r := sdkecs.CreateDescribeNetworkInterfacesRequest()
				r.InstanceId = "i-ok1"
				resp, err := c.DescribeNetworkInterfaces(r)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, n := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
					ids = append(ids, n.NetworkInterfaceId)
				}
				return slices.Contains(ids, "eni-free1")
			},
		},
		{
			name: "instances see the stop", action: "DescribeInstances",
			write: func(t *testing.T, e *env, c *sdkecs.Client) {
				if err := e.store.StopInstance("i-ok1", time.Minute); err != nil {
					t.Fatal(err)
				}
			},
			read: func(t *testing.T, c *sdkecs.Client) bool {
				r := sdkecs.CreateDescribeInstancesRequest()
				ids, _ := json.Marshal([]string{"i-ok1"})
				r.InstanceIds = string(ids)
				resp, err := c.DescribeInstances(r)
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.Instances.Instance) != 1 {
					t.Fatalf("%d instances", len(resp.Instances.Instance))
				}
				switch s := resp.Instances.Instance[0].Status; s {
				case world.StatusStopping:
					return true
				case world.StatusRunning:
					return false
				default:
					t.Fatalf("instance is %s", s)
				}
				return false
			},
		},
	}
	// run writes, lets a second pass and reads calls times; it returns which reads saw
	// the write.
	run := func(t *testing.T, staleness []fault.Staleness, tc int) ([]bool, *env) {
		clk := newClock()
		e := newEnvClock(t, clk.now, func(w *world.World) {
			w.Timing.Attach = fault.Duration(time.Minute) // the attach stays Attaching throughout
			w.Faults.Staleness = staleness
		})
		c := e.client(t, "root")
		tests[tc].write(t, e, c)
		clk.advance(time.Second)
		var fresh []bool
		for range calls {
			fresh = append(fresh, tests[tc].read(t, c))
		}
		return fresh, e
	}
	for i, tt := range tests {
		t.Run(tt.name+"/stale", func(t *testing.T) {
			fresh, e := run(t, []fault.Staleness{{Service: "ecs", Max: fault.Duration(2 * time.Second)}}, i)
			old := 0
			for _, f := range fresh {
				if !f {
					old++
				}
			}
			if old == 0 || old == calls {
				t.Fatalf("%d of %d reads missed the write; want some, not all (lags span 0-2s, the write is 1s old)", old, calls)
			}
			st := e.faults.Stats()
			if st.StaleReads != old || st.StaleReadsBy["ecs/"+tt.action] != old {
				t.Fatalf("stats %+v, want %d stale reads of %s", st, old, tt.action)
			}
			noted := len(e.rec.Calls(record.Match("ecs", tt.action), func(c record.Call) bool {
				return strings.Contains(c.Fault, "stale=")
			}))
			if noted != old {
				t.Fatalf("%d records noted stale, want %d", noted, old)
			}
			again, _ := run(t, []fault.Staleness{{Service: "ecs", Max: fault.Duration(2 * time.Second)}}, i)
			if !slices.Equal(fresh, again) {
				t.Fatalf("same seed, different reads:\n%v\n%v", fresh, again)
			}
		})
		t.Run(tt.name+"/off", func(t *testing.T) {
			fresh, e := run(t, nil, i)
			if slices.Contains(fresh, false) {
				t.Fatalf("without staleness a read missed the write: %v", fresh)
			}
			if st := e.faults.Stats(); st.StaleReads != 0 {
				t.Fatalf("stats %+v without staleness", st)
			}
		})
	}
}

// TestStaleReadsPastTheWindow shows the bound: a write older than the largest lag is seen
// by every read.
func TestStaleReadsPastTheWindow(t *testing.T) {
	clk := newClock()
	e := newEnvClock(t, clk.now, func(w *world.World) {
		w.Timing.Attach = fault.Duration(time.Minute)
		w.Faults.Staleness = []fault.Staleness{{Service: "ecs", Action: "DescribeNetworkInterfaceAttribute", Max: fault.Duration(time.Second)}}
	})
	c := e.client(t, "root")
	if _, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1")); err != nil {
		t.Fatal(err)
	}
	clk.advance(1100 * time.Millisecond)
	r := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
	r.NetworkInterfaceId = "eni-free1"
	for range 20 {
		resp, err := c.DescribeNetworkInterfaceAttribute(r)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != world.ENIAttaching {
			t.Fatalf("a read lagging at most 1s saw %s 1.1s after the attach", resp.Status)
		}
	}
	if st := e.faults.Stats(); st.StaleReads != 0 {
		t.Fatalf("stats %+v", st)
	}
}
