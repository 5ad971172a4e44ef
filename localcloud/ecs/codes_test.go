package ecs_test

import (
	"testing"

	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/internal/apidoc"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

type codeCase struct {
	name      string
	code      string
	status    int
	mutate    func(*world.World)
	principal string // "" is root
	call      func(*sdkecs.Client) error
}

func attach(inst, eni string, mod ...func(*sdkecs.AttachNetworkInterfaceRequest)) func(*sdkecs.Client) error {
	return func(c *sdkecs.Client) error {
		r := attachReq(inst, eni)
		for _, m := range mod {
			m(r)
		}
		_, err := c.AttachNetworkInterface(r)
		return err
	}
}

func detach(inst, eni string) func(*sdkecs.Client) error {
	return func(c *sdkecs.Client) error {
		_, err := c.DetachNetworkInterface(detachReq(inst, eni))
		return err
	}
}

// seedCases has a world condition for every error code of the AttachNetworkInterface
// seed, with the seed's HTTP status.
func seedCases() []codeCase {
	return []codeCase{
		{name: "unverified account", code: "InvalidUserType.NotSupported", status: 403,
			mutate: func(w *world.World) { w.Account.Type = world.AccountUnverified }, call: attach("i-ok1", "eni-free1")},
		{name: "closed account", code: "Abs.InvalidAccount.NotFound", status: 403,
			mutate: func(w *world.World) { w.Account.Closed = true }, call: attach("i-ok1", "eni-free1")},
		{name: "no NetworkInterfaceId", code: "MissingParameter", status: 400, call: attach("i-ok1", "")},
		{name: "no InstanceId", code: "MissingParameter", status: 400, call: attach("", "eni-free1")},
		{name: "RAM user and a shared ENI of another account", code: "Forbidden.NotSupportRAM", status: 403,
			principal: "alice", call: attach("i-ok1", "eni-shared")},
		{name: "parameter the action does not take", code: "UnsupportedParameter", status: 400,
			call: attach("i-ok1", "eni-free1", func(r *sdkecs.AttachNetworkInterfaceRequest) { r.QueryParams["DeviceIndex"] = "1" })},
		{name: "RAM user and an owner-only instance", code: "Forbidden.SubUser", status: 403,
			principal: "alice", call: attach("i-owneronly", "eni-free1")},
		{name: "RAM user and an owner-only ENI", code: "Forbidden.SubUser", status: 403,
			principal: "alice", call: attach("i-ok1", "eni-owneronly")},
		{name: "NetworkCardIndex not a number", code: "InvalidParameter", status: 400,
			call: attach("i-ok1", "eni-free1", func(r *sdkecs.AttachNetworkInterfaceRequest) { r.NetworkCardIndex = "first" })},
		{name: "NetworkCardIndex beyond the cards", code: "InvalidParameter", status: 400,
			call: attach("i-ok1", "eni-free1", func(r *sdkecs.AttachNetworkInterfaceRequest) { r.NetworkCardIndex = "1" })},
		{name: "WaitForNetworkConfigurationReady not a boolean", code: "InvalidParameter", status: 400,
			call: attach("i-ok1", "eni-free1", func(r *sdkecs.AttachNetworkInterfaceRequest) { r.WaitForNetworkConfigurationReady = "yes" })},
		{name: "malformed instance id", code: "InvalidInstanceID.Malformed", status: 400, call: attach("I_OK1", "eni-free1")},
		{name: "unknown region", code: "InvalidOperation.InvalidRegion", status: 400,
			call: attach("i-ok1", "eni-free1", func(r *sdkecs.AttachNetworkInterfaceRequest) { r.RegionId = "cn-nowhere" })},
		{name: "instance Starting", code: "InvalidOperation.InvalidEcsState", status: 400, call: attach("i-starting", "eni-free1")},
		{name: "burstable instance Running", code: "InvalidOperation.InvalidEcsState", status: 400, call: attach("i-burst", "eni-free1")},
		{name: "Running since before 2018-04-01", code: "InvalidOperation.InvalidEcsState", status: 400, call: attach("i-old", "eni-free1")},
		{name: "ENI InUse", code: "InvalidOperation.InvalidEniState", status: 400, call: attach("i-ok1", "eni-inuse")},
		{name: "detach the primary ENI", code: "InvalidOperation.DetachPrimaryEniNotAllowed", status: 400, call: detach("i-ok2", "eni-primok2")},
		{name: "unknown instance", code: "InvalidEcsId.NotFound", status: 404, call: attach("i-doesnotexist", "eni-free1")},
		{name: "unknown ENI", code: "InvalidEniId.NotFound", status: 404, call: attach("i-ok1", "eni-doesnotexist")},
		{name: "another account's ENI, not shared", code: "InvalidEniId.NotFound", status: 404, call: attach("i-ok1", "eni-foreign")},
		{name: "the ENI's vSwitch is deleted", code: "InvalidVSwitchId.NotFound", status: 404, call: attach("i-ok1", "eni-gonevsw")},
		{name: "the ENI's security group is deleted", code: "InvalidSecurityGroupId.NotFound", status: 404, call: attach("i-ok1", "eni-gonesg")},
		{name: "account ENI quota", code: "MaxEniCountExceeded", status: 403,
			mutate: func(w *world.World) { w.Account.Quotas.AttachedENIs = 2 }, call: attach("i-ok1", "eni-free1")},
		{name: "instance full", code: "EniPerInstanceLimitExceeded", status: 403, call: attach("i-small", "eni-free1")},
		{name: "ENI in another zone", code: "InvalidOperation.AvailabilityZoneMismatch", status: 403, call: attach("i-zonei", "eni-free1")},
		{name: "ENI in another VPC", code: "InvalidOperation.VpcMismatch", status: 403, call: attach("i-vpcb", "eni-free1")},
		{name: "security group full", code: "SecurityGroupInstanceLimitExceed", status: 403, call: attach("i-ok1", "eni-fullsg")},
		{name: "classic security group", code: "InvalidSecurityGroupId.NotVpc", status: 403, call: attach("i-ok1", "eni-classicsg")},
		{name: "attach a primary ENI", code: "InvalidOperation.InvalidEniType", status: 403, call: attach("i-ok1", "eni-primok2")},
		{name: "region without ENI service", code: "Forbidden.RegionId", status: 400,
			call: attach("i-ok1", "eni-free1", func(r *sdkecs.AttachNetworkInterfaceRequest) { r.RegionId = "cn-beijing" })},
		{name: "released instance", code: "InvalidInstanceId.NotFound", status: 403, call: attach("i-released", "eni-free1")},
		{name: "another account's instance", code: "InvalidInstanceId.NotFound", status: 403, call: attach("i-foreign", "eni-free1")},
		{name: "generation I instance", code: "InvalidOperation.InvalidGeneration", status: 400, call: attach("i-gen1", "eni-free1")},
		{name: "malformed ENI id", code: "InvalidParams.EniId", status: 400, call: attach("i-ok1", "eni_free1")},
		{name: "too many IPv4 addresses", code: "InvalidOperation.Ipv4CountExceeded", status: 403, call: attach("i-tiny", "eni-twoips")},
		{name: "service-managed ENI", code: "InvalidOperation.EniServiceManaged", status: 403, call: attach("i-ok1", "eni-managed")},
		{name: "IPv6 on a type without IPv6", code: "InvalidOperation.Ipv6NotSupport", status: 403, call: attach("i-tiny", "eni-v6")},
	}
}

func TestSeedErrorCodes(t *testing.T) {
	for _, tc := range seedCases() {
		t.Run(tc.code+"/"+tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mutate)
			principal := tc.principal
			if principal == "" {
				principal = "root"
			}
			err := tc.call(e.client(t, principal))
			wantCode(t, err, tc.code, tc.status)
			// A refused call changes nothing.
			if n := len(e.store.ENIs(world.WithStatus(world.ENIAttaching, world.ENIDetaching))); n != 0 {
				t.Fatalf("%d ENIs in a transitional state after a refused call", n)
			}
		})
	}
}

