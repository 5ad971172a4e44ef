package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/enipool/enipool/deploy"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ram"
)

// The function's role as the local cloud sees it (FC hands the function STS credentials of
// this role).
var fnRole = auth.Principal{Name: "enipool-fn", Kind: auth.KindRole, AccountID: testAccountID}

// The deployment the RAM tests render the policy for: two pools, one scaling group, and the
// warm target of pool web when warm is set.
const (
	ramRegion    = "cn-hangzhou"
	otherRegion  = "cn-shanghai"
	otherAccount = "6543210987654321"
	group        = "asg-bp1test000001"
	otherGroup   = "asg-bp1other00001"
)

func testDeployment(warm bool) deploy.Deployment {
	d := deploy.Deployment{Region: ramRegion, AccountID: testAccountID, TagKey: "enipool", Pools: []string{"web", "db"},
		ScalingGroups: []string{group}, DeadLetterQueue: "enipool-dlq"}
	if warm {
		d.Warm = &deploy.Warm{Pool: "web", VSwitches: []string{"vsw-1"}, SecurityGroups: []string{"sg-1"}}
	}
	return d
}

// render renders d's policy and parses it as the local cloud does.
func render(t *testing.T, d deploy.Deployment) (*ram.Policy, []byte) {
	t.Helper()
	pol, err := deploy.RAMPolicy(d)
	if err != nil {
		t.Fatal(err)
	}
	raw := pol.JSON()
	p, err := ram.Parse(raw)
	if err != nil {
		t.Fatalf("rendered policy: %v\n%s", err, raw)
	}
	p.Name = "enipool-fn"
	return p, raw
}

// The resources the RAM tests name, as the local cloud names them (package localcloud/ecs
// documents the ARNs each call site gives package ram).
func arn(service, resource string) string {
	return ram.ARN(service, ramRegion, testAccountID, resource)
}

var (
	poolTags      = map[string]string{"enipool": "web"}
	otherPoolTags = map[string]string{"enipool": "db"}
	unlistedTags  = map[string]string{"enipool": "cache"}
	untaggedTags  = map[string]string{"team": "web"}
	wrongCaseTags = map[string]string{"Enipool": "web"}
	managedTags   = map[string]string{"enipool": "web", deploy.ManagedTag: "true"}
)

// namedCall is an API request put to RAM through the per-action model.
type namedCall struct {
	name string
	call ram.Call
}

// in returns c with every resource ARN moved to another region and/or account.
func in(c ram.Call, region, account string) ram.Call {
	out := c
	out.Resources = nil
	for _, r := range c.Resources {
		r.ARN = strings.Replace(r.ARN, ":"+ramRegion+":"+testAccountID+":", ":"+region+":"+account+":", 1)
		out.Resources = append(out.Resources, r)
	}
	return out
}

func onENIAndInstance(action string, instanceTags, eniTags map[string]string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{
		{ARN: arn("ecs", "instance/i-1"), Tags: instanceTags}, {ARN: arn("ecs", "eni/eni-1"), Tags: eniTags}}}
}

func createENIIn(requestTags map[string]string, sg, vsw string) ram.Call {
	return ram.Call{Action: "ecs:CreateNetworkInterface", RequestTags: requestTags, Resources: []ram.Resource{
		{ARN: arn("ecs", "eni/*")}, {ARN: arn("ecs", "securitygroup/"+sg)}, {ARN: arn("vpc", "vswitch/"+vsw)}}}
}

func createENI(requestTags map[string]string) ram.Call {
	return createENIIn(requestTags, "sg-1", "vsw-1")
}

func onENI(action string, tags map[string]string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{{ARN: arn("ecs", "eni/eni-1"), Tags: tags}}}
}

func onQueue(action, queue string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{{ARN: arn("mns", "/queues/"+queue+"/messages")}}}
}

func onGroup(action, id string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{{ARN: arn("ess", "scalinggroup/"+id)}}}
}

// warmCalls are the warm target's calls (engine/warm.go): a create tagged with the warm
// pool and the managed tag, in a configured vSwitch and security group, and the delete of an
// ENI it created.
func warmCalls() []namedCall {
	return []namedCall{
		{"warm target: create a pool-tagged, managed ENI", createENI(managedTags)},
		{"warm target: delete a managed pool ENI", onENI("ecs:DeleteNetworkInterface", managedTags)},
	}
}

