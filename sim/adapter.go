package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/rpc"
)

// readTimeout bounds each call as alicloud's ReadTimeout does (10 s by default): a call
// whose answer a fault holds is given up then, or at the invocation's deadline if sooner.
const readTimeout = 10 * time.Second

// connector hands every invocation the same clients of one Cloud: the function's
// adapters, but calling the emulators in process. It implements cloud.Connector.
type connector struct{ c *Cloud }

func (k connector) Connect(ctx context.Context, _ cloud.Session) (*cloud.Clients, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &cloud.Clients{ECS: ecsAPI(k), Lifecycle: lifecycleAPI{}, DeadLetters: dlqAPI(k)}, nil
}

// ecsAPI implements cloud.ECS over the ECS emulator, building each action's parameters
// as alibaba-cloud-sdk-go does and reading its JSON answer as the alicloud adapter does.
type ecsAPI struct{ c *Cloud }

// do runs one ECS call: bounded like an SDK call, reported to the handler's observers (as
// the alicloud adapter does, once per request sent), logged, and its answer decoded into
// out (nil to ignore it).
func (a ecsAPI) do(ctx context.Context, action string, params url.Values, out any) error {
	if err := ctx.Err(); err != nil {
		return &cloud.APIError{Service: "ecs", API: action, Err: err}
	}
	cctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	start := time.Now()
	res, reqID, err := a.c.ecs(cctx, action, params)
	if err == nil && out != nil {
		var b []byte
		if b, err = json.Marshal(res); err == nil {
			err = json.Unmarshal(b, out)
		}
		if err != nil {
			err = fmt.Errorf("sim: decode %s: %w", action, err)
		}
	}
	err = apiError("ecs", action, reqID, err)
	a.c.Calls.add(logged(ctx, "ecs", action, start, err, params.Get("InstanceId"), params.Get("NetworkInterfaceId")))
	cloud.ReportCall(ctx, cloud.Call{Service: "ecs", API: action, RequestID: reqID, Err: err, Duration: time.Since(start)})
	return err
}

func logged(ctx context.Context, service, api string, start time.Time, err error, instance, eni string) Call {
	c := Call{Invocation: invocationOf(ctx), Service: service, API: api, At: start.Add(epoch), Took: time.Since(start),
		Failed: err != nil, Instance: instance, ENI: eni}
	var ae *cloud.APIError
	if errors.As(err, &ae) {
		c.Code = ae.Code
	}
	return c
}

// apiError turns an emulator's error into what the alicloud adapter returns: an
// *cloud.APIError with the code of an API error, or with Err set for a transport failure.
func apiError(service, api, reqID string, err error) error {
	if err == nil {
		return nil
	}
	var re *rpc.Error
	if errors.As(err, &re) {
		return &cloud.APIError{Service: service, API: api, Code: re.Code, Message: re.Message, HTTPStatus: re.Status, RequestID: reqID}
	}
	var me *mns.Error
	if errors.As(err, &me) {
		return &cloud.APIError{Service: service, API: api, Code: me.Code, Message: me.Message, HTTPStatus: me.Status, RequestID: reqID}
	}
	return &cloud.APIError{Service: service, API: api, Err: err}
}

// chunks splits ids into the API's groups of at most 100 (one nil group for none).
func chunks(ids []string) [][]string {
	if len(ids) == 0 {
		return [][]string{nil}
	}
	var out [][]string
	for i := 0; i < len(ids); i += 100 {
		out = append(out, ids[i:min(i+100, len(ids))])
	}
	return out
}

type tagJSON struct {
	Tag []struct{ TagKey, TagValue string }
}

func (t tagJSON) m() map[string]string {
	out := map[string]string{}
	for _, x := range t.Tag {
		out[x.TagKey] = x.TagValue
	}
	return out
}

