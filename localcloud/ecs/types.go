package ecs

import (
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// Response shapes. Member names are those of the SDK response structs' json tags.

type tag struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

type tagSet struct {
	Tag []tag `json:"Tag"`
}

func tagsOf(m map[string]string) tagSet {
	ts := tagSet{Tag: []tag{}}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ts.Tag = append(ts.Tag, tag{TagKey: k, TagValue: m[k]})
	}
	return ts
}

type securityGroupIDs struct {
	SecurityGroupId []string `json:"SecurityGroupId"`
}

type privateIPSet struct {
	PrivateIpAddress string `json:"PrivateIpAddress"`
	Primary          bool   `json:"Primary"`
}

type privateIPSets struct {
	PrivateIpSet []privateIPSet `json:"PrivateIpSet"`
}

type ipv6Set struct {
	Ipv6Address string `json:"Ipv6Address"`
}

type ipv6Sets struct {
	Ipv6Set []ipv6Set `json:"Ipv6Set"`
}

type attachment struct {
	InstanceId       string `json:"InstanceId"`
	DeviceIndex      int    `json:"DeviceIndex"`
	NetworkCardIndex int    `json:"NetworkCardIndex"`
}

// networkInterface is one ENI as DescribeNetworkInterfaces, DescribeNetworkInterfaceAttribute
// (flattened) and CreateNetworkInterface render it.
type networkInterface struct {
	NetworkInterfaceId   string           `json:"NetworkInterfaceId"`
	NetworkInterfaceName string           `json:"NetworkInterfaceName"`
	Description          string           `json:"Description"`
	Status               string           `json:"Status"`
	Type                 string           `json:"Type"`
	InstanceId           string           `json:"InstanceId"`
	VpcId                string           `json:"VpcId"`
	VSwitchId            string           `json:"VSwitchId"`
	ZoneId               string           `json:"ZoneId"`
	PrivateIpAddress     string           `json:"PrivateIpAddress"`
	MacAddress           string           `json:"MacAddress"`
	CreationTime         string           `json:"CreationTime"`
	OwnerId              string           `json:"OwnerId"`
	ResourceGroupId      string           `json:"ResourceGroupId"`
	ServiceManaged       bool             `json:"ServiceManaged"`
	ServiceID            int64            `json:"ServiceID,omitempty"`
	DeleteOnRelease      bool             `json:"DeleteOnRelease"`
	SourceDestCheck      bool             `json:"SourceDestCheck"`
	QueueNumber          int              `json:"QueueNumber"`
	SecurityGroupIds     securityGroupIDs `json:"SecurityGroupIds"`
	PrivateIpSets        privateIPSets    `json:"PrivateIpSets"`
	Ipv6Sets             ipv6Sets         `json:"Ipv6Sets"`
	Attachment           attachment       `json:"Attachment"`
	Tags                 tagSet           `json:"Tags"`
}

func (h *handler) renderENI(st *world.State, e *world.ENI) networkInterface {
	vpc, zone := st.ENIVPCZone(e)
	n := networkInterface{
		NetworkInterfaceId:   e.ID,
		NetworkInterfaceName: e.Name,
		Description:          e.Description,
		Status:               e.Status,
		Type:                 e.Type,
		InstanceId:           e.InstanceID,
		VpcId:                vpc,
		VSwitchId:            e.VSwitch,
		ZoneId:               zone,
		MacAddress:           e.MAC,
		CreationTime:         fmtTime(e.CreationTime.Time(), isoSeconds),
		OwnerId:              h.owner(e.OwnerID),
		ServiceManaged:       e.ServiceManaged,
		DeleteOnRelease:      e.Type == world.ENIPrimary || e.ReleasedWithInstance(),
		QueueNumber:          1,
		SecurityGroupIds:     securityGroupIDs{SecurityGroupId: append([]string{}, e.SecurityGroups...)},
		PrivateIpSets:        privateIPSets{PrivateIpSet: []privateIPSet{}},
		Ipv6Sets:             ipv6Sets{Ipv6Set: []ipv6Set{}},
		Attachment:           attachment{InstanceId: e.InstanceID, DeviceIndex: e.DeviceIndex, NetworkCardIndex: e.NetworkCardIndex},
		Tags:                 tagsOf(e.Tags),
	}
	if e.ServiceManaged {
		n.ServiceID = 1
	}
	for i, ip := range e.PrivateIPs {
		if i == 0 {
			n.PrivateIpAddress = ip
		}
		n.PrivateIpSets.PrivateIpSet = append(n.PrivateIpSets.PrivateIpSet, privateIPSet{PrivateIpAddress: ip, Primary: i == 0})
	}
	for _, ip := range e.IPv6 {
		n.Ipv6Sets.Ipv6Set = append(n.Ipv6Sets.Ipv6Set, ipv6Set{Ipv6Address: ip})
	}
	return n
}

