// Package rpc is the plumbing of the local cloud's RPC-style APIs (ECS, ESS): it parses
// requests, verifies signature v1, resolves keys and STS tokens, enforces the replay
// window, throttles, injects faults, dispatches to an action handler, renders JSON or XML
// and records every call. ECS and ESS only write handlers.
//
// It serves any correct client of the protocol, not only alibaba-cloud-sdk-go: parameters
// are read from the query and from a form body (GET or POST), every parameter present is
// signed, and names are case-sensitive.
//
// # Order of checks
//
//  1. HTTP method GET or POST (UnsupportedHTTPMethod 400), parameters readable.
//  2. Format JSON (default) or XML, any case (InvalidParameter.Format 400).
//  3. Action present (MissingParameter 400) and known (InvalidAction.NotFound 404).
//  4. Version present and the service's (InvalidVersion 400).
//  5. Signature parameters: AccessKeyId, Signature, SignatureMethod, SignatureVersion,
//     SignatureNonce and Timestamp present, SignatureMethod HMAC-SHA1, SignatureVersion
//     1.0, SignatureType empty (IncompleteSignature 400, InvalidSignatureMethod 400), and
//     Timestamp in ISO 8601 (InvalidTimeStamp.Format 400).
//  6. Key: InvalidAccessKeyId.NotFound 404, InvalidAccessKeyId.Inactive 400,
//     Abs.InvalidAccount.NotFound 403 (closed account), MissingSecurityToken 400 (STS key
//     without token), InvalidSecurityToken.Malformed 400 (not an STS token),
//     InvalidSecurityToken.MismatchWithAccessKey 400, InvalidSecurityToken.Expired 400.
//  7. Signature: SignatureDoesNotMatch 400, message ending "server string to sign is:<sts>".
//  8. Replay: InvalidTimeStamp.Expired 400 (more than 15 minutes off), SignatureNonceUsed 400.
//  9. Parameter names: UnsupportedParameter 400 for a name outside the action's list and
//     the common parameters.
//  10. Throttling: Throttling.User 400 when the (service, action, account) bucket is empty.
//     Only requests that got this far take a token.
//  11. Faults: delay (waiting on the request context), outage (ServiceUnavailable 503),
//     injected error, or a dropped connection.
//  12. The handler, which checks its own parameters, resources and RAM permissions. Read
//     actions are told the lag (Call.Lag) the fault plan's staleness drew for this call.
//  13. Response latency (fault plan responseLatency), paid after the handler, so the
//     action has taken effect while the client still waits. The errors of steps 10 and 11
//     pay it too (their answer has the same way back); a dropped connection does not.
//  14. After-action faults (fault plan afterAction), for calls the handler served: the
//     change is kept and the answer is lost, as a TCP reset, an error (ServiceUnavailable
//     503 unless the rule names another), or a timeout (the answer is held until the client
//     gives up or the rule's hold ends, then the connection is dropped). Each is counted in
//     the injector's Stats and noted in the call's record (after-action-reset, ...).
//
// These are the failures ECS's idempotence guide names as the ones to retry (500
// InternalError, 503 ServiceUnavailable, or no response at all) and the reason it offers
// ClientToken: a retried request may repeat a change the first one already made
// (https://www.alibabacloud.com/help/en/ecs/developer-reference/how-to-ensure-idempotence).
// How often they happen, and how long a lost answer keeps a client waiting, is not
// published: rates, holds and latencies are the world's choice (assumption).
//
// Error bodies are {"RequestId","HostId","Code","Message","Recommend"}, every member a JSON
// string (the Go SDK panics on a number), plus an AccessDeniedDetail object on RAM denials.
// With Format=XML the same members are the children of <Error>. Every request gets a fresh
// upper-case UUID RequestId, also sent as the x-acs-request-id header.
package rpc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/record"
)

// Action is one API operation.
type Action struct {
	// Name is the value of the Action parameter, e.g. "AttachNetworkInterface".
	Name string
	// Params lists the parameters the action takes besides CommonParams, as patterns
	// ("InstanceId", "Tag.N.Key"); ParamsOf builds it from an SDK request struct.
	Params []string
	// Handle serves a call that passed every common check. It returns the response object
	// (without RequestId, which is added) or an error, an *Error for an API error.
	Handle func(ctx context.Context, c *Call) (any, error)
}

