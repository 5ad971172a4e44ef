package mnsdial_test

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/enipool/enipool/internal/mnsdial"
)

// Over https the server at the dialled address is verified for the endpoint's host name, as
// the real endpoint would be, not for the address dialled: httptest's certificate is valid
// for example.com and for 127.0.0.1, so only a check of the endpoint's name refuses it for
// an MNS endpoint.
func TestTLSVerifiesTheEndpointName(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Host))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tests := []struct {
		endpoint string
		wantErr  string // "" for success
	}{
		{"https://example.com", ""},
		{"https://1234567890123456.mns.cn-hangzhou.aliyuncs.com", "not 1234567890123456.mns.cn-hangzhou.aliyuncs.com"},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			tr := mnsdial.Transport(srv.Listener.Addr().String(), 0)
			c := &fasthttp.Client{TLSConfig: &tls.Config{RootCAs: roots},
				ConfigureClient: func(hc *fasthttp.HostClient) error { hc.Transport = tr; return nil }}
			status, body, err := c.Get(nil, tc.endpoint+"/queues/q/messages")
			switch {
			case tc.wantErr == "" && (err != nil || status != 200):
				t.Fatalf("GET: %d %q, %v", status, body, err)
			case tc.wantErr == "" && string(body) != strings.TrimPrefix(tc.endpoint, "https://"):
				t.Fatalf("the server saw Host %q, want the endpoint's", body)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("GET: %d, %v; want an error with %q", status, err, tc.wantErr)
			}
		})
	}
}
