// Package ecs emulates the ECS OpenAPI (version 2014-05-26) actions the ENI pool needs, on
// top of a world.Store, with the real error codes and HTTP statuses:
// DescribeInstances, DescribeInstanceTypes, DescribeNetworkInterfaces,
// DescribeNetworkInterfaceAttribute, AttachNetworkInterface, DetachNetworkInterface,
// CreateNetworkInterface, DeleteNetworkInterface, TagResources, UntagResources and
// ListTagResources. Response field names are those of alibaba-cloud-sdk-go's response
// structs; parameter lists are read from its request structs (see rpc.ParamsOf).
//
// # AttachNetworkInterface
//
// Checks run in this order, and the first failure answers:
//
//  1. Parameters: RegionId, InstanceId, NetworkInterfaceId present; ids well formed;
//     NetworkCardIndex an integer, WaitForNetworkConfigurationReady a boolean.
//  2. Region and account: RegionId known and offering ENIs; account type supported.
//  3. Existence and visibility: the instance, then the ENI.
//  4. Permission: RAM through package ram's per-action table (ecs:AttachNetworkInterface
//     on the instance and on the ENI, each with its own tags), then cross-account and
//     owner-only rules.
//  5. Type and state: instance generation, ENI service-managed, ENI type, ENI status,
//     instance status (and the types needing Stopped, and the 2018 rule).
//  6. Topology: the ENI's vSwitch, zone, VPC, security groups.
//  7. Capacity: IPv6, IPv4, ENIs per instance, security group size, account quota.
//
// Steps 3 to 7 and the change itself run under the store's lock: two concurrent attaches
// of one Available ENI cannot both pass step 5, so exactly one wins and the other gets
// InvalidOperation.InvalidEniState. The winner's ENI is Attaching at once (InstanceId set)
// and becomes InUse after the world's attach time (fixed plus jitter, or drawn per attach
// from timing.attachSpread, a log-normal with a long tail), or falls back to Available when
// the fault plan's attachRollback says so. Every attach and detach is recorded with its
// true duration (world.Store.Operations).
//
// # As production behaves
//
// Off by default, each switched on in the world file and seeded:
//
//   - Reads that lag writes (faults.staleness): DescribeNetworkInterfaces,
//     DescribeNetworkInterfaceAttribute and DescribeInstances are served from the state as
//     it was a lag ago, the lag drawn per call, so two calls may disagree and an accepted
//     attach may look Available for a while. A read whose answer differs from the current
//     state's is counted (fault.Stats.StaleReads) and its record notes stale=<lag>. ECS
//     documents the asynchronous Attaching and Detaching states and asks callers to poll
//     (https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-detachnetworkinterface);
//     how far a read may lag is not documented: the bound is an assumption.
//   - Faults after the action (faults.afterAction): the attach or detach is applied, then
//     the answer is lost (see package rpc), counted in fault.Stats.FaultsAfterAction.
//   - Latency on the request and on the response (faults.latency, faults.responseLatency).
//   - Instances that pass through Starting and Stopping, and that stop or are released
//     while an ENI attaches (world.Store.StartInstance, StopInstance, ReleaseInstance).
//     Attach and detach need Running or Stopped (InvalidOperation.InvalidEcsState
//     otherwise), as the API reference says; a stop does not interrupt an attach already
//     accepted (assumption); a release releases the instance's ENIs with it unless their
//     DeleteOnRelease is off (then they are Available), an Attaching one included
//     (assumption), see package world. CreateNetworkInterface takes DeleteOnRelease and
//     the describes render it (true unless set false, ECS's default).
//
// # Error codes of the seed and what causes them in the world
//
//	403 InvalidUserType.NotSupported        account.type: unverified
//	403 Abs.InvalidAccount.NotFound         account.closed: true (any key of the account; package rpc)
//	400 MissingParameter                    InstanceId, NetworkInterfaceId or RegionId absent
//	403 Forbidden.NotSupportRAM             a RAM user or role attaches an ENI of another account
//	                                        shared with this one (enis[].ownerId + sharedWithAccount)
//	400 UnsupportedParameter                a parameter AttachNetworkInterface does not take (package rpc)
//	403 Forbidden.SubUser                   a RAM user or role touches a resource with ownerOnly: true
//	400 InvalidParameter                    NetworkCardIndex not an integer or >= the type's
//	                                        networkCardQuantity; WaitForNetworkConfigurationReady
//	                                        not a boolean; TrunkNetworkInstanceId given (not emulated)
//	400 InvalidInstanceID.Malformed         InstanceId not like i-[a-z0-9]+
//	400 InvalidOperation.InvalidRegion      RegionId not a region of the world
//	400 InvalidOperation.InvalidEcsState    instance not Running/Stopped; Running and
//	                                        attachRequiresStopped; Running and started before 2018-04-01
//	400 InvalidOperation.InvalidEniState    ENI not Available (Attaching, InUse, Detaching), e.g.
//	                                        the loser of a concurrent attach
//	400 InvalidOperation.DetachPrimaryEniNotAllowed  DetachNetworkInterface of a Primary ENI
//	404 InvalidEcsId.NotFound               no such instance in the region
//	404 InvalidEniId.NotFound               no such ENI in the region, or another account's not shared
//	404 InvalidVSwitchId.NotFound           the ENI's vSwitch is deleted (vswitches[].deleted)
//	404 InvalidSecurityGroupId.NotFound     one of the ENI's security groups is deleted
//	403 MaxEniCountExceeded                 account.quotas.attachedEnis secondary ENIs already bound
//	403 EniPerInstanceLimitExceeded         primary + attached + attaching + detaching ENIs
//	                                        = the type's eniQuantity
//	403 InvalidOperation.AvailabilityZoneMismatch  the ENI's vSwitch is in another zone
//	403 InvalidOperation.VpcMismatch        the ENI's vSwitch is in another VPC
//	403 SecurityGroupInstanceLimitExceed    an ENI group already holds maxInstances instances
//	403 InvalidSecurityGroupId.NotVpc       one of the ENI's groups is classic
//	403 InvalidOperation.InvalidEniType     the ENI is Primary
//	400 Forbidden.RegionId                  regions[].eniUnsupported: true
//	403 InvalidInstanceId.NotFound          instance released (tombstone) or another account's
//	400 InvalidOperation.InvalidGeneration  instance type generation ecs-1
//	400 InvalidParams.EniId                 NetworkInterfaceId not like eni-[a-z0-9]+
//	403 InvalidOperation.Ipv4CountExceeded  the ENI has more IPv4 addresses than the type allows per ENI
//	403 InvalidOperation.EniServiceManaged  enis[].serviceManaged: true
//	403 InvalidOperation.Ipv6NotSupport     the ENI has IPv6 addresses and the type allows none
//	                                        (or fewer)
//
// Every code can also be forced with a fault rule (faults.errors) naming it.
//
// # Permissions
//
// Every action is authorized through package ram's per-action table (ram.Call): the call
// names every resource it touches, with its tags, and the table decides which RAM checks.
// Single-resource actions name each resource's ARN (acs:ecs:<region>:<owner>:instance/<id>,
// acs:ecs:<region>:<owner>:eni/<id>) with its tags. List actions name
// acs:ecs:<region>:<account>:<type>/* with the Tag.N filter as tags.
// CreateNetworkInterface names eni/* (with the requested tags as request tags), each
// security group (acs:ecs:…:securitygroup/<id>) and the vSwitch (acs:vpc:…:vswitch/<id>).
// DescribeInstanceTypes names nothing: it is an All Resources action. A RAM identity
// refused DescribeInstances gets an empty list, not Forbidden.RAM, as its API page says.
package ecs

