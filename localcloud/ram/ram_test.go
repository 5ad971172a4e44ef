package ram

import (
	"errors"
	"strings"
	"testing"

	"github.com/enipool/enipool/localcloud/auth"
)

func TestParseErrorsNameTheElement(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not json", `{`, "not a JSON object"},
		{"version", `{"Version":"2","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, "Version"},
		{"no statements", `{"Version":"1","Statement":[]}`, "Statement"},
		{"effect", `{"Version":"1","Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}`, "Statement[0].Effect"},
		{"no action", `{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}`, "Statement[0].Action"},
		{"bad action", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"AttachNetworkInterface","Resource":"*"}]}`, "Statement[0].Action"},
		{"no resource", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:*"}]}`, "Statement[0].Resource"},
		{"unknown element", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*","Resources":"*"}]}`, "Statement[0].Resources"},
		{"unknown operator", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*","Condition":{"StringEqual":{"ecs:tag/a":"b"}}}]}`, `unknown operator "StringEqual"`},
		{"bad ip", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.300"}}}]}`, "IpAddress.acs:SourceIp"},
		{"bad date", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"soon"}}}]}`, "DateLessThan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	user := auth.Principal{Name: "dev", Kind: auth.KindRAMUser, AccountID: "1"}
	root := auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: "1"}
	a := NewAuthorizer()
	a.Attach(user, MustParse(`{
	  "Version": "1",
	  "Statement": [
	    {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"},
	    {"Effect": "Allow", "Action": ["ecs:AttachNetworkInterface"],
	     "Resource": ["acs:ecs:*:*:eni/*", "acs:ecs:*:*:instance/*"],
	     "Condition": {"StringEquals": {"ecs:tag/enipool": "web"},
	                   "IpAddress": {"acs:SourceIp": ["127.0.0.0/8", "10.0.0.1"]}}},
	    {"Effect": "Deny", "Action": "ecs:AttachNetworkInterface", "Resource": "acs:ecs:*:*:eni/eni-secret*"},
	    {"Effect": "Allow", "Action": "ecs:DetachNetworkInterface", "Resource": "*",
	     "Condition": {"StringNotEquals": {"ecs:tag/protected": "yes"}, "Bool": {"acs:SecureTransport": true},
	                   "DateLessThan": {"acs:CurrentTime": "2100-01-01T00:00:00Z"}}}
	  ]}`))
	web := map[string][]string{"ecs:tag/enipool": {"web"}, "acs:SourceIp": {"127.0.0.1"}}
	tests := []struct {
		name     string
		p        auth.Principal
		req      Request
		allowed  bool
		explicit bool
	}{
		{"root always", root, Request{Action: "ecs:DeleteInstance", Resource: "*"}, true, false},
		{"describe wildcard, case-insensitive action", user, Request{Action: "ECS:describeinstances", Resource: "acs:ecs:cn-hangzhou:1:instance/i-1"}, true, false},
		{"tag condition allows", user, Request{Action: "ecs:AttachNetworkInterface", Resource: "acs:ecs:cn-hangzhou:1:eni/eni-1", Context: web}, true, false},
		{"tag condition denies", user, Request{Action: "ecs:AttachNetworkInterface", Resource: "acs:ecs:cn-hangzhou:1:eni/eni-1",
			Context: map[string][]string{"ecs:tag/enipool": {"db"}, "acs:SourceIp": {"127.0.0.1"}}}, false, false},
		{"missing tag denies", user, Request{Action: "ecs:AttachNetworkInterface", Resource: "acs:ecs:cn-hangzhou:1:eni/eni-1",
			Context: map[string][]string{"acs:SourceIp": {"127.0.0.1"}}}, false, false},
		{"source ip outside", user, Request{Action: "ecs:AttachNetworkInterface", Resource: "acs:ecs:cn-hangzhou:1:eni/eni-1",
			Context: map[string][]string{"ecs:tag/enipool": {"web"}, "acs:SourceIp": {"192.168.1.1"}}}, false, false},
		{"explicit deny wins", user, Request{Action: "ecs:AttachNetworkInterface", Resource: "acs:ecs:cn-hangzhou:1:eni/eni-secret1", Context: web}, false, true},
		{"wrong resource type", user, Request{Action: "ecs:AttachNetworkInterface", Resource: "acs:ecs:cn-hangzhou:1:disk/d-1", Context: web}, false, false},
		{"negated op with absent key", user, Request{Action: "ecs:DetachNetworkInterface", Resource: "x",
			Context: map[string][]string{"acs:SecureTransport": {"true"}, "acs:CurrentTime": {"2026-01-01T00:00:00Z"}}}, true, false},
		{"negated op with present key", user, Request{Action: "ecs:DetachNetworkInterface", Resource: "x",
			Context: map[string][]string{"ecs:tag/protected": {"yes"}, "acs:SecureTransport": {"true"}, "acs:CurrentTime": {"2026-01-01T00:00:00Z"}}}, false, false},
		{"date condition fails", user, Request{Action: "ecs:DetachNetworkInterface", Resource: "x",
			Context: map[string][]string{"acs:SecureTransport": {"true"}, "acs:CurrentTime": {"2101-01-01T00:00:00Z"}}}, false, false},
		{"unknown principal", auth.Principal{Name: "nobody", Kind: auth.KindRole, AccountID: "1"}, Request{Action: "ecs:DescribeInstances", Resource: "*"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Authorize(tt.p, tt.req)
			if tt.allowed {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			var d *DeniedError
			if !errors.As(err, &d) {
				t.Fatalf("err = %v, want *DeniedError", err)
			}
			if d.Explicit != tt.explicit || d.Action != tt.req.Action || d.Resource != tt.req.Resource {
				t.Fatalf("denial = %+v", d)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"acs:ecs:*:*:instance/*", "acs:ecs:cn-hangzhou:1:instance/i-1", true},
		{"acs:ecs:*:*:instance/*", "acs:ecs:cn-hangzhou:1:eni/eni-1", false},
		{"acs:mns:*:*:/queues/enipool-dlq/messages", "acs:mns:cn-hangzhou:1:/queues/enipool-dlq/messages", true},
		{"acs:mns:*:*:/queues/enipool-dlq/messages", "acs:mns:cn-hangzhou:1:/queues/enipool-work/messages", false},
		{"i-?", "i-1", true},
		{"i-?", "i-12", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
	}
	for _, tt := range tests {
		if got := Match(tt.p, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}