// Options configure a Service.
type Options struct {
	// Service is the short name used in records, fault rules, throttling rules and RAM
	// action names: "ecs", "ess".
	Service string
	// Product is the product name in Recommend links: "Ecs", "Ess".
	Product string
	// Version is the only API version accepted, e.g. "2014-05-26".
	Version string
	// HostID is the HostId of error bodies [<Service>.aliyuncs.com].
	HostID string
	// Auth resolves keys and guards against replays. Required.
	Auth *auth.Store
	// RAM authorizes RAM users and roles. Nil denies every RAM user and role.
	RAM *ram.Authorizer
	// Faults injects faults; nil injects none.
	Faults *fault.Injector
	// Recorder records every call; nil records nothing.
	Recorder *record.Recorder
	// Limiter throttles; nil never throttles.
	Limiter *Limiter
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Service is an RPC API endpoint; it implements http.Handler.
type Service struct {
	opts    Options
	actions map[string]*registered
}

type registered struct {
	Action
	params paramSet
}

// NewService returns a Service serving actions.
func NewService(o Options, actions ...Action) (*Service, error) {
	if o.Service == "" || o.Version == "" || o.Auth == nil {
		return nil, errors.New("rpc: Options need Service, Version and Auth")
	}
	if o.HostID == "" {
		o.HostID = o.Service + ".aliyuncs.com"
	}
	if o.Product == "" {
		o.Product = strings.ToUpper(o.Service[:1]) + o.Service[1:]
	}
	if o.RAM == nil {
		o.RAM = ram.NewAuthorizer()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{opts: o, actions: map[string]*registered{}}
	for _, a := range actions {
		if a.Name == "" || a.Handle == nil {
			return nil, errors.New("rpc: an action needs a Name and a Handle")
		}
		if _, dup := s.actions[a.Name]; dup {
			return nil, fmt.Errorf("rpc: duplicate action %s", a.Name)
		}
		s.actions[a.Name] = &registered{Action: a, params: newParamSet(a.Params)}
	}
	return s, nil
}

// Name is the service's short name.
func (s *Service) Name() string { return s.opts.Service }

// exchange is one request being served.
type exchange struct {
	svc       *Service
	w         http.ResponseWriter
	r         *http.Request
	start     time.Time
	requestID string
	format    string
	action    string
	params    url.Values
	principal auth.Principal
	fault     string
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{svc: s, w: w, r: r, start: time.Now(), requestID: newRequestID(), format: "JSON"}
	if err := x.serve(); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = InternalError()
		}
		x.reply(e.Status, e.Code, x.errorBody(e))
	}
}

func (x *exchange) serve() error {
	s, r := x.svc, x.r
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return &Error{Status: http.StatusBadRequest, Code: "UnsupportedHTTPMethod", Message: msgMethod}
	}
	r.Body = http.MaxBytesReader(x.w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return InvalidParameter("body", "The request body is not a valid form.")
	}
	x.params = r.Form
	p := x.params
	if f := p.Get("Format"); f != "" {
		switch up := strings.ToUpper(f); up {
		case "JSON", "XML":
			x.format = up
		default:
			return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter.Format", Message: msgInvalidFormat}
		}
	}
	x.action = p.Get("Action")
	if x.action == "" {
		return MissingParameter("Action")
	}
	act, ok := s.actions[x.action]
	if !ok {
		return &Error{Status: http.StatusNotFound, Code: "InvalidAction.NotFound", Message: msgActionNotFound}
	}
	switch v := p.Get("Version"); {
	case v == "":
		return MissingParameter("Version")
	case v != s.opts.Version:
		return &Error{Status: http.StatusBadRequest, Code: "InvalidVersion", Message: msgInvalidVersion}
	}
	key, err := s.authenticate(r.Method, p)
	if err != nil {
		return err
	}
	x.principal = key.Principal
	for name := range p {
		if !act.params.allows(name) {
			return UnsupportedParameter(name)
		}
	}
	// The injected latency stands for the request's time on the way and in the service: it
	// is paid before the service decides anything, throttling included, so a throttled call
	// costs as much time as any other.
	var d fault.Decision
	if s.opts.Faults != nil {
		d = s.opts.Faults.Decide(s.opts.Service, x.action)
		if d.Delay > 0 {
			x.fault = "delay=" + d.Delay.String()
			if !x.wait(d.Delay) {
				return nil
			}
		}
	}
	// An error answer travels back as any answer does: it pays the response latency too.
	refuse := func(e *Error) error {
		if d.ResponseDelay > 0 {
			x.addFault("response-delay=" + d.ResponseDelay.String())
			if !x.wait(d.ResponseDelay) {
				return nil
			}
		}
		return e
	}
	if !s.opts.Limiter.Allow(s.opts.Service, x.action, key.Principal.AccountID, s.opts.Now()) {
		return refuse(&Error{Status: http.StatusBadRequest, Code: "Throttling.User", Message: msgThrottled})
	}
	if s.opts.Faults != nil {
		switch {
		case d.Outage:
			x.addFault("outage")
			return refuse(&Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: msgUnavailable})
		case d.Error != nil && d.Error.Reset:
			x.addFault("reset")
			x.reset()
			return nil
		case d.Error != nil:
			e := ruleError(d.Error)
			x.addFault("error=" + e.Code)
			return refuse(e)
		}
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := &Call{
		Service:   s.opts.Service,
		Action:    x.action,
		Params:    p,
		Principal: key.Principal,
		RegionID:  p.Get("RegionId"),
		SourceIP:  host,
		Secure:    r.TLS != nil,
		RequestID: x.requestID,
		Time:      s.opts.Now(),
		Lag:       d.Lag,
		svc:       s,
		x:         x,
	}
	res, err := act.Handle(r.Context(), c)
	// The response latency stands for the answer's way back: the action has been served
	// (applied, for a write) whatever happens to the answer now.
	if d.ResponseDelay > 0 {
		x.addFault("response-delay=" + d.ResponseDelay.String())
		if !x.wait(d.ResponseDelay) {
			return nil
		}
	}
	if err != nil {
		return err
	}
	if s.opts.Faults != nil {
		if a := s.opts.Faults.DecideAfter(s.opts.Service, x.action); a != nil {
			return x.loseAnswer(a)
		}
	}
	body, err := jsonBody(x.requestID, res)
	if err != nil {
		return err
	}
	if x.format == "XML" {
		if body, err = toXML(x.action+"Response", body); err != nil {
			return err
		}
	}
	x.reply(http.StatusOK, "", body)
	return nil
}

