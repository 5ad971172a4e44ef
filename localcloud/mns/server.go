package mns

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
)

// APIVersion is the only MNS API version the emulator speaks (header x-mns-version).
const APIVersion = "2015-06-06"

// service is the name of this service in fault plans and the call record.
const service = "mns"

// maxRequestBody bounds what the server reads of a request body. A full batch of 16
// messages, each XML-escaped, stays far below it.
const maxRequestBody = 4 << 20

// Authorizer decides whether a principal may perform an action on a resource, the way RAM
// evaluates policies. Action is like "mns:SendMessage"; resource is the RAM ARN of the
// queue, e.g. "acs:mns:cn-hangzhou:1234567890123456:/queues/dlq/messages". A non-nil error
// denies the request with AccessDenied.
type Authorizer interface {
	Authorize(p auth.Principal, action, resource string) error
}

// AuthorizerFunc adapts a function to Authorizer, e.g. to bridge localcloud/ram:
//
//	mns.AuthorizerFunc(func(p auth.Principal, action, resource string) error {
//		return policies.AuthorizeCall(p, ram.Call{Action: action, Resources: []ram.Resource{{ARN: resource}}})
//	})
type AuthorizerFunc func(p auth.Principal, action, resource string) error

// Authorize calls f.
func (f AuthorizerFunc) Authorize(p auth.Principal, action, resource string) error {
	return f(p, action, resource)
}

// Options configure a Server.
type Options struct {
	// Keys verifies AccessKeys and STS tokens, and the Date freshness window with its own
	// clock. Nil means no key is known: every signed request is refused.
	Keys *auth.Store
	// Authorizer is consulted after authentication; nil allows every authenticated call.
	Authorizer Authorizer
	// Faults decides injected faults for service "mns"; nil injects none.
	Faults *fault.Injector
	// Recorder receives one record.Call per answered request and per Deliver; nil records
	// nothing.
	Recorder *record.Recorder
	// Region is the region served, as in the endpoint {account}.mns.{region}.aliyuncs.com.
	// Default "cn-hangzhou".
	Region string
	// Account is the account whose queues this server holds. Requests must address it in
	// the Host header and be signed by one of its keys.
	Account string
	// Clock is the time of the queues (delays, visibility, retention, timestamps); nil
	// means time.Now. Long polls wait in real time.
	Clock func() time.Time
}

// Server is an MNS queue service for one account in one region. It serves the MNS HTTP
// API (ServeHTTP) and a Go API for tests and for the other emulators. It is safe for
// concurrent use.
type Server struct {
	keys       *auth.Store
	authorizer Authorizer
	faults     *fault.Injector
	recorder   *record.Recorder
	region     string
	account    string
	now        func() time.Time

	idPrefix  string // makes message ids unique across servers
	ridPrefix string
	reqSeq    atomic.Uint64

	mu     sync.Mutex
	queues map[string]*queue
	seq    int64
	done   chan struct{} // closed by Close to release long polls
	closed bool
}

// New returns a Server with no queues.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "cn-hangzhou"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Server{
		keys:       opts.Keys,
		authorizer: opts.Authorizer,
		faults:     opts.Faults,
		recorder:   opts.Recorder,
		region:     opts.Region,
		account:    opts.Account,
		now:        opts.Clock,
		idPrefix:   strings.ToUpper(randomHex(8)),
		ridPrefix:  strings.ToUpper(randomHex(8)),
		queues:     make(map[string]*queue),
		done:       make(chan struct{}),
	}
}

// Endpoint is the MNS endpoint of this server's account and region, the value an SDK
// client is configured with (paired with a dialling transport, internal/mnsdial, to reach the server).
func (s *Server) Endpoint() string {
	return fmt.Sprintf("http://%s.mns.%s.aliyuncs.com", s.account, s.region)
}

