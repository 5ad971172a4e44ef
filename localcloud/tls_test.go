package localcloud_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/world"
)

func startTLS(t *testing.T) *localcloud.Cloud {
	t.Helper()
	w, err := world.Generate(world.GenerateOptions{Instances: 2, Pool: 2, Zones: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// With Options.TLS the cloud's endpoints speak HTTPS with a certificate its own CA signed:
// the ECS SDK, over HTTPS as in production, is served when it trusts that CA and refused a
// connection when it trusts another; MNS's certificate holds the realistic endpoint name
// the MNS SDK verifies, and no other.
func TestTLSEndpoints(t *testing.T) {
	c := startTLS(t)
	other := startTLS(t) // its CA signed nothing of c's
	if c.Scheme != "https" || !strings.HasPrefix(c.MNSEndpoint, "https://") {
		t.Fatalf("scheme %q, MNS endpoint %q; want https", c.Scheme, c.MNSEndpoint)
	}
	if b, err := os.ReadFile(c.CAFile); err != nil || !bytes.Equal(b, c.CACertPEM) {
		t.Fatalf("CAFile %s holds %q (%v), want CACertPEM", c.CAFile, b, err)
	}
	k, err := c.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	ecsTests := []struct {
		name    string
		scheme  string
		trust   *tls.Config
		wantErr string // "" for success, "*" for any error
	}{
		{"https, trusting the cloud's CA", "HTTPS", c.ClientTLS(), ""},
		{"https, trusting another CA", "HTTPS", other.ClientTLS(), "certificate signed by unknown authority"},
		{"plain http to the TLS endpoint", "HTTP", c.ClientTLS(), "*"}, // reset or a 400, as the race goes
	}
	for _, tc := range ecsTests {
		t.Run("ecs/"+tc.name, func(t *testing.T) {
			cl, err := sdkecs.NewClientWithOptions(c.Region, sdk.NewConfig().WithScheme(tc.scheme).WithAutoRetry(false).WithTimeout(5*time.Second),
				credentials.NewStaticAKCredentialsProvider(k.ID, k.Secret))
			if err != nil {
				t.Fatal(err)
			}
			cl.Domain = c.ECSEndpoint
			cl.SetTransport(&http.Transport{TLSClientConfig: tc.trust})
			resp, err := cl.DescribeInstances(sdkecs.CreateDescribeInstancesRequest())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("DescribeInstances: %v", err)
			case tc.wantErr == "" && len(resp.Instances.Instance) != 2:
				t.Fatalf("DescribeInstances: %d instances, want 2", len(resp.Instances.Instance))
			case tc.wantErr != "" && (err == nil || tc.wantErr != "*" && !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("DescribeInstances: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	mnsHost := c.AccountID + ".mns." + c.Region + ".aliyuncs.com"
	handshakes := []struct {
		name, addr, serverName string
		trust                  *tls.Config
		wantErr                string
	}{
		{"ess", c.ESSEndpoint, "127.0.0.1", c.ClientTLS(), ""},
		{"ess by localhost", c.ESSEndpoint, "localhost", c.ClientTLS(), ""},
		{"mns by its endpoint's name", c.MNSAddr, mnsHost, c.ClientTLS(), ""},
		{"mns by another name", c.MNSAddr, "evil.example.com", c.ClientTLS(), "certificate is valid for"},
		{"mns trusting another CA", c.MNSAddr, mnsHost, other.ClientTLS(), "certificate signed by unknown authority"},
	}
	for _, tc := range handshakes {
		t.Run("handshake/"+tc.name, func(t *testing.T) {
			cfg := tc.trust.Clone()
			cfg.ServerName = tc.serverName
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tc.addr, cfg)
			if err == nil {
				conn.Close()
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("handshake: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	// The debug endpoint is no cloud API and stays plain HTTP.
	resp, err := http.Get(c.DebugURL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.CAFile); !os.IsNotExist(err) {
		t.Errorf("CAFile after Close: %v, want it removed", err)
	}
}

// Without Options.TLS nothing changes: plain HTTP, no CA.
func TestPlainByDefault(t *testing.T) {
	w, err := world.Generate(world.GenerateOptions{Instances: 1, Zones: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Scheme != "http" || !strings.HasPrefix(c.MNSEndpoint, "http://") || c.CAFile != "" || c.CACertPEM != nil || c.ClientTLS() != nil {
		t.Fatalf("scheme %q, MNS %q, CA file %q: want plain HTTP and no CA", c.Scheme, c.MNSEndpoint, c.CAFile)
	}
}
