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

	"github.com/enipool/enipool/handler"
)

// essAPI implements handler.Lifecycle with the Auto Scaling API (2014-08-28). Calls are
// serialized on one client: lifecycle completions are few, and the client is not safe for
// concurrent use.
type essAPI struct {
	opts   Options
	region string
	creds  *creds

	mu     sync.Mutex
	client *ess.Client
}

func newESS(opts Options, region string, c *creds) *essAPI {
	return &essAPI{opts: opts, region: region, creds: c}
}

func (a *essAPI) do(ctx context.Context, api string, req interface{ SetReadTimeout(time.Duration) }, fn func(*ess.Client) (string, error)) error {
	timeout, err := deadlineTimeout(ctx, a.opts.ReadTimeout)
	if err != nil {
		return &handler.APIError{Service: "ess", API: api, Err: err}
	}
	req.SetReadTimeout(timeout)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client == nil {
		c := &ess.Client{} // built by hand: see newECS's get for why
		cfg := sdk.NewConfig().WithScheme(strings.ToUpper(a.opts.Scheme)).WithAutoRetry(false)
		if err := c.InitWithOptions(a.region, cfg, a.creds); err != nil {
			return &handler.APIError{Service: "ess", API: api, Err: err}
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
			err = &handler.APIError{Service: "ess", API: api, Code: se.ErrorCode(), Message: a.creds.scrub(se.Message()),
				HTTPStatus: se.HttpStatus(), RequestID: se.RequestId()}
			reqID = se.RequestId()
		} else {
			err = &handler.APIError{Service: "ess", API: api, Err: a.creds.transportError(err)}
		}
	}
	handler.ReportCall(ctx, handler.Call{Service: "ess", API: api, RequestID: reqID, Err: err, Duration: time.Since(start)})
	return err
}

func (a *essAPI) Complete(ctx context.Context, hookID, token, result string) error {
	req := ess.CreateCompleteLifecycleActionRequest()
	req.LifecycleHookId, req.LifecycleActionToken, req.LifecycleActionResult = hookID, token, result
	// ESS de-duplicates completions carrying the same client token.
	req.ClientToken = clientToken("complete", hookID, token)
	return a.do(ctx, "CompleteLifecycleAction", req, func(c *ess.Client) (string, error) {
		resp, err := c.CompleteLifecycleAction(req)
		if resp != nil {
			return resp.RequestId, err
		}
		return "", err
	})
}

func (a *essAPI) Heartbeat(ctx context.Context, hookID, token string, timeout time.Duration) error {
	req := ess.CreateRecordLifecycleActionHeartbeatRequest()
	req.LifecycleHookId, req.LifecycleActionToken = hookID, token
	req.HeartbeatTimeout = requests.NewInteger(int(timeout.Seconds()))
	return a.do(ctx, "RecordLifecycleActionHeartbeat", req, func(c *ess.Client) (string, error) {
		resp, err := c.RecordLifecycleActionHeartbeat(req)
		if resp != nil {
			return resp.RequestId, err
		}
		return "", err
	})
}
