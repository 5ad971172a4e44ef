// Package mnsdial aims an aliyun-mns-go-sdk client at an MNS listening on another address
// than its endpoint's, such as the local cloud's. It is the one dialling transport of the
// module: the function's MNS adapter (alicloud, ENIPOOL_MNS_DIAL_ADDR) and the local cloud's
// own MNS tests both use it.
package mnsdial

import (
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// DefaultConnectTimeout bounds a connection attempt when Transport is given none.
const DefaultConnectTimeout = 3 * time.Second

// Transport returns a fasthttp.RoundTripper that sends every request of an aliyun-mns-go-sdk
// client to addr ("127.0.0.1:port") instead of to the endpoint's host, and changes nothing
// else: the Host header, path, headers and signature stay those of the realistic endpoint
// the client was built with.
//
// The SDK refuses endpoints other than {account}.mns.{region}.aliyuncs.com (it panics on
// "http://127.0.0.1:port"), so this is how it is aimed at another server:
//
//	client := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
//		EndPoint: "http://1234567890123456.mns.cn-hangzhou.aliyuncs.com", TimeoutSecond: 10, ...})
//	client.SetTransport(mnsdial.Transport(addr, 3*time.Second)) // before the first request
//
// A connection attempt gives up after connectTimeout (DefaultConnectTimeout when not
// positive). Everything else is the SDK's own host client's: its read and write timeouts (the
// client's TimeoutSecond), so that a hung server is abandoned after the read timeout instead
// of holding the caller forever, its connection limits, and its retries. SetTransport only
// affects connections made after it, so call it before the client sends anything.
//
// With an https endpoint the connection to addr speaks TLS and the server's certificate is
// verified for the endpoint's host name, as it would be at the real endpoint: the server at
// addr must present a certificate for that name (the local cloud's, with Options.TLS) signed
// by a CA the client trusts.
func Transport(addr string, connectTimeout time.Duration) fasthttp.RoundTripper {
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	return &transport{addr: addr, dialer: net.Dialer{Timeout: connectTimeout}, inner: make(map[*fasthttp.HostClient]*fasthttp.HostClient)}
}

type transport struct {
	addr   string
	dialer net.Dialer

	mu    sync.Mutex
	inner map[*fasthttp.HostClient]*fasthttp.HostClient
}

// RoundTrip implements fasthttp.RoundTripper. The default transport applies the host
// client's read and write timeouts to the connection.
func (t *transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	return fasthttp.DefaultTransport.RoundTrip(t.hostClient(hc), req, resp)
}

// hostClient returns the host client that dials addr on behalf of hc, creating it on first
// use with hc's settings. It keeps its own connection pool. fasthttp.Client makes one host
// client per host and keeps it while in use, so the map stays as small as the set of
// endpoints a client talks to.
func (t *transport) hostClient(hc *fasthttp.HostClient) *fasthttp.HostClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.inner[hc]; ok {
		return c
	}
	c := &fasthttp.HostClient{
		// Dial ignores the address; Addr names the TLS server to verify, the endpoint's host.
		Addr:                          hc.Addr,
		Name:                          hc.Name,
		NoDefaultUserAgentHeader:      hc.NoDefaultUserAgentHeader,
		Dial:                          func(string) (net.Conn, error) { return t.dialer.Dial("tcp", t.addr) },
		IsTLS:                         hc.IsTLS,
		TLSConfig:                     hc.TLSConfig,
		MaxConns:                      hc.MaxConns,
		MaxConnDuration:               hc.MaxConnDuration,
		MaxIdleConnDuration:           hc.MaxIdleConnDuration,
		MaxIdemponentCallAttempts:     hc.MaxIdemponentCallAttempts,
		ReadBufferSize:                hc.ReadBufferSize,
		WriteBufferSize:               hc.WriteBufferSize,
		ReadTimeout:                   hc.ReadTimeout,
		WriteTimeout:                  hc.WriteTimeout,
		MaxResponseBodySize:           hc.MaxResponseBodySize,
		DisableHeaderNamesNormalizing: hc.DisableHeaderNamesNormalizing,
		DisablePathNormalizing:        hc.DisablePathNormalizing,
		MaxConnWaitTimeout:            hc.MaxConnWaitTimeout,
	}
	t.inner[hc] = c
	return c
}
