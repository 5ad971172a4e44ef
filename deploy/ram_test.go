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

// TestRAMPolicy evaluates deploy/ram-policy.json with the local cloud's RAM engine the way
// the local ECS, ESS and MNS authorize each call (see the docs of packages localcloud/ecs and
// localcloud/ram): single-resource ECS actions on the instance's and the ENI's ARN with
// ecs:tag/<key> from that resource's tags; list actions on <type>/* with the Tag filters;
// CreateNetworkInterface on eni/* with the requested tags; MNS message actions on
// acs:mns:<region>:<account>:/queues/<queue>/messages.
func TestRAMPolicy(t *testing.T) {
	pol, _ := loadPolicy(t)
	az := ram.NewAuthorizer()
	az.Attach(fnRole, pol)

	const region = "cn-hangzhou"
	arn := func(service, resource string) string { return ram.ARN(service, region, testAccountID, resource) }
	pool := map[string][]string{"ecs:tag/enipool": {"web"}}
	otherPool := map[string][]string{"ecs:tag/enipool": {"db"}}
	untagged := map[string][]string{"ecs:tag/team": {"web"}}
	wrongCase := map[string][]string{"ecs:tag/Enipool": {"web"}}
	dlq := arn("mns", "/queues/enipool-dlq/messages")

	tests := []struct {
		name    string
		req     ram.Request
		allowed bool
	}{
		// What the function does.
		{"describe instances", ram.Request{Action: "ecs:DescribeInstances", Resource: arn("ecs", "instance/*")}, true},
		{"describe instance types", ram.Request{Action: "ecs:DescribeInstanceTypes", Resource: "*"}, true},
		{"list pool ENIs by tag", ram.Request{Action: "ecs:DescribeNetworkInterfaces", Resource: arn("ecs", "eni/*"), Context: pool}, true},
		{"list ENIs without filter", ram.Request{Action: "ecs:DescribeNetworkInterfaces", Resource: arn("ecs", "eni/*")}, true},
		{"attach: pool ENI", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "eni/eni-1"), Context: pool}, true},
		{"attach: pool instance", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "instance/i-1"), Context: pool}, true},
		{"attach: another pool's ENI", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "eni/eni-2"), Context: otherPool}, true},
		{"detach: pool ENI", ram.Request{Action: "ecs:DetachNetworkInterface", Resource: arn("ecs", "eni/eni-1"), Context: pool}, true},
		{"detach: pool instance", ram.Request{Action: "ecs:DetachNetworkInterface", Resource: arn("ecs", "instance/i-1"), Context: pool}, true},
		{"warm: create tagged ENI", ram.Request{Action: "ecs:CreateNetworkInterface", Resource: arn("ecs", "eni/*"), Context: pool}, true},
		{"warm: delete pool ENI", ram.Request{Action: "ecs:DeleteNetworkInterface", Resource: arn("ecs", "eni/eni-1"), Context: pool}, true},
		{"complete lifecycle action", ram.Request{Action: "ess:CompleteLifecycleAction", Resource: arn("ess", "scalinggroup/asg-1")}, true},
		{"lifecycle heartbeat", ram.Request{Action: "ess:RecordLifecycleActionHeartbeat", Resource: arn("ess", "scalinggroup/asg-1")}, true},
		{"send dead letter", ram.Request{Action: "mns:SendMessage", Resource: dlq}, true},
		{"receive dead letters (redrive)", ram.Request{Action: "mns:ReceiveMessage", Resource: dlq}, true},
		{"batch-receive dead letters (redrive)", ram.Request{Action: "mns:BatchReceiveMessage", Resource: dlq}, true},
		{"delete dead letter (redrive)", ram.Request{Action: "mns:DeleteMessage", Resource: dlq}, true},

		// What it must not be able to do.
		{"delete instance", ram.Request{Action: "ecs:DeleteInstance", Resource: arn("ecs", "instance/i-1"), Context: pool}, false},
		{"stop instance", ram.Request{Action: "ecs:StopInstance", Resource: arn("ecs", "instance/i-1"), Context: pool}, false},
		{"attach: ENI without the pool tag", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "eni/eni-9"), Context: untagged}, false},
		{"attach: ENI without tags", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "eni/eni-9")}, false},
		{"attach: tag key in another case", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "eni/eni-9"), Context: wrongCase}, false},
		{"attach: instance without the pool tag", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "instance/i-9"), Context: untagged}, false},
		{"attach: a disk", ram.Request{Action: "ecs:AttachNetworkInterface", Resource: arn("ecs", "disk/d-1"), Context: pool}, false},
		{"detach: ENI without the pool tag", ram.Request{Action: "ecs:DetachNetworkInterface", Resource: arn("ecs", "eni/eni-9"), Context: untagged}, false},
		{"warm: create untagged ENI", ram.Request{Action: "ecs:CreateNetworkInterface", Resource: arn("ecs", "eni/*")}, false},
		{"warm: delete ENI without the pool tag", ram.Request{Action: "ecs:DeleteNetworkInterface", Resource: arn("ecs", "eni/eni-9"), Context: untagged}, false},
		{"retag an ENI into the pool", ram.Request{Action: "ecs:TagResources", Resource: arn("ecs", "eni/eni-9"), Context: untagged}, false},
		{"untag a pool ENI", ram.Request{Action: "ecs:UntagResources", Resource: arn("ecs", "eni/eni-1"), Context: pool}, false},
		{"modify a pool ENI", ram.Request{Action: "ecs:ModifyNetworkInterfaceAttribute", Resource: arn("ecs", "eni/eni-1"), Context: pool}, false},
		{"describe ENI attribute (not called)", ram.Request{Action: "ecs:DescribeNetworkInterfaceAttribute", Resource: arn("ecs", "eni/eni-1"), Context: pool}, false},
		{"scale a group", ram.Request{Action: "ess:ModifyScalingGroup", Resource: arn("ess", "scalinggroup/asg-1")}, false},
		{"send to the work queue", ram.Request{Action: "mns:SendMessage", Resource: arn("mns", "/queues/enipool-work/messages")}, false},
		{"send to another queue", ram.Request{Action: "mns:SendMessage", Resource: arn("mns", "/queues/other/messages")}, false},
		{"send to a queue named like the DLQ", ram.Request{Action: "mns:SendMessage", Resource: arn("mns", "/queues/enipool-dlq-2/messages")}, false},
		{"receive from the work queue", ram.Request{Action: "mns:ReceiveMessage", Resource: arn("mns", "/queues/enipool-work/messages")}, false},
		{"delete the DLQ", ram.Request{Action: "mns:DeleteQueue", Resource: arn("mns", "/queues/enipool-dlq")}, false},
		{"list queues", ram.Request{Action: "mns:ListQueue", Resource: arn("mns", "/queues")}, false},
		{"publish to a topic", ram.Request{Action: "mns:PublishMessage", Resource: arn("mns", "/topics/enipool-dlq/messages")}, false},
		{"pass a role", ram.Request{Action: "ram:PassRole", Resource: "*"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := az.Authorize(fnRole, tt.req)
			if tt.allowed && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.allowed {
				var d *ram.DeniedError
				if !errors.As(err, &d) {
					t.Fatalf("allowed %s on %s, want refused (err %v)", tt.req.Action, tt.req.Resource, err)
				}
			}
		})
	}
}