// wait sleeps d, or until the client goes away; then it records the call as abandoned
// and reports false.
func (x *exchange) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-x.r.Context().Done():
		x.addFault("client-gone")
		x.record(0, "")
		return false
	case <-t.C:
		return true
	}
}

// loseAnswer replaces the answer of an applied call as the after-action rule a says:
// a dropped connection, an error, or silence until the client gives up (or the rule's hold
// ends) and then a dropped connection.
func (x *exchange) loseAnswer(a *fault.AfterRule) error {
	switch a.Kind {
	case fault.AfterError:
		e := afterError(a)
		x.addFault("after-action-error=" + e.Code)
		return e
	case fault.AfterTimeout:
		x.addFault("after-action-timeout")
		t := time.NewTimer(a.HoldFor())
		defer t.Stop()
		select {
		case <-x.r.Context().Done():
			x.addFault("client-gone")
		case <-t.C:
		}
		x.reset()
		return nil
	default:
		x.addFault("after-action-reset")
		x.reset()
		return nil
	}
}

func (x *exchange) addFault(f string) {
	if x.fault != "" {
		x.fault += ","
	}
	x.fault += f
}

// authenticate checks the signature parameters, the key and its token, the signature and
// the replay window, in that order.
func (s *Service) authenticate(method string, p url.Values) (auth.Key, error) {
	for _, name := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"} {
		if p.Get(name) == "" {
			return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "IncompleteSignature",
				Message: msgIncomplete + " The parameter " + name + " is missing."}
		}
	}
	if m := p.Get("SignatureMethod"); m != "HMAC-SHA1" {
		return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "InvalidSignatureMethod",
			Message: "Specified signature method is not supported."}
	}
	if v := p.Get("SignatureVersion"); v != "1.0" {
		return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "IncompleteSignature",
			Message: msgIncomplete + " SignatureVersion must be 1.0."}
	}
	if t := p.Get("SignatureType"); t != "" {
		return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "IncompleteSignature",
			Message: msgIncomplete + " SignatureType " + t + " is not supported."}
	}
	ts, err := time.Parse(time.RFC3339, p.Get("Timestamp"))
	if err != nil {
		return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "InvalidTimeStamp.Format", Message: msgTimestampFormat}
	}
	token := p.Get("SecurityToken")
	key, err := s.opts.Auth.Resolve(p.Get("AccessKeyId"), token)
	if err != nil {
		return auth.Key{}, keyError(err, token)
	}
	sts := auth.RPCStringToSign(method, p)
	if !auth.Equal(auth.SignRPC(key.Secret, sts), p.Get("Signature")) {
		return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "SignatureDoesNotMatch", Message: msgSignature + sts}
	}
	if err := s.opts.Auth.CheckReplay(ts, p.Get("SignatureNonce")); err != nil {
		if errors.Is(err, auth.ErrNonceReused) {
			return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "SignatureNonceUsed", Message: msgNonceUsed}
		}
		return auth.Key{}, &Error{Status: http.StatusBadRequest, Code: "InvalidTimeStamp.Expired", Message: msgTimestampOld}
	}
	return key, nil
}

