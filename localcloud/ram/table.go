package ram

import (
	"fmt"
	"strings"
)

// ActionSpec is one row of a RAM authorization table: an API action and the resources
// RAM checks when it is called. The rows the local cloud uses are DefaultTable's; the
// package documentation says where each comes from and which are assumptions.
type ActionSpec struct {
	// Action is "<service>:<API>", as the table's Action column names it.
	Action string
	// AllResources marks an action without resource-level permissions ("All Resources"
	// in the table): RAM authorizes it on "*", so only a statement whose Resource
	// matches "*" can allow it.
	AllResources bool
	// Resources are the resource types the action supports (ignored when AllResources).
	Resources []ResourceType
	// FoldedInto is the RAM action another of Alibaba's tables authorizes this API as
	// (MNS's mapping table folds BatchReceiveMessage into mns:ReceiveMessage); empty when
	// the tables agree. Which one applies is Options.MNSBatch.
	FoldedInto string
}

// ResourceType is one resource type an action supports.
type ResourceType struct {
	// Name is the table's name for the type ("NetworkInterface").
	Name string
	// ARN is the table's ARN template, {#...} being placeholders:
	// "acs:ecs:{#regionId}:{#accountId}:eni/{#eniId}".
	ARN string
	// Required types are marked "*" in the table: every call names one, and the call is
	// allowed only if each is.
	Required bool
	// Created marks the resource the action creates (CreateNetworkInterface's eni/*): it
	// has no tags yet, so its <service>:tag/<key> keys are the tags the request sets.
	Created bool
}

// pattern is the ARN template with every placeholder turned into "*".
func (r ResourceType) pattern() string {
	var b strings.Builder
	rest := r.ARN
	for {
		i := strings.Index(rest, "{#")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i])
		b.WriteByte('*')
		rest = rest[i+j+1:]
	}
}

// typeOf returns the resource type of spec that arn is of.
func (s ActionSpec) typeOf(arn string) (ResourceType, bool) {
	for _, r := range s.Resources {
		if Match(r.pattern(), arn) {
			return r, true
		}
	}
	return ResourceType{}, false
}

// ARN templates of the resource types the local cloud authorizes.
const (
	arnInstance      = "acs:ecs:{#regionId}:{#accountId}:instance/{#instanceId}"
	arnInstances     = "acs:ecs:{#regionId}:{#accountId}:instance/*"
	arnENI           = "acs:ecs:{#regionId}:{#accountId}:eni/{#eniId}"
	arnENIs          = "acs:ecs:{#regionId}:{#accountId}:eni/*"
	arnSecurityGroup = "acs:ecs:{#regionId}:{#accountId}:securitygroup/{#securitygroupId}"
	arnVSwitch       = "acs:vpc:{#regionId}:{#accountId}:vswitch/{#vswitchId}"
	arnScalingGroup  = "acs:ess:{#regionId}:{#accountId}:scalinggroup/{#ScalingGroupId}"
	arnQueues        = "acs:mns:{#regionId}:{#accountId}:/queues"
	arnQueue         = "acs:mns:{#regionId}:{#accountId}:/queues/{#queueName}"
	arnMessages      = "acs:mns:{#regionId}:{#accountId}:/queues/{#queueName}/messages"
)

