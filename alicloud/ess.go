package alicloud

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ess"

	"github.com/enipool/enipool/cloud"
)

// essAPI implements handler.Lifecycle with the Auto Scaling API (2014-08-28). Calls are
// serialized on one client: lifecycle completions are few, and the client is not safe for
// concurrent use.
type essAPI struct {
	opts   Options
	region string
	creds  *creds

	mu     sync.Mutex
	client *sdk.Client
}

func newESS(opts Options, region string, c *creds) *essAPI {
	return &essAPI{opts: opts, region: region, creds: c}
}

// do makes one call. token is the lifecycle action token the call carries ("" for none): it
// is scrubbed from the error's text, as the session's secrets are, should ESS echo it.
func (a *essAPI) do(ctx context.Context, api, token string, req interface{ SetReadTimeout(time.Duration) }, fn func(*sdk.Client) (string, error)) error {
	timeout, err := deadlineTimeout(ctx, a.opts.ReadTimeout)
	if err != nil {
		return &cloud.APIError{Service: "ess", API: api, Err: err}
	}
	req.SetReadTimeout(timeout)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client == nil {
		c := &sdk.Client{} // the SDK core, not *ess.Client: see ecsAPI for why
		cfg := sdk.NewConfig().WithScheme(strings.ToUpper(a.opts.Scheme)).WithAutoRetry(false)
		if err := c.InitWithOptions(a.region, cfg, a.creds); err != nil {
			return &cloud.APIError{Service: "ess", API: api, Err: err}
		}
		c.Domain = endpointFor(a.opts.ESSEndpoint, "ess.%s.aliyuncs.com", a.region)
		c.SetConnectTimeout(a.opts.ConnectTimeout)
		a.client = c
	}
	start := time.Now()
	reqID, err := fn(a.client)
	if err != nil {
		var se *sdkerrors.ServerError
		if errors.As(err, &se) {
			err = &cloud.APIError{Service: "ess", API: api, Code: se.ErrorCode(), Message: a.creds.scrub(se.Message(), token),
				HTTPStatus: se.HttpStatus(), RequestID: se.RequestId()}
			reqID = se.RequestId()
		} else {
			err = &cloud.APIError{Service: "ess", API: api, Err: a.creds.transportError(err, token)}
		}
	}
	cloud.ReportCall(ctx, cloud.Call{Service: "ess", API: api, RequestID: reqID, Err: err, Duration: time.Since(start)})
	return err
}