func keyError(err error, token string) *Error {
	bad := func(code, msg string) *Error { return &Error{Status: http.StatusBadRequest, Code: code, Message: msg} }
	switch {
	case errors.Is(err, auth.ErrUnknownKey):
		return &Error{Status: http.StatusNotFound, Code: "InvalidAccessKeyId.NotFound", Message: msgKeyNotFound}
	case errors.Is(err, auth.ErrKeyDisabled):
		return bad("InvalidAccessKeyId.Inactive", msgKeyDisabled)
	case errors.Is(err, auth.ErrAccountNotFound):
		return &Error{Status: http.StatusForbidden, Code: "Abs.InvalidAccount.NotFound", Message: msgAccountNotFound}
	case errors.Is(err, auth.ErrTokenMissing):
		return bad("MissingSecurityToken", msgTokenMissing)
	case errors.Is(err, auth.ErrTokenExpired):
		return bad("InvalidSecurityToken.Expired", msgTokenExpired)
	case errors.Is(err, auth.ErrTokenInvalid), errors.Is(err, auth.ErrTokenUnexpected):
		if !looksLikeSTSToken(token) {
			return bad("InvalidSecurityToken.Malformed", msgTokenMalformed)
		}
		return bad("InvalidSecurityToken.MismatchWithAccessKey", msgTokenMismatch)
	}
	return InternalError()
}

// looksLikeSTSToken tells a token STS could have issued (they start with "CAIS" and are
// base64 text) from garbage.
func looksLikeSTSToken(t string) bool {
	if !strings.HasPrefix(t, "CAIS") || len(t) < 32 {
		return false
	}
	for _, c := range t {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

func (x *exchange) errorBody(e *Error) []byte {
	type body struct {
		RequestId          string            `json:"RequestId"`
		HostId             string            `json:"HostId"`
		Code               string            `json:"Code"`
		Message            string            `json:"Message"`
		Recommend          string            `json:"Recommend"`
		AccessDeniedDetail map[string]string `json:"AccessDeniedDetail,omitempty"`
	}
	b, _ := json.Marshal(body{
		RequestId: x.requestID,
		HostId:    x.svc.opts.HostID,
		Code:      e.Code,
		Message:   e.Message,
		Recommend: "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(e.Code) + "&product=" +
			x.svc.opts.Product + "&requestId=" + x.requestID,
		AccessDeniedDetail: e.AccessDeniedDetail,
	})
	if x.format == "XML" {
		if xb, err := toXML("Error", b); err == nil {
			return xb
		}
	}
	return b
}

func (x *exchange) reply(status int, code string, body []byte) {
	h := x.w.Header()
	if x.format == "XML" {
		h.Set("Content-Type", "text/xml;charset=utf-8")
	} else {
		h.Set("Content-Type", "application/json;charset=utf-8")
	}
	h.Set("x-acs-request-id", x.requestID)
	x.w.WriteHeader(status)
	_, _ = x.w.Write(body)
	x.record(status, code)
}

// reset drops the connection without an answer, with a TCP RST where possible.
func (x *exchange) reset() {
	x.record(0, "")
	if hj, ok := x.w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = conn.Close()
			return
		}
	}
	// Not hijackable (HTTP/2): make net/http abort the stream.
	panic(http.ErrAbortHandler)
}

func (x *exchange) record(status int, code string) {
	rec := x.svc.opts.Recorder
	if rec == nil {
		return
	}
	rec.Add(record.Call{
		Time:       x.start,
		Service:    x.svc.opts.Service,
		Action:     x.action,
		Principal:  x.principal.Name,
		Params:     record.Redact(x.params),
		RequestID:  x.requestID,
		HTTPStatus: status,
		Code:       code,
		Fault:      x.fault,
		Latency:    time.Since(x.start),
	})
}

// newRequestID returns an upper-case UUID (version 4), like real RequestIds.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}