// Close ends every pending long poll (they answer MessageNotExist at once) and makes new
// ones return without waiting, so that an http.Server can shut down promptly. Queues stay
// readable through the Go API.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on supported platforms; ids would not be unique.
		panic(fmt.Sprintf("mns: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

func (s *Server) requestID() string {
	return fmt.Sprintf("%s%08X", s.ridPrefix, s.reqSeq.Add(1))
}

// route is what a request asks for, known before authentication so that faults can be
// decided per action.
type route struct {
	action string
	queue  string
	// message is true for actions on /queues/{q}/messages (their RAM resource differs).
	message bool
	err     *Error // the request cannot be served; answered after authentication
}

func routeOf(r *http.Request, body []byte) route {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	bad := route{action: "Unknown", err: errorf(CodeInvalidRequestURL, "Http request URL format invalid: %s %s.", r.Method, r.URL.Path)}
	switch {
	case len(segs) == 1 && segs[0] == "queues":
		if r.Method == http.MethodGet {
			return route{action: "ListQueue"}
		}
	case len(segs) == 2 && segs[0] == "queues":
		rt := route{queue: segs[1]}
		switch r.Method {
		case http.MethodGet:
			rt.action = "GetQueueAttributes"
		case http.MethodPut:
			rt.action = "CreateQueue"
			if q.Get("metaoverride") == "true" {
				rt.action = "SetQueueAttributes"
			}
		case http.MethodDelete:
			rt.action = "DeleteQueue"
		default:
			return bad
		}
		return rt
	case len(segs) == 3 && segs[0] == "queues" && segs[2] == "messages":
		rt := route{queue: segs[1], message: true}
		switch r.Method {
		case http.MethodPost:
			rt.action = "SendMessage"
			root, err := rootElement(body)
			switch {
			case err != nil:
				rt.err = err
			case root == "Messages":
				rt.action = "BatchSendMessage"
			}
		case http.MethodGet:
			batch := q.Has("numOfMessages")
			switch {
			case q.Get("peekonly") == "true" && batch:
				rt.action = "BatchPeekMessage"
			case q.Get("peekonly") == "true":
				rt.action = "PeekMessage"
			case batch:
				rt.action = "BatchReceiveMessage"
			default:
				rt.action = "ReceiveMessage"
			}
		case http.MethodDelete:
			rt.action = "BatchDeleteMessage"
			if q.Has("ReceiptHandle") {
				rt.action = "DeleteMessage"
			}
		case http.MethodPut:
			rt.action = "ChangeMessageVisibility"
		default:
			return bad
		}
		return rt
	}
	return bad
}

// resource is the RAM ARN a route acts on.
func (s *Server) resource(rt route) string {
	switch {
	case rt.queue == "":
		return fmt.Sprintf("acs:mns:%s:%s:/queues", s.region, s.account)
	case rt.message:
		return fmt.Sprintf("acs:mns:%s:%s:/queues/%s/messages", s.region, s.account, rt.queue)
	default:
		return fmt.Sprintf("acs:mns:%s:%s:/queues/%s", s.region, s.account, rt.queue)
	}
}

// exchange is one request being answered, and its record.
type exchange struct {
	s        *Server
	w        http.ResponseWriter
	r        *http.Request
	start    time.Time
	call     record.Call
	answered bool

	// With a fault plan, w holds the answer (a *held) until release decides its fate;
	// raw is the connection's writer.
	raw        http.ResponseWriter
	decision   fault.Decision
	dispatched bool // the request reached its handler
	hijacked   bool
}

// held is an answer kept back until the response-side faults have been applied.
type held struct {
	header http.Header
	status int
	body   bytes.Buffer
}

// Header implements http.ResponseWriter.
func (h *held) Header() http.Header { return h.header }

// WriteHeader implements http.ResponseWriter; the first status wins, as on the wire.
func (h *held) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

// Write implements http.ResponseWriter.
func (h *held) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return h.body.Write(b)
}

// release sends the held answer, after the response latency, unless an after-action
// fault loses it: the action was served (the message is stored) and the client gets a
// reset, an error or a timeout instead.
func (x *exchange) release() {
	h, ok := x.w.(*held)
	if !ok {
		return
	}
	x.w = x.raw
	if x.hijacked || h.status == 0 {
		return
	}
	if x.dispatched && x.decision.ResponseDelay > 0 {
		x.call.Fault = strings.TrimPrefix(x.call.Fault+",response-delay", ",")
		t := time.NewTimer(x.decision.ResponseDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-x.r.Context().Done():
			x.abandon()
			return
		}
	}
	if x.dispatched && h.status < 300 {
		if a := x.s.faults.DecideAfter(service, x.call.Action); a != nil {
			x.loseAnswer(a)
			return
		}
	}
	dst := x.raw.Header()
	for k, v := range h.header {
		dst[k] = v
	}
	x.raw.WriteHeader(h.status)
	_, _ = x.raw.Write(h.body.Bytes())
}

// loseAnswer replaces a served call's answer as the after-action rule says.
func (x *exchange) loseAnswer(a *fault.AfterRule) {
	x.call.Fault = strings.TrimPrefix(x.call.Fault+",after-action-"+a.Kind, ",")
	x.call.Code = ""
	switch a.Kind {
	case fault.AfterError:
		x.fail(afterError(a))
	case fault.AfterTimeout:
		t := time.NewTimer(a.HoldFor())
		defer t.Stop()
		select {
		case <-t.C:
		case <-x.r.Context().Done():
		}
		x.reset()
		x.call.HTTPStatus = 0
	default:
		x.reset()
		x.call.HTTPStatus = 0
	}
}

// afterError is the error an after-action rule of kind error answers: its code, status
// and message, else ServiceUnavailable 503.
func afterError(a *fault.AfterRule) *Error {
	code := a.Code
	if code == "" {
		code = CodeServiceUnavailable
	}
	e := newError(code, a.Message)
	if a.HTTPStatus != 0 {
		e.Status = a.HTTPStatus
	}
	return e
}

func (x *exchange) param(k, v string) {
	if x.call.Params == nil {
		x.call.Params = make(map[string]string)
	}
	x.call.Params[k] = v
}

func (x *exchange) header() {
	h := x.w.Header()
	h.Set("x-mns-request-id", x.call.RequestID)
	h.Set("x-mns-version", APIVersion)
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
}

// reply answers status with doc (nil for no body).
func (x *exchange) reply(status int, doc any) {
	x.header()
	x.call.HTTPStatus = status
	x.answered = true
	if doc == nil {
		x.w.WriteHeader(status)
		return
	}
	b, err := marshalXML(doc)
	if err != nil {
		x.fail(errorf(CodeInternalError, "encoding the response: %v", err))
		return
	}
	x.w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	x.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	x.w.WriteHeader(status)
	_, _ = x.w.Write(b)
}

// fail answers e as an MNS <Error> document.
func (x *exchange) fail(e *Error) {
	x.call.Code = e.Code
	x.reply(e.Status, errorXML{
		Code:      e.Code,
		Message:   e.Message,
		RequestID: x.call.RequestID,
		HostID:    "http://" + x.r.Host,
	})
}

// abandon notes that the client went away before an answer.
func (x *exchange) abandon() {
	x.call.HTTPStatus = 499 // nginx's "client closed request": nothing was sent
	x.answered = true
}

// reset drops the connection without an answer, with a TCP RST where possible.
func (x *exchange) reset() {
	x.answered = true
	w := x.w
	if x.raw != nil {
		w = x.raw
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		x.call.Fault += "(unsupported)"
		x.fail(newError(CodeInternalError, ""))
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		x.call.Fault += "(unsupported)"
		x.fail(newError(CodeInternalError, ""))
		return
	}
	x.hijacked = true
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (x *exchange) finish() {
	x.call.Latency = time.Since(x.start)
	if x.s.recorder != nil {
		x.s.recorder.Add(x.call)
	}
}

// ServeHTTP serves the MNS queue API (version 2015-06-06).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{s: s, w: w, r: r, start: time.Now()}
	x.call = record.Call{Time: s.now(), Service: service, RequestID: s.requestID()}
	defer x.finish()
	if s.faults != nil {
		x.raw, x.w = w, &held{header: http.Header{}}
		defer x.release() // runs before finish, so the record sees the fate of the answer
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		x.call.Action = "Unknown"
		x.abandon()
		return
	}
	rt := routeOf(r, body)
	x.call.Action = rt.action
	if rt.queue != "" {
		x.param("queue", rt.queue)
	}
	if id, _, ok := strings.Cut(strings.TrimPrefix(r.Header.Get("Authorization"), "MNS "), ":"); ok {
		x.param("AccessKeyId", id)
	}

	if !s.injectFault(x, rt.action) {
		return
	}
	if len(body) > maxRequestBody {
		x.fail(errorf(CodeInvalidArgument, "The request body is larger than %d bytes.", maxRequestBody))
		return
	}
	p, e := s.authenticate(r, body)
	if e != nil {
		x.fail(e)
		return
	}
	x.call.Principal = p.Name
	if rt.err != nil {
		x.fail(rt.err)
		return
	}
	if s.authorizer != nil {
		if err := s.authorizer.Authorize(p, "mns:"+rt.action, s.resource(rt)); err != nil {
			x.fail(errorf(CodeAccessDenied, "%s (%v)", errorTable[CodeAccessDenied].message, err))
			return
		}
	}
	x.dispatched = true
	s.dispatch(x, rt, body)
	if !x.answered {
		x.fail(newError(CodeInternalError, ""))
	}
}

// injectFault applies the fault plan to a call of action. It reports whether the call
// should go on.
func (s *Server) injectFault(x *exchange, action string) bool {
	if s.faults == nil {
		return true
	}
	d := s.faults.Decide(service, action)
	x.decision = d
	if d.Delay > 0 {
		x.call.Fault = "delay"
		t := time.NewTimer(d.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-x.r.Context().Done():
			x.abandon()
			return false
		}
	}
	switch {
	case d.Outage:
		// An outage answers 503 rather than dropping the connection: every attempt fails
		// exactly once (fasthttp would silently retry some dropped requests), the call is
		// recorded with a code, and clients see a retryable server error.
		x.call.Fault = strings.TrimPrefix(x.call.Fault+",outage", ",")
		x.fail(newError(CodeServiceUnavailable, ""))
		return false
	case d.Error != nil && d.Error.Reset:
		x.call.Fault = strings.TrimPrefix(x.call.Fault+",reset", ",")
		x.reset()
		return false
	case d.Error != nil:
		x.call.Fault = strings.TrimPrefix(x.call.Fault+",error", ",")
		x.fail(ruleError(d.Error))
		return false
	}
	return true
}

// ruleError is the answer an injected error rule asks for; missing parts come from the
// code's entry in the error table.
func ruleError(r *fault.Rule) *Error {
	code := r.Code
	if code == "" {
		code = CodeInternalError
	}
	e := newError(code, r.Message)
	if r.HTTPStatus != 0 {
		e.Status = r.HTTPStatus
	}
	return e
}