func (a ecsAPI) DescribeInstances(ctx context.Context, q cloud.InstanceQuery) ([]cloud.Instance, error) {
	var out []cloud.Instance
	for _, ids := range chunks(q.IDs) {
		token := ""
		for {
			p := url.Values{"MaxResults": {"100"}}
			setNonEmpty(p, "NextToken", token)
			setNonEmpty(p, "Status", q.Status)
			if len(ids) > 0 {
				b, _ := json.Marshal(ids) // a []string always marshals
				p.Set("InstanceIds", string(b))
			}
			if q.TagKey != "" {
				p.Set("Tag.1.Key", q.TagKey)
				setNonEmpty(p, "Tag.1.Value", q.TagValue)
			}
			var resp struct {
				NextToken string
				Instances struct {
					Instance []struct {
						InstanceId, RegionId, ZoneId, InstanceType, InstanceTypeFamily, Status, StartTime string
						VpcAttributes                                                                     struct{ VpcId, VSwitchId string }
						Tags                                                                              tagJSON
						NetworkInterfaces                                                                 struct {
							NetworkInterface []struct{ NetworkInterfaceId string }
						}
					}
				}
			}
			if err := a.do(ctx, "DescribeInstances", p, &resp); err != nil {
				return nil, err
			}
			for _, in := range resp.Instances.Instance {
				var enis []string
				for _, n := range in.NetworkInterfaces.NetworkInterface {
					enis = append(enis, n.NetworkInterfaceId)
				}
				out = append(out, cloud.Instance{ID: in.InstanceId, Region: in.RegionId, Zone: in.ZoneId,
					VpcID: in.VpcAttributes.VpcId, VSwitchID: in.VpcAttributes.VSwitchId, Type: in.InstanceType,
					Family: in.InstanceTypeFamily, Status: in.Status, StartTime: parseTime(in.StartTime),
					Tags: in.Tags.m(), ENIs: enis})
			}
			if resp.NextToken == "" || resp.NextToken == token || len(resp.Instances.Instance) == 0 {
				break
			}
			token = resp.NextToken
		}
	}
	return out, nil
}

func setNonEmpty(p url.Values, k, v string) {
	if v != "" {
		p.Set(k, v)
	}
}

// parseTime reads ECS times (minute precision in DescribeInstances, seconds elsewhere).
func parseTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04Z", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func (a ecsAPI) DescribeInstanceTypes(ctx context.Context, types []string) ([]cloud.InstanceType, error) {
	p := url.Values{}
	for i, t := range types {
		p.Set("InstanceTypes."+strconv.Itoa(i+1), t)
	}
	var resp struct {
		InstanceTypes struct {
			InstanceType []struct {
				InstanceTypeId, InstanceTypeFamily string
				EniQuantity                        int
			}
		}
	}
	if err := a.do(ctx, "DescribeInstanceTypes", p, &resp); err != nil {
		return nil, err
	}
	var out []cloud.InstanceType
	for _, t := range resp.InstanceTypes.InstanceType {
		out = append(out, cloud.InstanceType{ID: t.InstanceTypeId, Family: t.InstanceTypeFamily, ENIQuantity: t.EniQuantity})
	}
	return out, nil
}

type eniJSON struct {
	NetworkInterfaceId, Status, Type, InstanceId, VpcId, VSwitchId, ZoneId string
	PrivateIpAddress, MacAddress, CreationTime, OwnerId                    string
	ServiceManaged, DeleteOnRelease                                        bool
	Attachment                                                             struct{ InstanceId string }
	Tags                                                                   tagJSON
}

func (n eniJSON) eni() cloud.ENI {
	inst := n.InstanceId
	if inst == "" {
		inst = n.Attachment.InstanceId
	}
	return cloud.ENI{ID: n.NetworkInterfaceId, Status: n.Status, Type: n.Type, InstanceID: inst, VpcID: n.VpcId,
		VSwitchID: n.VSwitchId, Zone: n.ZoneId, PrivateIP: n.PrivateIpAddress, MAC: n.MacAddress,
		ServiceManaged: n.ServiceManaged, Tags: n.Tags.m(), Created: parseTime(n.CreationTime), OwnerID: n.OwnerId,
		DeleteOnRelease: n.DeleteOnRelease}
}

func (a ecsAPI) DescribeENIs(ctx context.Context, q cloud.ENIQuery) ([]cloud.ENI, error) {
	var out []cloud.ENI
	for _, ids := range chunks(q.IDs) {
		token := ""
		for {
			p := url.Values{"MaxResults": {"500"}}
			setNonEmpty(p, "NextToken", token)
			setNonEmpty(p, "VpcId", q.VpcID)
			setNonEmpty(p, "InstanceId", q.InstanceID)
			setNonEmpty(p, "Status", q.Status)
			setNonEmpty(p, "Type", q.Type)
			for i, id := range ids {
				p.Set("NetworkInterfaceId."+strconv.Itoa(i+1), id)
			}
			if q.TagKey != "" {
				p.Set("Tag.1.Key", q.TagKey)
				setNonEmpty(p, "Tag.1.Value", q.TagValue)
			}
			var resp struct {
				NextToken            string
				NetworkInterfaceSets struct{ NetworkInterfaceSet []eniJSON }
			}
			if err := a.do(ctx, "DescribeNetworkInterfaces", p, &resp); err != nil {
				return nil, err
			}
			for _, n := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
				out = append(out, n.eni())
			}
			if resp.NextToken == "" || resp.NextToken == token {
				break
			}
			token = resp.NextToken
		}
	}
	return out, nil
}

