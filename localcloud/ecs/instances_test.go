package ecs_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// TestInstancesPassThroughStates shows instances starting, stopping and released through
// the world API, seen through the SDK: the transient Starting and Stopping states refuse
// attaches, an attach accepted before a stop completes, and a release detaches an
// attaching or attached ENI with it (deleted) unless its DeleteOnRelease is off (then
// detached, Available), the operation ending Released.
func TestInstancesPassThroughStates(t *testing.T) {
	type env2 struct {
		*env
		clk *clock
		c   *sdkecs.Client
	}
	status := func(t *testing.T, e env2, id string) string {
		r := sdkecs.CreateDescribeInstancesRequest()
		ids, _ := json.Marshal([]string{id})
		r.InstanceIds = string(ids)
		resp, err := e.c.DescribeInstances(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Instances.Instance) == 0 {
			return "absent"
		}
		return resp.Instances.Instance[0].Status
	}
	attach := func(e env2, inst, eni string) error {
		_, err := e.c.AttachNetworkInterface(attachReq(inst, eni))
		return err
	}
	lastOp := func(t *testing.T, e env2, eni string) world.Operation {
		var last world.Operation
		for _, o := range e.store.Operations() {
			if o.ENI == eni {
				last = o
			}
		}
		return last
	}
	tests := []struct {
		name string
		run  func(t *testing.T, e env2)
	}{
		{"stop while attaching", func(t *testing.T, e env2) {
			if err := attach(e, "i-ok1", "eni-free1"); err != nil {
				t.Fatal(err)
			}
			if err := e.store.StopInstance("i-ok1", 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if s := status(t, e, "i-ok1"); s != world.StatusStopping {
				t.Fatalf("instance %s, want Stopping", s)
			}
			wantCode(t, attach(e, "i-ok1", "eni-free2"), "InvalidOperation.InvalidEcsState", 400)
			e.clk.advance(5 * time.Second)
			if s := status(t, e, "i-ok1"); s != world.StatusStopped {
				t.Fatalf("instance %s, want Stopped", s)
			}
			if x := e.eni(t, "eni-free1"); x.Status != world.ENIAttaching {
				t.Fatalf("ENI %s, want still Attaching", x.Status)
			}
			e.clk.advance(5 * time.Second)
			if x := e.eni(t, "eni-free1"); x.Status != world.ENIInUse || x.InstanceID != "i-ok1" {
				t.Fatalf("ENI %s on %q, want InUse on the stopped instance", x.Status, x.InstanceID)
			}
			if o := lastOp(t, e, "eni-free1"); o.Outcome != world.ENIInUse {
				t.Fatalf("operation %+v", o)
			}
		}},
		{"start from Stopped", func(t *testing.T, e env2) {
			if err := e.store.StartInstance("i-stopped", 3*time.Second); err != nil {
				t.Fatal(err)
			}
			if s := status(t, e, "i-stopped"); s != world.StatusStarting {
				t.Fatalf("instance %s, want Starting", s)
			}
			wantCode(t, attach(e, "i-stopped", "eni-free1"), "InvalidOperation.InvalidEcsState", 400)
			e.clk.advance(3 * time.Second)
			if s := status(t, e, "i-stopped"); s != world.StatusRunning {
				t.Fatalf("instance %s, want Running", s)
			}
			in, _ := e.store.Instance("i-stopped")
			if !in.StartTime.Time().Equal(e.clk.now()) {
				t.Fatalf("start time %v, want the end of Starting %v", in.StartTime.Time(), e.clk.now())
			}
			if err := attach(e, "i-stopped", "eni-free1"); err != nil {
				t.Fatal(err)
			}
		}},
		{"timing.stop is the default", func(t *testing.T, e env2) {
			if err := e.store.StopInstance("i-ok1", -1); err != nil {
				t.Fatal(err)
			}
			e.clk.advance(2*time.Second - time.Millisecond)
			if s := status(t, e, "i-ok1"); s != world.StatusStopping {
				t.Fatalf("instance %s before timing.stop elapsed", s)
			}
			e.clk.advance(time.Millisecond)
			if s := status(t, e, "i-ok1"); s != world.StatusStopped {
				t.Fatalf("instance %s after timing.stop", s)
			}
		}},
		{"release while attaching, the ENI kept", func(t *testing.T, e env2) {
			if err := attach(e, "i-ok1", "eni-free1"); err != nil {
				t.Fatal(err)
			}
			in, _ := e.store.Instance("i-ok1")
			if err := e.store.ReleaseInstance("i-ok1"); err != nil {
				t.Fatal(err)
			}
			x := e.eni(t, "eni-free1")
			if x.Status != world.ENIAvailable || x.InstanceID != "" {
				t.Fatalf("ENI %s on %q after the release, want Available", x.Status, x.InstanceID)
			}
			if o := lastOp(t, e, "eni-free1"); o.Outcome != world.OutcomeReleased || !o.Ended.Equal(e.clk.now()) {
				t.Fatalf("operation %+v", o)
			}
			if _, ok := e.store.ENI(in.PrimaryENI); ok {
				t.Fatalf("the primary ENI %s outlived its instance", in.PrimaryENI)
			}
			var changes []string
			for _, c := range e.store.Changes(0) {
				changes = append(changes, c.ID+":"+c.From+">"+c.To)
			}
			want := []string{"eni-free1:Available>Attaching", in.PrimaryENI + ":InUse>Deleted", "eni-free1:Attaching>Available", "i-ok1:Running>Deleted"}
			if !slices.Equal(changes, want) {
				t.Fatalf("changes %v, want %v", changes, want)
			}
			if s := status(t, e, "i-ok1"); s != "absent" {
				t.Fatalf("released instance listed as %s", s)
			}
			wantCode(t, attach(e, "i-ok1", "eni-free2"), "InvalidInstanceId.NotFound", 403)
			e.clk.advance(time.Minute)
			if x := e.eni(t, "eni-free1"); x.Status != world.ENIAvailable {
				t.Fatalf("the cancelled attach came back: %s", x.Status)
			}
			if err := attach(e, "i-ok2", "eni-free1"); err != nil {
				t.Fatalf("the ENI is not reusable: %v", err)
			}
		}},
		{"release while attaching, the ENI released with it", func(t *testing.T, e env2) {
			if err := attach(e, "i-ok1", "eni-free2"); err != nil {
				t.Fatal(err)
			}
			if err := e.store.ReleaseInstance("i-ok1"); err != nil {
				t.Fatal(err)
			}
			if x, ok := e.store.ENI("eni-free2"); ok {
				t.Fatalf("ENI %s outlived its instance (%s)", x.ID, x.Status)
			}
			if o := lastOp(t, e, "eni-free2"); o.Outcome != world.OutcomeReleased {
				t.Fatalf("operation %+v", o)
			}
			r := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
			r.NetworkInterfaceId = "eni-free2"
			_, err := e.c.DescribeNetworkInterfaceAttribute(r)
			wantCode(t, err, "InvalidEniId.NotFound", 404)
		}},
		{"release with an ENI in use", func(t *testing.T, e env2) {
			r := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
			r.NetworkInterfaceId = "eni-inuse"
			resp, err := e.c.DescribeNetworkInterfaceAttribute(r)
			if err != nil || !resp.DeleteOnRelease {
				t.Fatalf("DeleteOnRelease %v (%v), want true by default", resp.DeleteOnRelease, err)
			}
			if err := e.store.ReleaseInstance("i-ok2"); err != nil {
				t.Fatal(err)
			}
			if _, ok := e.store.ENI("eni-inuse"); ok {
				t.Fatal("the ENI outlived its instance")
			}
			var changes []string
			for _, c := range e.store.Changes(0) {
				changes = append(changes, c.ID+":"+c.From+">"+c.To)
			}
			want := []string{"eni-primok2:InUse>Deleted", "eni-inuse:InUse>Deleted", "i-ok2:Running>Deleted"}
			if !slices.Equal(changes, want) {
				t.Fatalf("changes %v, want %v", changes, want)
			}
		}},
		{"launch through Pending and Starting", func(t *testing.T, e env2) {
			start := e.clk.now()
			from := len(e.store.Changes(0)) + 1
			in := world.Instance{ID: "i-new1", Type: "ecs.g7.large", VSwitch: "vsw-ah", Tags: map[string]string{"enipool": "web"},
				SecurityGroups: []string{"sg-a"}}
			if err := e.store.LaunchInstance(in, time.Second, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if s := status(t, e, "i-new1"); s != world.StatusPending {
				t.Fatalf("instance %s, want Pending", s)
			}
			wantCode(t, attach(e, "i-new1", "eni-free1"), "InvalidOperation.InvalidEcsState", 400)
			if due, ok := e.store.NextDue(); !ok || !due.Equal(start.Add(time.Second)) {
				t.Fatalf("next due %v %v, want the end of Pending", due, ok)
			}
			e.clk.advance(time.Second)
			if s := status(t, e, "i-new1"); s != world.StatusStarting {
				t.Fatalf("instance %s, want Starting", s)
			}
			// A reader arriving late sees both changes at once, each at its own time.
			e.clk.advance(5 * time.Second)
			if s := status(t, e, "i-new1"); s != world.StatusRunning {
				t.Fatalf("instance %s, want Running", s)
			}
			if err := attach(e, "i-new1", "eni-free1"); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range e.store.Changes(from) {
				if c.ID == "i-new1" {
					got = append(got, c.From+">"+c.To+"@"+c.At.Sub(start).String())
				}
			}
			want := []string{">Pending@0s", "Pending>Starting@1s", "Starting>Running@3s"}
			if !slices.Equal(got, want) {
				t.Fatalf("changes %v, want %v", got, want)
			}
		}},
		{"transitions refused from the wrong state", func(t *testing.T, e env2) {
			if err := e.store.StopInstance("i-stopped", time.Second); !errors.Is(err, world.ErrInstanceState) {
				t.Fatalf("stop a Stopped instance: %v", err)
			}
			if err := e.store.StartInstance("i-ok1", time.Second); !errors.Is(err, world.ErrInstanceState) {
				t.Fatalf("start a Running instance: %v", err)
			}
			if err := e.store.ReleaseInstance("i-nope"); !errors.Is(err, world.ErrNoInstance) {
				t.Fatalf("release an unknown instance: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			e := newEnvClock(t, clk.now, func(w *world.World) {
				w.Timing.Attach = fault.Duration(10 * time.Second)
				w.Timing.Stop = fault.Duration(2 * time.Second)
				keep := false
				for i := range w.ENIs {
					if w.ENIs[i].ID == "eni-free1" {
						w.ENIs[i].DeleteOnRelease = &keep
					}
				}
			})
			tt.run(t, env2{env: e, clk: clk, c: e.client(t, "root")})
		})
	}
}

// TestDeleteOnRelease shows CreateNetworkInterface's DeleteOnRelease deciding whether the
// ENI survives its instance's release: unset means released with it (ECS's default).
func TestDeleteOnRelease(t *testing.T) {
	tests := []struct {
		name string
		set  *bool
		kept bool
	}{
		{"default", nil, false},
		{"true", ptr(true), false},
		{"false", ptr(false), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w *world.World) { w.Timing.Attach = fault.Duration(time.Millisecond) })
			c := e.client(t, "root")
			cr := sdkecs.CreateCreateNetworkInterfaceRequest()
			cr.VSwitchId, cr.SecurityGroupId = "vsw-ah", "sg-a"
			if tt.set != nil {
				cr.DeleteOnRelease = requests.NewBoolean(*tt.set)
			}
			created, err := c.CreateNetworkInterface(cr)
			if err != nil {
				t.Fatal(err)
			}
			id := created.NetworkInterfaceId
			if _, err := c.AttachNetworkInterface(attachReq("i-ok1", id)); err != nil {
				t.Fatal(err)
			}
			e.waitStatus(t, id, world.ENIInUse)
			r := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
			r.NetworkInterfaceId = id
			attr, err := c.DescribeNetworkInterfaceAttribute(r)
			if err != nil || attr.DeleteOnRelease == tt.kept {
				t.Fatalf("DeleteOnRelease %v (%v), want %v", attr.DeleteOnRelease, err, !tt.kept)
			}
			if err := e.store.ReleaseInstance("i-ok1"); err != nil {
				t.Fatal(err)
			}
			x, ok := e.store.ENI(id)
			if ok != tt.kept || (ok && (x.Status != world.ENIAvailable || x.InstanceID != "")) {
				t.Fatalf("after the release: present %v (%+v), want kept %v and Available", ok, x, tt.kept)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
