package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ManagedTag is the tag the warm target puts (value "true") on the ENIs it creates; it
// deletes no other ENI. It is engine.ManagedTag, repeated here so that this package
// depends on nothing (package localcloud/world imports it); a test keeps the two equal.
const ManagedTag = "enipool:managed"

// Deployment is what the function's RAM policy depends on: where the function runs and
// what it serves. The policy command (deploy/cmd/policy) reads it from s.yaml, the local
// cloud's worlds from their own files (localcloud/world, policies[].rendered).
type Deployment struct {
	// Region and AccountID pin every resource the policy names that RAM lets a policy pin.
	Region    string
	AccountID string
	// TagKey is the pool tag's key (ENIPOOL_TAG_KEY).
	TagKey string
	// Pools are the pool tag values the deployment serves (ENIPOOL_POOLS), at least one.
	// Any ("*") alone means any value: the tag conditions then accept any value of TagKey.
	// Empty is refused, so a policy open to every pool is always somebody's explicit choice.
	Pools []string
	// ScalingGroups are the scaling groups whose lifecycle hooks the deployment serves
	// (ENIPOOL_SCALING_GROUPS), at least one. Any ("*") alone means any scaling group of the
	// region and account; empty is refused, as for Pools.
	ScalingGroups []string
	// DeadLetterQueue is the MNS queue of the dead letters (ENIPOOL_DLQ_QUEUE).
	DeadLetterQueue string
	// Warm is the warm target's configuration; nil when it is off, and then the policy
	// grants no create and no delete.
	Warm *Warm
}

// Warm is what the warm target's statements depend on (ENIPOOL_WARM_*).
type Warm struct {
	Pool           string   `json:"pool" yaml:"pool"`
	VSwitches      []string `json:"vswitches" yaml:"vswitches"`
	SecurityGroups []string `json:"securityGroups" yaml:"securityGroups"`
}

// Any, alone in Deployment.Pools or Deployment.ScalingGroups, means any pool or any scaling
// group: an explicit choice, where an empty list is refused.
const Any = "*"

// isAny reports whether list is exactly [Any].
func isAny(list []string) bool { return len(list) == 1 && list[0] == Any }

