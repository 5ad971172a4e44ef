package deploy_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ram"
)

// The function's role as the local cloud sees it (FC hands the function STS credentials of
// this role).
var fnRole = auth.Principal{Name: "enipool-fn", Kind: auth.KindRole, AccountID: testAccountID}

func loadPolicy(t *testing.T) (*ram.Policy, []byte) {
	t.Helper()
	b, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ram.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", policyPath, err)
	}
	p.Name = "enipool-fn"
	return p, b
}

// The resources the RAM tests name, as the local cloud names them (package localcloud/ecs
// documents the ARNs each call site gives package ram).
const ramRegion = "cn-hangzhou"

func arn(service, resource string) string {
	return ram.ARN(service, ramRegion, testAccountID, resource)
}

var (
	poolTags      = map[string]string{"enipool": "web"}
	otherPoolTags = map[string]string{"enipool": "db"}
	untaggedTags  = map[string]string{"team": "web"}
	wrongCaseTags = map[string]string{"Enipool": "web"}
)

// namedCall is an API request put to RAM through the per-action model.
type namedCall struct {
	name string
	call ram.Call
}

func onENIAndInstance(action string, instanceTags, eniTags map[string]string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{
		{ARN: arn("ecs", "instance/i-1"), Tags: instanceTags}, {ARN: arn("ecs", "eni/eni-1"), Tags: eniTags}}}
}

func createENI(requestTags map[string]string) ram.Call {
	return ram.Call{Action: "ecs:CreateNetworkInterface", RequestTags: requestTags, Resources: []ram.Resource{
		{ARN: arn("ecs", "eni/*")}, {ARN: arn("ecs", "securitygroup/sg-1")}, {ARN: arn("vpc", "vswitch/vsw-1")}}}
}

func onENI(action string, tags map[string]string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{{ARN: arn("ecs", "eni/eni-1"), Tags: tags}}}
}

func onQueue(action, queue string) ram.Call {
	return ram.Call{Action: action, Resources: []ram.Resource{{ARN: arn("mns", "/queues/"+queue+"/messages")}}}
}

// functionCalls are the calls the function makes (alicloud/), in every shape it makes
// them. TestRAMPolicyCoversTheCode checks that every API alicloud/ calls is among them.
func functionCalls() []namedCall {
	group := []ram.Resource{{ARN: arn("ess", "scalinggroup/asg-1")}}
	return []namedCall{
		{"describe instances by id", ram.Call{Action: "ecs:DescribeInstances", Resources: []ram.Resource{{ARN: arn("ecs", "instance/*")}}}},
		{"describe pool instances by tag", ram.Call{Action: "ecs:DescribeInstances", Resources: []ram.Resource{{ARN: arn("ecs", "instance/*"), Tags: poolTags}}}},
		{"describe instance types", ram.Call{Action: "ecs:DescribeInstanceTypes"}},
		{"list pool ENIs by tag", ram.Call{Action: "ecs:DescribeNetworkInterfaces", Resources: []ram.Resource{{ARN: arn("ecs", "eni/*"), Tags: poolTags}}}},
		{"list ENIs by id or instance", ram.Call{Action: "ecs:DescribeNetworkInterfaces", Resources: []ram.Resource{{ARN: arn("ecs", "eni/*")}}}},
		{"attach a pool ENI to a pool instance", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, poolTags)},
		{"attach another pool's ENI", onENIAndInstance("ecs:AttachNetworkInterface", otherPoolTags, otherPoolTags)},
		{"detach a pool ENI", onENIAndInstance("ecs:DetachNetworkInterface", poolTags, poolTags)},
		{"warm target: create a pool-tagged ENI", createENI(poolTags)},
		{"warm target: delete a pool ENI", onENI("ecs:DeleteNetworkInterface", poolTags)},
		{"complete a lifecycle action", ram.Call{Action: "ess:CompleteLifecycleAction", Resources: group}},
		{"lifecycle heartbeat", ram.Call{Action: "ess:RecordLifecycleActionHeartbeat", Resources: group}},
		{"verify a lifecycle hook", ram.Call{Action: "ess:DescribeLifecycleHooks", Resources: group}},
		{"verify a lifecycle action's token", ram.Call{Action: "ess:DescribeLifecycleActions", Resources: group}},
		{"verify the instances' lifecycle states", ram.Call{Action: "ess:DescribeScalingInstances", Resources: group}},
		{"send a dead letter", onQueue("mns:SendMessage", "enipool-dlq")},
		{"receive dead letters (redrive)", onQueue("mns:BatchReceiveMessage", "enipool-dlq")},
		{"delete a dead letter (redrive)", onQueue("mns:DeleteMessage", "enipool-dlq")},
		{"hide a dead letter that cannot be acted on (redrive's quarantine)", onQueue("mns:ChangeMessageVisibility", "enipool-dlq")},
	}
}

// refusedCalls are calls the function must not be able to make, through the model.
func refusedCalls() []namedCall {
	return []namedCall{
		{"attach: ENI without the pool tag", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, untaggedTags)},
		{"attach: ENI without tags", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, nil)},
		{"attach: tag key in another case", onENIAndInstance("ecs:AttachNetworkInterface", poolTags, wrongCaseTags)},
		{"attach: instance without the pool tag", onENIAndInstance("ecs:AttachNetworkInterface", untaggedTags, poolTags)},
		{"detach: ENI without the pool tag", onENIAndInstance("ecs:DetachNetworkInterface", poolTags, untaggedTags)},
		{"detach: from an instance without the pool tag", onENIAndInstance("ecs:DetachNetworkInterface", nil, poolTags)},
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
}

