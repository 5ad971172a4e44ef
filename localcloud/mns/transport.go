package mns

import (
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// DialTransport returns a fasthttp.RoundTripper that sends every request of an
// aliyun-mns-go-sdk client to addr ("127.0.0.1:port") instead of to the endpoint's host,
// and changes nothing else: the Host header, path, headers and signature stay those of
// the realistic endpoint the client was built with.
//
// The SDK refuses endpoints other than {account}.mns.{region}.aliyuncs.com (it panics on
// "http://127.0.0.1:port"), so this is how it is aimed at a local server:
//
//	client := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
//		EndPoint: "http://1234567890123456.mns.cn-hangzhou.aliyuncs.com", ...})
//	client.SetTransport(mns.DialTransport(addr)) // before the first request
//
// SetTransport only affects connections made after it, so call it before the client
// sends anything. Timeouts and connection limits are taken from the SDK's own host
// client; retries stay the SDK's (fasthttp's) decision. Endpoints with https need a TLS
// server at addr whose certificate the client trusts.
func DialTransport(addr string) fasthttp.RoundTripper {
	return &dialTransport{addr: addr, inner: make(map[*fasthttp.HostClient]*fasthttp.HostClient)}
}

type dialTransport struct {
	addr string

	mu    sync.Mutex
	inner map[*fasthttp.HostClient]*fasthttp.HostClient
}

// RoundTrip implements fasthttp.RoundTripper.
func (t *dialTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	return fasthttp.DefaultTransport.RoundTrip(t.hostClient(hc), req, resp)
}

// hostClient returns the host client that dials addr on behalf of hc, creating it on
// first use with hc's settings. It keeps its own connection pool. fasthttp.Client makes
// one host client per host and keeps it while in use, so the map stays as small as the
// set of endpoints a client talks to.
func (t *dialTransport) hostClient(hc *fasthttp.HostClient) *fasthttp.HostClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.inner[hc]; ok {
		return c
	}
	addr := t.addr
	dialer := &net.Dialer{Timeout: 3 * time.Second}
	c := &fasthttp.HostClient{
		Addr:                          addr,
		Name:                          hc.Name,
		NoDefaultUserAgentHeader:      hc.NoDefaultUserAgentHeader,
		Dial:                          func(string) (net.Conn, error) { return dialer.Dial("tcp", addr) },
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