// functionCalls are the calls the function makes (alicloud/), in every shape it makes
// them, the warm target's only when it is configured. TestRAMPolicyCoversTheCode checks
// that every API alicloud/ calls is among them.
func functionCalls(warm bool) []namedCall {
	calls := []namedCall{
		{"describe instances by id", ram.Call{Action: "ecs:DescribeInstances", Resources: []ram.Resource{{ARN: arn("ecs", "instance/*")}}}},
		{"describe pool instances by tag", ram.Call{Action: "ecs:DescribeInstances", Resources: []ram.Resource{{ARN: arn("ecs", "instance/*"), Tags: poolTags}}}},
		{"describe instance types", ram.Call{Action: "ecs:DescribeInstanceTypes"}},
		{"list pool ENIs by tag", ram.Call{Action: "ecs:DescribeNetworkInterfaces", Resources: []ram.Resource{{ARN: arn("ecs", "eni/*"), Tags: poolTags}}}},
		{"list ENIs by id or instance", ram.Call{Action: "ecs:DescribeNetworkInterfaces", Resources: []ram.Resource{{ARN: arn("ecs", "eni/*")}}}},
		{"attach a pool ENI to a pool instance", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags)},
		{"attach another listed pool's ENI", onENIAndInstance("ecs:AttachNetworkInterface", otherPoolTags, otherPoolTags)},
		{"detach a pool ENI", onENIAndInstance("ecs:DetachNetworkInterface", poolTags, poolTags)},
		{"complete a lifecycle action", onGroup("ess:CompleteLifecycleAction", group)},
		{"lifecycle heartbeat", onGroup("ess:RecordLifecycleActionHeartbeat", group)},
		{"verify a lifecycle hook", onGroup("ess:DescribeLifecycleHooks", group)},
		{"verify a lifecycle action", ram.Call{Action: "ess:DescribeLifecycleActions", Resources: []ram.Resource{{ARN: arn("ess", "scalinggroup/*")}}}},
		{"verify a scaling group's instances", onGroup("ess:DescribeScalingInstances", group)},
		{"send a dead letter", onQueue("mns:SendMessage", "enipool-dlq")},
		{"receive dead letters (redrive)", onQueue("mns:BatchReceiveMessage", "enipool-dlq")},
		{"delete a dead letter (redrive)", onQueue("mns:DeleteMessage", "enipool-dlq")},
		{"hide a dead letter that cannot be acted on (redrive's quarantine)", onQueue("mns:ChangeMessageVisibility", "enipool-dlq")},
	}
	if warm {
		calls = append(calls, warmCalls()...)
	}
	return calls
}

