package alicloud

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/cloud"
)

// ecsAPI implements handler.ECS. alibaba-cloud-sdk-go clients are not safe for concurrent
// use (each call rewrites the shared HTTP client's timeouts), so it lends each call a client
// of its own from a pool.
//
// The clients are the SDK core's *sdk.Client, given the ecs package's requests and responses
// (DoAction is all the generated *ecs.Client methods do), never *ecs.Client itself: the MNS
// SDK renders its errors with text/template (github.com/gogap/errors), whose reflective
// method calls make the linker keep every exported method of every type an interface can
// reach. Held here, *ecs.Client's method per ECS API (and *ess.Client's) made the binary
// 30 MiB instead of 12, and every instance's resident memory grew with it.
type ecsAPI struct {
	opts   Options
	region string
	creds  *creds

	mu   sync.Mutex
	idle []*sdk.Client
}

func newECS(opts Options, region string, c *creds) *ecsAPI {
	return &ecsAPI{opts: opts, region: region, creds: c}
}

func (a *ecsAPI) get() (*sdk.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.idle); n > 0 {
		c := a.idle[n-1]
		a.idle = a.idle[:n-1]
		return c, nil
	}
	// Built by hand rather than with ecs.NewClientWithOptions, which fills the client's
	// endpoint map from a lazily initialized package variable (a data race when clients are
	// built concurrently). The endpoint is set explicitly, so the map is not needed.
	c := &sdk.Client{}
	cfg := sdk.NewConfig().WithScheme(strings.ToUpper(a.opts.Scheme)).WithAutoRetry(false)
	if err := c.InitWithOptions(a.region, cfg, a.creds); err != nil {
		return nil, &cloud.APIError{Service: "ecs", API: "client", Err: err}
	}
	c.Domain = endpointFor(a.opts.ECSEndpoint, "ecs.%s.aliyuncs.com", a.region)
	c.SetConnectTimeout(a.opts.ConnectTimeout)
	return c, nil
}

func (a *ecsAPI) put(c *sdk.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.idle = append(a.idle, c)
}

// do runs one request with a pooled client, bounds it by ctx, reports it and converts its
// error.
func (a *ecsAPI) do(ctx context.Context, api string, req interface{ SetReadTimeout(time.Duration) }, fn func(*sdk.Client) (string, error)) error {
	timeout, err := deadlineTimeout(ctx, a.opts.ReadTimeout)
	if err != nil {
		return &cloud.APIError{Service: "ecs", API: api, Err: err}
	}
	req.SetReadTimeout(timeout)
	c, err := a.get()
	if err != nil {
		return err
	}
	start := time.Now()
	reqID, err := fn(c)
	a.put(c)
	err = a.convert(api, err)
	var ae *cloud.APIError
	if errors.As(err, &ae) && ae.RequestID != "" {
		reqID = ae.RequestID
	}
	cloud.ReportCall(ctx, cloud.Call{Service: "ecs", API: api, RequestID: reqID, Err: err, Duration: time.Since(start)})
	return err
}

func (a *ecsAPI) convert(api string, err error) error {
	if err == nil {
		return nil
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return &cloud.APIError{Service: "ecs", API: api, Code: se.ErrorCode(), Message: a.creds.scrub(se.Message()),
			HTTPStatus: se.HttpStatus(), RequestID: se.RequestId()}
	}
	return &cloud.APIError{Service: "ecs", API: api, Err: a.creds.transportError(err)}
}

