package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// read serves a read action from a view of the world lagging c.Lag behind the writes (the
// fault plan's staleness; 0 serves the current state). When the lagging answer differs
// from the one the current state gives, the read is stale: it is counted in the fault
// injector's Stats and noted in the call's record ("stale=<lag>").
func read[T any](h *handler, c *rpc.Call, fn func(*world.State) (T, error)) (any, error) {
	var out T
	var err error
	stale := false
	h.store.ViewLagging(c.Lag, func(view, truth *world.State) {
		out, err = fn(view)
		if truth == nil {
			return
		}
		now, nowErr := fn(truth)
		stale = !reflect.DeepEqual(out, now) || !reflect.DeepEqual(err, nowErr)
	})
	if stale && h.faults != nil {
		h.faults.CountStaleRead("ecs", c.Action)
		c.Note("stale=" + c.Lag.String())
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

type describeNetworkInterfacesResponse struct {
	TotalCount           int    `json:"TotalCount"`
	PageSize             int    `json:"PageSize"`
	PageNumber           int    `json:"PageNumber"`
	NextToken            string `json:"NextToken"`
	NetworkInterfaceSets struct {
		NetworkInterfaceSet []networkInterface `json:"NetworkInterfaceSet"`
	} `json:"NetworkInterfaceSets"`
}

func (h *handler) describeNetworkInterfaces(_ context.Context, c *rpc.Call) (any, error) {
	if _, err := h.region(c, false, true); err != nil {
		return nil, err
	}
	pg, err := paging(c, 10, 1000, 10, 500)
	if err != nil {
		return nil, err
	}
	tags, err := readTagFilter(c)
	if err != nil {
		return nil, err
	}
	ids := c.List("NetworkInterfaceId")
	if len(ids) > 100 {
		return nil, rpc.InvalidParameter("NetworkInterfaceId", "At most 100 ids.")
	}
	managed, managedSet, err := c.Bool("ServiceManaged")
	if err != nil {
		return nil, err
	}
	privateIPs := c.List("PrivateIpAddress")
	ipv6 := c.List("Ipv6Address")
	if err := h.authorizeList(c, "DescribeNetworkInterfaces", "eni"); err != nil {
		return nil, err
	}
	eq := func(param, have string) bool { v := c.Get(param); return v == "" || v == have }

	return read(h, c, func(st *world.State) (*describeNetworkInterfacesResponse, error) {
		resp := &describeNetworkInterfacesResponse{}
		var match []*world.ENI
		for _, e := range st.ENIs {
			if !h.visibleENI(st, e, c.RegionID) {
				continue
			}
			vpc, _ := st.ENIVPCZone(e)
			primary := ""
			if len(e.PrivateIPs) > 0 {
				primary = e.PrivateIPs[0]
			}
			if !eq("Status", e.Status) || !eq("VpcId", vpc) || !eq("VSwitchId", e.VSwitch) ||
				!eq("InstanceId", e.InstanceID) || !eq("Type", e.Type) || !eq("PrimaryIpAddress", primary) ||
				!eq("NetworkInterfaceName", e.Name) ||
				(c.Has("SecurityGroupId") && !slices.Contains(e.SecurityGroups, c.Get("SecurityGroupId"))) ||
				(managedSet && e.ServiceManaged != managed) ||
				(len(ids) > 0 && !slices.Contains(ids, e.ID)) ||
				(len(privateIPs) > 0 && !anyIn(privateIPs, e.PrivateIPs)) ||
				(len(ipv6) > 0 && !anyIn(ipv6, e.IPv6)) ||
				!tags.match(e.Tags) {
				continue
			}
			match = append(match, e)
		}
		sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
		from, to, next := pg.window(len(match))
		resp.TotalCount = len(match)
		resp.PageSize = pg.size
		resp.PageNumber = pg.number
		resp.NextToken = next
		resp.NetworkInterfaceSets.NetworkInterfaceSet = []networkInterface{}
		for _, e := range match[from:to] {
			resp.NetworkInterfaceSets.NetworkInterfaceSet = append(resp.NetworkInterfaceSets.NetworkInterfaceSet, h.renderENI(st, e))
		}
		return resp, nil
	})
}

func anyIn(want, have []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

func (h *handler) describeNetworkInterfaceAttribute(_ context.Context, c *rpc.Call) (any, error) {
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
	return read(h, c, func(st *world.State) (networkInterface, error) {
		e, err := h.lookupENI(st, id, c.RegionID)
		if err != nil {
			return networkInterface{}, err
		}
		if err := c.Authorize(ram.Call{Action: "ecs:DescribeNetworkInterfaceAttribute",
			Resources: []ram.Resource{{ARN: h.eniARN(c, e), Tags: e.Tags}}}); err != nil {
			return networkInterface{}, err
		}
		return h.renderENI(st, e), nil
	})
}

// Instance rendering, with the SDK's member names.

type vpcAttributes struct {
	VpcId            string `json:"VpcId"`
	VSwitchId        string `json:"VSwitchId"`
	NatIpAddress     string `json:"NatIpAddress"`
	PrivateIpAddress struct {
		IpAddress []string `json:"IpAddress"`
	} `json:"PrivateIpAddress"`
}

type instanceNIC struct {
	NetworkInterfaceId string        `json:"NetworkInterfaceId"`
	Type               string        `json:"Type"`
	PrimaryIpAddress   string        `json:"PrimaryIpAddress"`
	MacAddress         string        `json:"MacAddress"`
	PrivateIpSets      privateIPSets `json:"PrivateIpSets"`
}

type instance struct {
	InstanceId          string           `json:"InstanceId"`
	InstanceName        string           `json:"InstanceName"`
	HostName            string           `json:"HostName"`
	InstanceType        string           `json:"InstanceType"`
	InstanceTypeFamily  string           `json:"InstanceTypeFamily"`
	Cpu                 int              `json:"Cpu"`
	Memory              int              `json:"Memory"`
	Status              string           `json:"Status"`
	RegionId            string           `json:"RegionId"`
	ZoneId              string           `json:"ZoneId"`
	StartTime           string           `json:"StartTime"`
	CreationTime        string           `json:"CreationTime"`
	ExpiredTime         string           `json:"ExpiredTime"`
	InstanceNetworkType string           `json:"InstanceNetworkType"`
	InstanceChargeType  string           `json:"InstanceChargeType"`
	InternetChargeType  string           `json:"InternetChargeType"`
	OSType              string           `json:"OSType"`
	IoOptimized         bool             `json:"IoOptimized"`
	DeletionProtection  bool             `json:"DeletionProtection"`
	VpcAttributes       vpcAttributes    `json:"VpcAttributes"`
	SecurityGroupIds    securityGroupIDs `json:"SecurityGroupIds"`
	NetworkInterfaces   struct {
		NetworkInterface []instanceNIC `json:"NetworkInterface"`
	} `json:"NetworkInterfaces"`
	// Tags is absent, not empty, when the instance has none, as in real responses.
	Tags *tagSet `json:"Tags,omitempty"`
}

func (h *handler) renderInstance(st *world.State, in *world.Instance, region string) instance {
	typ, _ := st.World().InstanceType(in.Type)
	out := instance{
		InstanceId:          in.ID,
		InstanceName:        in.Name,
		HostName:            "iZ" + strings.TrimPrefix(in.ID, "i-") + "Z",
		InstanceType:        in.Type,
		InstanceTypeFamily:  typ.Family,
		Cpu:                 typ.CPU,
		Memory:              int(typ.MemoryGiB * 1024),
		Status:              in.Status,
		RegionId:            region,
		ZoneId:              in.Zone,
		StartTime:           fmtTime(in.StartTime.Time(), isoMinutes),
		CreationTime:        fmtTime(in.CreationTime.Time(), isoMinutes),
		ExpiredTime:         "2099-12-31T15:59Z",
		InstanceNetworkType: "vpc",
		InstanceChargeType:  "PostPaid",
		InternetChargeType:  "PayByTraffic",
		OSType:              "linux",
		IoOptimized:         true,
		SecurityGroupIds:    securityGroupIDs{SecurityGroupId: append([]string{}, in.SecurityGroups...)},
	}
	if out.InstanceName == "" {
		out.InstanceName = in.ID
	}
	out.VpcAttributes.VpcId = st.InstanceVPC(in)
	out.VpcAttributes.VSwitchId = in.VSwitch
	out.VpcAttributes.PrivateIpAddress.IpAddress = []string{in.PrivateIP}
	out.NetworkInterfaces.NetworkInterface = []instanceNIC{}
	// The primary ENI and the ENIs whose attachment has completed.
	for _, e := range st.Attached(in.ID) {
		if e.Type != world.ENIPrimary && e.Status != world.ENIInUse {
			continue
		}
		nic := instanceNIC{NetworkInterfaceId: e.ID, Type: e.Type, MacAddress: e.MAC, PrivateIpSets: privateIPSets{PrivateIpSet: []privateIPSet{}}}
		for i, ip := range e.PrivateIPs {
			if i == 0 {
				nic.PrimaryIpAddress = ip
			}
			nic.PrivateIpSets.PrivateIpSet = append(nic.PrivateIpSets.PrivateIpSet, privateIPSet{PrivateIpAddress: ip, Primary: i == 0})
		}
		out.NetworkInterfaces.NetworkInterface = append(out.NetworkInterfaces.NetworkInterface, nic)
	}
	if len(in.Tags) > 0 {
		ts := tagsOf(in.Tags)
		out.Tags = &ts
	}
	return out
}

type describeInstancesResponse struct {
	TotalCount int    `json:"TotalCount"`
	PageSize   int    `json:"PageSize"`
	PageNumber int    `json:"PageNumber"`
	NextToken  string `json:"NextToken"`
	Instances  struct {
		Instance []instance `json:"Instance"`
	} `json:"Instances"`
}

func (h *handler) describeInstances(_ context.Context, c *rpc.Call) (any, error) {
	if _, err := h.region(c, false, false); err != nil {
		return nil, err
	}
	pg, err := paging(c, 10, 100, 1, 100)
	if err != nil {
		return nil, err
	}
	tags, err := readTagFilter(c)
	if err != nil {
		return nil, err
	}
	var ids []string
	if s := c.Get("InstanceIds"); s != "" {
		if err := json.Unmarshal([]byte(s), &ids); err != nil {
			return nil, rpc.InvalidParameter("InstanceIds", "It must be a JSON array of instance ids.")
		}
		if len(ids) > 100 {
			return nil, rpc.InvalidParameter("InstanceIds", "At most 100 ids.")
		}
	}
	var privateIPs []string
	if s := c.Get("PrivateIpAddresses"); s != "" {
		if err := json.Unmarshal([]byte(s), &privateIPs); err != nil {
			return nil, rpc.InvalidParameter("PrivateIpAddresses", "It must be a JSON array of addresses.")
		}
	}
	// A RAM identity the policy does not allow gets an empty list, not an error: the
	// DescribeInstances API page says so (https://help.aliyun.com/document_detail/2679689.html).
	refused := false
	if err := h.authorizeList(c, "DescribeInstances", "instance"); err != nil {
		var e *rpc.Error
		if !errors.As(err, &e) || e.Code != "Forbidden.RAM" {
			return nil, err
		}
		refused = true
	}
	eq := func(param, have string) bool { v := c.Get(param); return v == "" || v == have }

	return read(h, c, func(st *world.State) (*describeInstancesResponse, error) {
		resp := &describeInstancesResponse{}
		var match []*world.Instance
		for _, in := range st.Instances {
			if refused || !h.visibleInstance(st, in, c.RegionID) {
				continue
			}
			typ, _ := st.World().InstanceType(in.Type)
			if (len(ids) > 0 && !slices.Contains(ids, in.ID)) ||
				!eq("VpcId", st.InstanceVPC(in)) || !eq("VSwitchId", in.VSwitch) || !eq("ZoneId", in.Zone) ||
				!eq("Status", in.Status) || !eq("InstanceType", in.Type) || !eq("InstanceTypeFamily", typ.Family) ||
				(c.Has("InstanceName") && !ram.Match(c.Get("InstanceName"), in.Name)) ||
				(c.Has("SecurityGroupId") && !slices.Contains(in.SecurityGroups, c.Get("SecurityGroupId"))) ||
				(len(privateIPs) > 0 && !slices.Contains(privateIPs, in.PrivateIP)) ||
				!tags.match(in.Tags) {
				continue
			}
			match = append(match, in)
		}
		sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
		from, to, next := pg.window(len(match))
		resp.TotalCount = len(match)
		resp.PageSize = pg.size
		resp.PageNumber = pg.number
		resp.NextToken = next
		resp.Instances.Instance = []instance{}
		for _, in := range match[from:to] {
			resp.Instances.Instance = append(resp.Instances.Instance, h.renderInstance(st, in, c.RegionID))
		}
		return resp, nil
	})
}

type instanceType struct {
	InstanceTypeId              string  `json:"InstanceTypeId"`
	InstanceTypeFamily          string  `json:"InstanceTypeFamily"`
	Generation                  string  `json:"Generation"`
	CpuCoreCount                int     `json:"CpuCoreCount"`
	MemorySize                  float64 `json:"MemorySize"`
	EniQuantity                 int     `json:"EniQuantity"`
	EniTotalQuantity            int     `json:"EniTotalQuantity"`
	EniPrivateIpAddressQuantity int     `json:"EniPrivateIpAddressQuantity"`
	EniIpv6AddressQuantity      int     `json:"EniIpv6AddressQuantity"`
	NetworkCardQuantity         int     `json:"NetworkCardQuantity"`
	InstanceCategory            string  `json:"InstanceCategory"`
}

type describeInstanceTypesResponse struct {
	NextToken     string `json:"NextToken"`
	InstanceTypes struct {
		InstanceType []instanceType `json:"InstanceType"`
	} `json:"InstanceTypes"`
}

func (h *handler) describeInstanceTypes(_ context.Context, c *rpc.Call) (any, error) {
	if _, err := h.region(c, false, false); err != nil {
		return nil, err
	}
	want := c.List("InstanceTypes")
	if len(want) > 10 {
		return nil, rpc.InvalidParameter("InstanceTypes", "At most 10 instance types.")
	}
	families := c.List("InstanceTypeFamilies")
	if f := c.Get("InstanceTypeFamily"); f != "" {
		families = append(families, f)
	}
	n, err := c.Int("MaxResults", 1600, 1, 1600)
	if err != nil {
		return nil, err
	}
	offset := 0
	if t := c.Get("NextToken"); t != "" {
		var ok bool
		if offset, ok = decodeToken(t); !ok {
			return nil, rpc.InvalidParameter("NextToken", "")
		}
	}
	if err := c.Authorize(ram.Call{Action: "ecs:DescribeInstanceTypes"}); err != nil {
		return nil, err
	}
	var match []instanceType
	for _, t := range h.store.World().InstanceTypes {
		if (len(want) > 0 && !slices.Contains(want, t.ID)) || (len(families) > 0 && !slices.Contains(families, t.Family)) {
			continue
		}
		match = append(match, instanceType{
			InstanceTypeId: t.ID, InstanceTypeFamily: t.Family, Generation: t.Generation,
			CpuCoreCount: t.CPU, MemorySize: t.MemoryGiB,
			EniQuantity: t.ENIQuantity, EniTotalQuantity: t.ENIQuantity,
			EniPrivateIpAddressQuantity: t.ENIPrivateIPQuantity, EniIpv6AddressQuantity: t.ENIIPv6Quantity,
			NetworkCardQuantity: t.NetworkCards, InstanceCategory: "General-purpose",
		})
	}
	sort.Slice(match, func(i, j int) bool { return match[i].InstanceTypeId < match[j].InstanceTypeId })
	pg := page{token: true, size: n, offset: offset}
	from, to, next := pg.window(len(match))
	resp := &describeInstanceTypesResponse{NextToken: next}
	resp.InstanceTypes.InstanceType = append([]instanceType{}, match[from:to]...)
	return resp, nil
}
