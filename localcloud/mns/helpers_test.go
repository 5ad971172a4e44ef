package mns_test

import (
	"cmp"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	alimns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/valyala/fasthttp"

	"github.com/enipool/enipool/internal/mnsdial"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/record"
)

const (
	account = "1234567890123456"
	region  = "cn-hangzhou"
)

// clock is a settable clock shared by the key store (Date window, token expiry) and the
// queues (delays, visibility), so tests move time instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one emulator on loopback with an account, a root key and a role's STS key.
type env struct {
	t      *testing.T
	clock  *clock
	keys   *auth.Store
	rec    *record.Recorder
	faults *fault.Injector
	srv    *mns.Server
	addr   string
	root   auth.Key // long-term AccessKey of the account
	role   auth.Key // STS credentials of the function's role
}

type envOption func(*mns.Options)

func withAuthorizer(a mns.Authorizer) envOption {
	return func(o *mns.Options) { o.Authorizer = a }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{t: time.Now()}, rec: &record.Recorder{}}
	e.keys = auth.NewStore(e.clock.Now)
	e.keys.AddAccount(auth.Account{ID: account, Type: "enterprise"})
	e.keys.AddAccount(auth.Account{ID: "9999999999999999", Type: "enterprise"})
	e.root = auth.Key{ID: "LTAIrootkey", Secret: "root-secret",
		Principal: auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: account}}
	if err := e.keys.AddKey(e.root); err != nil {
		t.Fatal(err)
	}
	e.role = e.keys.AssumeRole(auth.Principal{Name: "enipool-fn", Kind: auth.KindRole, AccountID: account}, time.Hour)
	e.faults = fault.New(fault.Plan{Seed: 1}, nil)
	o := mns.Options{
		Keys: e.keys, Faults: e.faults, Recorder: e.rec,
		Region: region, Account: account, Clock: e.clock.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	e.srv = mns.New(o)
	hs := httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.srv.Close()
		hs.Close()
	})
	e.addr = hs.Listener.Addr().String()
	return e
}

// clientFor builds a real SDK client for key k, aimed at the emulator.
func (e *env) clientFor(k auth.Key) alimns.MNSClient {
	return e.client(clientSpec{endpoint: e.srv.Endpoint(), id: k.ID, secret: k.Secret, token: k.Token})
}

type clientSpec struct {
	endpoint, id, secret, token string
	transport                   fasthttp.RoundTripper // nil: mnsdial.Transport(e.addr, 0)
	timeoutSecond               int64                 // 0: 35
}

func (e *env) client(c clientSpec) alimns.MNSClient {
	cl := alimns.NewAliMNSClientWithConfig(alimns.AliMNSClientConfig{
		EndPoint: c.endpoint, AccessKeyId: c.id, AccessKeySecret: c.secret, Token: c.token,
		TimeoutSecond: cmp.Or(c.timeoutSecond, 35),
	})
	rt := c.transport
	if rt == nil {
		rt = mnsdial.Transport(e.addr, 0)
	}
	cl.SetTransport(rt)
	return cl
}

// queue is a real SDK queue object for the role's credentials. Each call returns a new
// one: the SDK's per-queue QPS monitor is not safe for concurrent use.
func (e *env) queue(name string) alimns.AliMNSQueue {
	return alimns.NewMNSQueue(name, e.clientFor(e.role))
}

func (e *env) mustCreate(name string, c mns.QueueConfig) {
	e.t.Helper()
	if err := e.srv.CreateQueueWithConfig(name, c); err != nil {
		e.t.Fatal(err)
	}
}

// lastCall is the most recent recorded call of action.
func (e *env) lastCall(action string) record.Call {
	e.t.Helper()
	calls := e.rec.Calls(record.Match("mns", action))
	if len(calls) == 0 {
		e.t.Fatalf("no %s call recorded", action)
	}
	return calls[len(calls)-1]
}

// receive runs the SDK's ReceiveMessage, which reports through channels.
func receive(q alimns.AliMNSQueue, wait int64) (alimns.MessageReceiveResponse, error) {
	resp := make(chan alimns.MessageReceiveResponse, 1)
	errs := make(chan error, 1)
	if wait > 0 {
		q.ReceiveMessage(resp, errs, wait)
	} else {
		q.ReceiveMessage(resp, errs)
	}
	select {
	case r := <-resp:
		return r, nil
	case err := <-errs:
		return alimns.MessageReceiveResponse{}, err
	}
}

func batchReceive(q alimns.AliMNSQueue, n int32) (alimns.BatchMessageReceiveResponse, error) {
	resp := make(chan alimns.BatchMessageReceiveResponse, 1)
	errs := make(chan error, 1)
	q.BatchReceiveMessage(resp, errs, n)
	select {
	case r := <-resp:
		return r, nil
	case err := <-errs:
		return alimns.BatchMessageReceiveResponse{}, err
	}
}

func hasCode(err error, code string) bool {
	return err != nil && strings.Contains(err.Error(), "code: "+code+",")
}

// corrupting damages the message body after the SDK signed the request, as a broken
// transfer would: the signature still matches (the body is not signed), Content-MD5 does
// not.
type corrupting struct{ next fasthttp.RoundTripper }

func corruptingTransport(addr string) fasthttp.RoundTripper {
	return corrupting{next: mnsdial.Transport(addr, 0)}
}

func (c corrupting) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	b := []byte(strings.Replace(string(req.Body()), "<MessageBody>m", "<MessageBody>M", 1))
	req.SetBody(b)
	return c.next.RoundTrip(hc, req, resp)
}