func (a *ecsAPI) DescribeInstances(ctx context.Context, q cloud.InstanceQuery) ([]cloud.Instance, error) {
	// The API takes at most 100 ids per request.
	idChunks := [][]string{nil}
	if len(q.IDs) > 0 {
		idChunks = nil
		for i := 0; i < len(q.IDs); i += 100 {
			idChunks = append(idChunks, q.IDs[i:min(i+100, len(q.IDs))])
		}
	}
	var out []cloud.Instance
	for _, ids := range idChunks {
		token := ""
		for {
			req := ecs.CreateDescribeInstancesRequest()
			req.MaxResults = requests.NewInteger(100)
			req.NextToken = token
			req.Status = q.Status
			if len(ids) > 0 {
				idsJSON, _ := json.Marshal(ids) // a []string always marshals
				req.InstanceIds = string(idsJSON)
			}
			if q.TagKey != "" {
				req.Tag = &[]ecs.DescribeInstancesTag{{Key: q.TagKey, Value: q.TagValue}}
			}
			resp := ecs.CreateDescribeInstancesResponse()
			err := a.do(ctx, "DescribeInstances", req, func(c *sdk.Client) (string, error) {
				err := c.DoAction(req, resp)
				return resp.RequestId, err
			})
			if err != nil {
				return nil, err
			}
			for _, in := range resp.Instances.Instance {
				out = append(out, instanceFrom(in))
			}
			if resp.NextToken == "" || resp.NextToken == token || len(resp.Instances.Instance) == 0 {
				break
			}
			token = resp.NextToken
		}
	}
	return out, nil
}

func instanceFrom(in ecs.Instance) cloud.Instance {
	tags := map[string]string{}
	for _, t := range in.Tags.Tag {
		k, v := t.TagKey, t.TagValue
		if k == "" {
			k, v = t.Key, t.Value
		}
		tags[k] = v
	}
	var enis []string
	for _, n := range in.NetworkInterfaces.NetworkInterface {
		enis = append(enis, n.NetworkInterfaceId)
	}
	return cloud.Instance{
		ID:        in.InstanceId,
		Region:    in.RegionId,
		Zone:      in.ZoneId,
		VpcID:     in.VpcAttributes.VpcId,
		VSwitchID: in.VpcAttributes.VSwitchId,
		Type:      in.InstanceType,
		Family:    in.InstanceTypeFamily,
		Status:    in.Status,
		StartTime: parseECSTime(in.StartTime),
		Tags:      tags,
		ENIs:      enis,
	}
}

// parseECSTime reads ECS times, which come at minute precision ("2024-04-14T22:32Z") in
// DescribeInstances and with seconds elsewhere. Unparseable times read as zero (unknown).
func parseECSTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04Z", time.RFC3339, "2006-01-02T15:04:05Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func (a *ecsAPI) DescribeInstanceTypes(ctx context.Context, types []string) ([]cloud.InstanceType, error) {
	req := ecs.CreateDescribeInstanceTypesRequest()
	req.InstanceTypes = &types
	resp := ecs.CreateDescribeInstanceTypesResponse()
	err := a.do(ctx, "DescribeInstanceTypes", req, func(c *sdk.Client) (string, error) {
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]cloud.InstanceType, 0, len(resp.InstanceTypes.InstanceType))
	for _, t := range resp.InstanceTypes.InstanceType {
		out = append(out, cloud.InstanceType{ID: t.InstanceTypeId, Family: t.InstanceTypeFamily, ENIQuantity: t.EniQuantity})
	}
	return out, nil
}

func (a *ecsAPI) DescribeENIs(ctx context.Context, q cloud.ENIQuery) ([]cloud.ENI, error) {
	var out []cloud.ENI
	// The API takes at most 100 ids per request.
	idChunks := [][]string{nil}
	if len(q.IDs) > 0 {
		idChunks = nil
		for i := 0; i < len(q.IDs); i += 100 {
			idChunks = append(idChunks, q.IDs[i:min(i+100, len(q.IDs))])
		}
	}
	for _, ids := range idChunks {
		token := ""
		for {
			req := ecs.CreateDescribeNetworkInterfacesRequest()
			req.MaxResults = requests.NewInteger(500)
			req.NextToken = token
			req.VpcId, req.InstanceId, req.Status, req.Type = q.VpcID, q.InstanceID, q.Status, q.Type
			if len(ids) > 0 {
				req.NetworkInterfaceId = &ids
			}
			if q.TagKey != "" {
				req.Tag = &[]ecs.DescribeNetworkInterfacesTag{{Key: q.TagKey, Value: q.TagValue}}
			}
			resp := ecs.CreateDescribeNetworkInterfacesResponse()
			err := a.do(ctx, "DescribeNetworkInterfaces", req, func(c *sdk.Client) (string, error) {
				err := c.DoAction(req, resp)
				return resp.RequestId, err
			})
			if err != nil {
				return nil, err
			}
			for _, n := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
				out = append(out, eniFrom(n))
			}
			if resp.NextToken == "" || resp.NextToken == token {
				break
			}
			token = resp.NextToken
		}
	}
	return out, nil
}

