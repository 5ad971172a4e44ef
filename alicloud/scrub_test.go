package alicloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/localcloud/auth"
)

const (
	testSecret = "sEcReT-value-42"
	testToken  = "CAIStoken+with/odd=chars*~"
)

func testSession(region string) cloud.Session {
	return cloud.Session{Region: region, AccountID: "1234567890123456", Credentials: cloud.Credentials{
		AccessKeyID: "STS.key", AccessKeySecret: testSecret, SecurityToken: testToken}}
}

// A service that echoes the string to sign (as real ECS does on SignatureDoesNotMatch), and a
// refused connection (whose *url.Error prints the signed URL), must both leave no secret in
// the error the handler sees.
func TestErrorsCarryNoSecret(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"RequestId":"R-1","HostId":"ecs","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:%s"}`,
			strings.ReplaceAll(auth.RPCStringToSign(r.Method, r.Form), `"`, ``))
	}))
	defer echo.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name, endpoint string
	}{
		{"signature error echo", strings.TrimPrefix(echo.URL, "http://")},
		{"refused connection", closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewConnector(Options{Scheme: "http", ECSEndpoint: tt.endpoint, DeadLetterQueue: "dlq",
				MNSEndpoint: "http://{account}.mns.{region}.aliyuncs.com", MNSDialAddr: closed, ReadTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := c.Connect(context.Background(), testSession("cn-hangzhou"))
			if err != nil {
				t.Fatal(err)
			}
			err = cl.ECS.AttachENI(context.Background(), "eni-1", "i-1")
			if err == nil {
				t.Fatal("the call succeeded")
			}
			_, sendErr := cl.DeadLetters.Send(context.Background(), []byte("{}"))
			for _, e := range []error{err, sendErr} {
				msg := fmt.Sprintf("%v %+v %#v", e, e, e)
				for _, secret := range []string{testSecret, testToken, url.QueryEscape(testToken), url.QueryEscape(url.QueryEscape(testToken))} {
					if strings.Contains(msg, secret) {
						t.Errorf("error leaks a secret: %s", msg)
					}
				}
			}
		})
	}
}

func TestCredentialsPrintRedacted(t *testing.T) {
	c := testSession("r").Credentials
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(s, testSecret) || strings.Contains(s, testToken) {
			t.Fatalf("credentials print their secrets: %s", s)
		}
	}
}

func TestConnectRebuildsOnNewCredentials(t *testing.T) {
	c, err := NewConnector(Options{DeadLetterQueue: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	s := testSession("cn-hangzhou")
	a, _ := c.Connect(context.Background(), s)
	b, _ := c.Connect(context.Background(), s)
	if a != b {
		t.Fatal("same session built new clients")
	}
	s.Credentials.SecurityToken = "rotated"
	d, _ := c.Connect(context.Background(), s)
	if d == a {
		t.Fatal("new credentials reused old clients")
	}
}

func TestBadMNSEndpointIsAnErrorNotAPanic(t *testing.T) {
	for _, ep := range []string{"http://127.0.0.1:9", "https://mns.example.com", "http://a.mns.b.aliyuncs.com:80"} {
		c, _ := NewConnector(Options{DeadLetterQueue: "dlq", MNSEndpoint: ep})
		if _, err := c.Connect(context.Background(), testSession("cn-hangzhou")); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
}

// A lifecycle action token is a secret (whoever holds it may complete the action): an ESS
// error that echoes it, raw or as a request parameter, leaves it out of the error the handler
// sees, for the completion and for the heartbeat. Fails on a0bb83d, whose scrub knew only the
// session's secret and token.
func TestErrorsCarryNoLifecycleToken(t *testing.T) {
	const token = "3F1B7C2D-0E4A-4B8C-9D6E-1A2B3C4D5E6F"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		tok := r.Form.Get("LifecycleActionToken")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"RequestId":"R-1","HostId":"ess","Code":"LifecycleHookIdAndLifecycleActionToken.Invalid",`+
			`"Message":"The specified lifecycle action token %s is invalid (LifecycleActionToken=%s, LifecycleActionToken%%3D%s)."}`,
			tok, url.QueryEscape(tok), url.QueryEscape(tok))
	}))
	defer echo.Close()
	c, err := NewConnector(Options{Scheme: "http", ESSEndpoint: strings.TrimPrefix(echo.URL, "http://"), DeadLetterQueue: "dlq",
		ReadTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.Connect(context.Background(), testSession("cn-hangzhou"))
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"complete":  func() error { return cl.Lifecycle.Complete(context.Background(), "ash-1", token, "CONTINUE") },
		"heartbeat": func() error { return cl.Lifecycle.Heartbeat(context.Background(), "ash-1", token, time.Minute) },
	}
	for name, call := range calls {
		err := call()
		var apiErr *cloud.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != "LifecycleHookIdAndLifecycleActionToken.Invalid" {
			t.Fatalf("%s: %v, want the service's error", name, err)
		}
		msg := fmt.Sprintf("%v %+v %#v", err, err, err)
		for _, v := range []string{token, url.QueryEscape(token), "3F1B7C2D"} {
			if strings.Contains(msg, v) {
				t.Errorf("%s: the error leaks the token: %s", name, msg)
				break
			}
		}
		if !strings.Contains(msg, "is invalid") {
			t.Errorf("%s: the scrubbed message lost its text: %s", name, msg)
		}
	}
}
