// Package ram evaluates RAM (Resource Access Management) policy documents the way Alibaba
// Cloud does for identity-based policies, so that the local cloud refuses what production
// refuses.
//
// # Documents
//
// Parse reads the real JSON policy format:
//
//	{
//	  "Version": "1",
//	  "Statement": [{
//	    "Effect": "Allow",
//	    "Action": ["ecs:Describe*", "ecs:AttachNetworkInterface"],
//	    "Resource": "acs:ecs:*:*:eni/*",
//	    "Condition": {"StringEquals": {"ecs:tag/enipool": "web"}}
//	  }]
//	}
//
// Action, NotAction, Resource and NotResource take a string or a list. Patterns use "*"
// (any run of characters, colons and slashes included) and "?" (one character). Action
// names match case-insensitively; resources match case-sensitively. Sid and Principal are
// accepted and ignored (Principal only matters in trust policies). Any other element, an
// unknown condition operator or a Version other than "1" is a parse error, so a typo in a
// shipped policy fails its test instead of silently granting nothing.
//
// # Evaluation
//
// As in RAM: an explicit Deny in any statement wins; otherwise some Allow must match;
// otherwise the request is implicitly denied. The account itself (its root AccessKey) is
// always allowed. A statement matches a request when its action, its resource and every
// condition match. Inside Condition every operator must hold, inside an operator every key
// must hold, and a key holds when any of its values matches any value of the request
// context. A key absent from the context never satisfies a positive operator and always
// satisfies a negated one (StringNotEquals, StringNotLike, NumericNotEquals,
// DateNotEquals, NotIpAddress); that rule is the documented behaviour of AWS IAM, which RAM
// follows in practice; RAM's own documentation does not spell it out.
//
// # The per-action table
//
// RAM does not authorize an API call as one action on one resource. Each service
// publishes, per API, an authorization table: the RAM action, the resource types it
// supports (those marked "*" are required), and the condition keys it takes; an API without
// resource-level permissions is "All Resources" and is authorized on "*". RAM allows a
// call only if every resource it checks is allowed. AuthorizeCall models that: a call site
// states the facts of the request (Call: the action, every resource it touches with its
// tags, the tags it sets, the global keys) and DefaultTable turns them into RAM requests:
//
//   - a resource-level action is evaluated on each resource of a type its row lists, with
//     that resource's keys; a call missing a required type, naming no resource, or naming
//     a resource of a type the row does not list is a bug in the emulator and fails with
//     ErrNotModelled (also for the account, so every test exercises the table);
//   - an All Resources action is evaluated once on "*", so a statement scoped to an ARN
//     pattern (acs:ess:*:*:scalinggroup/*) does not allow it, as on RAM;
//   - MNS batch APIs are authorized as their own action, as the single-message action the
//     mapping table folds them into, or as both (the default; see MNSBatch).
//
// Confirmed, from the tables' own preamble (on the ECS and ESS API pages): required
// types are marked "*" and their ARN goes in the Resource element; an API without
// resource-level permissions shows "All Resources" and takes "*". Assumed: that RAM checks
// each resource of a call separately and refuses the call if any is refused (the preamble
// does not spell it out; AWS's equivalent tables say the caller needs permission on every
// required resource), and that an optional type is checked when the call names one.
//
// The rows, their sources and their status are in testdata/ram-table.json:
// confirmed (read in a copy of the page named), reported (another source states the row,
// but the page's own table could not be read) or assumed (no table; the row says why). TestTableMatchesRecord keeps the record equal to DefaultTable.
// In short:
//
//	ecs:DescribeInstances               instance/* or instance/{id}, optional   confirmed
//	ecs:DescribeNetworkInterfaces       eni/{id}, optional                      confirmed
//	ecs:DescribeInstanceTypes           All Resources                           assumed: the page publishes no table
//	ecs:AttachNetworkInterface          *eni/{id}, *instance/{id}               assumed: as Detach, the page publishes none
//	ecs:DetachNetworkInterface          *eni/{id}, *instance/{id}               confirmed
//	ecs:CreateNetworkInterface          *eni/*, *securitygroup/{id},            confirmed
//	                                    *acs:vpc:…:vswitch/{id}
//	ecs:DeleteNetworkInterface          *eni/{id}                               confirmed
//	ess:CompleteLifecycleAction         All Resources                           reported
//	ess:RecordLifecycleActionHeartbeat  *scalinggroup/{id}                      reported
//	ess:DescribeLifecycleActions        scalinggroup/{id}, optional             assumed
//	ess:DescribeScalingInstances        scalinggroup/{id}, optional             assumed
//	mns:<message APIs>                  */queues/{name}/messages                confirmed (mapping table)
//	mns:BatchReceiveMessage             own action (API page) or                confirmed, both
//	                                    mns:ReceiveMessage (mapping table)
//
// # Condition keys
//
// For each resource RAM evaluates, the context holds the request's global keys
// (acs:SourceIp, acs:CurrentTime in ISO 8601 UTC, acs:SecureTransport "true"/"false"),
// and:
//
//   - acs:ResourceTag/<key> and <service>:tag/<key> (ecs:tag/<key>, <service> from the
//     ARN): the tags the resource carries; for a list call, the request's Tag.N filter;
//   - acs:RequestTag/<key>: the tags the request sets (a create's or TagResources' Tag.N),
//     for every resource of the request;
//   - for the resource the action creates (CreateNetworkInterface's eni/*), which has no
//     tags yet, <service>:tag/<key> holds the tags the request sets.
//
// Options.TagKeys can restrict the context to one form (TagKeysService, TagKeysACS): a
// policy's tests run under each, to prove it holds whichever form RAM evaluates.
//
// Sources: ECS's tag guide uses acs:ResourceTag/<key>
// (https://www.alibabacloud.com/help/en/ecs/user-guide/manage-resource-permissions-with-tags);
// RAM's ECS tag use case uses ecs:tag/<key> for existing resources and for the tags of a
// create (https://www.alibabacloud.com/help/en/ram/use-cases/use-tags-to-control-access-to-ecs-resources-1).
// Assumed: that RAM evaluates all three forms for every ECS action the function calls
// (the tables of Attach, Detach and Delete list no condition keys, and tag keys are not
// listed per action anywhere we could read), that a list call's tag filter stands for the
// listed resources' tags, and that acs:RequestTag is request-wide while the tags of the
// security group and vSwitch of a create are their own (the strictest reading: a policy
// that passes here passes under the others). Action-specific keys the tables list
// (vpc:IsDefaultVSwitch, ResourceOwner) are not evaluated: the world has no data for
// them. Condition key names match case-insensitively in their "service:key" part; the
// part after "/" (a tag key) is case-sensitive, as ECS tag keys are.
//
// ARNs have the form acs:<service>:<region>:<account-id>:<relative-id>; the templates are
// the tables' own (acs:ecs:{#regionId}:{#accountId}:eni/{#eniId}), and MNS's is
// acs:mns:{region}:{account}:/queues/{name}/messages for message APIs, .../queues/{name}
// for queue APIs and .../queues for ListQueue (MNS mapping table,
// https://help.aliyun.com/zh/mns/b3asrm).
package ram