// DefaultTable returns the per-action model of every action the local cloud authorizes
// (a fresh copy: callers may extend it, for example with a test service's actions).
// testdata/ram-table.json records the same rows with their sources and status, and a
// test keeps the two equal.
func DefaultTable() []ActionSpec {
	instance := ResourceType{Name: "Instance", ARN: arnInstance, Required: true}
	eni := ResourceType{Name: "NetworkInterface", ARN: arnENI, Required: true}
	optional := func(r ResourceType) ResourceType { r.Required = false; return r }
	messages := []ResourceType{{Name: "Queue", ARN: arnMessages, Required: true}}
	queue := []ResourceType{{Name: "Queue", ARN: arnQueue, Required: true}}
	return []ActionSpec{
		// ECS.
		{Action: "ecs:DescribeInstances", Resources: []ResourceType{
			{Name: "Instance", ARN: arnInstances}, optional(instance)}},
		{Action: "ecs:DescribeInstanceTypes", AllResources: true},
		{Action: "ecs:DescribeNetworkInterfaces", Resources: []ResourceType{optional(eni)}},
		{Action: "ecs:DescribeNetworkInterfaceAttribute", Resources: []ResourceType{eni}},
		{Action: "ecs:AttachNetworkInterface", Resources: []ResourceType{eni, instance}},
		{Action: "ecs:DetachNetworkInterface", Resources: []ResourceType{eni, instance}},
		{Action: "ecs:CreateNetworkInterface", Resources: []ResourceType{
			{Name: "NetworkInterface", ARN: arnENIs, Required: true, Created: true},
			{Name: "SecurityGroup", ARN: arnSecurityGroup, Required: true},
			{Name: "VSwitch", ARN: arnVSwitch, Required: true}}},
		{Action: "ecs:DeleteNetworkInterface", Resources: []ResourceType{eni}},
		{Action: "ecs:TagResources", Resources: []ResourceType{optional(instance), optional(eni)}},
		{Action: "ecs:UntagResources", Resources: []ResourceType{optional(instance), optional(eni)}},
		{Action: "ecs:ListTagResources", Resources: []ResourceType{optional(instance), optional(eni)}},
		// Auto Scaling.
		{Action: "ess:CompleteLifecycleAction", AllResources: true},
		{Action: "ess:RecordLifecycleActionHeartbeat", Resources: []ResourceType{
			{Name: "ScalingGroup", ARN: arnScalingGroup, Required: true}}},
		{Action: "ess:DescribeLifecycleActions", Resources: []ResourceType{
			{Name: "ScalingGroup", ARN: arnScalingGroup}}},
		{Action: "ess:DescribeScalingInstances", Resources: []ResourceType{
			{Name: "ScalingGroup", ARN: arnScalingGroup}}},
		// MNS.
		{Action: "mns:ListQueue", Resources: []ResourceType{{Name: "Queues", ARN: arnQueues, Required: true}}},
		{Action: "mns:CreateQueue", Resources: queue},
		{Action: "mns:DeleteQueue", Resources: queue},
		{Action: "mns:SetQueueAttributes", Resources: queue},
		{Action: "mns:GetQueueAttributes", Resources: queue},
		{Action: "mns:SendMessage", Resources: messages},
		{Action: "mns:BatchSendMessage", Resources: messages, FoldedInto: "mns:SendMessage"},
		{Action: "mns:ReceiveMessage", Resources: messages},
		{Action: "mns:BatchReceiveMessage", Resources: messages, FoldedInto: "mns:ReceiveMessage"},
		{Action: "mns:PeekMessage", Resources: messages},
		{Action: "mns:BatchPeekMessage", Resources: messages, FoldedInto: "mns:PeekMessage"},
		{Action: "mns:DeleteMessage", Resources: messages},
		{Action: "mns:BatchDeleteMessage", Resources: messages, FoldedInto: "mns:DeleteMessage"},
		{Action: "mns:ChangeMessageVisibility", Resources: messages},
	}
}

// indexTable checks a table and indexes it by lower-cased action.
func indexTable(specs []ActionSpec) (map[string]ActionSpec, error) {
	out := make(map[string]ActionSpec, len(specs))
	for _, s := range specs {
		k := strings.ToLower(s.Action)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("ram: table: %s appears twice", s.Action)
		}
		if !strings.Contains(s.Action, ":") {
			return nil, fmt.Errorf("ram: table: %q is not <service>:<action>", s.Action)
		}
		if s.AllResources != (len(s.Resources) == 0) {
			return nil, fmt.Errorf("ram: table: %s: exactly one of AllResources and Resources is required", s.Action)
		}
		for _, r := range s.Resources {
			if !strings.HasPrefix(r.ARN, "acs:") || r.Name == "" {
				return nil, fmt.Errorf("ram: table: %s: resource type %+v needs a name and an acs: ARN", s.Action, r)
			}
		}
		out[k] = s
	}
	return out, nil
}