import (
	"context"
	"fmt"
	"net/http"
	"time"

	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// Version is the ECS API version served.
const Version = "2014-05-26"

// Config wires the emulator to the rest of the local cloud.
type Config struct {
	Store    *world.Store     // required
	Auth     *auth.Store      // required
	RAM      *ram.Authorizer  // nil denies every RAM user and role
	Faults   *fault.Injector  // nil injects nothing
	Recorder *record.Recorder // nil records nothing
	Limiter  *rpc.Limiter     // nil never throttles
	// HostID is the HostId of error bodies [ecs.aliyuncs.com].
	HostID string
}

type handler struct {
	store  *world.Store
	faults *fault.Injector
}

// New returns the ECS endpoint, an http.Handler.
func New(cfg Config) (*rpc.Service, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("ecs: Config.Store is required")
	}
	h := &handler{store: cfg.Store, faults: cfg.Faults}
	act := func(name string, req any, fn func(context.Context, *rpc.Call) (any, error)) rpc.Action {
		return rpc.Action{Name: name, Params: rpc.ParamsOf(req), Handle: fn}
	}
	svc, err := rpc.NewService(rpc.Options{
		Service:  "ecs",
		Product:  "Ecs",
		Version:  Version,
		HostID:   cfg.HostID,
		Auth:     cfg.Auth,
		RAM:      cfg.RAM,
		Faults:   cfg.Faults,
		Recorder: cfg.Recorder,
		Limiter:  cfg.Limiter,
		Now:      cfg.Store.Now,
	},
		act("DescribeInstances", sdkecs.CreateDescribeInstancesRequest(), h.describeInstances),
		act("DescribeInstanceTypes", sdkecs.CreateDescribeInstanceTypesRequest(), h.describeInstanceTypes),
		act("DescribeNetworkInterfaces", sdkecs.CreateDescribeNetworkInterfacesRequest(), h.describeNetworkInterfaces),
		act("DescribeNetworkInterfaceAttribute", sdkecs.CreateDescribeNetworkInterfaceAttributeRequest(), h.describeNetworkInterfaceAttribute),
		act("AttachNetworkInterface", sdkecs.CreateAttachNetworkInterfaceRequest(), h.attach),
		act("DetachNetworkInterface", sdkecs.CreateDetachNetworkInterfaceRequest(), h.detach),
		act("CreateNetworkInterface", sdkecs.CreateCreateNetworkInterfaceRequest(), h.createNetworkInterface),
		act("DeleteNetworkInterface", sdkecs.CreateDeleteNetworkInterfaceRequest(), h.deleteNetworkInterface),
		act("TagResources", sdkecs.CreateTagResourcesRequest(), h.tagResources),
		act("UntagResources", sdkecs.CreateUntagResourcesRequest(), h.untagResources),
		act("ListTagResources", sdkecs.CreateListTagResourcesRequest(), h.listTagResources),
	)
	if err != nil {
		return nil, fmt.Errorf("ecs: %w", err)
	}
	return svc, nil
}

