package ecs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// createNetworkInterface creates an ENI synchronously: it is Available when the call
// returns. A repeated ClientToken returns the ENI the token created.
func (h *handler) createNetworkInterface(_ context.Context, c *rpc.Call) (any, error) {
	if err := c.Require("RegionId", "VSwitchId"); err != nil {
		return nil, err
	}
	vsw := c.Get("VSwitchId")
	sgs := c.List("SecurityGroupIds")
	if c.Has("SecurityGroupId") {
		if len(sgs) > 0 {
			return nil, rpc.InvalidParameter("SecurityGroupIds", "SecurityGroupId and SecurityGroupIds are mutually exclusive.")
		}
		sgs = []string{c.Get("SecurityGroupId")}
	}
	if len(sgs) == 0 {
		return nil, rpc.MissingParameter("SecurityGroupId")
	}
	if len(sgs) > 5 {
		return nil, rpc.InvalidParameter("SecurityGroupIds", "At most 5 security groups.")
	}
	tags, err := requestTags(c)
	if err != nil {
		return nil, err
	}
	secondary, err := c.Int("SecondaryPrivateIpAddressCount", 0, 0, 49)
	if err != nil {
		return nil, err
	}
	ipv6Count, err := c.Int("Ipv6AddressCount", 0, 0, 10)
	if err != nil {
		return nil, err
	}
	deleteOnRelease, deleteSet, err := c.Bool("DeleteOnRelease")
	if err != nil {
		return nil, err
	}
	token := c.Get("ClientToken")
	if len(token) > 64 {
		return nil, rpc.InvalidParameter("ClientToken", "At most 64 ASCII characters.")
	}
	explicit := c.List("PrivateIpAddress")
	if p := c.Get("PrimaryIpAddress"); p != "" {
		explicit = append([]string{p}, explicit...)
	}
	if _, err := h.region(c, false, true); err != nil {
		return nil, err
	}
	if err := h.accountType(); err != nil {
		return nil, err
	}
	// RAM checks the new ENI (with the requested tags), each security group and the
	// vSwitch (package ram's table); the world keeps no tags on the latter two.
	create := ram.Call{Action: "ecs:CreateNetworkInterface", RequestTags: tags,
		Resources: []ram.Resource{{ARN: c.ARN("eni/*")}, {ARN: ram.ARN("vpc", c.RegionID, c.Principal.AccountID, "vswitch/"+vsw)}}}
	for _, id := range sgs {
		create.Resources = append(create.Resources, ram.Resource{ARN: c.ARN("securitygroup/" + id)})
	}
	if err := c.Authorize(create); err != nil {
		return nil, err
	}

	var out networkInterface
	err = h.store.Update(func(st *world.State) error {
		if e, ok := st.ENIByClientToken(token); ok {
			if e.VSwitch != vsw {
				return errf(http.StatusBadRequest, "IdempotentParameterMismatch", "The ClientToken was used with different parameters.")
			}
			out = h.renderENI(st, e)
			return nil
		}
		w := st.World()
		sw, ok := w.VSwitch(vsw)
		if !ok || sw.Deleted || zoneRegion(st, sw.Zone) != c.RegionID {
			return errf(http.StatusNotFound, "InvalidVSwitchId.NotFound", "The specified VSwitchId does not exist.")
		}
		for _, id := range sgs {
			g, ok := w.SecurityGroup(id)
			switch {
			case !ok || g.Deleted:
				return errf(http.StatusNotFound, "InvalidSecurityGroupId.NotFound", "The specified security group %s does not exist.", id)
			case g.Type != world.SecurityGroupVPC:
				return errf(http.StatusForbidden, "InvalidSecurityGroupId.NotVpc", "The security group %s is not of the VPC type.", id)
			case g.VPC != sw.VPC:
				return errf(http.StatusForbidden, "InvalidOperation.VpcMismatch", "The security group %s is not in the vSwitch's VPC.", id)
			}
		}
		if q := w.Account.Quotas.ENIs; q > 0 {
			n := 0
			for _, e := range st.ENIs {
				if e.Type == world.ENISecondary && (e.OwnerID == "" || e.OwnerID == h.accountID()) {
					n++
				}
			}
			if n >= q {
				return errf(http.StatusForbidden, "MaxEniCountExceeded", "The account already has %d ENIs, its quota.", n)
			}
		}
		e := &world.ENI{
			ID:             st.NewENIID(),
			Name:           c.Get("NetworkInterfaceName"),
			Description:    c.Get("Description"),
			VSwitch:        vsw,
			SecurityGroups: sgs,
			Type:           world.ENISecondary,
			Status:         world.ENIAvailable,
			Tags:           tags,
			CreationTime:   world.At(st.Now()),
			ClientToken:    token,
		}
		if deleteSet {
			e.DeleteOnRelease = &deleteOnRelease
		}
		e.MAC = world.MACFor(e.ID)
		if err := allocate(st, e, explicit, 1+secondary); err != nil {
			st.ReleaseIPs(e)
			return err
		}
		for i := range ipv6Count {
			e.IPv6 = append(e.IPv6, ipv6For(e.ID, i))
		}
		st.AddENI(e)
		out = h.renderENI(st, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// allocate gives e the explicit addresses, then free ones up to n in total.
func allocate(st *world.State, e *world.ENI, explicit []string, n int) error {
	for _, ip := range explicit {
		if err := st.ReserveIP(e.VSwitch, ip, e.ID); err != nil {
			if errors.Is(err, world.ErrNoAddress) {
				return ipNotEnough()
			}
			return rpc.InvalidParameter("PrimaryIpAddress", fmt.Sprintf("The address %s is not available.", ip))
		}
		e.PrivateIPs = append(e.PrivateIPs, ip)
	}
	for len(e.PrivateIPs) < n {
		ip, err := st.AllocateIP(e.VSwitch, e.ID)
		if err != nil {
			return ipNotEnough()
		}
		e.PrivateIPs = append(e.PrivateIPs, ip)
	}
	return nil
}

func ipNotEnough() error {
	return errf(http.StatusForbidden, "InvalidVSwitchId.IpNotEnough", "The specified VSwitch has not enough IpAddress.")
}

// ipv6For derives a stable IPv6 address for the i-th address of an ENI.
func ipv6For(id string, i int) string {
	f := fnv.New32a()
	f.Write([]byte(id))
	return fmt.Sprintf("2408:4005:3a0:%x::%x", f.Sum32()&0xffff, i+1)
}

func (h *handler) deleteNetworkInterface(_ context.Context, c *rpc.Call) (any, error) {
	if err := c.Require("RegionId", "NetworkInterfaceId"); err != nil {
		return nil, err
	}
	id := c.Get("NetworkInterfaceId")
	if !world.IsENIID(id) {
		return nil, errENIMalformed()
	}
	if _, err := h.region(c, false, true); err != nil {
		return nil, err
	}
	if err := h.accountType(); err != nil {
		return nil, err
	}
	err := h.store.Update(func(st *world.State) error {
		e, err := h.lookupENI(st, id, c.RegionID)
		if err != nil {
			return err
		}
		if err := h.authorizeResources(c, "DeleteNetworkInterface", nil, e); err != nil {
			return err
		}
		switch {
		case e.Type == world.ENIPrimary:
			return errf(http.StatusForbidden, "InvalidOperation.InvalidEniType", "A primary ENI cannot be deleted.")
		case e.ServiceManaged:
			return errf(http.StatusForbidden, "InvalidOperation.EniServiceManaged", "The ENI is managed by a cloud service.")
		case e.Status != world.ENIAvailable:
			return errENIState(e.Status)
		case e.OwnerID != "" && e.OwnerID != h.accountID():
			return errf(http.StatusForbidden, "Forbidden.SubUser",
				"Your account is not authorized to manage the specified resource. Contact the owner of the Alibaba Cloud account for authorization.")
		}
		st.DeleteENI(e.ID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// Tags.

type tagTarget struct {
	instance *world.Instance
	eni      *world.ENI
}

func (t tagTarget) tags() map[string]string {
	if t.instance != nil {
		return t.instance.Tags
	}
	return t.eni.Tags
}

// setTags replaces the target's tags, keeping the old version as history for lagging reads.
func (t tagTarget) setTags(st *world.State, m map[string]string) {
	if t.instance != nil {
		st.Touch(t.instance.ID)
	} else {
		st.Touch(t.eni.ID)
	}
	if t.instance != nil {
		t.instance.Tags = m
	} else {
		t.eni.Tags = m
	}
}

func resourceType(c *rpc.Call) (string, error) {
	if err := c.Require("RegionId", "ResourceType"); err != nil {
		return "", err
	}
	switch t := strings.ToLower(c.Get("ResourceType")); t {
	case "instance", "eni":
		return t, nil
	}
	return "", errf(http.StatusBadRequest, "InvalidResourceType.NotSupported", "The resource type %s is not supported.", c.Get("ResourceType"))
}

// targets looks up the ResourceId.N of a tag call and authorizes action on each, with
// requestTags the tags the call sets (nil for UntagResources).
func (h *handler) targets(st *world.State, c *rpc.Call, typ, action string, requestTags map[string]string) ([]tagTarget, error) {
	ids := c.List("ResourceId")
	if len(ids) == 0 {
		return nil, rpc.MissingParameter("ResourceId.1")
	}
	if len(ids) > 50 {
		return nil, rpc.InvalidParameter("ResourceId", "At most 50 resources.")
	}
	notFound := func(id string) error {
		return errf(http.StatusNotFound, "InvalidResourceId.NotFound", "The specified resource %s does not exist.", id)
	}
	var out []tagTarget
	for _, id := range ids {
		var t tagTarget
		var arn string
		if typ == "instance" {
			in, ok := st.Instances[id]
			if !ok || !h.visibleInstance(st, in, c.RegionID) {
				return nil, notFound(id)
			}
			t.instance, arn = in, h.instanceARN(c, in)
		} else {
			e, ok := st.ENIs[id]
			if !ok || !h.visibleENI(st, e, c.RegionID) {
				return nil, notFound(id)
			}
			t.eni, arn = e, h.eniARN(c, e)
		}
		if err := c.Authorize(ram.Call{Action: "ecs:" + action, RequestTags: requestTags,
			Resources: []ram.Resource{{ARN: arn, Tags: t.tags()}}}); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (h *handler) tagResources(_ context.Context, c *rpc.Call) (any, error) {
	typ, err := resourceType(c)
	if err != nil {
		return nil, err
	}
	tags, err := requestTags(c)
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, rpc.MissingParameter("Tag.1.Key")
	}
	if _, err := h.region(c, false, false); err != nil {
		return nil, err
	}
	err = h.store.Update(func(st *world.State) error {
		ts, err := h.targets(st, c, typ, "TagResources", tags)
		if err != nil {
			return err
		}
		merged := make([]map[string]string, len(ts))
		for i, t := range ts {
			m := map[string]string{}
			for k, v := range t.tags() {
				m[k] = v
			}
			for k, v := range tags {
				m[k] = v
			}
			if len(m) > 20 {
				return rpc.InvalidParameter("Tag", "A resource can have at most 20 tags.")
			}
			merged[i] = m
		}
		for i, t := range ts {
			t.setTags(st, merged[i])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h *handler) untagResources(_ context.Context, c *rpc.Call) (any, error) {
	typ, err := resourceType(c)
	if err != nil {
		return nil, err
	}
	keys := c.List("TagKey")
	all, _, err := c.Bool("All")
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && !all {
		return nil, rpc.MissingParameter("TagKey.1")
	}
	if _, err := h.region(c, false, false); err != nil {
		return nil, err
	}
	err = h.store.Update(func(st *world.State) error {
		ts, err := h.targets(st, c, typ, "UntagResources", nil)
		if err != nil {
			return err
		}
		for _, t := range ts {
			m := map[string]string{}
			for k, v := range t.tags() {
				m[k] = v
			}
			if all {
				m = map[string]string{}
			}
			for _, k := range keys {
				delete(m, k)
			}
			t.setTags(st, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type tagResource struct {
	ResourceId   string `json:"ResourceId"`
	ResourceType string `json:"ResourceType"`
	TagKey       string `json:"TagKey"`
	TagValue     string `json:"TagValue"`
}

type listTagResourcesResponse struct {
	NextToken    string `json:"NextToken"`
	TagResources struct {
		TagResource []tagResource `json:"TagResource"`
	} `json:"TagResources"`
}

func (h *handler) listTagResources(_ context.Context, c *rpc.Call) (any, error) {
	typ, err := resourceType(c)
	if err != nil {
		return nil, err
	}
	ids := c.List("ResourceId")
	filter, err := readTagFilter(c)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 && len(filter) == 0 {
		return nil, rpc.MissingParameter("ResourceId.1")
	}
	offset := 0
	if t := c.Get("NextToken"); t != "" {
		var ok bool
		if offset, ok = decodeToken(t); !ok {
			return nil, rpc.InvalidParameter("NextToken", "")
		}
	}
	if _, err := h.region(c, false, false); err != nil {
		return nil, err
	}
	if err := c.Authorize(ram.Call{Action: "ecs:ListTagResources", Resources: []ram.Resource{{ARN: c.ARN(typ + "/*")}}}); err != nil {
		return nil, err
	}
	var rows []tagResource
	add := func(id string, tags map[string]string) {
		if (len(ids) > 0 && !slices.Contains(ids, id)) || !filter.match(tags) {
			return
		}
		for _, t := range tagsOf(tags).Tag {
			rows = append(rows, tagResource{ResourceId: id, ResourceType: typ, TagKey: t.TagKey, TagValue: t.TagValue})
		}
	}
	h.store.View(func(st *world.State) {
		if typ == "instance" {
			for _, in := range st.Instances {
				if h.visibleInstance(st, in, c.RegionID) {
					add(in.ID, in.Tags)
				}
			}
		} else {
			for _, e := range st.ENIs {
				if h.visibleENI(st, e, c.RegionID) {
					add(e.ID, e.Tags)
				}
			}
		}
	})
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].ResourceId != rows[j].ResourceId {
			return rows[i].ResourceId < rows[j].ResourceId
		}
		return rows[i].TagKey < rows[j].TagKey
	})
	pg := page{token: true, size: 50, offset: offset}
	from, to, next := pg.window(len(rows))
	resp := &listTagResourcesResponse{NextToken: next}
	resp.TagResources.TagResource = append([]tagResource{}, rows[from:to]...)
	return resp, nil
}