var (
	reRegion  = regexp.MustCompile(`^[a-z]+(-[a-z0-9]+)+$`)
	reAccount = regexp.MustCompile(`^[0-9]+$`)
	reGroup   = regexp.MustCompile(`^asg-[A-Za-z0-9]+$`)
	reVSwitch = regexp.MustCompile(`^vsw-[A-Za-z0-9]+$`)
	reSG      = regexp.MustCompile(`^sg-[A-Za-z0-9]+$`)
	reQueue   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,119}$`)
)

// Validate reports every field that would make a wrong policy: one that names no region or
// account, or puts a pattern character into a resource or condition where an id belongs.
func (d Deployment) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !reRegion.MatchString(d.Region) {
		bad("region %q is not a region id such as cn-hangzhou", d.Region)
	}
	if !reAccount.MatchString(d.AccountID) {
		bad("account id %q is not digits", d.AccountID)
	}
	if d.TagKey == "" || strings.ContainsAny(d.TagKey, "*?") {
		bad("tag key %q: want a key without * or ?", d.TagKey)
	}
	switch {
	case len(d.Pools) == 0:
		bad("no pools: list the pool tag values served, or %q alone for any pool", Any)
	case !isAny(d.Pools):
		for _, p := range d.Pools {
			if p == "" || strings.ContainsAny(p, "*?") {
				bad("pool %q: want a tag value without * or ?, or %q alone for any pool", p, Any)
			}
		}
	}
	switch {
	case len(d.ScalingGroups) == 0:
		bad("no scaling groups: list the scaling groups served, or %q alone for any scaling group", Any)
	case !isAny(d.ScalingGroups):
		for _, g := range d.ScalingGroups {
			if !reGroup.MatchString(g) {
				bad("scaling group %q is not a scaling group id (asg-...), nor %q alone for any scaling group", g, Any)
			}
		}
	}
	if !reQueue.MatchString(d.DeadLetterQueue) {
		bad("dead-letter queue %q is not an MNS queue name", d.DeadLetterQueue)
	}
	if w := d.Warm; w != nil {
		if w.Pool == "" || strings.ContainsAny(w.Pool, "*?") {
			bad("warm pool %q: want a tag value without * or ?", w.Pool)
		}
		if !isAny(d.Pools) && !slices.Contains(d.Pools, w.Pool) {
			bad("warm pool %q is not among the pools served %v", w.Pool, d.Pools)
		}
		if len(w.VSwitches) == 0 || len(w.SecurityGroups) == 0 {
			bad("the warm target needs its vSwitches and security groups")
		}
		for _, v := range w.VSwitches {
			if !reVSwitch.MatchString(v) {
				bad("warm vSwitch %q is not a vSwitch id (vsw-...)", v)
			}
		}
		for _, s := range w.SecurityGroups {
			if !reSG.MatchString(s) {
				bad("warm security group %q is not a security group id (sg-...)", s)
			}
		}
	}
	return errors.Join(errs...)
}

// Statement is one statement of a rendered policy, in RAM's JSON format.
type Statement struct {
	Sid       string
	Effect    string
	Action    []string
	Resource  []string
	Condition map[string]map[string][]string `json:",omitempty"`
}

// Policy is a rendered policy document.
type Policy struct {
	Version   string
	Statement []Statement
}

// JSON is the document as written to ram-policy.json: indented, with a final newline.
func (p Policy) JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		panic(err) // strings, lists and maps of them always encode
	}
	return b.Bytes()
}

// RAMPolicy renders the function role's policy for d: exactly the calls the function
// makes, on the deployment's region and account, the listed pools and scaling groups (or,
// where d says Any, any), and the warm target's calls only when it is configured. deploy/README.md explains each
// statement.
func RAMPolicy(d Deployment) (Policy, error) {
	if err := d.Validate(); err != nil {
		return Policy{}, fmt.Errorf("deploy: %w", err)
	}
	arn := func(service, resource string) string {
		return "acs:" + service + ":" + d.Region + ":" + d.AccountID + ":" + resource
	}
	// tagged returns the statement twice, once per form of tag condition key RAM may
	// evaluate (ecs:tag/<key>, or acs:ResourceTag/<key> and acs:RequestTag/<key>), each
	// requiring the tags of want; a value "" requires only that the key be present.
	tagged := func(st Statement, acsForm string, want map[string][]string) []Statement {
		forms := []struct{ suffix, prefix string }{{"", "ecs:tag/"}, {"By" + strings.TrimPrefix(acsForm, "acs:"), acsForm + "/"}}
		var out []Statement
		for _, f := range forms {
			s := st
			s.Sid += f.suffix
			s.Condition = map[string]map[string][]string{}
			for key, values := range want {
				op := "StringEquals"
				if len(values) == 0 {
					op, values = "StringLike", []string{"*"}
				}
				if s.Condition[op] == nil {
					s.Condition[op] = map[string][]string{}
				}
				s.Condition[op][f.prefix+key] = values
			}
			out = append(out, s)
		}
		return out
	}
	var pools []string // none: any value of the key
	if !isAny(d.Pools) {
		pools = sorted(d.Pools)
	}

	var sts []Statement
	sts = append(sts,
		Statement{Sid: "Describe", Effect: "Allow",
			Action:   []string{"ecs:DescribeInstances", "ecs:DescribeNetworkInterfaces"},
			Resource: []string{arn("ecs", "instance/*"), arn("ecs", "eni/*")}},
		Statement{Sid: "DescribeInstanceTypes", Effect: "Allow",
			Action: []string{"ecs:DescribeInstanceTypes"}, Resource: []string{"*"}},
	)
	sts = append(sts, tagged(Statement{Sid: "AttachDetachPoolENIs", Effect: "Allow",
		Action:   []string{"ecs:AttachNetworkInterface", "ecs:DetachNetworkInterface"},
		Resource: []string{arn("ecs", "instance/*"), arn("ecs", "eni/*")}},
		"acs:ResourceTag", map[string][]string{d.TagKey: pools})...)
	if w := d.Warm; w != nil {
		warmTags := map[string][]string{d.TagKey: {w.Pool}, ManagedTag: {"true"}}
		sts = append(sts, tagged(Statement{Sid: "WarmTargetCreate", Effect: "Allow",
			Action: []string{"ecs:CreateNetworkInterface"}, Resource: []string{arn("ecs", "eni/*")}},
			"acs:RequestTag", warmTags)...)
		var placement []string
		for _, sg := range sorted(w.SecurityGroups) {
			placement = append(placement, arn("ecs", "securitygroup/"+sg))
		}
		for _, vsw := range sorted(w.VSwitches) {
			placement = append(placement, arn("vpc", "vswitch/"+vsw))
		}
		sts = append(sts, Statement{Sid: "WarmTargetPlacement", Effect: "Allow",
			Action: []string{"ecs:CreateNetworkInterface"}, Resource: placement})
		sts = append(sts, tagged(Statement{Sid: "WarmTargetDelete", Effect: "Allow",
			Action: []string{"ecs:DeleteNetworkInterface"}, Resource: []string{arn("ecs", "eni/*")}},
			"acs:ResourceTag", warmTags)...)
	}
	groups := []string{arn("ess", "scalinggroup/*")}
	if !isAny(d.ScalingGroups) {
		groups = nil
		for _, g := range sorted(d.ScalingGroups) {
			groups = append(groups, arn("ess", "scalinggroup/"+g))
		}
	}
	sts = append(sts,
		Statement{Sid: "LifecycleCompletion", Effect: "Allow",
			Action: []string{"ess:CompleteLifecycleAction"}, Resource: []string{"*"}},
		Statement{Sid: "LifecycleHooks", Effect: "Allow",
			Action:   []string{"ess:RecordLifecycleActionHeartbeat", "ess:DescribeLifecycleHooks", "ess:DescribeScalingInstances"},
			Resource: groups},
		Statement{Sid: "LifecycleActionReads", Effect: "Allow",
			Action: []string{"ess:DescribeLifecycleActions"}, Resource: []string{arn("ess", "scalinggroup/*")}},
		Statement{Sid: "DeadLetterQueue", Effect: "Allow",
			Action:   []string{"mns:SendMessage", "mns:BatchReceiveMessage", "mns:ReceiveMessage", "mns:DeleteMessage", "mns:ChangeMessageVisibility"},
			Resource: []string{arn("mns", "/queues/"+d.DeadLetterQueue+"/messages")}},
	)
	return Policy{Version: "1", Statement: sts}, nil
}

// TrustPolicy is the trust policy of the function's role: Function Compute may assume it.
// A Service principal is the service of the role's own account only (RAM, "Modify the
// trust policy of a RAM role"); no documented condition key narrows it to one function,
// so the policy cannot (deploy/README.md, "The trust policy").
func TrustPolicy() []byte {
	return []byte(`{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "sts:AssumeRole",
      "Principal": {
        "Service": [
          "fc.aliyuncs.com"
        ]
      }
    }
  ]
}
`)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