// ungrantedActions are actions outside the model that no statement of the policy may
// name at all (so no resource or condition can make them allowed).
var ungrantedActions = []string{
	"ecs:DeleteInstance", "ecs:StopInstance", "ecs:RunInstances", "ecs:ModifyNetworkInterfaceAttribute",
	"ecs:TagResources", "ecs:UntagResources", "ecs:CreateTags", "ecs:AssignPrivateIpAddresses",
	"ecs:AuthorizeSecurityGroup", "vpc:CreateVSwitch", "ess:ModifyScalingGroup", "ess:RemoveInstances",
	"mns:PublishMessage", "mns:DeleteQueue", "mns:SetQueueAttributes", "ram:PassRole", "log:PostLogStoreLogs",
}

// TestRAMPolicy evaluates deploy/ram-policy.json with the local cloud's per-action RAM
// model (package localcloud/ram): every call the function makes is allowed and every call
// it must not make is refused, under each reading of Alibaba's tables where they disagree
// or say nothing (which tag-key forms RAM evaluates; which action authorizes an MNS batch
// API), so the policy holds whichever production follows.
func TestRAMPolicy(t *testing.T) {
	pol, _ := loadPolicy(t)
	for _, keys := range []ram.TagKeys{ram.TagKeysAll, ram.TagKeysService, ram.TagKeysACS} {
		for _, batch := range []ram.MNSBatch{ram.MNSBatchBoth, ram.MNSBatchOwnAction, ram.MNSBatchFolded} {
			t.Run("tags="+keys.String()+",batch="+batch.String(), func(t *testing.T) {
				az, err := ram.NewAuthorizerWith(ram.Options{TagKeys: keys, MNSBatch: batch})
				if err != nil {
					t.Fatal(err)
				}
				az.Attach(fnRole, pol)
				for _, c := range functionCalls() {
					if err := az.AuthorizeCall(fnRole, c.call); err != nil {
						t.Errorf("%s: refused: %v", c.name, err)
					}
				}
				for _, c := range refusedCalls() {
					err := az.AuthorizeCall(fnRole, c.call)
					if d := (*ram.DeniedError)(nil); !errors.As(err, &d) {
						t.Errorf("%s: want refused, got %v", c.name, err)
					}
				}
			})
		}
	}
	for _, a := range ungrantedActions {
		for i, st := range pol.Statements {
			if st.Effect == ram.Allow && grantsAction(st, a) {
				t.Errorf("Statement[%d] grants %s", i, a)
			}
		}
	}
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
	for _, c := range functionCalls() {
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

// TestRAMPolicyMatchesSYAML checks the policy's placeholders (the pool tag key in the
// conditions, in each key form, the dead-letter queue in the MNS resource) against s.yaml's defaults, and that
// the documents are the real RAM format.
func TestRAMPolicyMatchesSYAML(t *testing.T) {
	pol, raw := loadPolicy(t)
	tp := loadTemplate(t, nil, testAccountID)
	tagKey, _ := tp.vars["poolTagKey"].(string)
	dlq, _ := tp.vars["dlqQueue"].(string)

	var tagKeys, queues []string
	for _, st := range pol.Statements {
		for _, c := range st.Conditions {
			for _, form := range []string{"ecs:tag/", "acs:ResourceTag/", "acs:RequestTag/"} {
				if k, ok := strings.CutPrefix(c.Key, form); ok {
					tagKeys = append(tagKeys, k)
				}
			}
		}
		for _, r := range st.Resources {
			if strings.HasPrefix(r, "acs:mns:") {
				queues = append(queues, r)
			}
		}
	}
	if len(tagKeys) == 0 {
		t.Error("no tag condition in the policy")
	}
	for _, k := range tagKeys {
		if k != tagKey {
			t.Errorf("policy condition on the tag %q, s.yaml's pool tag key is %q", k, tagKey)
		}
	}
	want := "acs:mns:*:*:/queues/" + dlq + "/messages"
	if len(queues) == 0 {
		t.Error("no MNS resource in the policy")
	}
	for _, q := range queues {
		if q != want {
			t.Errorf("policy MNS resource %s, want %s (s.yaml's dead-letter queue only)", q, want)
		}
	}

	// Strict JSON shape, beyond what ram.Parse checks: no unknown top-level keys, a Sid per
	// statement (the README explains each by Sid).
	var doc struct {
		Version   string
		Statement []map[string]json.RawMessage
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for i, st := range doc.Statement {
		if _, ok := st["Sid"]; !ok {
			t.Errorf("Statement[%d] has no Sid", i)
		}
	}

	trust, err := os.ReadFile("trust-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		Version   string
		Statement []struct {
			Effect    string
			Action    any
			Principal struct{ Service []string }
		}
	}
	if err := json.Unmarshal(trust, &tr); err != nil {
		t.Fatalf("trust-policy.json: %v", err)
	}
	if tr.Version != "1" || len(tr.Statement) != 1 || tr.Statement[0].Effect != "Allow" ||
		tr.Statement[0].Action != "sts:AssumeRole" || !slices.Equal(tr.Statement[0].Principal.Service, []string{"fc.aliyuncs.com"}) {
		t.Errorf("trust-policy.json: want one Allow sts:AssumeRole for service fc.aliyuncs.com, got %+v", tr)
	}
}