// TestEverySeedCodeIsCovered reads the error table of AttachNetworkInterface's API reference
// (the repository's testdata/) and checks every code has a world condition above.
func TestEverySeedCodeIsCovered(t *testing.T) {
	table, err := apidoc.AttachErrors("../..")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]int{}
	for _, c := range seedCases() {
		covered[c.code] = c.status
	}
	for _, r := range table {
		status, ok := covered[r.Code]
		if !ok {
			t.Errorf("documented code %s has no world condition", r.Code)
		} else if r.HTTPStatus != status {
			t.Errorf("documented code %s: reference status %d, test status %d", r.Code, r.HTTPStatus, status)
		}
	}
}

// TestFaultRuleForcesACode shows that a fault rule can force any code too.
func TestFaultRuleForcesACode(t *testing.T) {
	e := newEnv(t, func(w *world.World) {
		w.Faults.Errors = []fault.Rule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1,
			Code: "InvalidOperation.InvalidEniState", HTTPStatus: 400, Message: "forced by the fault plan"}}
	})
	err := attach("i-ok1", "eni-free1")(e.client(t, "root"))
	if se := wantCode(t, err, "InvalidOperation.InvalidEniState", 400); se.Message() != "forced by the fault plan" {
		t.Fatalf("message %q", se.Message())
	}
	if x := e.eni(t, "eni-free1"); x.Status != world.ENIAvailable {
		t.Fatalf("ENI %s after a faulted call", x.Status)
	}
}