// refusedCalls are calls the function must not be able to make, through the model. Fails on
// 968df3d (its deploy/ram-policy.json allowed every call marked pinned: any region, any
// account, any pool value, any scaling group, and the warm target's create and delete while
// the warm target was off).
func refusedCalls(warm bool) []namedCall {
	calls := []namedCall{
		{"attach: ENI without the pool tag", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, untaggedTags)},
		{"attach: ENI without tags", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, nil)},
		{"attach: tag key in another case", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, wrongCaseTags)},
		{"attach: instance without the pool tag", onENIAndInstance("ecs:AttachNetworkInterface", untaggedTags, poolTags)},
		{"detach: ENI without the pool tag", onENIAndInstance("ecs:DetachNetworkInterface", poolTags, untaggedTags)},
		{"detach: from an instance without the pool tag", onENIAndInstance("ecs:DetachNetworkInterface", nil, poolTags)},
		{"pinned: attach an ENI of a pool not listed", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, unlistedTags)},
		{"pinned: attach to an instance of a pool not listed", onENIAndInstance("ecs:AttachNetworkInterface", unlistedTags, poolTags)},
		{"pinned: detach an ENI of a pool not listed", onENIAndInstance("ecs:DetachNetworkInterface", unlistedTags, unlistedTags)},
		{"pinned: attach in another region", in(onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags), otherRegion, testAccountID)},
		{"pinned: attach in another account", in(onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags), ramRegion, otherAccount)},
		{"pinned: describe instances in another region", in(functionCalls(false)[0].call, otherRegion, testAccountID)},
		{"pinned: list ENIs of another account", in(functionCalls(false)[4].call, ramRegion, otherAccount)},
		{"pinned: heartbeat a scaling group not listed", onGroup("ess:RecordLifecycleActionHeartbeat", otherGroup)},
		{"pinned: heartbeat the group in another region", in(onGroup("ess:RecordLifecycleActionHeartbeat", group), otherRegion, testAccountID)},
		{"pinned: scaling instances of a group not listed", onGroup("ess:DescribeScalingInstances", otherGroup)},
		{"pinned: lifecycle actions of another account", in(functionCalls(false)[10].call, ramRegion, otherAccount)},
		{"pinned: the dead-letter queue of another region", in(onQueue("mns:SendMessage", "enipool-dlq"), otherRegion, testAccountID)},
		{"pinned: the dead-letter queue of another account", in(onQueue("mns:SendMessage", "enipool-dlq"), ramRegion, otherAccount)},
		{"warm: create an untagged ENI", createENI(nil)},
		{"warm: create an ENI tagged with another key", createENI(untaggedTags)},
		{"warm: delete an ENI without the pool tag", onENI("ecs:DeleteNetworkInterface", untaggedTags)},
		{"retag an ENI into the pool", ram.Call{Action: "ecs:TagResources", RequestTags: poolTags,
			Resources: []ram.Resource{{ARN: arn("ecs", "eni/eni-9"), Tags: untaggedTags}}}},
		{"untag a pool ENI", onENI("ecs:UntagResources", poolTags)},
		{"describe ENI attribute (not called)", onENI("ecs:DescribeNetworkInterfaceAttribute", poolTags)},
		{"send to the work queue", onQueue("mns:SendMessage", "enipool-work")},
		{"send to another queue", onQueue("mns:SendMessage", "other")},
		{"send to a queue named like the DLQ", onQueue("mns:SendMessage", "enipool-dlq-2")},
		{"receive from the work queue", onQueue("mns:ReceiveMessage", "enipool-work")},
		{"batch-receive from the work queue", onQueue("mns:BatchReceiveMessage", "enipool-work")},
		{"delete from the work queue", onQueue("mns:DeleteMessage", "enipool-work")},
		{"change a work-queue message's visibility", onQueue("mns:ChangeMessageVisibility", "enipool-work")},
		{"delete the DLQ", ram.Call{Action: "mns:DeleteQueue", Resources: []ram.Resource{{ARN: arn("mns", "/queues/enipool-dlq")}}}},
		{"list queues", ram.Call{Action: "mns:ListQueue", Resources: []ram.Resource{{ARN: arn("mns", "/queues")}}}},
	}
	if !warm {
		for _, c := range warmCalls() {
			calls = append(calls, namedCall{"pinned: warm target off: " + c.name, c.call})
		}
		return calls
	}
	return append(calls,
		namedCall{"pinned: warm: create an ENI of another listed pool", createENI(map[string]string{"enipool": "db", deploy.ManagedTag: "true"})},
		namedCall{"pinned: warm: create an ENI without the managed tag", createENI(poolTags)},
		namedCall{"pinned: warm: create in a security group not configured", createENIIn(managedTags, "sg-2", "vsw-1")},
		namedCall{"pinned: warm: create in a vSwitch not configured", createENIIn(managedTags, "sg-1", "vsw-2")},
		namedCall{"pinned: warm: create in another region", in(createENI(managedTags), otherRegion, testAccountID)},
		namedCall{"pinned: warm: delete a pool ENI it did not create", onENI("ecs:DeleteNetworkInterface", poolTags)},
		namedCall{"pinned: warm: delete a managed ENI of another listed pool", onENI("ecs:DeleteNetworkInterface", map[string]string{"enipool": "db", deploy.ManagedTag: "true"})},
	)
}

