// Package localcloud is a local cloud: ECS, Auto Scaling (ESS) and MNS on loopback, spoken to
// by the real, unmodified SDKs, plus the Function Compute runtime that runs a real function
// binary. It is a plain emulator: it knows nothing of the function it runs (enipool's
// environment, defaults and build live in internal/testbed). Like net/http/httptest, Start brings it up from a world (see package
// world for the file format) and Close takes it down; tests read the cloud's state and its
// call log directly.
//
//	w, _ := world.Load("localcloud/worlds/demo.yaml")
//	c, _ := localcloud.Start(w, localcloud.Options{})
//	defer c.Close()
//	fn, _ := c.StartFunction(localcloud.Function{Binary: bin, Role: "enipool-fn", OnFailureQueue: "enipool-dlq"})
//	res, _ := fn.Invoke(ctx, payload)
//
// Endpoints: ECS and ESS are RPC-style endpoints (set the SDK client's Domain to
// ECSEndpoint/ESSEndpoint and its scheme to Scheme). MNS listens on MNSAddr, but the MNS SDK
// only accepts endpoints of the form http(s)://{account}.mns.{region}.aliyuncs.com: keep
// MNSEndpoint as the client's endpoint and install a transport that dials MNSAddr (see
// internal/mnsdial). What the SDK sends, Host
// header and signature included, is unchanged. GET DebugURL+"/state" returns the whole state
// as JSON; DebugURL+"/calls" the call log.
//
// With Options.TLS the ECS, ESS and MNS endpoints serve HTTPS, as the real ones do, with a
// certificate made at start and signed by a CA made at start (see CACertPEM): a client must
// trust that CA, through ClientTLS in this process or CAFile (SSL_CERT_FILE) in another, and
// verifies the certificate as it would in production. The debug endpoint stays plain HTTP:
// it is no cloud API.
//
// The world's realism knobs (stale reads, attach-time spread, request and response latency,
// faults after the action, instances passing through Starting and Stopping; see packages
// world and fault) are counted: Cloud.Faults.Stats() and "realism" in the debug state give
// staleReads and faultsAfterAction, Cloud.Store.Operations() and "world.operations" every
// attach's and detach's true duration.
package localcloud

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ecs"
	"github.com/enipool/enipool/localcloud/ess"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// Options configure Start. The zero value listens on free loopback ports.
type Options struct {
	// ECSAddr, ESSAddr, MNSAddr and DebugAddr are listen addresses; empty means 127.0.0.1:0.
	ECSAddr, ESSAddr, MNSAddr, DebugAddr string
	// Clock is the cloud's clock; nil means time.Now.
	Clock func() time.Time
	// TLS serves ECS, ESS and MNS over HTTPS with a certificate made at start (Cloud.Scheme,
	// Cloud.CAFile). Functions started with StartFunction trust it.
	TLS bool
}

// Cloud is a running local cloud.
type Cloud struct {
	World  *world.World
	Store  *world.Store
	Keys   *auth.Store
	RAM    *ram.Authorizer
	Faults *fault.Injector
	Calls  *record.Recorder
	MNS    *mns.Server
	ESS    *ess.Service

	// Region and AccountID are the world's first region and its account.
	Region, AccountID string
	// Scheme is "https" when the cloud serves TLS (Options.TLS), else "http".
	Scheme string
	// ECSEndpoint and ESSEndpoint are host:port, for an SDK client's Domain (scheme Scheme).
	ECSEndpoint, ESSEndpoint string
	// MNSEndpoint is the realistic endpoint URL the MNS SDK insists on (scheme Scheme);
	// MNSAddr is where it really listens.
	MNSEndpoint, MNSAddr string
	// DebugURL serves /state and /calls as JSON, over plain HTTP.
	DebugURL string
	// CACertPEM is the CA certificate that signed the endpoints' certificate, and CAFile a
	// file holding it (removed by Close), for a process's SSL_CERT_FILE; both empty without
	// TLS.
	CACertPEM []byte
	CAFile    string

	ca      *authority
	servers []*http.Server
	clock   func() time.Time
}