// Call is one authenticated request, handed to an action's handler.
type Call struct {
	Service   string
	Action    string
	Params    url.Values
	Principal auth.Principal
	// RegionID is the RegionId parameter.
	RegionID  string
	SourceIP  string
	Secure    bool
	RequestID string
	// Time is when the call was admitted, by the service clock.
	Time time.Time
	// Lag is how far behind the writes a read action should be served (fault staleness);
	// 0 means the current state. Write actions ignore it.
	Lag time.Duration

	svc *Service
	x   *exchange
}

// Note adds a remark to the call's record (its Fault field), e.g. that a read was stale.
func (c *Call) Note(s string) {
	if c.x != nil {
		c.x.addFault(s)
	}
}

// Get returns a parameter's value, "" when absent.
func (c *Call) Get(name string) string { return c.Params.Get(name) }

// Has reports whether a parameter is present and non-empty.
func (c *Call) Has(name string) bool { return c.Params.Get(name) != "" }

// Require returns MissingParameter for the first absent name.
func (c *Call) Require(names ...string) error {
	for _, n := range names {
		if !c.Has(n) {
			return MissingParameter(n)
		}
	}
	return nil
}

// Int returns an integer parameter, def when absent, InvalidParameter when malformed or
// outside [lo, hi].
func (c *Call) Int(name string, def, lo, hi int) (int, error) {
	s := c.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, InvalidParameter(name, "It must be an integer.")
	}
	if n < lo || n > hi {
		return 0, InvalidParameter(name, fmt.Sprintf("It must be between %d and %d.", lo, hi))
	}
	return n, nil
}

// Bool returns a boolean parameter ("true"/"false", any case), whether it was set, and
// InvalidParameter when malformed.
func (c *Call) Bool(name string) (value, set bool, err error) {
	switch s := strings.ToLower(c.Get(name)); s {
	case "":
		return false, false, nil
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, true, InvalidParameter(name, "It must be true or false.")
}

// List returns the values of a repeated parameter Name.1, Name.2, ... in index order.
// Indexes must be 1..n without gaps; values after a gap are ignored, as RPC services do.
func (c *Call) List(name string) []string {
	var out []string
	for i := 1; ; i++ {
		k := fmt.Sprintf("%s.%d", name, i)
		if _, ok := c.Params[k]; !ok {
			return out
		}
		out = append(out, c.Params.Get(k))
	}
}

// Structs returns a repeated struct parameter Name.N.Field as one map per index, in index
// order, with the given fields.
func (c *Call) Structs(name string, fields ...string) []map[string]string {
	var out []map[string]string
	for i := 1; ; i++ {
		m := map[string]string{}
		found := false
		for _, f := range fields {
			k := fmt.Sprintf("%s.%d.%s", name, i, f)
			if vs, ok := c.Params[k]; ok {
				found = true
				m[f] = vs[0]
			}
		}
		if !found {
			return out
		}
		out = append(out, m)
	}
}

// ARN returns the ARN of a resource of this call's service, region and account.
func (c *Call) ARN(resource string) string {
	return ram.ARN(c.Service, c.RegionID, c.Principal.AccountID, resource)
}

// Authorize checks the request with RAM through the per-action table
// (ram.Authorizer.AuthorizeCall), adding the global condition keys (acs:SourceIp,
// acs:CurrentTime, acs:SecureTransport). A denial becomes Forbidden.RAM; a call the table
// cannot place (ram.ErrNotModelled) is returned as is, an internal error: it is a bug in
// the emulator, not something the caller did.
func (c *Call) Authorize(rc ram.Call) error {
	ctx := make(map[string][]string, len(rc.Context)+3)
	for k, v := range rc.Context {
		ctx[k] = v
	}
	ctx["acs:SourceIp"] = []string{c.SourceIP}
	ctx["acs:CurrentTime"] = []string{c.Time.UTC().Format(time.RFC3339)}
	ctx["acs:SecureTransport"] = []string{fmt.Sprint(c.Secure)}
	rc.Context = ctx
	err := c.svc.opts.RAM.AuthorizeCall(c.Principal, rc)
	var d *ram.DeniedError
	if errors.As(err, &d) {
		return Forbidden(d)
	}
	if err != nil {
		return fmt.Errorf("rpc: %s: %w", c.Action, err)
	}
	return nil
}

// afterError is the error an after-action rule of kind AfterError answers, its blanks filled
// with the unavailability error; both the HTTP path and Dispatch answer with it.
func afterError(a *fault.AfterRule) *Error {
	return filledError(a.HTTPStatus, a.Code, a.Message, http.StatusServiceUnavailable, "ServiceUnavailable", msgUnavailable)
}