// ungrantedActions are actions outside the model that no statement of the policy may
// name at all (so no resource or condition can make them allowed).
var ungrantedActions = []string{
	"ecs:DeleteInstance", "ecs:StopInstance", "ecs:RunInstances", "ecs:ModifyNetworkInterfaceAttribute",
	"ecs:TagResources", "ecs:UntagResources", "ecs:CreateTags", "ecs:AssignPrivateIpAddresses",
	"ecs:AuthorizeSecurityGroup", "vpc:CreateVSwitch", "ess:ModifyScalingGroup", "ess:RemoveInstances",
	"mns:PublishMessage", "mns:DeleteQueue", "mns:SetQueueAttributes", "ram:PassRole", "log:PostLogStoreLogs",
}

// authorizers returns an authorizer per reading of Alibaba's tables where they disagree or
// say nothing (which tag-key forms RAM evaluates; which action authorizes an MNS batch API),
// each with pol attached to the function's role.
func authorizers(t *testing.T, pol *ram.Policy) map[string]*ram.Authorizer {
	t.Helper()
	out := map[string]*ram.Authorizer{}
	for _, keys := range []ram.TagKeys{ram.TagKeysAll, ram.TagKeysService, ram.TagKeysACS} {
		for _, batch := range []ram.MNSBatch{ram.MNSBatchBoth, ram.MNSBatchOwnAction, ram.MNSBatchFolded} {
			az, err := ram.NewAuthorizerWith(ram.Options{TagKeys: keys, MNSBatch: batch})
			if err != nil {
				t.Fatal(err)
			}
			az.Attach(fnRole, pol)
			out["tags="+keys.String()+",batch="+batch.String()] = az
		}
	}
	return out
}

// checkCalls puts allowed and refused calls to every reading's authorizer.
func checkCalls(t *testing.T, pol *ram.Policy, allowed, refused []namedCall) {
	t.Helper()
	azs := authorizers(t, pol)
	for _, name := range sortedKeys(azs) {
		az := azs[name]
		t.Run(name, func(t *testing.T) {
			for _, c := range allowed {
				if err := az.AuthorizeCall(fnRole, c.call); err != nil {
					t.Errorf("%s: refused: %v", c.name, err)
				}
			}
			for _, c := range refused {
				err := az.AuthorizeCall(fnRole, c.call)
				if d := (*ram.DeniedError)(nil); !errors.As(err, &d) {
					t.Errorf("%s: want refused, got %v", c.name, err)
				}
			}
		})
	}
}

// TestRAMPolicy evaluates the policy deploy.RAMPolicy renders with the local cloud's
// per-action RAM model (package localcloud/ram): every call the function makes is allowed
// and every call it must not make is refused (another region, another account, a pool or
// scaling group not listed, the warm target's calls unless it is configured), with and
// without the warm target, under each reading of Alibaba's tables, so the policy holds
// whichever production follows.
func TestRAMPolicy(t *testing.T) {
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) {
			pol, _ := render(t, testDeployment(warm))
			checkCalls(t, pol, functionCalls(warm), refusedCalls(warm))
			for _, a := range ungrantedActions {
				for i, st := range pol.Statements {
					if st.Effect == ram.Allow && grantsAction(st, a) {
						t.Errorf("Statement[%d] grants %s", i, a)
					}
				}
			}
		})
	}
}

// TestRAMPolicyUnpinned renders a deployment that asks for any pool and any scaling group
// (ENIPOOL_POOLS and ENIPOOL_SCALING_GROUPS "*"): any pool value and any scaling group of the
// region and account are allowed, and still nothing untagged, nothing elsewhere.
func TestRAMPolicyUnpinned(t *testing.T) {
	d := testDeployment(false)
	d.Pools, d.ScalingGroups = []string{deploy.Any}, []string{deploy.Any}
	pol, _ := render(t, d)
	checkCalls(t, pol, append(functionCalls(false),
		namedCall{"attach an ENI of any pool", onENIAndInstance("ecs:AttachNetworkInterface", unlistedTags, unlistedTags)},
		namedCall{"heartbeat any scaling group", onGroup("ess:RecordLifecycleActionHeartbeat", otherGroup)},
	), []namedCall{
		{"attach an untagged ENI", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, untaggedTags)},
		{"attach in another region", in(onENIAndInstance("ecs:AttachNetworkInterface", unlistedTags, unlistedTags), otherRegion, testAccountID)},
		{"heartbeat a group of another account", in(onGroup("ess:RecordLifecycleActionHeartbeat", otherGroup), ramRegion, otherAccount)},
	})
}

