package ecs

import (
	"context"
	"net/http"
	"time"

	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// rebootCutoff is the date before which a Running instance's last start makes ENI
// attachment impossible until it is rebooted.
func rebootCutoff() time.Time { return time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC) }

// attachParams holds the validated parameters of Attach and Detach.
type attachParams struct {
	instanceID, eniID string
	networkCard       int
}

func (h *handler) attachParams(c *rpc.Call, attach bool) (attachParams, error) {
	if err := c.Require("RegionId", "InstanceId", "NetworkInterfaceId"); err != nil {
		return attachParams{}, err
	}
	p := attachParams{instanceID: c.Get("InstanceId"), eniID: c.Get("NetworkInterfaceId")}
	if !world.IsInstanceID(p.instanceID) {
		return p, errInstanceMalformed()
	}
	if !world.IsENIID(p.eniID) {
		return p, errENIMalformed()
	}
	if c.Has("TrunkNetworkInstanceId") {
		return p, rpc.InvalidParameter("TrunkNetworkInstanceId", "Trunk network interfaces are not emulated.")
	}
	if attach {
		var err error
		if p.networkCard, err = c.Int("NetworkCardIndex", 0, 0, 1<<20); err != nil {
			return p, err
		}
		if _, _, err := c.Bool("WaitForNetworkConfigurationReady"); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (h *handler) attach(_ context.Context, c *rpc.Call) (any, error) {
	return h.onPair(c, "AttachNetworkInterface", true, func(st *world.State, in *world.Instance, e *world.ENI, card int) error {
		if err := h.checkAttach(st, in, e, card); err != nil {
			return err
		}
		rollback := h.faults != nil && h.faults.RollbackAttach()
		st.Attach(e, in, card, rollback)
		return nil
	})
}

// onPair runs the checks Attach and Detach share (parameters, region, account, existence,
// permission), then change under the store's lock, so the checks and the change are one
// atomic step.
func (h *handler) onPair(c *rpc.Call, action string, attach bool, change func(*world.State, *world.Instance, *world.ENI, int) error) (any, error) {
	p, err := h.attachParams(c, attach)
	if err != nil {
		return nil, err
	}
	if _, err := h.region(c, true, true); err != nil {
		return nil, err
	}
	if err := h.accountType(); err != nil {
		return nil, err
	}
	err = h.store.Update(func(st *world.State) error {
		in, err := h.lookupInstance(st, p.instanceID, c.RegionID)
		if err != nil {
			return err
		}
		e, err := h.lookupENI(st, p.eniID, c.RegionID)
		if err != nil {
			return err
		}
		if err := h.authorizeResources(c, action, in, e); err != nil {
			return err
		}
		return change(st, in, e, p.networkCard)
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// checkAttach applies the type, state, topology and capacity rules, in that order.
func (h *handler) checkAttach(st *world.State, in *world.Instance, e *world.ENI, card int) error {
	w := st.World()
	typ, _ := w.InstanceType(in.Type)

	// Type and state.
	if typ.Generation == world.GenerationWithoutENI {
		return errf(http.StatusBadRequest, "InvalidOperation.InvalidGeneration",
			"Instance type %s (generation %s) does not support elastic network interfaces.", typ.ID, typ.Generation)
	}
	if card >= typ.NetworkCards {
		return rpc.InvalidParameter("NetworkCardIndex", "The instance type has fewer network cards.")
	}
	if e.ServiceManaged {
		return errf(http.StatusForbidden, "InvalidOperation.EniServiceManaged", "The ENI is managed by a cloud service.")
	}
	if e.Type != world.ENISecondary {
		return errf(http.StatusForbidden, "InvalidOperation.InvalidEniType", "The operation is not supported for an ENI of type %s.", e.Type)
	}
	if e.Status != world.ENIAvailable {
		return errENIState(e.Status)
	}
	if err := attachableState(in, typ); err != nil {
		return err
	}

	// Topology.
	sw, ok := w.VSwitch(e.VSwitch)
	if !ok || sw.Deleted {
		return errf(http.StatusNotFound, "InvalidVSwitchId.NotFound", "The specified VSwitch %s of the ENI does not exist.", e.VSwitch)
	}
	if sw.Zone != in.Zone {
		return errf(http.StatusForbidden, "InvalidOperation.AvailabilityZoneMismatch",
			"The ENI is in zone %s, the instance in zone %s.", sw.Zone, in.Zone)
	}
	if sw.VPC != st.InstanceVPC(in) {
		return errf(http.StatusForbidden, "InvalidOperation.VpcMismatch",
			"The ENI is in VPC %s, the instance in VPC %s.", sw.VPC, st.InstanceVPC(in))
	}
	for _, id := range e.SecurityGroups {
		g, ok := w.SecurityGroup(id)
		if !ok || g.Deleted {
			return errf(http.StatusNotFound, "InvalidSecurityGroupId.NotFound", "The specified security group %s does not exist.", id)
		}
		if g.Type != world.SecurityGroupVPC {
			return errf(http.StatusForbidden, "InvalidSecurityGroupId.NotVpc", "The security group %s is not of the VPC type.", id)
		}
	}

	// Capacity.
	if n := len(e.IPv6); n > 0 && n > typ.ENIIPv6Quantity {
		return errf(http.StatusForbidden, "InvalidOperation.Ipv6NotSupport",
			"Instance type %s supports %d IPv6 addresses per ENI; the ENI has %d.", typ.ID, typ.ENIIPv6Quantity, n)
	}
	if n := len(e.PrivateIPs); n > typ.ENIPrivateIPQuantity {
		return errf(http.StatusForbidden, "InvalidOperation.Ipv4CountExceeded",
			"Instance type %s supports %d IPv4 addresses per ENI; the ENI has %d.", typ.ID, typ.ENIPrivateIPQuantity, n)
	}
	if n := len(st.Attached(in.ID)); n >= typ.ENIQuantity {
		return errf(http.StatusForbidden, "EniPerInstanceLimitExceeded",
			"The instance already has %d ENIs, the maximum for type %s.", n, typ.ID)
	}
	for _, id := range e.SecurityGroups {
		g, _ := w.SecurityGroup(id)
		members := st.SecurityGroupMembers(id)
		if !members[in.ID] && len(members) >= g.MaxInstances {
			return errf(http.StatusForbidden, "SecurityGroupInstanceLimitExceed",
				"The security group %s already holds %d instances.", id, len(members))
		}
	}
	if q := w.Account.Quotas.AttachedENIs; q > 0 {
		n := 0
		for _, o := range st.ENIs {
			if o.Type == world.ENISecondary && o.InstanceID != "" {
				n++
			}
		}
		if n >= q {
			return errf(http.StatusForbidden, "MaxEniCountExceeded", "The account already has %d ENIs attached, its quota.", n)
		}
	}
	return nil
}

// attachableState says whether an instance's state allows attaching or detaching ENIs.
func attachableState(in *world.Instance, typ *world.InstanceType) error {
	switch {
	case in.Status != world.StatusRunning && in.Status != world.StatusStopped:
		return errEcsState("the instance is " + in.Status + "; it must be Running or Stopped")
	case in.Status == world.StatusRunning && typ.AttachRequiresStopped:
		return errEcsState("instances of type " + typ.ID + " must be Stopped")
	case in.Status == world.StatusRunning && in.StartTime.Time().Before(rebootCutoff()):
		return errEcsState("the instance was last started before 2018-04-01; reboot it first")
	}
	return nil
}

func (h *handler) detach(_ context.Context, c *rpc.Call) (any, error) {
	return h.onPair(c, "DetachNetworkInterface", false, func(st *world.State, in *world.Instance, e *world.ENI, _ int) error {
		if e.Type == world.ENIPrimary {
			return errf(http.StatusBadRequest, "InvalidOperation.DetachPrimaryEniNotAllowed", "The primary ENI of an instance cannot be detached.")
		}
		if e.ServiceManaged {
			return errf(http.StatusForbidden, "InvalidOperation.EniServiceManaged", "The ENI is managed by a cloud service.")
		}
		if e.Status != world.ENIInUse || e.InstanceID != in.ID {
			return errENIState(e.Status)
		}
		typ, _ := st.World().InstanceType(in.Type)
		if err := attachableState(in, typ); err != nil {
			return err
		}
		st.Detach(e)
		return nil
	})
}
