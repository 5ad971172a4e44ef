package alicloud

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
)

// An MNS that accepts the connection and never answers is abandoned after the configured
// read timeout, even when the caller's context has no deadline: the dialling transport keeps
// the SDK client's timeouts instead of waiting forever (as its former copy here did).
func TestHungMNSAbandonedAfterReadTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing: hung
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	const readTimeout = time.Second // the SDK's timeout is in whole seconds
	c, err := NewConnector(Options{DeadLetterQueue: "dlq", Scheme: "http",
		MNSEndpoint: "http://{account}.mns.{region}.aliyuncs.com", MNSDialAddr: ln.Addr().String(),
		ConnectTimeout: time.Second, ReadTimeout: readTimeout})
	if err != nil {
		t.Fatal(err)
	}
	clients, err := c.Connect(context.Background(), testSession("cn-hangzhou"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := clients.DeadLetters.Send(context.Background(), []byte(`{"hello":"hung"}`))
		done <- err
	}()
	select {
	case err := <-done:
		took := time.Since(start)
		var ae *cloud.APIError
		if !errors.As(err, &ae) || ae.Err == nil {
			t.Fatalf("Send against a hung MNS returned %v (%T), want a transport error", err, err)
		}
		if took < readTimeout/2 {
			t.Errorf("gave up after %v, before the read timeout %v: %v", took, readTimeout, err)
		}
	case <-time.After(10 * readTimeout):
		t.Fatalf("Send against a hung MNS still waiting after %v (read timeout %v)", 10*readTimeout, readTimeout)
	}
}