// TestRAMPolicyRefusesUnlisted: a deployment that lists no pool or no scaling group renders
// nothing (any is "*", said on purpose), nor one that puts "*" beside other values. Fails on
// a0bb83d, which rendered an empty list as any.
func TestRAMPolicyRefusesUnlisted(t *testing.T) {
	tests := []struct {
		name          string
		pools, groups []string
		want          string
	}{
		{"no pools", nil, []string{group}, "no pools"},
		{"no scaling groups", []string{"web"}, nil, "no scaling groups"},
		{"empty lists", []string{}, []string{}, "no pools"},
		{"any beside a pool", []string{deploy.Any, "web"}, []string{group}, `pool "*"`},
		{"any beside a group", []string{"web"}, []string{group, deploy.Any}, `scaling group "*"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDeployment(false)
			d.Pools, d.ScalingGroups = tt.pools, tt.groups
			_, err := deploy.RAMPolicy(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestRAMPolicyIsPinned checks the rendered documents themselves: every resource names the
// deployment's region and account, except the two actions whose tables say All Resources
// (granted on "*", alone in their statements); a Sid per statement (the README explains each
// by Sid); pool values and scaling groups as listed, exactly.
func TestRAMPolicyIsPinned(t *testing.T) {
	allResources := map[string]bool{"ecs:DescribeInstanceTypes": true, "ess:CompleteLifecycleAction": true}
	for _, warm := range []bool{false, true} {
		pol, err := deploy.RAMPolicy(testDeployment(warm))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range pol.Statement {
			if st.Sid == "" {
				t.Errorf("a statement without Sid: %+v", st)
			}
			for _, r := range st.Resource {
				if r == "*" {
					if len(st.Action) != 1 || !allResources[st.Action[0]] {
						t.Errorf("%s: %v on *: only an All Resources action, alone, may be", st.Sid, st.Action)
					}
					continue
				}
				parts := strings.SplitN(r, ":", 5)
				if len(parts) != 5 || parts[2] != ramRegion || parts[3] != testAccountID {
					t.Errorf("%s: resource %s is not pinned to %s:%s", st.Sid, r, ramRegion, testAccountID)
				}
			}
			for _, keys := range st.Condition {
				for k, v := range keys {
					if strings.HasSuffix(k, "/enipool") && !slices.Equal(v, []string{"db", "web"}) && !slices.Equal(v, []string{"web"}) {
						t.Errorf("%s: %s = %v, want the pools listed", st.Sid, k, v)
					}
				}
			}
		}
	}
	if _, err := deploy.RAMPolicy(deploy.Deployment{Region: "*", AccountID: "1", TagKey: "enipool", DeadLetterQueue: "q"}); err == nil {
		t.Error("a deployment with region * rendered")
	}
	if _, err := deploy.RAMPolicy(deploy.Deployment{Region: ramRegion, AccountID: "1", TagKey: "enipool", Pools: []string{"w*"}, DeadLetterQueue: "q"}); err == nil {
		t.Error("a pool value with a pattern character rendered")
	}
}

// TestShippedExampleIsPinned evaluates deploy/ram-policy.json, the example rendered for the
// demo world (deploy/cmd/policy -example; its test keeps the file current), the way the
// local cloud does. Fails on 968df3d, whose deploy/ram-policy.json allowed every one of these.
func TestShippedExampleIsPinned(t *testing.T) {
	raw, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := ram.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	const demoGroup = "asg-bp1demo0000000001"
	checkCalls(t, pol, []namedCall{
		{"attach a pool ENI", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags)},
		{"heartbeat the demo's scaling group", onGroup("ess:RecordLifecycleActionHeartbeat", demoGroup)},
	}, []namedCall{
		{"another region", in(onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags), otherRegion, testAccountID)},
		{"another account", in(onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags), ramRegion, otherAccount)},
		{"a pool value not listed", onENIAndInstance("ecs:AttachNetworkInterface", otherPoolTags, otherPoolTags)},
		{"a scaling group not listed", onGroup("ess:RecordLifecycleActionHeartbeat", otherGroup)},
		{"the warm target's create (off in s.yaml)", createENI(managedTags)},
		{"the warm target's delete (off in s.yaml)", onENI("ecs:DeleteNetworkInterface", managedTags)},
	})
}

// grantsAction reports whether an Allow statement's Action (or NotAction) covers action,
// whatever its resources and conditions.
func grantsAction(st ram.Statement, action string) bool {
	action = strings.ToLower(action)
	if len(st.NotActions) > 0 {
		for _, p := range st.NotActions {
			if ram.Match(strings.ToLower(p), action) {
				return false
			}
		}
		return true
	}
	for _, p := range st.Actions {
		if ram.Match(strings.ToLower(p), action) {
			return true
		}
	}
	return false
}

// TestRAMPolicyCoversTheCode lists the cloud API calls the adapters (alicloud/) make and
// checks that each is in the RAM model and among functionCalls (which TestRAMPolicy
// proves allowed), so a new call fails here rather than with Forbidden.RAM in production.
func TestRAMPolicyCoversTheCode(t *testing.T) {
	modelled := map[string]bool{}
	for _, s := range ram.DefaultTable() {
		modelled[strings.ToLower(s.Action)] = true
	}
	proven := map[string]bool{}
	for _, c := range functionCalls(true) {
		proven[strings.ToLower(c.call.Action)] = true
	}
	rpcCall := regexp.MustCompile(`\b(ecs|ess)\.Create([A-Za-z]+)Request\(\)`)
	// The MNS SDK's methods are named after the APIs they call.
	mnsCall := regexp.MustCompile(`\.((?:Batch)?(?:Send|Receive|Delete|Peek)Message|ChangeMessageVisibility)\(`)
	files, err := filepath.Glob(filepath.Join(repoRoot, "alicloud", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no alicloud/*.go (%v)", err)
	}
	need := map[string][]string{} // action -> files
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rpcCall.FindAllStringSubmatch(string(src), -1) {
			a := m[1] + ":" + m[2]
			need[a] = append(need[a], filepath.Base(f))
		}
		for _, m := range mnsCall.FindAllStringSubmatch(string(src), -1) {
			a := "mns:" + m[1]
			need[a] = append(need[a], filepath.Base(f))
		}
	}
	if len(need) == 0 {
		t.Fatal("found no API calls in alicloud/*.go: the patterns here are out of date")
	}
	for _, a := range sortedKeys(need) {
		where := strings.Join(slices.Compact(need[a]), ", ")
		if !modelled[strings.ToLower(a)] {
			t.Errorf("%s (called in %s) has no row in localcloud/ram's table", a, where)
		}
		if !proven[strings.ToLower(a)] {
			t.Errorf("%s (called in %s) is not among functionCalls, so no test proves %s allows it", a, where, policyPath)
		}
	}
	t.Logf("calls found: %v", sortedKeys(need))
}

// TestTrustPolicy checks the trust policy: Function Compute alone may assume the role (no
// condition narrows it further: none is documented, deploy/README.md "The trust policy"),
// and deploy/trust-policy.json is what TrustPolicy renders.
func TestTrustPolicy(t *testing.T) {
	var tr struct {
		Version   string
		Statement []struct {
			Effect    string
			Action    any
			Principal map[string][]string
			Condition any
		}
	}
	if err := json.Unmarshal(deploy.TrustPolicy(), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Version != "1" || len(tr.Statement) != 1 || tr.Statement[0].Effect != "Allow" || tr.Statement[0].Action != "sts:AssumeRole" ||
		len(tr.Statement[0].Principal) != 1 || !slices.Equal(tr.Statement[0].Principal["Service"], []string{"fc.aliyuncs.com"}) {
		t.Errorf("want one Allow sts:AssumeRole for service fc.aliyuncs.com only, got %+v", tr)
	}
	file, err := os.ReadFile("trust-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, deploy.TrustPolicy()) {
		t.Error("trust-policy.json is not deploy.TrustPolicy(): run make policy-example")
	}
}

// The warm target's managed tag is the handler's.
func TestManagedTag(t *testing.T) {
	if deploy.ManagedTag != engine.ManagedTag {
		t.Errorf("deploy.ManagedTag %q, engine.ManagedTag %q", deploy.ManagedTag, engine.ManagedTag)
	}
}