func (a ecsAPI) AttachENI(ctx context.Context, eniID, instanceID string) error {
	return a.do(ctx, "AttachNetworkInterface", url.Values{"NetworkInterfaceId": {eniID}, "InstanceId": {instanceID}}, nil)
}

func (a ecsAPI) DetachENI(ctx context.Context, eniID, instanceID string) error {
	return a.do(ctx, "DetachNetworkInterface", url.Values{"NetworkInterfaceId": {eniID}, "InstanceId": {instanceID}}, nil)
}

func (a ecsAPI) CreateENI(ctx context.Context, spec cloud.ENISpec) (cloud.ENI, error) {
	p := url.Values{"VSwitchId": {spec.VSwitchID}, "DeleteOnRelease": {"false"}}
	setNonEmpty(p, "ClientToken", spec.ClientToken)
	setNonEmpty(p, "Description", spec.Description)
	for i, g := range spec.SecurityGroupIDs {
		p.Set("SecurityGroupIds."+strconv.Itoa(i+1), g)
	}
	i := 0
	for k, v := range spec.Tags {
		i++
		p.Set(fmt.Sprintf("Tag.%d.Key", i), k)
		p.Set(fmt.Sprintf("Tag.%d.Value", i), v)
	}
	var resp eniJSON
	if err := a.do(ctx, "CreateNetworkInterface", p, &resp); err != nil {
		return cloud.ENI{}, err
	}
	return resp.eni(), nil
}

func (a ecsAPI) DeleteENI(ctx context.Context, eniID string) error {
	return a.do(ctx, "DeleteNetworkInterface", url.Values{"NetworkInterfaceId": {eniID}}, nil)
}

// errNotSimulated answers the calls no scenario makes yet.
var errNotSimulated = errors.New("sim: not simulated")

// lifecycleAPI implements cloud.Lifecycle; no scenario sends lifecycle events yet, so
// every call fails as a transport failure would.
type lifecycleAPI struct{}

func (lifecycleAPI) Complete(context.Context, string, string, string) error {
	return &cloud.APIError{Service: "ess", API: "CompleteLifecycleAction", Err: errNotSimulated}
}

func (lifecycleAPI) Heartbeat(context.Context, string, string, time.Duration) error {
	return &cloud.APIError{Service: "ess", API: "RecordLifecycleActionHeartbeat", Err: errNotSimulated}
}

func (lifecycleAPI) LifecycleHook(context.Context, string) (cloud.LifecycleHook, bool, error) {
	return cloud.LifecycleHook{}, false, &cloud.APIError{Service: "ess", API: "DescribeLifecycleHooks", Err: errNotSimulated}
}

func (lifecycleAPI) LifecycleActions(context.Context, string, string) ([]cloud.LifecycleAction, error) {
	return nil, &cloud.APIError{Service: "ess", API: "DescribeLifecycleActions", Err: errNotSimulated}
}

func (lifecycleAPI) ScalingInstances(context.Context, string, string, []string) ([]cloud.ScalingInstance, error) {
	return nil, &cloud.APIError{Service: "ess", API: "DescribeScalingInstances", Err: errNotSimulated}
}

// dlqAPI implements cloud.DeadLetters over the MNS emulator's queue.
type dlqAPI struct{ c *Cloud }

func (d dlqAPI) Send(ctx context.Context, body []byte) (string, error) {
	start := time.Now()
	id, err := d.c.MNS.Send(ctx, d.c.Principal.Name, DeadLetterQueue, body)
	err = apiError("mns", "SendMessage", "", err)
	d.c.Calls.add(logged(ctx, "mns", "SendMessage", start, err, "", ""))
	cloud.ReportCall(ctx, cloud.Call{Service: "mns", API: "SendMessage", Err: err, Duration: time.Since(start)})
	return id, err
}

func (d dlqAPI) Receive(ctx context.Context, max int, wait time.Duration) ([]cloud.Message, error) {
	m, err := d.c.MNS.Receive(ctx, DeadLetterQueue, wait)
	if err != nil {
		var me *mns.Error
		if errors.As(err, &me) && me.Code == mns.CodeMessageNotExist {
			return nil, nil
		}
		return nil, apiError("mns", "ReceiveMessage", "", err)
	}
	return []cloud.Message{{ID: m.ID, ReceiptHandle: m.ReceiptHandle, Body: m.Body, DequeueCount: m.DequeueCount}}, nil
}

func (d dlqAPI) Delete(_ context.Context, receiptHandle string) error {
	return apiError("mns", "DeleteMessage", "", d.c.MNS.Delete(DeadLetterQueue, receiptHandle))
}

func (d dlqAPI) Hide(context.Context, string, time.Duration) error {
	return &cloud.APIError{Service: "mns", API: "ChangeMessageVisibility", Err: errNotSimulated}
}