func eniFrom(n ecs.NetworkInterfaceSet) cloud.ENI {
	tags := map[string]string{}
	for _, t := range n.Tags.Tag {
		k, v := t.TagKey, t.TagValue
		if k == "" {
			k, v = t.Key, t.Value
		}
		tags[k] = v
	}
	instance := n.InstanceId
	if instance == "" {
		instance = n.Attachment.InstanceId
	}
	return cloud.ENI{
		ID:             n.NetworkInterfaceId,
		Status:         n.Status,
		Type:           n.Type,
		InstanceID:     instance,
		VpcID:          n.VpcId,
		VSwitchID:      n.VSwitchId,
		Zone:           n.ZoneId,
		PrivateIP:      n.PrivateIpAddress,
		MAC:            n.MacAddress,
		ServiceManaged: n.ServiceManaged,
		Tags:           tags,
		Created:        parseECSTime(n.CreationTime),
		OwnerID:        n.OwnerId,
		// Primary ENIs never reach the pool; for the others ECS reports the setting.
		DeleteOnRelease: n.DeleteOnRelease,
	}
}

func (a *ecsAPI) AttachENI(ctx context.Context, eniID, instanceID string) error {
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId = eniID, instanceID
	return a.do(ctx, "AttachNetworkInterface", req, func(c *sdk.Client) (string, error) {
		resp := ecs.CreateAttachNetworkInterfaceResponse()
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
}

func (a *ecsAPI) DetachENI(ctx context.Context, eniID, instanceID string) error {
	req := ecs.CreateDetachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId = eniID, instanceID
	return a.do(ctx, "DetachNetworkInterface", req, func(c *sdk.Client) (string, error) {
		resp := ecs.CreateDetachNetworkInterfaceResponse()
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
}

func (a *ecsAPI) CreateENI(ctx context.Context, spec cloud.ENISpec) (cloud.ENI, error) {
	req := ecs.CreateCreateNetworkInterfaceRequest()
	req.VSwitchId, req.ClientToken, req.Description = spec.VSwitchID, spec.ClientToken, spec.Description
	// A pool ENI outlives its instances: ECS would otherwise delete it, and its address,
	// when Auto Scaling releases the instance it is attached to.
	req.DeleteOnRelease = requests.NewBoolean(false)
	if len(spec.SecurityGroupIDs) == 1 {
		req.SecurityGroupId = spec.SecurityGroupIDs[0]
	} else if len(spec.SecurityGroupIDs) > 1 {
		req.SecurityGroupIds = &spec.SecurityGroupIDs
	}
	tags := make([]ecs.CreateNetworkInterfaceTag, 0, len(spec.Tags))
	for k, v := range spec.Tags {
		tags = append(tags, ecs.CreateNetworkInterfaceTag{Key: k, Value: v})
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	if len(tags) > 0 {
		req.Tag = &tags
	}
	resp := ecs.CreateCreateNetworkInterfaceResponse()
	err := a.do(ctx, "CreateNetworkInterface", req, func(c *sdk.Client) (string, error) {
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
	if err != nil {
		return cloud.ENI{}, err
	}
	out := cloud.ENI{ID: resp.NetworkInterfaceId, Status: resp.Status, Type: resp.Type, VpcID: resp.VpcId,
		VSwitchID: resp.VSwitchId, Zone: resp.ZoneId, PrivateIP: resp.PrivateIpAddress, MAC: resp.MacAddress,
		ServiceManaged: resp.ServiceManaged, Tags: map[string]string{}}
	for _, t := range resp.Tags.Tag {
		k, v := t.TagKey, t.TagValue
		if k == "" {
			k, v = t.Key, t.Value
		}
		out.Tags[k] = v
	}
	return out, nil
}

func (a *ecsAPI) DeleteENI(ctx context.Context, eniID string) error {
	req := ecs.CreateDeleteNetworkInterfaceRequest()
	req.NetworkInterfaceId = eniID
	return a.do(ctx, "DeleteNetworkInterface", req, func(c *sdk.Client) (string, error) {
		resp := ecs.CreateDeleteNetworkInterfaceResponse()
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
}
