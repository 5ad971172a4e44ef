package auth_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	alimns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/valyala/fasthttp"

	"github.com/enipool/enipool/localcloud/auth"
)

// The string-to-sign of a real request: alibaba-cloud-sdk-go v1.63.107 with STS credentials,
// captured on loopback (the SDK signs what it sends; the capture is the query below).
func TestRPCStringToSignMatchesCapture(t *testing.T) {
	q := "AccessKeyId=STS.testAK&Action=DescribeNetworkInterfaces&Format=JSON&MaxResults=100&NetworkInterfaceId.1=eni-abc&NetworkInterfaceId.2=eni-def&RegionId=cn-hangzhou&SecurityToken=testSecurityToken&Signature=WNN2lMGeKuDFXuAq7Cdgqz6cLDg%3D&SignatureMethod=HMAC-SHA1&SignatureNonce=27abbfaae327fe3592617fe199bed852&SignatureType=&SignatureVersion=1.0&Tag.1.Key=owner&Tag.1.Value=a+b%2A~&Timestamp=2026-11-28T04%3A17%3A04Z&Type=Secondary&Version=2014-05-26&VpcId=vpc-1"
	params, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	want := "POST&%2F&AccessKeyId%3DSTS.testAK%26Action%3DDescribeNetworkInterfaces%26Format%3DJSON%26MaxResults%3D100%26NetworkInterfaceId.1%3Deni-abc%26NetworkInterfaceId.2%3Deni-def%26RegionId%3Dcn-hangzhou%26SecurityToken%3DtestSecurityToken%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D27abbfaae327fe3592617fe199bed852%26SignatureType%3D%26SignatureVersion%3D1.0%26Tag.1.Key%3Downer%26Tag.1.Value%3Da%2520b%252A~%26Timestamp%3D2026-11-28T04%253A17%253A04Z%26Type%3DSecondary%26Version%3D2014-05-26%26VpcId%3Dvpc-1"
	if got := auth.RPCStringToSign("POST", params); got != want {
		t.Fatalf("string to sign\n got %s\nwant %s", got, want)
	}
}

// The real ECS SDK signs; our recipe must accept every request it sends, including values
// that need escaping, and reject a request signed with another secret.
func TestRPCSignatureAcceptsRealSDK(t *testing.T) {
	tests := []struct {
		name      string
		secret    string // what the server believes
		wantValid bool
	}{
		{"same secret", "s3cr3t", true},
		{"other secret", "not-the-secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			valid := make(chan bool, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil {
					t.Error(err)
				}
				sts := auth.RPCStringToSign(r.Method, r.Form)
				valid <- auth.Equal(auth.SignRPC(tt.secret, sts), r.Form.Get("Signature"))
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"RequestId":"R1","NetworkInterfaceSets":{"NetworkInterfaceSet":[]}}`)
			}))
			defer srv.Close()

			client, err := ecs.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(),
				credentials.NewStaticSTSCredentialsProvider("STS.testAK", "s3cr3t", "tok"))
			if err != nil {
				t.Fatal(err)
			}
			client.Domain = strings.TrimPrefix(srv.URL, "http://")
			req := ecs.CreateDescribeNetworkInterfacesRequest()
			req.Tag = &[]ecs.DescribeNetworkInterfacesTag{{Key: "owner", Value: "a b*~/é"}}
			req.NetworkInterfaceId = &[]string{"eni-abc", "eni-def"}
			if _, err := client.DescribeNetworkInterfaces(req); err != nil {
				t.Fatal(err)
			}
			if got := <-valid; got != tt.wantValid {
				t.Fatalf("signature valid = %v, want %v", got, tt.wantValid)
			}
		})
	}
}

// The real MNS SDK signs SendMessage; our recipe must accept it. The SDK insists on a
// realistic endpoint host, so the request is dialled to the test server instead.
func TestMNSSignatureAcceptsRealSDK(t *testing.T) {
	type seen struct {
		valid bool
		token string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		ak, sig, _ := strings.Cut(strings.TrimPrefix(authz, "MNS "), ":")
		sts := auth.MNSStringToSign(r.Method, r.Header, r.URL.RequestURI())
		got <- seen{valid: ak == "STS.testAK" && auth.Equal(auth.SignMNS("s3cr3t", sts), sig), token: r.Header.Get("Security-Token")}
		w.Header().Set("x-mns-request-id", "R1")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/"><MessageId>M1</MessageId><MessageBodyMD5>00</MessageBodyMD5></Message>`)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	client := alimns.NewAliMNSClientWithConfig(alimns.AliMNSClientConfig{
		EndPoint:        "http://1234567890123456.mns.cn-hangzhou.aliyuncs.com",
		AccessKeyId:     "STS.testAK",
		AccessKeySecret: "s3cr3t",
		Token:           "tok",
	})
	client.SetTransport(dialTo(addr))
	q := alimns.NewMNSQueue("dlq", client)
	if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: `{"a":"<b&c>"}`, Priority: 8}); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if !s.valid {
		t.Fatal("MNS signature of a real SDK request did not verify")
	}
	if s.token != "tok" {
		t.Fatalf("security-token header = %q, want tok", s.token)
	}
}

type dialTo string

func (d dialTo) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	c := &fasthttp.HostClient{Addr: string(d), Dial: func(string) (net.Conn, error) { return net.Dial("tcp", string(d)) }}
	return false, c.Do(req, resp)
}
