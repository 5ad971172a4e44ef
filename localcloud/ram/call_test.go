package ram

import (
	"errors"
	"testing"

	"github.com/enipool/enipool/localcloud/auth"
)

const (
	callENI       = "acs:ecs:cn-hangzhou:1:eni/eni-1"
	callInstance  = "acs:ecs:cn-hangzhou:1:instance/i-1"
	callNewENI    = "acs:ecs:cn-hangzhou:1:eni/*"
	callSG        = "acs:ecs:cn-hangzhou:1:securitygroup/sg-1"
	callVSwitch   = "acs:vpc:cn-hangzhou:1:vswitch/vsw-1"
	callGroup     = "acs:ess:cn-hangzhou:1:scalinggroup/asg-1"
	callDLQ       = "acs:mns:cn-hangzhou:1:/queues/dlq/messages"
	callDisk      = "acs:ecs:cn-hangzhou:1:disk/d-1"
	callInstances = "acs:ecs:cn-hangzhou:1:instance/*"
)

var pool = map[string]string{"enipool": "web"}

func createCall(tags map[string]string) Call {
	return Call{Action: "ecs:CreateNetworkInterface", RequestTags: tags,
		Resources: []Resource{{ARN: callNewENI}, {ARN: callSG}, {ARN: callVSwitch}}}
}

func attachCall(instanceTags, eniTags map[string]string) Call {
	return Call{Action: "ecs:AttachNetworkInterface",
		Resources: []Resource{{ARN: callInstance, Tags: instanceTags}, {ARN: callENI, Tags: eniTags}}}
}

// callCase is one TestAuthorizeCall case: the statements of the policy, the MNS batch mode,
// the call, and deniedOn, the resource of the refused RAM request ("" when allowed).
type callCase struct {
	name, policy string
	mode         MNSBatch
	call         Call
	deniedOn     string
}

