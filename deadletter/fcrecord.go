package deadletter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// FCRecord is the record Function Compute writes to an asynchronous
// invocation's destination (asyncInvokeConfig.destinationConfig.onFailure /
// onSuccess) when the destination is an MNS queue or topic, a function, or
// ApsaraMQ for RocketMQ. Its shape is Function Compute's counterpart of AWS
// Lambda's destination record:
//
//	{
//	  "timestamp": 1660120276975,
//	  "requestContext": {
//	    "requestId": "xxx",
//	    "functionArn": "acs:fc:{regionid}:{accountid}:functions/xxxx",
//	    "condition": "FunctionResourceExhausted",
//	    "approximateInvokeCount": 3
//	  },
//	  "requestPayload": "",
//	  "responseContext": {"statusCode": 200, "functionError": ""},
//	  "responsePayload": ""
//	}
//
// Sources: the Function Compute 3.0 "结果回调" (result callback) page,
// https://help.aliyun.com/zh/functioncompute/user-guide/result-callback, section
// "异步调用目标的事件内容" (the sample above and its field table:
// requestPayload is "请求函数的原始负载", the invocation's original payload;
// approximateInvokeCount > 1 means the platform retried); the same sample on
// the FC 2.0 page https://help.aliyun.com/document_detail/422720.htm (there
// with functionArn "acs:fc:::services/{serviceName}/functions/{functionName}");
// the English page https://www.alibabacloud.com/help/en/fc/user-guide/result-callback
// (payload limits: 64 KB for MNS and EventBridge destinations).
//
// Not documented, so parsed defensively: whether requestPayload is always a
// JSON string (the sample shows one) or the JSON value itself when the payload
// is JSON (as AWS Lambda does). ParseFCDestinationRecord accepts both. The
// values of condition are not listed (the sample shows
// "FunctionResourceExhausted"; the FC error-handling page names
// HandledInvocationError and UnhandledInvocationError). What an EventBridge
// destination receives was not found; it is not handled here.
type FCRecord struct {
	// Timestamp is the invocation time (the record's milliseconds since the
	// Unix epoch), zero when absent.
	Timestamp time.Time
	// RequestID is the asynchronous invocation's request id.
	RequestID string
	// FunctionARN names the function that was invoked.
	FunctionARN string
	// Condition is the invocation's error code.
	Condition string
	// ApproximateInvokeCount is how many times the platform ran the
	// invocation.
	ApproximateInvokeCount int
	// StatusCode is the platform's status code; not 200 means a system error.
	StatusCode int
	// FunctionError is the invocation's error message.
	FunctionError string
	// RequestPayload is the original event: the string's content when the
	// record carries it as a JSON string, otherwise the JSON value verbatim.
	RequestPayload []byte
	// ResponsePayload is what the function returned, in the same way.
	ResponsePayload []byte
}

// ParseFCDestinationRecord decodes a Function Compute destination record. It
// requires a requestContext object and a requestPayload; the other fields are
// optional. Errors wrap ErrInvalid.
func ParseFCDestinationRecord(b []byte) (*FCRecord, error) {
	var w struct {
		Timestamp      json.RawMessage `json:"timestamp"`
		RequestContext *struct {
			RequestID              string          `json:"requestId"`
			FunctionARN            string          `json:"functionArn"`
			Condition              string          `json:"condition"`
			ApproximateInvokeCount json.RawMessage `json:"approximateInvokeCount"`
		} `json:"requestContext"`
		RequestPayload  json.RawMessage `json:"requestPayload"`
		ResponseContext *struct {
			StatusCode    json.RawMessage `json:"statusCode"`
			FunctionError string          `json:"functionError"`
		} `json:"responseContext"`
		ResponsePayload json.RawMessage `json:"responsePayload"`
	}
	if err := strictUnmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("FC destination record: %w", err)
	}
	if w.RequestContext == nil {
		return nil, fmt.Errorf("%w: FC destination record has no requestContext object", ErrInvalid)
	}
	if w.RequestPayload == nil || string(w.RequestPayload) == "null" {
		return nil, fmt.Errorf("%w: FC destination record has no requestPayload", ErrInvalid)
	}
	r := &FCRecord{
		RequestID:              w.RequestContext.RequestID,
		FunctionARN:            w.RequestContext.FunctionARN,
		Condition:              w.RequestContext.Condition,
		ApproximateInvokeCount: int(number(w.RequestContext.ApproximateInvokeCount)),
	}
	if ms := number(w.Timestamp); ms > 0 {
		r.Timestamp = time.UnixMilli(ms).UTC()
	}
	if w.ResponseContext != nil {
		r.StatusCode = int(number(w.ResponseContext.StatusCode))
		r.FunctionError = w.ResponseContext.FunctionError
	}
	var err error
	if r.RequestPayload, err = payload(w.RequestPayload); err != nil {
		return nil, fmt.Errorf("%w: FC destination record requestPayload: %w", ErrInvalid, err)
	}
	if r.ResponsePayload, err = payload(w.ResponsePayload); err != nil {
		return nil, fmt.Errorf("%w: FC destination record responsePayload: %w", ErrInvalid, err)
	}
	return r, nil
}

// payload returns a JSON string's content, or any other JSON value verbatim.
func payload(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// number reads an integer that may also come as a numeric string; anything
// else is 0. The record's numbers are informational, so they never fail it.
func number(raw json.RawMessage) int64 {
	i, err := strconv.ParseInt(string(bytes.Trim(raw, `" `)), 10, 64)
	if err != nil || i < 0 {
		return 0
	}
	return i
}
