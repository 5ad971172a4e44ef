package alicloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	alimns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/internal/mnsdial"
)

// deadLetters implements cloud.DeadLetters on an MNS queue.
type deadLetters struct {
	client alimns.MNSClient
	queue  string
	creds  *creds
}

func newDeadLetters(opts Options, s cloud.Session, c *creds) (*deadLetters, error) {
	endpoint := opts.MNSEndpoint
	if endpoint == "" {
		endpoint = "https://{account}.mns.{region}.aliyuncs.com"
	}
	if strings.Contains(endpoint, "{account}") && s.AccountID == "" {
		return nil, fmt.Errorf("alicloud: the MNS endpoint %q needs the account id, and the invocation gave none", endpoint)
	}
	endpoint = strings.NewReplacer("{account}", s.AccountID, "{region}", s.Region).Replace(endpoint)
	// The SDK panics on an endpoint it cannot split into {account}.mns.{region}.aliyuncs.com;
	// refuse it with an error instead.
	if host := strings.TrimPrefix(strings.TrimPrefix(endpoint, "https://"), "http://"); strings.Count(host, ".") != 4 ||
		!strings.Contains(host, ".mns.") || strings.ContainsAny(host, "/:") {
		return nil, fmt.Errorf("alicloud: MNS endpoint %q is not of the form http(s)://{account}.mns.{region}.aliyuncs.com", endpoint)
	}
	cfg := alimns.AliMNSClientConfig{EndPoint: endpoint, TimeoutSecond: int64(max(1, opts.ReadTimeout/time.Second))}
	if c.chain != nil {
		cfg.Credential = c.chain
	} else {
		cfg.AccessKeyId, cfg.AccessKeySecret, cfg.Token = c.static.AccessKeyID, c.static.AccessKeySecret, c.static.SecurityToken
	}
	client := alimns.NewAliMNSClientWithConfig(cfg)
	if opts.MNSDialAddr != "" {
		// The SDK's own host client carries the read timeout (TimeoutSecond above); the
		// transport keeps it and dials within the connect timeout.
		client.SetTransport(mnsdial.Transport(opts.MNSDialAddr, opts.ConnectTimeout))
	}
	return &deadLetters{client: client, queue: opts.DeadLetterQueue, creds: c}, nil
}

// queue returns a handle on the queue. Handles are made per call: the SDK's per-handle QPS
// monitor is not safe for concurrent use, while the client under it is.
func (d *deadLetters) handle() alimns.AliMNSQueue {
	return alimns.NewMNSQueue(d.queue, d.client)
}

// run runs fn, returning early with ctx's error if ctx ends first (the SDK takes no context;
// its own timeout ends the abandoned call).
func run[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (d *deadLetters) Send(ctx context.Context, body []byte) (string, error) {
	start := time.Now()
	resp, err := run(ctx, func() (alimns.MessageSendResponse, error) {
		// Priority must be 1..16 (MNS rejects the SDK's zero value).
		return d.handle().SendMessage(alimns.MessageSendRequest{MessageBody: string(body), Priority: 8})
	})
	err = d.convert("SendMessage", err)
	cloud.ReportCall(ctx, cloud.Call{Service: "mns", API: "SendMessage", RequestID: resp.RequestId, Err: err, Duration: time.Since(start)})
	if err != nil {
		return "", err
	}
	return resp.MessageId, nil
}

func (d *deadLetters) Receive(ctx context.Context, maxN int, wait time.Duration) ([]cloud.Message, error) {
	start := time.Now()
	resp, err := run(ctx, func() (alimns.BatchMessageReceiveResponse, error) {
		respCh := make(chan alimns.BatchMessageReceiveResponse, 1)
		errCh := make(chan error, 1)
		d.handle().BatchReceiveMessage(respCh, errCh, int32(min(max(maxN, 1), 16)), int64(max(1, wait/time.Second)))
		select {
		case r := <-respCh:
			return r, nil
		case err := <-errCh:
			return alimns.BatchMessageReceiveResponse{}, err
		}
	})
	if alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		err = nil // an empty queue
	}
	err = d.convert("BatchReceiveMessage", err)
	cloud.ReportCall(ctx, cloud.Call{Service: "mns", API: "BatchReceiveMessage", RequestID: resp.RequestId, Err: err, Duration: time.Since(start)})
	if err != nil {
		return nil, err
	}
	out := make([]cloud.Message, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		out = append(out, cloud.Message{ID: m.MessageId, ReceiptHandle: m.ReceiptHandle, Body: []byte(m.MessageBody), DequeueCount: int(m.DequeueCount)})
	}
	return out, nil
}

func (d *deadLetters) Delete(ctx context.Context, receiptHandle string) error {
	start := time.Now()
	_, err := run(ctx, func() (struct{}, error) { return struct{}{}, d.handle().DeleteMessage(receiptHandle) })
	err = d.convert("DeleteMessage", err)
	cloud.ReportCall(ctx, cloud.Call{Service: "mns", API: "DeleteMessage", Err: err, Duration: time.Since(start)})
	return err
}

func (d *deadLetters) Hide(ctx context.Context, receiptHandle string, hide time.Duration) error {
	start := time.Now()
	resp, err := run(ctx, func() (alimns.MessageVisibilityChangeResponse, error) {
		return d.handle().ChangeMessageVisibility(receiptHandle, int64(max(hide/time.Second, 1)))
	})
	err = d.convert("ChangeMessageVisibility", err)
	cloud.ReportCall(ctx, cloud.Call{Service: "mns", API: "ChangeMessageVisibility", RequestID: resp.RequestId, Err: err, Duration: time.Since(start)})
	return err
}

// convert turns an MNS SDK error into a *cloud.APIError. The SDK keeps the service's error
// only in its message ("ali_mns response status error,code: X, message: Y, resource: Z
// request id: R, host id: H"), and not the HTTP status, so the code decides the status.
func (d *deadLetters) convert(api string, err error) error {
	if err == nil {
		return nil
	}
	if code, msg, reqID, ok := parseMNSError(err.Error()); ok {
		status := 400
		switch code {
		case "QueueNotExist", "MessageNotExist":
			status = 404
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			status = 403
		case "InternalError":
			status = 500
		case "ServiceUnavailable", "QpsLimitExceeded":
			status = 503
		}
		return &cloud.APIError{Service: "mns", API: api, Code: code, Message: d.creds.scrub(msg), HTTPStatus: status, RequestID: reqID}
	}
	return &cloud.APIError{Service: "mns", API: api, Err: d.creds.transportError(err)}
}

// parseMNSError reads the code, message and request id out of the SDK's error text.
func parseMNSError(s string) (code, msg, reqID string, ok bool) {
	const lead, mid = "response status error,code: ", ", message: "
	i := strings.Index(s, lead)
	if i < 0 {
		return "", "", "", false
	}
	rest := s[i+len(lead):]
	j := strings.Index(rest, mid)
	if j < 0 {
		return "", "", "", false
	}
	code, rest = strings.TrimSpace(rest[:j]), rest[j+len(mid):]
	if k := strings.LastIndex(rest, ", resource: "); k >= 0 {
		msg, rest = rest[:k], rest[k:]
	}
	if k := strings.Index(rest, "request id: "); k >= 0 {
		reqID = rest[k+len("request id: "):]
		if e := strings.IndexAny(reqID, ", "); e >= 0 {
			reqID = reqID[:e]
		}
	}
	return code, msg, reqID, code != ""
}

// clientToken derives an idempotency token (at most 64 ASCII characters) from parts.
func clientToken(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])[:64]
}