// TestRAMPolicyCoversTheCode lists the cloud API calls the adapters (alicloud/) make and
// checks that the policy grants the RAM action behind each, so a new call fails here rather
// than with Forbidden.RAM in production.
func TestRAMPolicyCoversTheCode(t *testing.T) {
	pol, _ := loadPolicy(t)
	granted := map[string]bool{}
	for _, st := range pol.Statements {
		if st.Effect != ram.Allow {
			continue
		}
		for _, a := range st.Actions {
			granted[strings.ToLower(a)] = true
		}
	}
	// MNS SDK calls and the RAM action each needs. The per-API pages name the batch forms'
	// own actions (BatchReceiveMessage → mns:BatchReceiveMessage); "Permission policies and
	// examples" maps them to the single-message actions. The policy must satisfy both.
	mnsActions := map[string]string{
		"SendMessage": "mns:SendMessage", "BatchSendMessage": "mns:SendMessage",
		"ReceiveMessage": "mns:ReceiveMessage", "BatchReceiveMessage": "mns:BatchReceiveMessage",
		"DeleteMessage": "mns:DeleteMessage", "BatchDeleteMessage": "mns:DeleteMessage",
		"PeekMessage": "mns:PeekMessage", "BatchPeekMessage": "mns:PeekMessage",
		"ChangeMessageVisibility": "mns:ChangeMessageVisibility",
	}
	rpcCall := regexp.MustCompile(`\b(ecs|ess)\.Create([A-Za-z]+)Request\(\)`)
	mnsCall := regexp.MustCompile(`\.(Batch)?(Send|Receive|Delete|Peek)Message\(|\.ChangeMessageVisibility\(`)
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
		for _, m := range mnsCall.FindAllString(string(src), -1) {
			call := strings.TrimSuffix(strings.TrimPrefix(m, "."), "(")
			a := mnsActions[call]
			need[a] = append(need[a], filepath.Base(f))
		}
	}
	if len(need) == 0 {
		t.Fatal("found no API calls in alicloud/*.go: the patterns here are out of date")
	}
	for _, a := range sortedKeys(need) {
		if !granted[strings.ToLower(a)] {
			t.Errorf("%s (called in %s) is not granted by %s", a, strings.Join(slices.Compact(need[a]), ", "), policyPath)
		}
	}
	t.Logf("calls found: %v", sortedKeys(need))
}

// TestRAMPolicyMatchesSYAML checks the policy's placeholders (the pool tag key in the
// conditions, the dead-letter queue in the MNS resource) against s.yaml's defaults, and that
// the documents are the real RAM format.
func TestRAMPolicyMatchesSYAML(t *testing.T) {
	pol, raw := loadPolicy(t)
	tp := loadTemplate(t, nil, testAccountID)
	tagKey, _ := tp.vars["poolTagKey"].(string)
	dlq, _ := tp.vars["dlqQueue"].(string)

	var tagKeys, queues []string
	for _, st := range pol.Statements {
		for _, c := range st.Conditions {
			if k, ok := strings.CutPrefix(c.Key, "ecs:tag/"); ok {
				tagKeys = append(tagKeys, k)
			}
		}
		for _, r := range st.Resources {
			if strings.HasPrefix(r, "acs:mns:") {
				queues = append(queues, r)
			}
		}
	}
	if len(tagKeys) == 0 {
		t.Error("no ecs:tag/ condition in the policy")
	}
	for _, k := range tagKeys {
		if k != tagKey {
			t.Errorf("policy condition on ecs:tag/%s, s.yaml's pool tag key is %q", k, tagKey)
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