// Start brings the cloud up from w.
func Start(w *world.World, o Options) (*Cloud, error) {
	clock := o.Clock
	if clock == nil {
		clock = time.Now
	}
	store, err := world.NewStore(w, clock)
	if err != nil {
		return nil, fmt.Errorf("localcloud: %w", err)
	}
	keys, authz, err := w.Identities(clock)
	if err != nil {
		return nil, fmt.Errorf("localcloud: %w", err)
	}
	c := &Cloud{
		World: w, Store: store, Keys: keys, RAM: authz,
		Faults:    fault.New(w.Faults, clock),
		Calls:     &record.Recorder{},
		AccountID: w.Account.ID,
		clock:     clock,
	}
	if len(w.Regions) > 0 {
		c.Region = w.Regions[0].ID
	}
	limiter := rpc.NewLimiter(w.Throttling)
	ecsSvc, err := ecs.New(ecs.Config{Store: store, Auth: keys, RAM: authz, Faults: c.Faults, Recorder: c.Calls,
		Limiter: limiter, HostID: "ecs." + c.Region + ".aliyuncs.com"})
	if err != nil {
		return nil, fmt.Errorf("localcloud: ecs: %w", err)
	}
	c.ESS, err = ess.New(ess.Config{World: w, Auth: keys, RAM: authz, Faults: c.Faults, Recorder: c.Calls,
		Limiter: limiter, Now: clock, HostID: "ess." + c.Region + ".aliyuncs.com"})
	if err != nil {
		return nil, fmt.Errorf("localcloud: ess: %w", err)
	}
	c.MNS = mns.New(mns.Options{Keys: keys, Faults: c.Faults, Recorder: c.Calls, Region: c.Region,
		Account: c.AccountID, Clock: clock,
		Authorizer: mns.AuthorizerFunc(func(p auth.Principal, action, resource string) error {
			return authz.AuthorizeCall(p, ram.Call{Action: action, Resources: []ram.Resource{{ARN: resource}}})
		})})
	for _, q := range w.Queues {
		if err := c.MNS.CreateQueue(q); err != nil {
			return nil, fmt.Errorf("localcloud: queue %s: %w", q, err)
		}
	}
	c.Scheme = "http"
	if o.TLS {
		var regions []string
		for _, r := range w.Regions {
			regions = append(regions, r.ID)
		}
		if c.ca, err = newAuthority(regions); err != nil {
			return nil, fmt.Errorf("localcloud: certificates: %w", err)
		}
		c.Scheme, c.CACertPEM, c.CAFile = "https", c.ca.caPEM, c.ca.caFile
	}
	c.MNSEndpoint = fmt.Sprintf("%s://%s.mns.%s.aliyuncs.com", c.Scheme, c.AccountID, c.Region)

	serve := func(addr string, h http.Handler, secure bool) (string, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		if secure && c.ca != nil {
			srv.TLSConfig = c.ca.serverConfig()
			// A client that refuses the certificate is the point of some tests, not news.
			srv.ErrorLog = log.New(io.Discard, "", 0)
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		c.servers = append(c.servers, srv)
		go srv.Serve(ln)
		return ln.Addr().String(), nil
	}
	var errs []error
	var e error
	c.ECSEndpoint, e = serve(o.ECSAddr, ecsSvc, true)
	errs = append(errs, e)
	c.ESSEndpoint, e = serve(o.ESSAddr, c.ESS, true)
	errs = append(errs, e)
	c.MNSAddr, e = serve(o.MNSAddr, c.MNS, true)
	errs = append(errs, e)
	var debug string
	debug, e = serve(o.DebugAddr, c.debugHandler(), false)
	errs = append(errs, e)
	c.DebugURL = "http://" + debug + "/debug"
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, fmt.Errorf("localcloud: listen: %w", err)
	}
	return c, nil
}

// Close stops every endpoint.
func (c *Cloud) Close() error {
	if c.MNS != nil {
		c.MNS.Close() // ends long polls, so the server can shut down at once
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, s := range c.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	c.servers = nil
	if c.ca != nil {
		errs = append(errs, os.RemoveAll(c.ca.dir))
	}
	return errors.Join(errs...)
}

// State is the whole state of the cloud, as the debug endpoint serves it.
type State struct {
	World      world.Snapshot           `json:"world"`
	Queues     map[string][]mns.Message `json:"queues"`
	Lifecycle  []ess.LifecycleAction    `json:"lifecycleActions"`
	CallCounts []record.Count           `json:"callCounts"`
	// Realism counts what the realism knobs did: staleReads, faultsAfterAction and their
	// breakdowns (World.Operations holds every attach's and detach's true duration).
	Realism fault.Stats `json:"realism"`
}

// State returns a consistent-enough snapshot of everything: each part is read atomically.
func (c *Cloud) State() State {
	s := State{World: c.Store.Snapshot(), Queues: map[string][]mns.Message{}, Lifecycle: c.ESS.LifecycleActions(),
		CallCounts: record.Summary(c.Calls.Calls()), Realism: c.Faults.Stats()}
	for _, q := range c.MNS.Queues() {
		s.Queues[q] = c.MNS.Messages(q)
	}
	return s
}

func (c *Cloud) debugHandler() http.Handler {
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	}
	mux.HandleFunc("GET /debug/state", func(w http.ResponseWriter, r *http.Request) { write(w, c.State()) })
	mux.HandleFunc("GET /debug/calls", func(w http.ResponseWriter, r *http.Request) { write(w, c.Calls.Calls()) })
	return mux
}

