package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/deploy"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/world"
)

// binary is the function, built once for the whole package.
var binary string

// parallelBeds is how many tests run at once unless -parallel says otherwise. Each test has
// its own bed (cloud on its own ports, its own function processes) and shares nothing but
// the built binary, and a test spends its time waiting on the cloud's timing (attaches take
// seconds, as in production), not on the CPU; go test's default of GOMAXPROCS tests at once
// would leave a 2-core machine idle most of the time.
const parallelBeds = 8

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", strconv.Itoa(parallelBeds)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if testing.Short() {
		// End-to-end tests need the built binary: -short (make unit) skips them all.
		os.Exit(m.Run())
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "enipool-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// A cold build with -race compiles every dependency again: minutes on a busy machine.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if binary, err = testbed.BuildFunction(ctx, dir, buildFlags...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// Pool and tag every test world uses.
const (
	pool   = "web"
	zoneH  = "cn-hangzhou-h"
	zoneI  = "cn-hangzhou-i"
	vswH   = "vsw-testh0001"
	vswI   = "vsw-testi0001"
	dlq    = "enipool-dlq"
	region = "cn-hangzhou"
)

// spec is what a test adds to the base world.
type spec struct {
	instances []world.Instance
	enis      []world.ENI
	mutate    func(*world.World)
}

// inst returns a Running instance of the pool in a zone.
func inst(id, zone string) world.Instance {
	vsw := vswH
	if zone == zoneI {
		vsw = vswI
	}
	return world.Instance{ID: id, Type: "ecs.g7.large", VSwitch: vsw, Status: "Running",
		Tags: map[string]string{"enipool": pool}, SecurityGroups: []string{"sg-testweb001"}}
}

// poolENIs returns n Available pool ENIs in a zone, named eni-<prefix>NN.
func poolENIs(prefix, zone string, n int) []world.ENI {
	vsw := vswH
	if zone == zoneI {
		vsw = vswI
	}
	var out []world.ENI
	for i := 1; i <= n; i++ {
		out = append(out, world.ENI{ID: fmt.Sprintf("eni-%s%02d", prefix, i), VSwitch: vsw,
			SecurityGroups: []string{"sg-testweb001"}, Tags: map[string]string{"enipool": pool}})
	}
	return out
}

// newWorld loads the base world and adds the spec.
func newWorld(t testing.TB, s spec) *world.World {
	t.Helper()
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.Parse(base, "yaml", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	w.Instances = append(w.Instances, s.instances...)
	w.ENIs = append(w.ENIs, s.enis...)
	if s.mutate != nil {
		s.mutate(w)
	}
	if err := w.Validate("testdata"); err != nil {
		t.Fatal(err)
	}
	return w
}

// fnPolicy returns the rendered policy of the function's role in w.
func fnPolicy(t testing.TB, w *world.World) *world.RenderedPolicy {
	t.Helper()
	for i := range w.Policies {
		if w.Policies[i].Name == "enipool-fn" && w.Policies[i].Rendered != nil {
			r := *w.Policies[i].Rendered
			w.Policies[i].Rendered = &r
			return &r
		}
	}
	t.Fatal("the world has no rendered policy enipool-fn")
	return nil
}

// withWarmPolicy gives the function's role the policy rendered with the warm target of the
// pool in vsws and sg-testweb001, as `make policy` renders it for a deployment whose s.yaml
// configures the warm target: without it the role may neither create nor delete an ENI.
func withWarmPolicy(t testing.TB, vsws ...string) func(*world.World) {
	return func(w *world.World) {
		fnPolicy(t, w).Warm = &deploy.Warm{Pool: pool, VSwitches: vsws, SecurityGroups: []string{"sg-testweb001"}}
	}
}

// bed is a local cloud with the function running under its FC runtime.
type bed struct {
	t     testing.TB
	cloud *localcloud.Cloud
	fn    *fcrt.Runtime
	logs  *testbed.LogBuffer
}

type bedOptions struct {
	env     map[string]string
	timeout time.Duration
	async   fcrt.AsyncConfig
	max     int
	// tls serves the cloud over HTTPS (the function then calls it as in production);
	// trustedCAs replaces the cloud's CA in the function's trust store.
	tls        bool
	trustedCAs string
}

func newBed(t testing.TB, w *world.World, o bedOptions) *bed {
	t.Helper()
	if binary == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	c, err := localcloud.Start(w, localcloud.Options{TLS: o.tls})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testbed.LogBuffer{}
	// Nothing tells the function how long this world's attaches take: it starts from its
	// defaults, as a fresh deployment does, and learns.
	env := map[string]string{"ENIPOOL_DLQ_RESERVE": "1s"}
	for k, v := range o.env {
		env[k] = v
	}
	if o.timeout == 0 {
		o.timeout = 20 * time.Second
	}
	if o.async.Backoff == nil {
		o.async.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
	}
	fn, err := testbed.StartFunction(c, testbed.Function{Binary: binary, DeadLetterQueue: dlq, Env: env, Timeout: o.timeout,
		MaxInstances: o.max, Async: o.async, Logs: logs, TrustedCAs: o.trustedCAs})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	b := &bed{t: t, cloud: c, fn: fn, logs: logs}
	t.Cleanup(func() {
		fn.Close() // flushes the function's output: every line is in logs after this
		b.assertNoSecrets()
		if strings.Contains(logs.String(), "WARNING: DATA RACE") {
			t.Errorf("the function (built with %v) reported a data race", buildFlags)
		}
		c.Close()
		if t.Failed() {
			t.Logf("function logs:\n%s", clipLog(logs.String()))
		}
	})
	return b
}

// invoke runs one synchronous invocation, like `s invoke`.
func (b *bed) invoke(payload string) (handler.Response, *fcrt.FunctionError) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := b.fn.Invoke(ctx, []byte(payload))
	if err != nil {
		b.t.Fatalf("invoke: %v", err)
	}
	var resp handler.Response
	if len(res.Payload) > 0 {
		if err := json.Unmarshal(res.Payload, &resp); err != nil {
			b.t.Fatalf("result is not a handler.Response: %v: %s", err, res.Payload)
		}
	}
	return resp, res.Error
}

