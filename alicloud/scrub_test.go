package alicloud

import (
	"context"
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
