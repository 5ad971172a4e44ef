package rpc_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

const (
	account    = "1234567890123456"
	rootKey    = "LTAIroot"
	rootSecret = "root-secret"
	userKey    = "LTAIuser"
	userSecret = "user-secret"
	testVer    = "2020-01-01"
)

type env struct {
	auth   *auth.Store
	ram    *ram.Authorizer
	faults *fault.Injector
	rec    *record.Recorder
	srv    *httptest.Server
	host   string
	user   auth.Principal
}

type option func(*rpc.Options)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	e := &env{auth: auth.NewStore(nil), ram: guardedAuthorizer(t), faults: fault.New(fault.Plan{}, nil), rec: &record.Recorder{}}
	e.auth.AddAccount(auth.Account{ID: account, Type: "enterprise"})
	root := auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: account}
	e.user = auth.Principal{Name: "alice", Kind: auth.KindRAMUser, AccountID: account}
	for _, k := range []auth.Key{{ID: rootKey, Secret: rootSecret, Principal: root}, {ID: userKey, Secret: userSecret, Principal: e.user}} {
		if err := e.auth.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	o := rpc.Options{Service: "test", Product: "Test", Version: testVer, Auth: e.auth, RAM: e.ram, Faults: e.faults, Recorder: e.rec}
	for _, f := range opts {
		f(&o)
	}
	svc, err := rpc.NewService(o,
		rpc.Action{Name: "Ping", Params: []string{"Name", "Item.N", "Tag.N.Key", "Tag.N.Value"}, Handle: ping},
		rpc.Action{Name: "Guarded", Handle: func(_ context.Context, c *rpc.Call) (any, error) {
			return struct{}{}, c.Authorize(ram.Call{Action: "test:Guarded",
				Resources: []ram.Resource{{ARN: c.ARN("thing/1"), Tags: map[string]string{"team": c.Get("Team")}}}})
		}, Params: []string{"Team"}},
		rpc.Action{Name: "Unmodelled", Handle: func(_ context.Context, c *rpc.Call) (any, error) {
			return struct{}{}, c.Authorize(ram.Call{Action: "test:Unmodelled", Resources: []ram.Resource{{ARN: c.ARN("thing/1")}}})
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(svc)
	t.Cleanup(e.srv.Close)
	e.host = strings.TrimPrefix(e.srv.URL, "http://")
	return e
}

type pingResponse struct {
	Echo  string `json:"Echo" xml:"Echo"`
	Count int    `json:"Count" xml:"Count"`
	Items struct {
		Item []string `json:"Item" xml:"Item"`
	} `json:"Items" xml:"Items"`
	Tags struct {
		Tag []struct {
			Key   string `json:"Key" xml:"Key"`
			Value string `json:"Value" xml:"Value"`
		} `json:"Tag" xml:"Tag"`
	} `json:"Tags" xml:"Tags"`
}

func ping(_ context.Context, c *rpc.Call) (any, error) {
	var r pingResponse
	r.Echo = c.Get("Name")
	r.Items.Item = c.List("Item")
	r.Count = len(r.Items.Item)
	for _, t := range c.Structs("Tag", "Key", "Value") {
		r.Tags.Tag = append(r.Tags.Tag, struct {
			Key   string `json:"Key" xml:"Key"`
			Value string `json:"Value" xml:"Value"`
		}{t["Key"], t["Value"]})
	}
	return r, nil
}

func (e *env) client(t *testing.T, provider credentials.CredentialsProvider) *sdk.Client {
	t.Helper()
	c, err := sdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false).WithTimeout(5*time.Second), provider)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) request(action string, params map[string]string) *requests.CommonRequest {
	r := requests.NewCommonRequest()
	r.Method = requests.POST
	r.Scheme = "http"
	r.Domain = e.host
	r.Product = "Test"
	r.Version = testVer
	r.ApiName = action
	for k, v := range params {
		r.QueryParams[k] = v
	}
	return r
}

func serverError(t *testing.T, err error) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want *errors.ServerError", err, err)
	}
	return se
}

func wantCode(t *testing.T, err error, code string, status int) *sdkerrors.ServerError {
	t.Helper()
	se := serverError(t, err)
	if se.ErrorCode() != code || se.HttpStatus() != status {
		t.Fatalf("got %s %d (%s), want %s %d", se.ErrorCode(), se.HttpStatus(), se.Message(), code, status)
	}
	if se.RequestId() == "" || se.RequestId() != strings.ToUpper(se.RequestId()) || se.HostId() == "" {
		t.Fatalf("RequestId %q HostId %q", se.RequestId(), se.HostId())
	}
	return se
}

func TestSDKRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
	resp, err := c.ProcessCommonRequest(e.request("Ping", map[string]string{
		"Name": "a b*~", "Item.1": "x", "Item.2": "y", "Tag.1.Key": "k", "Tag.1.Value": "v",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var got pingResponse
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Echo != "a b*~" || got.Count != 2 || got.Items.Item[1] != "y" || got.Tags.Tag[0].Value != "v" {
		t.Fatalf("response %s", resp.GetHttpContentString())
	}
	if !strings.HasPrefix(resp.GetHttpContentString(), `{"RequestId":"`) {
		t.Fatalf("RequestId is not first: %s", resp.GetHttpContentString())
	}
	calls := e.rec.Calls(record.Match("test", "Ping"))
	if len(calls) != 1 || calls[0].Principal != "root" || calls[0].HTTPStatus != 200 || calls[0].Params["Signature"] != "" || calls[0].Params["Name"] != "a b*~" {
		t.Fatalf("record = %+v", calls)
	}
}

func TestXMLFormat(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
	r := e.request("Ping", map[string]string{"Name": "<x&y>", "Item.1": "a", "Item.2": "b", "Tag.1.Key": "k", "Tag.1.Value": "v"})
	r.AcceptFormat = "XML"
	resp, err := c.ProcessCommonRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	body := resp.GetHttpContentString()
	if !strings.Contains(body, "<PingResponse><RequestId>") || !strings.Contains(body, "<Items><Item>a</Item><Item>b</Item></Items>") {
		t.Fatalf("XML body %s", body)
	}
	var got pingResponse
	if err := xml.Unmarshal(resp.GetHttpContentBytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Echo != "<x&y>" || len(got.Items.Item) != 2 || got.Tags.Tag[0].Key != "k" {
		t.Fatalf("parsed %+v", got)
	}
	// Errors come back as <Error> XML; the SDK then has only the raw body.
	r = e.request("Nope", nil)
	r.AcceptFormat = "XML"
	_, err = c.ProcessCommonRequest(r)
	se := serverError(t, err)
	if se.HttpStatus() != 404 || !strings.Contains(se.Message(), "<Code>InvalidAction.NotFound</Code>") {
		t.Fatalf("XML error %d %s", se.HttpStatus(), se.Message())
	}
}

func TestCredentialErrors(t *testing.T) {
	e := newEnv(t)
	sts := e.auth.AssumeRole(auth.Principal{Name: "enipool-fn", Kind: auth.KindRole, AccountID: account}, time.Hour)
	expired := e.auth.AssumeRole(auth.Principal{Name: "enipool-fn", Kind: auth.KindRole, AccountID: account}, time.Hour)
	if err := e.auth.SetExpiry(expired.ID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.AddKey(auth.Key{ID: "LTAIdisabled", Secret: "s", Disabled: true, Principal: e.user}); err != nil {
		t.Fatal(err)
	}
	e.auth.AddAccount(auth.Account{ID: "999", Type: "enterprise", Closed: true})
	if err := e.auth.AddKey(auth.Key{ID: "LTAIclosed", Secret: "s", Principal: auth.Principal{Name: "gone", Kind: auth.KindAccount, AccountID: "999"}}); err != nil {
		t.Fatal(err)
	}
	otherToken := e.auth.AssumeRole(auth.Principal{Name: "enipool-fn", Kind: auth.KindRole, AccountID: account}, time.Hour).Token
	tests := []struct {
		name     string
		provider credentials.CredentialsProvider
		code     string
		status   int
	}{
		{"unknown key", credentials.NewStaticAKCredentialsProvider("LTAInobody", "x"), "InvalidAccessKeyId.NotFound", 404},
		{"wrong secret", credentials.NewStaticAKCredentialsProvider(rootKey, "wrong"), "SignatureDoesNotMatch", 400},
		{"disabled key", credentials.NewStaticAKCredentialsProvider("LTAIdisabled", "s"), "InvalidAccessKeyId.Inactive", 400},
		{"closed account", credentials.NewStaticAKCredentialsProvider("LTAIclosed", "s"), "Abs.InvalidAccount.NotFound", 403},
		{"expired token", credentials.NewStaticSTSCredentialsProvider(expired.ID, expired.Secret, expired.Token), "InvalidSecurityToken.Expired", 400},
		{"another key's token", credentials.NewStaticSTSCredentialsProvider(sts.ID, sts.Secret, otherToken), "InvalidSecurityToken.MismatchWithAccessKey", 400},
		{"garbage token", credentials.NewStaticSTSCredentialsProvider(sts.ID, sts.Secret, "not-a-token"), "InvalidSecurityToken.Malformed", 400},
		{"STS key without token", credentials.NewStaticAKCredentialsProvider(sts.ID, sts.Secret), "MissingSecurityToken", 400},
		{"token with a long-term key", credentials.NewStaticSTSCredentialsProvider(rootKey, rootSecret, otherToken), "InvalidSecurityToken.MismatchWithAccessKey", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client(t, tt.provider).ProcessCommonRequest(e.request("Ping", nil))
			se := wantCode(t, err, tt.code, tt.status)
			if tt.code == "SignatureDoesNotMatch" {
				if !strings.Contains(se.Message(), "server string to sign is:POST&%2F&") ||
					se.Recommend() != "InvalidAccessKeySecret: Please check you AccessKeySecret" {
					t.Fatalf("message %q recommend %q", se.Message(), se.Recommend())
				}
			}
		})
	}
	// The valid STS triple works.
	if _, err := e.client(t, credentials.NewStaticSTSCredentialsProvider(sts.ID, sts.Secret, sts.Token)).ProcessCommonRequest(e.request("Ping", nil)); err != nil {
		t.Fatal(err)
	}
	// No secret or token reached the record.
	for _, c := range e.rec.Calls() {
		for k, v := range c.Params {
			if k == "SecurityToken" || k == "Signature" || strings.Contains(v, sts.Token) {
				t.Fatalf("secret recorded: %s", k)
			}
		}
	}
}

// signed builds a hand-signed request the way any client following the protocol would.
func signed(host, method, action, key, secret string, ts time.Time, nonce string, extra url.Values) *http.Request {
	p := url.Values{
		"Action": {action}, "Version": {testVer}, "Format": {"JSON"}, "AccessKeyId": {key},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureNonce": {nonce},
		"Timestamp": {ts.UTC().Format("2006-01-02T15:04:05Z")},
	}
	for k, v := range extra {
		p[k] = v
	}
	p.Set("Signature", auth.SignRPC(secret, auth.RPCStringToSign(method, p)))
	if method == http.MethodGet {
		req, _ := http.NewRequest(method, "http://"+host+"/?"+p.Encode(), nil)
		return req
	}
	req, _ := http.NewRequest(method, "http://"+host+"/", strings.NewReader(p.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

type rawResult struct {
	status int
	body   map[string]any
}

func do(t *testing.T, req *http.Request) rawResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	for k, v := range m {
		if _, ok := v.(string); !ok && k != "AccessDeniedDetail" && resp.StatusCode >= 400 {
			t.Fatalf("error member %s is not a string: %v", k, v)
		}
	}
	return rawResult{resp.StatusCode, m}
}

func TestHandSignedRequests(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	// GET with the query and POST with a form body both work.
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		r := do(t, signed(e.host, m, "Ping", rootKey, rootSecret, now, "nonce-"+m, url.Values{"Name": {"raw"}}))
		if r.status != 200 || r.body["Echo"] != "raw" {
			t.Fatalf("%s: %d %v", m, r.status, r.body)
		}
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		code   string
		status int
	}{
		{"reused nonce", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "nonce-GET", nil)
		}, "SignatureNonceUsed", 400},
		{"stale timestamp", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now.Add(-20*time.Minute), "n1", nil)
		}, "InvalidTimeStamp.Expired", 400},
		{"future timestamp", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now.Add(20*time.Minute), "n2", nil)
		}, "InvalidTimeStamp.Expired", 400},
		{"bad timestamp", func() *http.Request {
			r := signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n3", nil)
			q := r.URL.Query()
			q.Set("Timestamp", "yesterday")
			r.URL.RawQuery = q.Encode()
			return r
		}, "InvalidTimeStamp.Format", 400},
		{"missing signature", func() *http.Request {
			r := signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n4", nil)
			q := r.URL.Query()
			q.Del("Signature")
			r.URL.RawQuery = q.Encode()
			return r
		}, "IncompleteSignature", 400},
		{"tampered parameter", func() *http.Request {
			r := signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n5", url.Values{"Name": {"a"}})
			q := r.URL.Query()
			q.Set("Name", "b")
			r.URL.RawQuery = q.Encode()
			return r
		}, "SignatureDoesNotMatch", 400},
		{"HMAC-SHA256", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n6", url.Values{"SignatureMethod": {"HMAC-SHA256"}})
		}, "InvalidSignatureMethod", 400},
		{"unknown action", func() *http.Request {
			return signed(e.host, http.MethodGet, "Pong", rootKey, rootSecret, now, "n7", nil)
		}, "InvalidAction.NotFound", 404},
		{"wrong version", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n8", url.Values{"Version": {"2014-05-26"}})
		}, "InvalidVersion", 400},
		{"unsupported parameter", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n9", url.Values{"Bogus": {"1"}})
		}, "UnsupportedParameter", 400},
		{"index zero", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n10", url.Values{"Item.0": {"1"}})
		}, "UnsupportedParameter", 400},
		{"bad format", func() *http.Request {
			return signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n11", url.Values{"Format": {"YAML"}})
		}, "InvalidParameter.Format", 400},
		{"PUT", func() *http.Request {
			r := signed(e.host, http.MethodGet, "Ping", rootKey, rootSecret, now, "n12", nil)
			r.Method = http.MethodPut
			return r
		}, "UnsupportedHTTPMethod", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.req())
			if r.status != tt.status || r.body["Code"] != tt.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, tt.status, tt.code)
			}
		})
	}
}