func (a *essAPI) Complete(ctx context.Context, hookID, token, result string) error {
	req := ess.CreateCompleteLifecycleActionRequest()
	req.LifecycleHookId, req.LifecycleActionToken, req.LifecycleActionResult = hookID, token, result
	// ESS de-duplicates completions carrying the same client token.
	req.ClientToken = clientToken("complete", hookID, token)
	return a.do(ctx, "CompleteLifecycleAction", token, req, func(c *sdk.Client) (string, error) {
		resp := ess.CreateCompleteLifecycleActionResponse()
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
}

func (a *essAPI) Heartbeat(ctx context.Context, hookID, token string, timeout time.Duration) error {
	req := ess.CreateRecordLifecycleActionHeartbeatRequest()
	req.LifecycleHookId, req.LifecycleActionToken = hookID, token
	req.HeartbeatTimeout = requests.NewInteger(int(timeout.Seconds()))
	return a.do(ctx, "RecordLifecycleActionHeartbeat", token, req, func(c *sdk.Client) (string, error) {
		resp := ess.CreateRecordLifecycleActionHeartbeatResponse()
		err := c.DoAction(req, resp)
		return resp.RequestId, err
	})
}

// LifecycleHook implements handler.Lifecycle with DescribeLifecycleHooks, asking for the one
// hook id (LifecycleHookId.N; ScalingGroupId and LifecycleHookName are then ignored, per the
// API reference).
func (a *essAPI) LifecycleHook(ctx context.Context, hookID string) (cloud.LifecycleHook, bool, error) {
	req := ess.CreateDescribeLifecycleHooksRequest()
	req.LifecycleHookId = &[]string{hookID}
	var got []ess.LifecycleHook
	err := a.do(ctx, "DescribeLifecycleHooks", "", req, func(c *sdk.Client) (string, error) {
		resp := ess.CreateDescribeLifecycleHooksResponse()
		err := c.DoAction(req, resp)
		got = resp.LifecycleHooks.LifecycleHook
		return resp.RequestId, err
	})
	if err != nil {
		return cloud.LifecycleHook{}, false, err
	}
	for _, h := range got {
		if h.LifecycleHookId == hookID {
			return cloud.LifecycleHook{ID: h.LifecycleHookId, ScalingGroupID: h.ScalingGroupId,
				Transition: strings.ToUpper(h.LifecycleTransition), DefaultResult: strings.ToUpper(h.DefaultResult)}, true, nil
		}
	}
	return cloud.LifecycleHook{}, false, nil
}

// LifecycleActions implements handler.Lifecycle with DescribeLifecycleActions, 50 a page
// (the API's maximum), following NextToken.
func (a *essAPI) LifecycleActions(ctx context.Context, activityID, status string) ([]cloud.LifecycleAction, error) {
	var out []cloud.LifecycleAction
	next := ""
	for page := 0; page < 100; page++ {
		req := ess.CreateDescribeLifecycleActionsRequest()
		req.ScalingActivityId, req.LifecycleActionStatus, req.NextToken = activityID, status, next
		req.MaxResults = requests.NewInteger(50)
		var got []ess.LifecycleAction
		err := a.do(ctx, "DescribeLifecycleActions", "", req, func(c *sdk.Client) (string, error) {
			resp := ess.CreateDescribeLifecycleActionsResponse()
			err := c.DoAction(req, resp)
			got, next = resp.LifecycleActions.LifecycleAction, resp.NextToken
			return resp.RequestId, err
		})
		if err != nil {
			return nil, err
		}
		for _, x := range got {
			out = append(out, cloud.LifecycleAction{HookID: x.LifecycleHookId, Token: x.LifecycleActionToken,
				Status: x.LifecycleActionStatus, Result: x.LifecycleActionResult, InstanceIDs: x.InstanceIds.InstanceId})
		}
		if next == "" || len(got) == 0 {
			return out, nil
		}
	}
	return out, nil
}

// maxScalingInstanceIDs is how many InstanceId.N one DescribeScalingInstances takes (API
// reference: up to 20).
const maxScalingInstanceIDs = 20

// ScalingInstances implements handler.Lifecycle with DescribeScalingInstances, 20 instance
// ids a call, 50 a page.
func (a *essAPI) ScalingInstances(ctx context.Context, groupID, activityID string, instanceIDs []string) ([]cloud.ScalingInstance, error) {
	var out []cloud.ScalingInstance
	for from := 0; from < len(instanceIDs); from += maxScalingInstanceIDs {
		ids := instanceIDs[from:min(from+maxScalingInstanceIDs, len(instanceIDs))]
		for page := 1; ; page++ {
			req := ess.CreateDescribeScalingInstancesRequest()
			req.ScalingGroupId, req.ScalingActivityId = groupID, activityID
			req.InstanceId = &ids
			req.PageNumber, req.PageSize = requests.NewInteger(page), requests.NewInteger(50)
			var got []ess.ScalingInstance
			total := 0
			err := a.do(ctx, "DescribeScalingInstances", "", req, func(c *sdk.Client) (string, error) {
				resp := ess.CreateDescribeScalingInstancesResponse()
				err := c.DoAction(req, resp)
				got, total = resp.ScalingInstances.ScalingInstance, resp.TotalCount
				return resp.RequestId, err
			})
			if err != nil {
				return nil, err
			}
			for _, x := range got {
				out = append(out, cloud.ScalingInstance{InstanceID: x.InstanceId, ScalingGroupID: x.ScalingGroupId,
					LifecycleState: x.LifecycleState, ScalingActivityID: x.ScalingActivityId})
			}
			if len(got) == 0 || page*50 >= total {
				break
			}
		}
	}
	return out, nil
}
