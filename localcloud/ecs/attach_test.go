package ecs_test

import (
	"sync"
	"testing"

	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/world"
)

func TestAttachRace(t *testing.T) {
	e := newEnv(t, nil)
	const n = 100
	// One client per goroutine (the SDK client is not safe for concurrent use), built
	// sequentially (building them concurrently races inside the SDK).
	clients := make([]*sdkecs.Client, n)
	for i := range clients {
		clients[i] = e.client(t, "root")
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, results[i] = clients[i].AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range results {
		if err == nil {
			wins++
			continue
		}
		wantCode(t, err, "InvalidOperation.InvalidEniState", 400)
	}
	if wins != 1 {
		t.Fatalf("%d attaches won, want exactly 1", wins)
	}
	got := e.waitStatus(t, "eni-free1", world.ENIInUse)
	if got.InstanceID != "i-ok1" {
		t.Fatalf("ENI ended on %q", got.InstanceID)
	}
}

func TestAttachIsAsynchronous(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	if _, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1")); err != nil {
		t.Fatal(err)
	}
	// Right after the call the ENI is Attaching on the instance, as the API shows it.
	attr := sdkecs.CreateDescribeNetworkInterfaceAttributeRequest()
	attr.NetworkInterfaceId = "eni-free1"
	got, err := c.DescribeNetworkInterfaceAttribute(attr)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != world.ENIAttaching || got.InstanceId != "i-ok1" || got.Attachment.InstanceId != "i-ok1" || got.Attachment.DeviceIndex != 1 {
		t.Fatalf("right after attach: %s on %q (attachment %+v)", got.Status, got.InstanceId, got.Attachment)
	}
	// After the attach time it is InUse, and DescribeInstances lists it.
	e.waitStatus(t, "eni-free1", world.ENIInUse)
	di := sdkecs.CreateDescribeInstancesRequest()
	di.InstanceIds = `["i-ok1"]`
	inst, err := c.DescribeInstances(di)
	if err != nil {
		t.Fatal(err)
	}
	nics := inst.Instances.Instance[0].NetworkInterfaces.NetworkInterface
	if len(nics) != 2 || nics[0].Type != world.ENIPrimary || nics[1].NetworkInterfaceId != "eni-free1" || nics[1].Type != world.ENISecondary {
		t.Fatalf("instance NICs %+v", nics)
	}
	// A second attach of the same ENI is refused, even to the same instance.
	_, err = c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1"))
	wantCode(t, err, "InvalidOperation.InvalidEniState", 400)

	// Detach: Detaching now, Available later.
	if _, err := c.DetachNetworkInterface(detachReq("i-ok1", "eni-free1")); err != nil {
		t.Fatal(err)
	}
	if x := e.eni(t, "eni-free1"); x.Status != world.ENIDetaching && x.Status != world.ENIAvailable {
		t.Fatalf("after detach: %s", x.Status)
	}
	if x := e.waitStatus(t, "eni-free1", world.ENIAvailable); x.InstanceID != "" {
		t.Fatalf("detached ENI still on %s", x.InstanceID)
	}
	// Detaching an Available ENI is refused.
	_, err = c.DetachNetworkInterface(detachReq("i-ok1", "eni-free1"))
	wantCode(t, err, "InvalidOperation.InvalidEniState", 400)
}

func TestAttachRollback(t *testing.T) {
	e := newEnv(t, func(w *world.World) { w.Faults.AttachRollback = 1 })
	c := e.client(t, "root")
	if _, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1")); err != nil {
		t.Fatal(err)
	}
	if x := e.eni(t, "eni-free1"); x.Status != world.ENIAttaching {
		t.Fatalf("right after attach: %s", x.Status)
	}
	if x := e.waitStatus(t, "eni-free1", world.ENIAvailable); x.InstanceID != "" {
		t.Fatalf("rolled back ENI still on %s", x.InstanceID)
	}
}

func TestAttachToStoppedInstance(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.client(t, "root").AttachNetworkInterface(attachReq("i-stopped", "eni-free1")); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "eni-free1", world.ENIInUse)
}

func TestTagConditions(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.client(t, "dev")
	tests := []struct {
		name, inst, eni string
		code            string
	}{
		{"both tagged for the pool", "i-ok1", "eni-free1", ""},
		{"ENI of another pool", "i-ok1", "eni-db", "Forbidden.RAM"},
		{"untagged instance", "i-plain", "eni-free2", "Forbidden.RAM"},
		{"explicitly denied instance", "i-quarantined", "eni-free3", "Forbidden.RAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dev.AttachNetworkInterface(attachReq(tt.inst, tt.eni))
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			se := wantCode(t, err, tt.code, 403)
			if se.Message() != "User not authorized to operate on the specified resource, or this API doesn't support RAM." {
				t.Fatalf("message %q", se.Message())
			}
			if d := se.AccessDeniedDetail(); d["AuthAction"] != "ecs:AttachNetworkInterface" || d["AuthPrincipalDisplayName"] != "dev" {
				t.Fatalf("detail %v", d)
			}
			if x := e.eni(t, tt.eni); x.Status != world.ENIAvailable {
				t.Fatalf("denied attach changed the ENI to %s", x.Status)
			}
		})
	}
	// dev may not create ENIs at all.
	cr := sdkecs.CreateCreateNetworkInterfaceRequest()
	cr.VSwitchId = "vsw-ah"
	cr.SecurityGroupId = "sg-a"
	_, err := dev.CreateNetworkInterface(cr)
	if se := wantCode(t, err, "Forbidden.RAM", 403); se.AccessDeniedDetail()["NoPermissionType"] != "ImplicitDeny" {
		t.Fatalf("detail %v", se.AccessDeniedDetail())
	}
}

func TestRoleCredentials(t *testing.T) {
	e := newEnv(t, nil)
	c := e.roleClient(t, "enipool-fn")
	if _, err := c.AttachNetworkInterface(attachReq("i-ok1", "eni-free1")); err != nil {
		t.Fatal(err)
	}
	calls := e.rec.Calls()
	if last := calls[len(calls)-1]; last.Principal != "enipool-fn" || last.Action != "AttachNetworkInterface" || last.HTTPStatus != 200 {
		t.Fatalf("record %+v", last)
	}
	// Roles are RAM identities: owner-only resources are closed to them.
	_, err := c.AttachNetworkInterface(attachReq("i-owneronly", "eni-free2"))
	wantCode(t, err, "Forbidden.SubUser", 403)
}