// mustInvoke invokes and fails the test on a function error.
func (b *bed) mustInvoke(payload string) handler.Response {
	b.t.Helper()
	resp, ferr := b.invoke(payload)
	if ferr != nil {
		b.t.Fatalf("function error %s: %s", ferr.ErrorType, ferr.ErrorMessage)
	}
	return resp
}

// held returns the pool ENIs attached or attaching to an instance.
func (b *bed) held(instance string) []world.ENI {
	return b.cloud.Store.ENIs(world.OnInstance(instance), world.Tagged("enipool", pool))
}

// heldIDs returns the ids of the pool ENIs an instance holds InUse, sorted.
func (b *bed) inUse(instance string) []string {
	var ids []string
	for _, e := range b.held(instance) {
		if e.Status == "InUse" {
			ids = append(ids, e.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// deadLetters returns the envelopes in the dead-letter queue (FC's own records are skipped).
func (b *bed) deadLetters() []*deadletter.Envelope { return testbed.Envelopes(b.cloud, dlq) }

// calls counts the recorded calls of an action.
func (b *bed) calls(service, action string) int { return b.cloud.Calls.Count(service, action) }

// assertNoSecrets checks that no secret the cloud ever issued appears in the function's
// logs, nor in any queue message.
func (b *bed) assertNoSecrets() {
	if testbed.SecretsIn(b.cloud, b.logs.String(), testbed.QueueText(b.cloud)) > 0 {
		b.t.Errorf("a secret or security token appears in the function's logs or messages")
	}
}

// result returns the one result for an instance, failing if there is not exactly one.
func result(t testing.TB, resp handler.Response, instance string) handler.Result {
	t.Helper()
	var got []handler.Result
	for _, r := range resp.Results {
		if r.InstanceID == instance {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d results for %s, want 1: %+v", len(got), instance, resp.Results)
	}
	return got[0]
}

func direct(instance string) string {
	return fmt.Sprintf(`{"instanceId":%q,"regionId":%q}`, instance, region)
}

func running(instance string) string {
	return fmt.Sprintf(`{"id":"%s-run","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",
"subject":"acs:ecs:cn-hangzhou:1234567890123456:instance/%s","aliyunregionid":"cn-hangzhou",
"aliyunpublishtime":"2024-05-01T10:00:01.179PRC","data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`,
		instance, instance, instance)
}

func stateEvent(instance, state string) string {
	return strings.Replace(running(instance), `"state":"Running"`, fmt.Sprintf(`"state":%q`, state), 1)
}

func clipLog(s string) string {
	if len(s) > 20000 {
		return "...\n" + s[len(s)-20000:]
	}
	return s
}

// waitLines waits until the function's log holds at least n lines with the given message
// ("" for any outcome line) and returns the outcome lines: the runtime copies the function's
// output asynchronously, so a line may land just after the invocation returned.
func (b *bed) waitLines(n int, msg string) []map[string]any {
	b.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := b.outcomeLines()
		count := 0
		for _, l := range lines {
			if msg == "" || l["msg"] == msg {
				count++
			}
		}
		if count >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outcomeLines returns the function's outcome log lines.
func (b *bed) outcomeLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.logs.String(), "\n") {
		i := strings.Index(line, "{")
		if i < 0 {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line[i:]), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), "enipool.") {
			out = append(out, m)
		}
	}
	return out
}

// waitAsync waits until every asynchronous invocation settled, destinations included.
func waitAsync(t testing.TB, b *bed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.fn.Wait(ctx); err != nil {
		t.Fatalf("async invocations did not settle: %v", err)
	}
}

// createPoolENI creates a pool ENI in a vSwitch through the ECS API with the account's own
// key, as an operator adding to the pool would, and returns its id.
func (b *bed) createPoolENI(vsw string) string {
	b.t.Helper()
	k, err := b.cloud.RootKey()
	if err != nil {
		b.t.Fatal(err)
	}
	client, err := ecs.NewClientWithAccessKey(region, k.ID, k.Secret)
	if err != nil {
		b.t.Fatal(err)
	}
	client.Domain = b.cloud.ECSEndpoint
	req := ecs.CreateCreateNetworkInterfaceRequest()
	req.Scheme = "http"
	req.VSwitchId, req.SecurityGroupId = vsw, "sg-testweb001"
	req.Tag = &[]ecs.CreateNetworkInterfaceTag{{Key: "enipool", Value: pool}}
	resp, err := client.CreateNetworkInterface(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.NetworkInterfaceId
}
