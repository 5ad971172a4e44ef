package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/world"
)

// Over HTTPS, as production calls ECS and MNS: the cloud serves only TLS with a certificate
// of a CA made for the run, which the function's instances trust through SSL_CERT_FILE and
// the function's default scheme. An attach goes through, and a dead letter reaches MNS,
// whose certificate is checked against the realistic endpoint name the MNS SDK uses.
func TestOverTLS(t *testing.T) {
	t.Parallel()
	const a, exhausted = "i-bp1tls000000001", "i-bp1tls000000002"
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH), inst(exhausted, zoneI)},
		enis: poolENIs("tls", zoneH, 1)}), bedOptions{tls: true})
	if got := testbed.FunctionEnv(b.cloud, dlq)["ENIPOOL_API_SCHEME"]; got != "https" || b.cloud.CAFile == "" {
		t.Fatalf("scheme %q, CA file %q: the bed is not over TLS", got, b.cloud.CAFile)
	}
	tests := []struct {
		name, instance string
		want           engine.Outcome
		code           string
	}{
		{"attach over https", a, engine.OutcomeAttached, ""},
		{"dead letter over https", exhausted, engine.OutcomeDeadLettered, cloud.CodePoolExhausted},
	}
	for _, tc := range tests {
		r := result(t, b.mustInvoke(running(tc.instance)), tc.instance)
		if r.Outcome != tc.want || r.Code != tc.code {
			t.Fatalf("%s: %s %s (%s), want %s %s", tc.name, r.Outcome, r.Code, r.Reason, tc.want, tc.code)
		}
	}
	if got := b.inUse(a); len(got) != 1 {
		t.Fatalf("%s holds %v, want one pool ENI InUse", a, got)
	}
	if dl := b.deadLetters(); len(dl) != 1 || dl[0].InstanceID != exhausted || dl[0].Error.Code != cloud.CodePoolExhausted {
		t.Fatalf("dead letters %+v, want one for %s", dl, exhausted)
	}
}

// A function that does not trust the cloud's certificate (its trust store holds another CA)
// makes no call: each connection fails its handshake. The invocation fails with an error
// that names the certificate, not with a panic; invoked asynchronously, FC's onFailure
// record carries that error to the dead-letter queue, since the function could not reach
// MNS to dead-letter it itself.
func TestUntrustedCertificate(t *testing.T) {
	t.Parallel()
	const a = "i-bp1tlswrong0001"
	other, err := localcloud.Start(newWorld(t, spec{}), localcloud.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("tls", zoneH, 1)}),
		bedOptions{tls: true, trustedCAs: other.CAFile, timeout: 5 * time.Second,
			async: fcrt.AsyncConfig{MaxRetryAttempts: 1, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}})
	const why = "x509: certificate signed by unknown authority"

	resp, ferr := b.invoke(running(a))
	if ferr == nil {
		t.Fatalf("invocation succeeded with %+v, want a function error", resp.Results)
	}
	if ferr.Cause != fcrt.CauseFunction || len(ferr.StackTrace) > 0 || !strings.Contains(ferr.ErrorMessage, why) {
		t.Fatalf("function error %s %q (stack %d frames), want a returned error naming %q", ferr.Cause, ferr.ErrorMessage, len(ferr.StackTrace), why)
	}

	b.fn.InvokeAsync([]byte(running(a)))
	waitAsync(t, b)
	letters := testbed.DeadLetters(b.cloud, dlq)
	if len(letters) != 1 || letters[0].Record == nil || !strings.Contains(string(letters[0].Body), why) {
		t.Fatalf("dead-letter queue %+v, want FC's one onFailure record naming %q", letters, why)
	}
	if n := b.calls("ecs", ""); n != 0 {
		t.Errorf("ECS served %d calls to a function that does not trust it", n)
	}
	if got := b.inUse(a); len(got) != 0 {
		t.Errorf("%s holds %v", a, got)
	}
}