// RootKey returns the account's own AccessKey (the world's first account principal key).
func (c *Cloud) RootKey() (auth.Key, error) {
	for _, p := range c.World.Principals {
		if p.Kind == auth.KindAccount && len(p.AccessKeys) > 0 {
			return c.Keys.Resolve(p.AccessKeys[0].ID, "")
		}
	}
	return auth.Key{}, errors.New("localcloud: the world has no account principal with an AccessKey")
}

// AssumeRole issues STS credentials for a role principal of the world, as STS AssumeRole
// does for FC when it runs a function with that role.
func (c *Cloud) AssumeRole(role string, ttl time.Duration) (auth.Key, error) {
	p, ok := c.World.PrincipalNamed(role)
	if !ok || p.Kind != auth.KindRole {
		return auth.Key{}, fmt.Errorf("localcloud: the world has no role %q", role)
	}
	return c.Keys.AssumeRole(p, ttl), nil
}

// Function describes a function to run under the local FC runtime (package fcrt): a binary
// for FC's go1 runtime (handler "main"), run with STS credentials of one of the world's
// roles.
type Function struct {
	// Name is the function's name; default "function".
	Name string
	// Binary is the built function.
	Binary string
	// Role is the world principal the function runs as: required, as FC requires a role
	// for a function that calls the cloud.
	Role string
	// Env is the function's environment.
	Env map[string]string
	// Timeout is the function timeout; default 60s.
	Timeout time.Duration
	// MaxInstances bounds concurrent instances; default 16.
	MaxInstances int
	// IdleTimeout reclaims an instance idle that long (fcrt.Function.IdleTimeout); zero keeps
	// instances until the function stops.
	IdleTimeout time.Duration
	// Async configures asynchronous invocations.
	Async fcrt.AsyncConfig
	// OnFailureQueue, when set and Async.OnFailure is nil, makes that queue of this cloud the
	// async onFailure destination.
	OnFailureQueue string
	// Logs receives the function's output; nil discards it.
	Logs io.Writer
	// TrustedCAs is the PEM file of CA certificates the instances trust
	// (fcrt.Function.TrustedCAs). Default: the cloud's CAFile when it serves TLS, as FC's
	// instances trust the CAs of the real endpoints. A test names another to see the function
	// refuse the cloud's certificate.
	TrustedCAs string
}

// StartFunction runs the function under the local FC runtime with STS credentials of its
// role for every invocation.
func (c *Cloud) StartFunction(f Function) (*fcrt.Runtime, error) {
	if f.Name == "" {
		f.Name = "function"
	}
	if f.Timeout == 0 {
		f.Timeout = 60 * time.Second
	}
	if f.MaxInstances == 0 {
		f.MaxInstances = 16
	}
	if f.Logs == nil {
		f.Logs = io.Discard
	}
	if _, err := c.AssumeRole(f.Role, time.Hour); err != nil {
		return nil, err
	}
	if f.TrustedCAs == "" {
		f.TrustedCAs = c.CAFile
	}
	if f.Async.OnFailure == nil && f.OnFailureQueue != "" {
		f.Async.OnFailure = c.MNS.Queue(f.OnFailureQueue)
	}
	return fcrt.Start(fcrt.Function{
		Name:         f.Name,
		Handler:      "main",
		Region:       c.Region,
		AccountID:    c.AccountID,
		Binary:       f.Binary,
		Env:          maps.Clone(f.Env),
		Timeout:      f.Timeout,
		MemoryMB:     256,
		MaxInstances: f.MaxInstances,
		IdleTimeout:  f.IdleTimeout,
		Async:        f.Async,
		Logs:         f.Logs,
		TrustedCAs:   f.TrustedCAs,
		Credentials: func(ctx context.Context) (fcrt.Credentials, error) {
			k, err := c.AssumeRole(f.Role, time.Hour)
			if err != nil {
				return fcrt.Credentials{}, err
			}
			return fcrt.Credentials{AccessKeyID: k.ID, AccessKeySecret: k.Secret, SecurityToken: k.Token, Expiration: k.Expires}, nil
		},
	})
}