// TestAuthorizeCall checks the per-action model: every required resource is authorized
// with its own keys, All Resources actions on "*", MNS batch APIs per MNSBatch.
func TestAuthorizeCall(t *testing.T) {
	user := auth.Principal{Name: "fn", Kind: auth.KindRole, AccountID: "1"}
	tests := []callCase{
		{"create: the ENI alone is not enough",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"acs:ecs:*:*:eni/*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`,
			0, createCall(pool), callSG},
		{"create: ENI by ecs:tag, placement without condition",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"acs:ecs:*:*:eni/*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}},
			 {"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":["acs:ecs:*:*:securitygroup/*","acs:vpc:*:*:vswitch/*"]}`,
			0, createCall(pool), ""},
		{"create: vSwitch missing from the policy",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":["acs:ecs:*:*:eni/*","acs:ecs:*:*:securitygroup/*"]}`,
			0, createCall(pool), callVSwitch},
		{"create: untagged ENI refused",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"acs:ecs:*:*:eni/*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}},
			 {"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":["acs:ecs:*:*:securitygroup/*","acs:vpc:*:*:vswitch/*"]}`,
			0, createCall(nil), callNewENI},
		{"create: acs:RequestTag holds for every resource",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"*","Condition":{"StringEquals":{"acs:RequestTag/enipool":"web"}}}`,
			0, createCall(pool), ""},
		{"create: ecs:tag of the security group is its own, not the request's",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`,
			0, createCall(pool), callSG},
		{"create: the new ENI has no acs:ResourceTag",
			`{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"acs:ecs:*:*:eni/*","Condition":{"StringEquals":{"acs:ResourceTag/enipool":"web"}}},
			 {"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":["acs:ecs:*:*:securitygroup/*","acs:vpc:*:*:vswitch/*"]}`,
			0, createCall(pool), callNewENI},
		{"attach: both resources tagged",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:*:*:eni/*","acs:ecs:*:*:instance/*"],"Condition":{"StringLike":{"ecs:tag/enipool":"*"}}}`,
			0, attachCall(pool, pool), ""},
		{"attach: instance without the tag",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:*:*:eni/*","acs:ecs:*:*:instance/*"],"Condition":{"StringLike":{"ecs:tag/enipool":"*"}}}`,
			0, attachCall(nil, pool), callInstance},
		{"attach: policy names the ENI only",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"acs:ecs:*:*:eni/*"}`,
			0, attachCall(pool, pool), callInstance},
		{"attach: acs:ResourceTag",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringEquals":{"acs:ResourceTag/enipool":"web"}}}`,
			0, attachCall(pool, map[string]string{"enipool": "db"}), callENI},
		{"attach: tags are not request tags",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringLike":{"acs:RequestTag/enipool":"*"}}}`,
			0, attachCall(pool, pool), callInstance},
		{"list: the filter stands for the listed resources' tags",
			`{"Effect":"Allow","Action":"ecs:DescribeInstances","Resource":"acs:ecs:*:*:instance/*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`,
			0, Call{Action: "ecs:DescribeInstances", Resources: []Resource{{ARN: callInstances, Tags: pool}}}, ""},
		{"list: no filter, no tag",
			`{"Effect":"Allow","Action":"ecs:DescribeInstances","Resource":"acs:ecs:*:*:instance/*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`,
			0, Call{Action: "ecs:DescribeInstances", Resources: []Resource{{ARN: callInstances}}}, callInstances},
		{"all resources: a scoped statement does not allow it",
			`{"Effect":"Allow","Action":"ess:CompleteLifecycleAction","Resource":"acs:ess:*:*:scalinggroup/*"}`,
			0, Call{Action: "ess:CompleteLifecycleAction", Resources: []Resource{{ARN: callGroup}}}, "*"},
		{"all resources: granted on *",
			`{"Effect":"Allow","Action":"ess:CompleteLifecycleAction","Resource":"*"}`,
			0, Call{Action: "ess:CompleteLifecycleAction"}, ""},
		{"heartbeat: scaling group",
			`{"Effect":"Allow","Action":"ess:RecordLifecycleActionHeartbeat","Resource":"acs:ess:*:*:scalinggroup/asg-1"}`,
			0, Call{Action: "ess:RecordLifecycleActionHeartbeat", Resources: []Resource{{ARN: callGroup}}}, ""},
		// Pinned policies (deploy.RAMPolicy renders them): region and account are matched as
		// written, tag values exactly.
		{"pinned: the deployment's region and account",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:cn-hangzhou:1:eni/*","acs:ecs:cn-hangzhou:1:instance/*"]}`,
			0, attachCall(pool, pool), ""},
		{"pinned: another region",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:cn-shanghai:1:eni/*","acs:ecs:cn-shanghai:1:instance/*"]}`,
			0, attachCall(pool, pool), callInstance},
		{"pinned: a region that only starts like it",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:cn-hangzhou-finance:1:eni/*","acs:ecs:cn-hangzhou-finance:1:instance/*"]}`,
			0, attachCall(pool, pool), callInstance},
		{"pinned: another account",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:cn-hangzhou:2:eni/*","acs:ecs:cn-hangzhou:2:instance/*"]}`,
			0, attachCall(pool, pool), callInstance},
		{"pinned: an account that only ends like it",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":["acs:ecs:cn-hangzhou:11:eni/*","acs:ecs:cn-hangzhou:11:instance/*"]}`,
			0, attachCall(pool, pool), callInstance},
		{"pinned: a pool value listed",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringEquals":{"ecs:tag/enipool":["db","web"]}}}`,
			0, attachCall(pool, pool), ""},
		{"pinned: a pool value not listed",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringEquals":{"ecs:tag/enipool":["db","web"]}}}`,
			0, attachCall(pool, map[string]string{"enipool": "cache"}), callENI},
		{"pinned: a value that only starts like a listed one",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`,
			0, attachCall(pool, map[string]string{"enipool": "web2"}), callENI},
		{"pinned: tag values are case-sensitive",
			`{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`,
			0, attachCall(map[string]string{"enipool": "Web"}, pool), callInstance},
		{"pinned: a scaling group not listed",
			`{"Effect":"Allow","Action":"ess:RecordLifecycleActionHeartbeat","Resource":"acs:ess:cn-hangzhou:1:scalinggroup/asg-2"}`,
			0, Call{Action: "ess:RecordLifecycleActionHeartbeat", Resources: []Resource{{ARN: callGroup}}}, callGroup},
		{"global keys reach every request",
			`{"Effect":"Allow","Action":"ess:CompleteLifecycleAction","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}`,
			0, Call{Action: "ess:CompleteLifecycleAction", Context: map[string][]string{"acs:SourceIp": {"192.168.0.1"}}}, "*"},
	}
	batch := Call{Action: "mns:BatchReceiveMessage", Resources: []Resource{{ARN: callDLQ}}}
	single := `{"Effect":"Allow","Action":"mns:ReceiveMessage","Resource":"acs:mns:*:*:/queues/dlq/messages"}`
	own := `{"Effect":"Allow","Action":"mns:BatchReceiveMessage","Resource":"acs:mns:*:*:/queues/dlq/messages"}`
	for _, m := range []struct {
		mode             MNSBatch
		single, own, all bool
	}{
		{MNSBatchBoth, false, false, true},
		{MNSBatchOwnAction, false, true, true},
		{MNSBatchFolded, true, false, true},
	} {
		deny := func(allowed bool) string {
			if allowed {
				return ""
			}
			return callDLQ
		}
		name := "batch receive, " + m.mode.String() + ": "
		tests = append(tests,
			callCase{name + "mns:ReceiveMessage only", single, m.mode, batch, deny(m.single)},
			callCase{name + "mns:BatchReceiveMessage only", own, m.mode, batch, deny(m.own)},
			callCase{name + "both", single + "," + own, m.mode, batch, deny(m.all)},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuthorizerWith(Options{MNSBatch: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			a.Attach(user, MustParse(`{"Version":"1","Statement":[`+tt.policy+`]}`))
			err = a.AuthorizeCall(user, tt.call)
			if tt.deniedOn == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var d *DeniedError
			if !errors.As(err, &d) {
				t.Fatalf("err = %v, want a denial on %s", err, tt.deniedOn)
			}
			if d.Resource != tt.deniedOn {
				t.Fatalf("denied on %s (%v), want on %s", d.Resource, err, tt.deniedOn)
			}
		})
	}
}

// TestAuthorizeCallNotModelled checks that calls the table cannot place are emulator bugs,
// for RAM identities and the account alike.
func TestAuthorizeCallNotModelled(t *testing.T) {
	a := NewAuthorizer()
	role := auth.Principal{Name: "fn", Kind: auth.KindRole, AccountID: "1"}
	root := auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: "1"}
	a.Attach(role, MustParse(`{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`))
	tests := []struct {
		name string
		call Call
	}{
		{"unknown action", Call{Action: "ecs:RunInstances", Resources: []Resource{{ARN: callInstances}}}},
		{"required instance missing", Call{Action: "ecs:AttachNetworkInterface", Resources: []Resource{{ARN: callENI}}}},
		{"resource of another type", Call{Action: "ecs:AttachNetworkInterface", Resources: []Resource{{ARN: callInstance}, {ARN: callENI}, {ARN: callDisk}}}},
		{"create without its vSwitch", Call{Action: "ecs:CreateNetworkInterface", Resources: []Resource{{ARN: callNewENI}, {ARN: callSG}}}},
		{"list naming nothing", Call{Action: "ecs:DescribeInstances"}},
	}
	for _, tt := range tests {
		for _, p := range []auth.Principal{role, root} {
			t.Run(tt.name+"/"+string(p.Kind), func(t *testing.T) {
				err := a.AuthorizeCall(p, tt.call)
				if !errors.Is(err, ErrNotModelled) {
					t.Fatalf("err = %v, want ErrNotModelled", err)
				}
			})
		}
	}
	if err := a.AuthorizeCall(root, attachCall(nil, nil)); err != nil {
		t.Fatalf("the account, a call that fits: %v", err)
	}
}

// TestAuthorizeCallTagKeyForms checks that each TagKeys mode sets only its forms of tag
// keys, so a policy can be proven under each.
func TestAuthorizeCallTagKeyForms(t *testing.T) {
	user := auth.Principal{Name: "fn", Kind: auth.KindRole, AccountID: "1"}
	byService := `{"Effect":"Allow","Action":["ecs:AttachNetworkInterface","ecs:CreateNetworkInterface"],"Resource":"*","Condition":{"StringEquals":{"ecs:tag/enipool":"web"}}}`
	byResourceTag := `{"Effect":"Allow","Action":"ecs:AttachNetworkInterface","Resource":"*","Condition":{"StringEquals":{"acs:ResourceTag/enipool":"web"}}}`
	byRequestTag := `{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":"*","Condition":{"StringEquals":{"acs:RequestTag/enipool":"web"}}}`
	placement := `,{"Effect":"Allow","Action":"ecs:CreateNetworkInterface","Resource":["acs:ecs:*:*:securitygroup/*","acs:vpc:*:*:vswitch/*"]}`
	tests := []struct {
		name   string
		keys   TagKeys
		policy string
		call   Call
		allow  bool
	}{
		{"ecs:tag, all forms", TagKeysAll, byService, attachCall(pool, pool), true},
		{"ecs:tag, service form", TagKeysService, byService, attachCall(pool, pool), true},
		{"ecs:tag, acs forms", TagKeysACS, byService, attachCall(pool, pool), false},
		{"acs:ResourceTag, acs forms", TagKeysACS, byResourceTag, attachCall(pool, pool), true},
		{"acs:ResourceTag, service form", TagKeysService, byResourceTag, attachCall(pool, pool), false},
		{"create by ecs:tag, service form", TagKeysService, byService + placement, createCall(pool), true},
		{"create by ecs:tag, acs forms", TagKeysACS, byService + placement, createCall(pool), false},
		{"create by acs:RequestTag, acs forms", TagKeysACS, byRequestTag, createCall(pool), true},
		{"create by acs:RequestTag, service form", TagKeysService, byRequestTag, createCall(pool), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuthorizerWith(Options{TagKeys: tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			a.Attach(user, MustParse(`{"Version":"1","Statement":[`+tt.policy+`]}`))
			err = a.AuthorizeCall(user, tt.call)
			var d *DeniedError
			switch {
			case tt.allow && err != nil:
				t.Fatalf("refused: %v", err)
			case !tt.allow && !errors.As(err, &d):
				t.Fatalf("err = %v, want a denial", err)
			}
		})
	}
}
