package world

import (
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
)

func demoPath(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "worlds", "demo.yaml")
}

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestDemoWorldLoads(t *testing.T) {
	w, err := Load(demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s, err := NewStore(w, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	pool := s.ENIs(Tagged("enipool", "web"), WithStatus(ENIAvailable))
	if len(pool) != 8 {
		t.Fatalf("pool = %d ENIs, want 8", len(pool))
	}
	for _, e := range pool {
		if e.Type != ENISecondary || len(e.PrivateIPs) != 1 || !strings.HasPrefix(e.MAC, "00:16:3e:") {
			t.Errorf("pool ENI %+v", e)
		}
	}
	in, ok := s.Instance("i-bp1demo00000000001")
	if !ok || in.Status != StatusRunning || !in.StartTime.Time().Equal(clk.t.Add(-2*time.Minute)) || in.PrivateIP == "" {
		t.Fatalf("instance 001 = %+v", in)
	}
	// Every instance has exactly one primary ENI, InUse, on its vSwitch.
	for _, in := range s.Instances() {
		var prim []ENI
		for _, e := range s.ENIs(OnInstance(in.ID)) {
			if e.Type == ENIPrimary {
				prim = append(prim, e)
			}
		}
		if len(prim) != 1 || prim[0].ID != in.PrimaryENI || prim[0].VSwitch != in.VSwitch || prim[0].PrivateIPs[0] != in.PrivateIP {
			t.Errorf("instance %s primaries %+v", in.ID, prim)
		}
	}
	if _, _, err := w.Identities(clk.now); err != nil {
		t.Fatal(err)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	base := `
account: {id: "1", type: enterprise}
regions: [{id: r1, zones: [z1]}]
vpcs: [{id: vpc-1, region: r1, cidr: 10.0.0.0/16}]
vswitches: [{id: vsw-1, vpc: vpc-1, zone: z1, cidr: 10.0.1.0/24}]
instanceTypes: [{id: t.a, generation: ecs-6, eniQuantity: 2, eniPrivateIpAddressQuantity: 2}]
`
	tests := []struct{ name, extra, want string }{
		{"unknown field", "bogus: 1\n", "field bogus not found"},
		{"bad vswitch", "instances: [{id: i-1, type: t.a, vswitch: vsw-x}]\n", `instances[0].vswitch: unknown vSwitch "vsw-x"`},
		{"bad type", "instances: [{id: i-1, type: t.b, vswitch: vsw-1}]\n", `instances[0].type: unknown instance type "t.b"`},
		{"bad status", "enis: [{id: eni-1, vswitch: vsw-1, status: Attaching}]\n", "enis[0].status"},
		{"bad id", "enis: [{id: ENI-1, vswitch: vsw-1}]\n", "enis[0].id"},
		{"staleness without a bound", "faults: {staleness: [{service: ecs}]}\n", "faults.staleness[0].max: must be a positive duration"},
		{"after-action kind", "faults: {afterAction: [{rate: 1, kind: lost}]}\n", `faults.afterAction[0].kind: must be reset, error or timeout, got "lost"`},
		{"after-action rate", "faults: {afterAction: [{rate: 1.5, kind: reset}]}\n", "faults.afterAction[0].rate: must be in [0, 1]"},
		{"spread p99 below median", "timing: {attachSpread: {median: 2s, p99: 1s}}\n", "timing.attachSpread.p99: must not be below the median"},
		{"spread without median", "timing: {detachSpread: {p99: 1s}}\n", "timing.detachSpread.median: must be a positive duration"},
		{"ip outside", "enis: [{id: eni-1, vswitch: vsw-1, privateIps: [10.9.0.1]}]\n", "enis[0].privateIps[0]"},
		{"bad policy", "policies: [{name: p, document: {Version: \"1\", Statement: [{Effect: Maybe, Action: \"*\", Resource: \"*\"}]}}]\n", "policies[0].document"},
		{"unknown policy", "principals: [{name: u, kind: ram-user, policies: [nope]}]\n", `principals[0].policies[0]: unknown policy "nope"`},
		{"role with keys", "principals: [{name: r, kind: role, accessKeys: [{id: a, secret: b}]}]\n", "principals[0].accessKeys"},
		{"bad duration", "timing: {attach: soon}\n", "soon"},
		{"bad timestamp", "instances: [{id: i-1, type: t.a, vswitch: vsw-1, startTime: yesterday}]\n", "yesterday"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tt.extra), "yaml", ".")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestJSONAndYAMLShareTheSchema(t *testing.T) {
	doc := `{"account":{"id":"1"},"regions":[{"id":"r1","zones":["z1"]}],
	 "vpcs":[{"id":"vpc-1","region":"r1","cidr":"10.0.0.0/16"}],
	 "vswitches":[{"id":"vsw-1","vpc":"vpc-1","zone":"z1","cidr":"10.0.1.0/24","availableIps":1}],
	 "enis":[{"id":"eni-1","vswitch":"vsw-1","tags":{"k":"v"}}],"timing":{"attach":"2s","detach":"1s"}}`
	w, err := Parse([]byte(doc), "json", ".")
	if err != nil {
		t.Fatal(err)
	}
	if w.Timing.Attach.D() != 2*time.Second || w.ENIs[0].Type != ENISecondary || w.ENIs[0].Status != ENIAvailable {
		t.Fatalf("world = %+v", w)
	}
	s, err := NewStore(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	// availableIps caps allocations after load: one more, then none.
	err = s.Update(func(st *State) error {
		if _, err := st.AllocateIP("vsw-1", "eni-x"); err != nil {
			return err
		}
		if _, err := st.AllocateIP("vsw-1", "eni-y"); err == nil {
			t.Error("second allocation succeeded past availableIps")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTransitionsApplyLazily(t *testing.T) {
	w, err := Load(demoPath(t))
	if err != nil {
		t.Fatal(err)
	}
	// Fixed times: the demo's spread and faults are for make run, not for this clock.
	w.Timing = Timing{Attach: fault.Duration(time.Second), Detach: fault.Duration(500 * time.Millisecond), Jitter: fault.Duration(200 * time.Millisecond)}
	w.Faults = fault.Plan{}
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s, err := NewStore(w, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	attach := func(eni, inst string, rollback bool) {
		t.Helper()
		if err := s.Update(func(st *State) error {
			st.Attach(st.ENIs[eni], st.Instances[inst], 0, rollback)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	status := func(id string) string { e, _ := s.ENI(id); return e.Status }

	attach("eni-bp1demopoolh01", "i-bp1demo00000000001", false)
	attach("eni-bp1demopoolh02", "i-bp1demo00000000002", true)
	if status("eni-bp1demopoolh01") != ENIAttaching || status("eni-bp1demopoolh02") != ENIAttaching {
		t.Fatal("not Attaching right after attach")
	}
	e, _ := s.ENI("eni-bp1demopoolh01")
	if e.InstanceID != "i-bp1demo00000000001" || e.DeviceIndex != 1 {
		t.Fatalf("attaching ENI = %+v", e)
	}
	clk.add(2 * time.Second) // attach 1s + jitter < 200ms
	if status("eni-bp1demopoolh01") != ENIInUse {
		t.Fatal("not InUse after the attach time")
	}
	if e, _ := s.ENI("eni-bp1demopoolh02"); e.Status != ENIAvailable || e.InstanceID != "" {
		t.Fatalf("rolled back ENI = %+v", e)
	}
	if got := s.ENIs(OnInstance("i-bp1demo00000000001")); len(got) != 2 {
		t.Fatalf("instance 001 has %d ENIs, want primary + 1", len(got))
	}
	if err := s.Update(func(st *State) error { st.Detach(st.ENIs["eni-bp1demopoolh01"]); return nil }); err != nil {
		t.Fatal(err)
	}
	if status("eni-bp1demopoolh01") != ENIDetaching {
		t.Fatal("not Detaching")
	}
	clk.add(time.Second)
	if e, _ := s.ENI("eni-bp1demopoolh01"); e.Status != ENIAvailable || e.InstanceID != "" {
		t.Fatalf("detached ENI = %+v", e)
	}
	if b, err := s.SnapshotJSON(); err != nil || !strings.Contains(string(b), "eni-bp1demopoolh01") {
		t.Fatalf("snapshot: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	w, err := Generate(GenerateOptions{Instances: 500, Zones: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.ENIs(Tagged("enipool", "web"), WithStatus(ENIAvailable))); n != 500 {
		t.Fatalf("pool = %d", n)
	}
	if n := len(s.Instances()); n != 500 {
		t.Fatalf("instances = %d", n)
	}
}

// A generated world's function role runs under the policy `make policy` renders for it: a
// pool ENI attached to a pool instance of the world's region and account is allowed; an
// instance or ENI without the pool tag, of a pool not served, in another region, or a queue
// other than the dead-letter queue is refused. UnrestrictedPolicy, asked for by name, allows
// them all. Fails on a0bb83d, whose Generate gave the role ecs:*, ess:* and mns:* on *.
func TestGeneratePolicy(t *testing.T) {
	const region, account = "cn-shanghai", "1234567890123456"
	call := func(action, inRegion string, instTags, eniTags map[string]string) ram.Call {
		return ram.Call{Action: action, Resources: []ram.Resource{
			{ARN: ram.ARN("ecs", inRegion, account, "instance/i-gen000000001"), Tags: instTags},
			{ARN: ram.ARN("ecs", inRegion, account, "eni/eni-gen000000001"), Tags: eniTags}}}
	}
	queue := func(name string) ram.Call {
		return ram.Call{Action: "mns:SendMessage", Resources: []ram.Resource{{ARN: ram.ARN("mns", region, account, "/queues/"+name+"/messages")}}}
	}
	web, db, lane := map[string]string{"pool": "web"}, map[string]string{"pool": "db"}, map[string]string{"pool": "lane1"}
	type policyCase struct {
		name    string
		call    ram.Call
		allowed bool
	}
	tests := []policyCase{
		{"attach a pool ENI to a pool instance", call("ecs:AttachNetworkInterface", region, web, web), true},
		{"detach a pool ENI", call("ecs:DetachNetworkInterface", region, web, web), true},
		{"dead letter", queue("enipool-dlq"), true},
		{"attach to an untagged instance", call("ecs:AttachNetworkInterface", region, nil, web), false},
		{"attach an ENI of a pool not served", call("ecs:AttachNetworkInterface", region, web, db), false},
		{"attach in another region", call("ecs:AttachNetworkInterface", "cn-hangzhou", web, web), false},
		{"send to the work queue", queue("enipool-work"), false},
	}
	for _, o := range []struct {
		name  string
		opts  GenerateOptions
		extra []policyCase
	}{
		{"rendered", GenerateOptions{Region: region, PoolKey: "pool", Instances: 1, Zones: 1},
			[]policyCase{{"attach an ENI of a pool not listed in Pools", call("ecs:AttachNetworkInterface", region, lane, lane), false}}},
		{"rendered, pools listed", GenerateOptions{Region: region, PoolKey: "pool", Pools: []string{"web", "lane1"}, Instances: 1, Zones: 1},
			[]policyCase{{"attach an ENI of a pool listed in Pools", call("ecs:AttachNetworkInterface", region, lane, lane), true}}},
		{"unrestricted", GenerateOptions{Region: region, PoolKey: "pool", Instances: 1, Zones: 1, FunctionPolicy: UnrestrictedPolicy}, nil},
	} {
		t.Run(o.name, func(t *testing.T) {
			w, err := Generate(o.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, az, err := w.Identities(nil)
			if err != nil {
				t.Fatal(err)
			}
			role, ok := w.PrincipalNamed("enipool-fn")
			if !ok {
				t.Fatal("no role enipool-fn")
			}
			unrestricted := o.opts.FunctionPolicy == UnrestrictedPolicy
			for _, c := range slices.Concat(tests, o.extra) {
				err := az.AuthorizeCall(role, c.call)
				if want := c.allowed || unrestricted; (err == nil) != want {
					t.Errorf("%s: err %v, want allowed %v", c.name, err, want)
				}
			}
		})
	}
}
