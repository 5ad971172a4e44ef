package ecs_test

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/world"
)

// visibleENIs is what DescribeNetworkInterfaces should list in cn-hangzhou: this account's
// ENIs and shared ones.
func visibleENIs(e *env, filters ...func(*world.ENI) bool) []string {
	var ids []string
	for _, x := range e.store.ENIs(filters...) {
		if x.OwnerID == "" || x.SharedWithAccount {
			ids = append(ids, x.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func eniIDs(sets []sdkecs.NetworkInterfaceSet) []string {
	var ids []string
	for _, s := range sets {
		ids = append(ids, s.NetworkInterfaceId)
	}
	return ids
}

func TestDescribeNetworkInterfacesPaging(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	want := visibleENIs(e)
	if len(want) < 25 {
		t.Fatalf("test world too small: %d ENIs", len(want))
	}

	t.Run("NextToken", func(t *testing.T) {
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			r := sdkecs.CreateDescribeNetworkInterfacesRequest()
			r.MaxResults = requests.NewInteger(10)
			r.NextToken = token
			resp, err := c.DescribeNetworkInterfaces(r)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.NetworkInterfaceSets.NetworkInterfaceSet); n > 10 || (resp.NextToken != "" && n != 10) {
				t.Fatalf("page of %d with next token %q", n, resp.NextToken)
			}
			got = append(got, eniIDs(resp.NetworkInterfaceSets.NetworkInterfaceSet)...)
			if token = resp.NextToken; token == "" {
				break
			}
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged %v, want %v", got, want)
		}
	})
	t.Run("MaxResults below 10 is 10", func(t *testing.T) {
		r := sdkecs.CreateDescribeNetworkInterfacesRequest()
		r.MaxResults = requests.NewInteger(3)
		resp, err := c.DescribeNetworkInterfaces(r)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.NetworkInterfaceSets.NetworkInterfaceSet); n != 10 || resp.NextToken == "" {
			t.Fatalf("%d items, token %q", n, resp.NextToken)
		}
	})
	t.Run("MaxResults above 500", func(t *testing.T) {
		r := sdkecs.CreateDescribeNetworkInterfacesRequest()
		r.MaxResults = requests.NewInteger(501)
		_, err := c.DescribeNetworkInterfaces(r)
		wantCode(t, err, "InvalidParameter", 400)
	})
	t.Run("bad NextToken", func(t *testing.T) {
		r := sdkecs.CreateDescribeNetworkInterfacesRequest()
		r.NextToken = "garbage!"
		_, err := c.DescribeNetworkInterfaces(r)
		wantCode(t, err, "InvalidParameter", 400)
	})
	t.Run("PageNumber", func(t *testing.T) {
		var got []string
		for p := 1; ; p++ {
			r := sdkecs.CreateDescribeNetworkInterfacesRequest()
			r.PageNumber = requests.NewInteger(p)
			r.PageSize = requests.NewInteger(7)
			resp, err := c.DescribeNetworkInterfaces(r)
			if err != nil {
				t.Fatal(err)
			}
			if resp.TotalCount != len(want) || resp.PageNumber != p || resp.PageSize != 7 {
				t.Fatalf("page %d: total %d number %d size %d", p, resp.TotalCount, resp.PageNumber, resp.PageSize)
			}
			page := eniIDs(resp.NetworkInterfaceSets.NetworkInterfaceSet)
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged %v, want %v", got, want)
		}
	})
}

func TestDescribeNetworkInterfacesFilters(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	pool := visibleENIs(e, world.Tagged("enipool", "web"), world.WithStatus(world.ENIAvailable),
		func(x *world.ENI) bool { return x.Type == world.ENISecondary && x.VSwitch == "vsw-ah" })
	tests := []struct {
		name string
		mod  func(*sdkecs.DescribeNetworkInterfacesRequest)
		want []string
	}{
		{"pool candidates", func(r *sdkecs.DescribeNetworkInterfacesRequest) {
			r.Tag = &[]sdkecs.DescribeNetworkInterfacesTag{{Key: "enipool", Value: "web"}}
			r.Status = "Available"
			r.Type = "Secondary"
			r.VSwitchId = "vsw-ah"
			r.VpcId = "vpc-a"
			r.ServiceManaged = requests.NewBoolean(false)
		}, pool},
		{"by instance", func(r *sdkecs.DescribeNetworkInterfacesRequest) { r.InstanceId = "i-ok2" }, []string{"eni-inuse", "eni-primok2"}},
		{"by ids", func(r *sdkecs.DescribeNetworkInterfacesRequest) {
			r.NetworkInterfaceId = &[]string{"eni-free2", "eni-db", "eni-foreign"}
		}, []string{"eni-db", "eni-free2"}},
		{"service managed", func(r *sdkecs.DescribeNetworkInterfacesRequest) { r.ServiceManaged = requests.NewBoolean(true) }, []string{"eni-managed"}},
		{"tag key only", func(r *sdkecs.DescribeNetworkInterfacesRequest) {
			r.Tag = &[]sdkecs.DescribeNetworkInterfacesTag{{Key: "enipool"}}
			r.Status = "InUse"
		}, []string{"eni-inuse"}},
		{"primary address", func(r *sdkecs.DescribeNetworkInterfacesRequest) { r.PrimaryIpAddress = "10.0.1.200" }, []string{"eni-twoips"}},
		{"zone i vSwitch", func(r *sdkecs.DescribeNetworkInterfacesRequest) { r.VSwitchId = "vsw-ai" }, visibleENIs(e, func(x *world.ENI) bool { return x.VSwitch == "vsw-ai" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sdkecs.CreateDescribeNetworkInterfacesRequest()
			r.MaxResults = requests.NewInteger(500)
			tt.mod(r)
			resp, err := c.DescribeNetworkInterfaces(r)
			if err != nil {
				t.Fatal(err)
			}
			if got := eniIDs(resp.NetworkInterfaceSets.NetworkInterfaceSet); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Every member the SDK reads is filled, with TagKey/TagValue tags.
	r := sdkecs.CreateDescribeNetworkInterfacesRequest()
	r.NetworkInterfaceId = &[]string{"eni-inuse"}
	resp, err := c.DescribeNetworkInterfaces(r)
	if err != nil {
		t.Fatal(err)
	}
	s := resp.NetworkInterfaceSets.NetworkInterfaceSet[0]
	if s.Status != "InUse" || s.InstanceId != "i-ok2" || s.VpcId != "vpc-a" || s.ZoneId != "cn-hangzhou-h" || s.Type != "Secondary" ||
		s.MacAddress == "" || s.PrivateIpAddress == "" || s.OwnerId != "1234567890123456" || s.Attachment.InstanceId != "i-ok2" ||
		s.Attachment.DeviceIndex != 1 || len(s.SecurityGroupIds.SecurityGroupId) != 1 || len(s.PrivateIpSets.PrivateIpSet) != 1 ||
		!s.PrivateIpSets.PrivateIpSet[0].Primary || len(s.Tags.Tag) != 1 || s.Tags.Tag[0].TagKey != "enipool" || s.Tags.Tag[0].TagValue != "web" ||
		!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(s.CreationTime) {
		t.Fatalf("set %+v", s)
	}
}

func TestDescribeNetworkInterfacesXML(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	jr := sdkecs.CreateDescribeNetworkInterfacesRequest()
	jr.MaxResults = requests.NewInteger(500)
	jsonResp, err := c.DescribeNetworkInterfaces(jr)
	if err != nil {
		t.Fatal(err)
	}
	xr := sdkecs.CreateDescribeNetworkInterfacesRequest()
	xr.MaxResults = requests.NewInteger(500)
	xr.AcceptFormat = "XML"
	xmlResp, err := c.DescribeNetworkInterfaces(xr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(xmlResp.GetHttpContentString(), `<?xml version="1.0" encoding="UTF-8"?><DescribeNetworkInterfacesResponse>`) {
		t.Fatalf("XML body starts %.80s", xmlResp.GetHttpContentString())
	}
	if !slices.Equal(eniIDs(xmlResp.NetworkInterfaceSets.NetworkInterfaceSet), eniIDs(jsonResp.NetworkInterfaceSets.NetworkInterfaceSet)) ||
		xmlResp.TotalCount != jsonResp.TotalCount || xmlResp.RequestId == "" {
		t.Fatal("XML and JSON answers differ")
	}
	for i, s := range xmlResp.NetworkInterfaceSets.NetworkInterfaceSet {
		js := jsonResp.NetworkInterfaceSets.NetworkInterfaceSet[i]
		if s.Status != js.Status || len(s.Tags.Tag) != len(js.Tags.Tag) || len(s.SecurityGroupIds.SecurityGroupId) != len(js.SecurityGroupIds.SecurityGroupId) {
			t.Fatalf("%s differs: %+v vs %+v", s.NetworkInterfaceId, s, js)
		}
	}
}

func TestDescribeInstances(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	r := sdkecs.CreateDescribeInstancesRequest()
	r.InstanceIds = `["i-ok1","i-plain","i-released","i-foreign","i-old"]`
	resp, err := c.DescribeInstances(r)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range resp.Instances.Instance {
		ids = append(ids, in.InstanceId)
	}
	if !slices.Equal(ids, []string{"i-ok1", "i-old", "i-plain"}) {
		t.Fatalf("ids %v (released and foreign instances must not show)", ids)
	}
	ok1 := resp.Instances.Instance[0]
	minute := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\dZ$`)
	if !minute.MatchString(ok1.StartTime) || !minute.MatchString(ok1.CreationTime) || ok1.Status != "Running" ||
		ok1.ZoneId != "cn-hangzhou-h" || ok1.VpcAttributes.VpcId != "vpc-a" || ok1.VpcAttributes.VSwitchId != "vsw-ah" ||
		ok1.InstanceType != "ecs.g7.large" || ok1.RegionId != "cn-hangzhou" || len(ok1.Tags.Tag) != 1 || ok1.Tags.Tag[0].TagKey != "enipool" ||
		len(ok1.NetworkInterfaces.NetworkInterface) != 1 || ok1.NetworkInterfaces.NetworkInterface[0].Type != "Primary" ||
		ok1.InstanceName != "web-1" {
		t.Fatalf("i-ok1 %+v", ok1)
	}
	if resp.Instances.Instance[1].StartTime != "2018-01-15T08:00Z" {
		t.Fatalf("i-old StartTime %q", resp.Instances.Instance[1].StartTime)
	}
	// Tags is absent, not empty, for an untagged instance.
	var raw struct {
		Instances struct {
			Instance []map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, in := range raw.Instances.Instance {
		_, has := in["Tags"]
		if string(in["InstanceId"]) == `"i-plain"` && has {
			t.Fatal("untagged instance has a Tags member")
		}
		if string(in["InstanceId"]) == `"i-ok1"` && !has {
			t.Fatal("tagged instance has no Tags member")
		}
	}

	t.Run("filters and paging", func(t *testing.T) {
		r := sdkecs.CreateDescribeInstancesRequest()
		r.Tag = &[]sdkecs.DescribeInstancesTag{{Key: "enipool", Value: "web"}}
		r.VpcId = "vpc-a"
		r.Status = "Running"
		r.PageSize = requests.NewInteger(2)
		var got []string
		for p := 1; p < 10; p++ {
			r.PageNumber = requests.NewInteger(p)
			resp, err := c.DescribeInstances(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Instances.Instance) == 0 {
				break
			}
			for _, in := range resp.Instances.Instance {
				got = append(got, in.InstanceId)
			}
		}
		if !slices.Equal(got, []string{"i-ok1", "i-ok2", "i-owneronly", "i-quarantined"}) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("bad InstanceIds", func(t *testing.T) {
		r := sdkecs.CreateDescribeInstancesRequest()
		r.InstanceIds = "i-ok1"
		_, err := c.DescribeInstances(r)
		wantCode(t, err, "InvalidParameter", 400)
	})
}

func TestDescribeInstanceTypes(t *testing.T) {
	e := newEnv(t, nil)
	r := sdkecs.CreateDescribeInstanceTypesRequest()
	r.InstanceTypes = &[]string{"ecs.g7.large", "ecs.small1.large"}
	resp, err := e.client(t, "root").DescribeInstanceTypes(r)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.InstanceTypes.InstanceType
	if len(got) != 2 || got[0].InstanceTypeId != "ecs.g7.large" || got[0].EniQuantity != 3 || got[0].EniPrivateIpAddressQuantity != 10 ||
		got[0].EniIpv6AddressQuantity != 10 || got[1].EniIpv6AddressQuantity != 0 || got[1].InstanceTypeFamily != "ecs.small1" {
		t.Fatalf("types %+v", got)
	}
}

func TestCreateAndDeleteNetworkInterface(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	create := func(token, vsw string) (*sdkecs.CreateNetworkInterfaceResponse, error) {
		r := sdkecs.CreateCreateNetworkInterfaceRequest()
		r.VSwitchId = vsw
		r.SecurityGroupIds = &[]string{"sg-a"}
		r.ClientToken = token
		r.NetworkInterfaceName = "pool-extra"
		r.Tag = &[]sdkecs.CreateNetworkInterfaceTag{{Key: "enipool", Value: "web"}}
		return c.CreateNetworkInterface(r)
	}
	first, err := create("tok-1", "vsw-ah")
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != "Available" || first.Type != "Secondary" || first.VpcId != "vpc-a" || first.ZoneId != "cn-hangzhou-h" ||
		!netip.MustParsePrefix("10.0.1.0/24").Contains(netip.MustParseAddr(first.PrivateIpAddress)) || first.Tags.Tag[0].TagValue != "web" {
		t.Fatalf("created %+v", first)
	}
	again, err := create("tok-1", "vsw-ah")
	if err != nil || again.NetworkInterfaceId != first.NetworkInterfaceId {
		t.Fatalf("ClientToken retry gave %v, %v", again, err)
	}
	_, err = create("tok-1", "vsw-ai")
	wantCode(t, err, "IdempotentParameterMismatch", 400)
	if x := e.eni(t, first.NetworkInterfaceId); x.Status != world.ENIAvailable || x.Tags["enipool"] != "web" {
		t.Fatalf("store %+v", x)
	}
	// The capped vSwitch has one address left.
	if _, err := create("", "vsw-tiny"); err != nil {
		t.Fatal(err)
	}
	_, err = create("", "vsw-tiny")
	wantCode(t, err, "InvalidVSwitchId.IpNotEnough", 403)
	_, err = create("", "vsw-gone")
	wantCode(t, err, "InvalidVSwitchId.NotFound", 404)

	del := func(id string) error {
		r := sdkecs.CreateDeleteNetworkInterfaceRequest()
		r.NetworkInterfaceId = id
		_, err := c.DeleteNetworkInterface(r)
		return err
	}
	wantCode(t, del("eni-inuse"), "InvalidOperation.InvalidEniState", 400)
	if err := del(first.NetworkInterfaceId); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.store.ENI(first.NetworkInterfaceId); ok {
		t.Fatal("deleted ENI still exists")
	}
	wantCode(t, del(first.NetworkInterfaceId), "InvalidEniId.NotFound", 404)
}

func TestTags(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, "root")
	tr := sdkecs.CreateTagResourcesRequest()
	tr.ResourceType = "eni"
	tr.ResourceId = &[]string{"eni-free1", "eni-free2"}
	tr.Tag = &[]sdkecs.TagResourcesTag{{Key: "team", Value: "a"}}
	if _, err := c.TagResources(tr); err != nil {
		t.Fatal(err)
	}
	lr := sdkecs.CreateListTagResourcesRequest()
	lr.ResourceType = "eni"
	lr.ResourceId = &[]string{"eni-free1"}
	lresp, err := c.ListTagResources(lr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range lresp.TagResources.TagResource {
		got = append(got, r.ResourceId+":"+r.TagKey+"="+r.TagValue)
	}
	if !slices.Equal(got, []string{"eni-free1:enipool=web", "eni-free1:team=a"}) {
		t.Fatalf("tags %v", got)
	}
	ur := sdkecs.CreateUntagResourcesRequest()
	ur.ResourceType = "eni"
	ur.ResourceId = &[]string{"eni-free1"}
	ur.TagKey = &[]string{"team"}
	if _, err := c.UntagResources(ur); err != nil {
		t.Fatal(err)
	}
	if x := e.eni(t, "eni-free1"); len(x.Tags) != 1 || e.eni(t, "eni-free2").Tags["team"] != "a" {
		t.Fatalf("after untag: %v", x.Tags)
	}
	// Tags filter by tag across instances.
	lr = sdkecs.CreateListTagResourcesRequest()
	lr.ResourceType = "instance"
	lr.Tag = &[]sdkecs.ListTagResourcesTag{{Key: "quarantine", Value: "yes"}}
	lresp, err = c.ListTagResources(lr)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(lresp.TagResources.TagResource); n != 2 || lresp.TagResources.TagResource[0].ResourceId != "i-quarantined" {
		t.Fatalf("instance tags %+v", lresp.TagResources.TagResource)
	}
	tr = sdkecs.CreateTagResourcesRequest()
	tr.ResourceType = "eni"
	tr.ResourceId = &[]string{"eni-nope"}
	tr.Tag = &[]sdkecs.TagResourcesTag{{Key: "team", Value: "a"}}
	_, err = c.TagResources(tr)
	wantCode(t, err, "InvalidResourceId.NotFound", 404)
	tr.ResourceId = &[]string{"eni-free1"}
	tr.Tag = &[]sdkecs.TagResourcesTag{{Key: "aliyun:x", Value: "a"}}
	_, err = c.TagResources(tr)
	wantCode(t, err, "InvalidTagKey.Malformed", 400)
}

// TestDescribeInstancesRefusedIsEmpty checks what the DescribeInstances API page says of a
// RAM identity without the permission: an empty list, not an error. Other describes still
// answer Forbidden.RAM.
func TestDescribeInstancesRefusedIsEmpty(t *testing.T) {
	e := newEnv(t, func(w *world.World) {
		for i := range w.Principals {
			if w.Principals[i].Name == "dev" {
				w.Principals[i].Policies = []string{"pool-only"} // no ecs:Describe*
			}
		}
	})
	r := sdkecs.CreateDescribeInstancesRequest()
	r.InstanceIds = `["i-ok1","i-plain"]`
	for _, tt := range []struct {
		principal string
		want      int
	}{{"dev", 0}, {"root", 2}} {
		resp, err := e.client(t, tt.principal).DescribeInstances(r)
		if err != nil {
			t.Fatalf("%s: %v", tt.principal, err)
		}
		if len(resp.Instances.Instance) != tt.want || resp.TotalCount != tt.want {
			t.Fatalf("%s: %d instances (TotalCount %d), want %d", tt.principal, len(resp.Instances.Instance), resp.TotalCount, tt.want)
		}
	}
	_, err := e.client(t, "dev").DescribeNetworkInterfaces(sdkecs.CreateDescribeNetworkInterfacesRequest())
	wantCode(t, err, "Forbidden.RAM", 403)
}
