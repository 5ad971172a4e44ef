package alicloud

import (
	"errors"
	"testing"

	alimns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/enipool/enipool/cloud"
)

// The SDK's own error values, as it builds them from a service error, parse back to the
// code, message and request id.
func TestConvertMNSErrors(t *testing.T) {
	d := &deadLetters{creds: &creds{static: cloud.Credentials{AccessKeyID: "ak", AccessKeySecret: "secret-value", SecurityToken: "token-value"}}}
	tests := []struct {
		name      string
		err       error
		code      string
		status    int
		message   string
		action    cloud.Verdict
		requestID string
		transport bool
	}{
		{"unknown key", alimns.ParseError(alimns.ErrorResponse{Code: "InvalidAccessKeyId", Message: "The AccessKey Id you provided is not exist.", RequestId: "R1"}, "queues/q/messages"),
			"InvalidAccessKeyId", 403, "The AccessKey Id you provided is not exist.", cloud.VerdictDeadLetter, "R1", false},
		{"outage", alimns.ParseError(alimns.ErrorResponse{Code: "ServiceUnavailable", Message: "down, for now", RequestId: "R2"}, "queues/q/messages"),
			"ServiceUnavailable", 503, "down, for now", cloud.VerdictRetry, "R2", false},
		{"queue gone", alimns.ParseError(alimns.ErrorResponse{Code: "QueueNotExist", Message: "The queue name you provided is not exist.", RequestId: "R3"}, "queues/q/messages"),
			"QueueNotExist", 404, "The queue name you provided is not exist.", cloud.VerdictDeadLetter, "R3", false},
		{"secret echoed", alimns.ParseError(alimns.ErrorResponse{Code: "SignatureDoesNotMatch", Message: "bad signature for token-value", RequestId: "R4"}, "queues/q/messages"),
			"SignatureDoesNotMatch", 403, "bad signature for [redacted]", cloud.VerdictDeadLetter, "R4", false},
		{"connection refused", errors.New("send request failed, dial tcp 127.0.0.1:9: connection refused"), "", 0, "", cloud.VerdictRetry, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.convert("SendMessage", tt.err)
			var ae *cloud.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("convert returned %T", err)
			}
			if ae.Code != tt.code || ae.HTTPStatus != tt.status || ae.Message != tt.message || ae.RequestID != tt.requestID || (ae.Err != nil) != tt.transport {
				t.Fatalf("got %+v", ae)
			}
			if a, _ := cloud.Classify(err); a != tt.action {
				t.Fatalf("action %s, want %s", a, tt.action)
			}
		})
	}
}