// page is a validated paging request: either PageNumber/PageSize or NextToken/MaxResults.
type page struct {
	token  bool
	number int // 1-based, page mode
	size   int
	offset int
}

// paging reads the paging parameters. In token mode (NextToken or MaxResults present)
// MaxResults below tokenMin is raised to it and above tokenMax refused; in page mode
// PageSize must lie in [1, pageMax].
func paging(c *rpc.Call, def, pageMax, tokenMin, tokenMax int) (page, error) {
	if c.Has("NextToken") || c.Has("MaxResults") {
		n, err := c.Int("MaxResults", def, 0, tokenMax)
		if err != nil {
			return page{}, err
		}
		p := page{token: true, size: max(n, tokenMin)}
		if t := c.Get("NextToken"); t != "" {
			off, ok := decodeToken(t)
			if !ok {
				return page{}, rpc.InvalidParameter("NextToken", "")
			}
			p.offset = off
		}
		return p, nil
	}
	num, err := c.Int("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return page{}, err
	}
	size, err := c.Int("PageSize", def, 1, pageMax)
	if err != nil {
		return page{}, err
	}
	return page{number: num, size: size, offset: (num - 1) * size}, nil
}

// window returns the slice bounds for n items and the NextToken ("" on the last page).
func (p page) window(n int) (from, to int, next string) {
	from = min(p.offset, n)
	to = min(from+p.size, n)
	if p.token && to < n {
		next = encodeToken(to)
	}
	return from, to, next
}

func encodeToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodeToken(t string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// tagFilter reads Tag.N.Key / Tag.N.Value filters; a key without a value matches any value.
type tagFilter []map[string]string

func readTagFilter(c *rpc.Call) (tagFilter, error) {
	f := tagFilter(c.Structs("Tag", "Key", "Value"))
	if len(f) > 20 {
		return nil, rpc.InvalidParameter("Tag", "At most 20 tags.")
	}
	for i, t := range f {
		if t["Key"] == "" {
			return nil, rpc.InvalidParameter("Tag."+strconv.Itoa(i+1)+".Key", "A tag key is required.")
		}
	}
	return f, nil
}

func (f tagFilter) match(tags map[string]string) bool {
	for _, t := range f {
		v, ok := tags[t["Key"]]
		if !ok {
			return false
		}
		if want, set := t["Value"]; set && want != v {
			return false
		}
	}
	return true
}

// requestTags reads the Tag.N.Key / Tag.N.Value a create or tag call sets.
func requestTags(c *rpc.Call) (map[string]string, error) {
	list := c.Structs("Tag", "Key", "Value")
	if len(list) > 20 {
		return nil, rpc.InvalidParameter("Tag", "At most 20 tags.")
	}
	out := map[string]string{}
	for _, t := range list {
		k := t["Key"]
		if k == "" || len(k) > 128 || strings.HasPrefix(k, "aliyun") || strings.HasPrefix(k, "acs:") ||
			strings.HasPrefix(k, "http://") || strings.HasPrefix(k, "https://") {
			return nil, rpc.Errorf(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified tag key %q is not valid.", k)
		}
		if len(t["Value"]) > 128 {
			return nil, rpc.Errorf(http.StatusBadRequest, "InvalidTagValue.Malformed", "The specified tag value is not valid.")
		}
		out[k] = t["Value"]
	}
	return out, nil
}