// guardedAuthorizer is the default RAM table plus the test service's Guarded action, which
// acts on one required resource type.
func guardedAuthorizer(t *testing.T) *ram.Authorizer {
	t.Helper()
	a, err := ram.NewAuthorizerWith(ram.Options{Table: append(ram.DefaultTable(), ram.ActionSpec{Action: "test:Guarded",
		Resources: []ram.ResourceType{{Name: "Thing", ARN: "acs:test:{#regionId}:{#accountId}:thing/{#thingId}", Required: true}}})})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRAMDenial(t *testing.T) {
	e := newEnv(t)
	e.ram.Attach(e.user, ram.MustParse(`{"Version":"1","Statement":[
	  {"Effect":"Allow","Action":"test:Guarded","Resource":"acs:test:*:*:thing/*","Condition":{"StringEquals":{"test:tag/team":"web"}}},
	  {"Effect":"Deny","Action":"test:Guarded","Resource":"*","Condition":{"StringEquals":{"test:tag/team":"evil"}}}]}`))
	c := e.client(t, credentials.NewStaticAKCredentialsProvider(userKey, userSecret))
	if _, err := c.ProcessCommonRequest(e.request("Guarded", map[string]string{"Team": "web"})); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	for team, kind := range map[string]string{"db": "ImplicitDeny", "evil": "ExplicitDeny"} {
		_, err := c.ProcessCommonRequest(e.request("Guarded", map[string]string{"Team": team}))
		se := wantCode(t, err, "Forbidden.RAM", 403)
		d := se.AccessDeniedDetail()
		if d["NoPermissionType"] != kind || d["AuthAction"] != "test:Guarded" || d["AuthPrincipalDisplayName"] != "alice" {
			t.Fatalf("team %s: detail %v", team, d)
		}
	}
}

// TestRAMNotModelled checks that a call site the RAM table cannot place answers an
// internal error, for the account too: it is a bug in the emulator, never a denial.
func TestRAMNotModelled(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
	_, err := c.ProcessCommonRequest(e.request("Unmodelled", nil))
	wantCode(t, err, "InternalError", 500)
}

func TestThrottling(t *testing.T) {
	e := newEnv(t, func(o *rpc.Options) {
		o.Limiter = rpc.NewLimiter([]world.Throttle{{Service: "test", Action: "Ping", QPS: 0.001, Burst: 2}})
	})
	c := e.client(t, credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
	// Unauthenticated requests take no token.
	for range 3 {
		_, err := e.client(t, credentials.NewStaticAKCredentialsProvider(rootKey, "wrong")).ProcessCommonRequest(e.request("Ping", nil))
		wantCode(t, err, "SignatureDoesNotMatch", 400)
	}
	for i := range 2 {
		if _, err := c.ProcessCommonRequest(e.request("Ping", nil)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := c.ProcessCommonRequest(e.request("Ping", nil))
	se := wantCode(t, err, "Throttling.User", 400)
	if se.Message() != "Request was denied due to user flow control." {
		t.Fatalf("message %q", se.Message())
	}
	// Another action has its own bucket (no rule: unlimited).
	if _, err := c.ProcessCommonRequest(e.request("Guarded", nil)); err != nil {
		t.Fatal(err)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
	tests := []struct {
		name  string
		plan  fault.Plan
		check func(t *testing.T, err error)
	}{
		{"error", fault.Plan{Errors: []fault.Rule{{Service: "test", Action: "Ping", Rate: 1, Code: "InternalError", HTTPStatus: 500}}},
			func(t *testing.T, err error) { wantCode(t, err, "InternalError", 500) }},
		{"seed code", fault.Plan{Errors: []fault.Rule{{Rate: 1, Code: "InvalidOperation.InvalidEniState", HTTPStatus: 400, Message: "forced"}}},
			func(t *testing.T, err error) {
				if se := wantCode(t, err, "InvalidOperation.InvalidEniState", 400); se.Message() != "forced" {
					t.Fatalf("message %q", se.Message())
				}
			}},
		{"outage", fault.Plan{Outages: []fault.Outage{{Service: "test", End: fault.Duration(time.Hour)}}},
			func(t *testing.T, err error) { wantCode(t, err, "ServiceUnavailable", 503) }},
		{"reset", fault.Plan{Errors: []fault.Rule{{Rate: 1, Reset: true}}},
			func(t *testing.T, err error) {
				var se *sdkerrors.ServerError
				if err == nil || errors.As(err, &se) {
					t.Fatalf("err = %v, want a transport error", err)
				}
			}},
		{"delay", fault.Plan{Latency: []fault.Latency{{Base: fault.Duration(50 * time.Millisecond)}}},
			func(t *testing.T, err error) {
				if err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.faults.SetPlan(tt.plan)
			_, err := c.ProcessCommonRequest(e.request("Ping", nil))
			tt.check(t, err)
			calls := e.rec.Calls()
			if last := calls[len(calls)-1]; last.Fault == "" {
				t.Fatalf("fault not recorded: %+v", last)
			}
		})
	}
}

func TestDelayHonoursClientContext(t *testing.T) {
	e := newEnv(t)
	e.faults.SetPlan(fault.Plan{Latency: []fault.Latency{{Base: fault.Duration(time.Minute)}}})
	c, err := sdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false).WithTimeout(200*time.Millisecond),
		credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.ProcessCommonRequest(e.request("Ping", nil)); err == nil {
		t.Fatal("a one-minute delay answered")
	}
	// The handler gives up when the client goes: the call is recorded well before the minute.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, call := range e.rec.Calls() {
			if strings.Contains(call.Fault, "client-gone") {
				if time.Since(start) > 50*time.Second {
					t.Fatal("the delay was not cut short")
				}
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the abandoned call was never recorded")
}

func TestParamsOf(t *testing.T) {
	type tag struct {
		Key   string `name:"Key"`
		Value string `name:"Value"`
	}
	type cfg struct {
		A string `name:"A"`
	}
	type base struct{ Skipped string }
	type req struct {
		*base
		Plain  string            `position:"Query" name:"Plain"`
		List   *[]string         `position:"Query" name:"List" type:"Repeated"`
		Tags   *[]tag            `position:"Query" name:"Tag" type:"Repeated"`
		Nested cfg               `position:"Query" name:"Cfg" type:"Struct"`
		M      map[string]string `position:"Query" name:"M" type:"Map"`
		Lower  string            `position:"Query" name:"lowerCamel"`
	}
	got := fmt.Sprint(rpc.ParamsOf(&req{}))
	want := "[Plain List.N Tag.N.Key Tag.N.Value Cfg.A M.* lowerCamel]"
	if got != want {
		t.Fatalf("ParamsOf = %s, want %s", got, want)
	}
}

func TestConcurrentRequestIDsAreUnique(t *testing.T) {
	e := newEnv(t)
	var failures atomic.Int32
	done := make(chan string, 20)
	for range 20 {
		go func() {
			c, err := sdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false), credentials.NewStaticAKCredentialsProvider(rootKey, rootSecret))
			if err != nil {
				failures.Add(1)
				done <- ""
				return
			}
			var resp *responses.CommonResponse
			resp, err = c.ProcessCommonRequest(e.request("Ping", nil))
			if err != nil {
				failures.Add(1)
				done <- ""
				return
			}
			var m struct{ RequestId string }
			if err := json.Unmarshal(resp.GetHttpContentBytes(), &m); err != nil || len(m.RequestId) != 36 {
				failures.Add(1)
			}
			done <- m.RequestId
		}()
	}
	seen := map[string]bool{}
	for range 20 {
		id := <-done
		if seen[id] {
			t.Fatalf("duplicate RequestId %s", id)
		}
		seen[id] = true
	}
	if failures.Load() > 0 {
		t.Fatalf("%d calls failed", failures.Load())
	}
}