// Common errors.
func errf(status int, code, format string, args ...any) error {
	return rpc.Errorf(status, code, format, args...)
}

func errInstanceMalformed() error {
	return errf(http.StatusBadRequest, "InvalidInstanceID.Malformed", "The specified parameter InstanceId is not valid.")
}

func errENIMalformed() error {
	return errf(http.StatusBadRequest, "InvalidParams.EniId", "The specified parameter NetworkInterfaceId is not valid.")
}

func errInstanceNotFound() error {
	return errf(http.StatusNotFound, "InvalidEcsId.NotFound", "The specified InstanceId does not exist.")
}

func errInstanceGone() error {
	return errf(http.StatusForbidden, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist.")
}

func errENINotFound() error {
	return errf(http.StatusNotFound, "InvalidEniId.NotFound", "The specified NetworkInterfaceId does not exist.")
}

func errENIState(status string) error {
	return errf(http.StatusBadRequest, "InvalidOperation.InvalidEniState",
		"The operation is not allowed in the current ENI state %s.", status)
}

func errEcsState(why string) error {
	return errf(http.StatusBadRequest, "InvalidOperation.InvalidEcsState",
		"The operation is not allowed in the current instance state: %s", why)
}

// region checks RegionId. Attach and Detach answer an unknown region with
// InvalidOperation.InvalidRegion, other actions with InvalidRegionId.NotFound; ENI actions
// in a region without the ENI service get Forbidden.RegionId.
func (h *handler) region(c *rpc.Call, attachOp, eniOp bool) (*world.Region, error) {
	if err := c.Require("RegionId"); err != nil {
		return nil, err
	}
	r, ok := h.store.World().Region(c.RegionID)
	if !ok {
		if attachOp {
			return nil, errf(http.StatusBadRequest, "InvalidOperation.InvalidRegion", "The specified RegionId %q is invalid.", c.RegionID)
		}
		return nil, errf(http.StatusNotFound, "InvalidRegionId.NotFound", "The specified RegionId does not exist.")
	}
	if eniOp && r.ENIUnsupported {
		return nil, errf(http.StatusBadRequest, "Forbidden.RegionId", "The elastic network interface service is not available in region %s.", r.ID)
	}
	return r, nil
}

// accountType refuses account types ECS does not serve.
func (h *handler) accountType() error {
	if h.store.World().Account.Type == world.AccountUnverified {
		return errf(http.StatusForbidden, "InvalidUserType.NotSupported", "Your account type does not support this operation.")
	}
	return nil
}

func (h *handler) accountID() string { return h.store.World().Account.ID }

// zoneRegion is the region of a zone, "" if unknown.
func zoneRegion(st *world.State, zone string) string {
	r, _ := st.World().ZoneRegion(zone)
	return r
}

// lookupInstance finds an instance visible in region. A released instance or another
// account's is InvalidInstanceId.NotFound (403), an unknown one InvalidEcsId.NotFound (404).
func (h *handler) lookupInstance(st *world.State, id, region string) (*world.Instance, error) {
	in, ok := st.Instances[id]
	if !ok || zoneRegion(st, in.Zone) != region {
		return nil, errInstanceNotFound()
	}
	if in.Released || (in.OwnerID != "" && in.OwnerID != h.accountID()) {
		return nil, errInstanceGone()
	}
	return in, nil
}

// visibleInstance reports whether Describe actions list an instance.
func (h *handler) visibleInstance(st *world.State, in *world.Instance, region string) bool {
	return !in.Released && (in.OwnerID == "" || in.OwnerID == h.accountID()) && zoneRegion(st, in.Zone) == region
}

// lookupENI finds an ENI visible in region: this account's, or another's shared with it.
func (h *handler) lookupENI(st *world.State, id, region string) (*world.ENI, error) {
	e, ok := st.ENIs[id]
	if !ok || !h.visibleENI(st, e, region) {
		return nil, errENINotFound()
	}
	return e, nil
}

func (h *handler) visibleENI(st *world.State, e *world.ENI, region string) bool {
	_, zone := st.ENIVPCZone(e)
	if zoneRegion(st, zone) != region {
		return false
	}
	return e.OwnerID == "" || e.OwnerID == h.accountID() || e.SharedWithAccount
}

func (h *handler) owner(id string) string {
	if id == "" {
		return h.accountID()
	}
	return id
}

func (h *handler) instanceARN(c *rpc.Call, in *world.Instance) string {
	return ram.ARN("ecs", c.RegionID, h.owner(in.OwnerID), "instance/"+in.ID)
}

func (h *handler) eniARN(c *rpc.Call, e *world.ENI) string {
	return ram.ARN("ecs", c.RegionID, h.owner(e.OwnerID), "eni/"+e.ID)
}

// authorizeResources authorizes action on instance and/or ENI (nil to skip), each with
// its tags, then applies the cross-account and owner-only rules for RAM identities.
func (h *handler) authorizeResources(c *rpc.Call, action string, in *world.Instance, e *world.ENI) error {
	call := ram.Call{Action: "ecs:" + action}
	if in != nil {
		call.Resources = append(call.Resources, ram.Resource{ARN: h.instanceARN(c, in), Tags: in.Tags})
	}
	if e != nil {
		call.Resources = append(call.Resources, ram.Resource{ARN: h.eniARN(c, e), Tags: e.Tags})
	}
	if err := c.Authorize(call); err != nil {
		return err
	}
	if c.Principal.Kind == auth.KindAccount {
		return nil
	}
	if e != nil && e.OwnerID != "" && e.OwnerID != h.accountID() {
		return errf(http.StatusForbidden, "Forbidden.NotSupportRAM",
			"RAM users and roles may not use network interfaces shared by another account.")
	}
	if (in != nil && in.OwnerOnly) || (e != nil && e.OwnerOnly) {
		return errf(http.StatusForbidden, "Forbidden.SubUser",
			"Your account is not authorized to manage the specified resource. Contact the owner of the Alibaba Cloud account for authorization.")
	}
	return nil
}

// authorizeList authorizes a list action on the type's list ARN (<type>/*), the request's
// Tag.N filter standing for the listed resources' tags (see package ram).
func (h *handler) authorizeList(c *rpc.Call, action, resourceType string) error {
	filter := map[string]string{}
	for _, t := range c.Structs("Tag", "Key", "Value") {
		if _, dup := filter[t["Key"]]; t["Key"] != "" && !dup {
			filter[t["Key"]] = t["Value"]
		}
	}
	return c.Authorize(ram.Call{Action: "ecs:" + action,
		Resources: []ram.Resource{{ARN: c.ARN(resourceType + "/*"), Tags: filter}}})
}

// Time layouts of ECS responses.
const (
	isoSeconds = "2006-01-02T15:04:05Z"
	isoMinutes = "2006-01-02T15:04Z"
)

func fmtTime(t time.Time, layout string) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(layout)
}
