package ram

import (
	"errors"
	"fmt"
	"strings"

	"github.com/enipool/enipool/localcloud/auth"
)

// MNSBatch says which RAM action authorizes an MNS batch API (BatchSendMessage,
// BatchReceiveMessage, BatchPeekMessage, BatchDeleteMessage). Alibaba's documentation
// disagrees: the per-API pages name the batch API's own action (mns:BatchReceiveMessage),
// the mapping table folds it into the single-message one (mns:ReceiveMessage).
type MNSBatch int

const (
	// MNSBatchBoth, the default, requires both actions to be allowed: a policy that
	// passes works whichever table production follows.
	MNSBatchBoth MNSBatch = iota
	// MNSBatchOwnAction follows the per-API pages (mns:BatchReceiveMessage).
	MNSBatchOwnAction
	// MNSBatchFolded follows the mapping table (mns:ReceiveMessage).
	MNSBatchFolded
)

// String names the mode.
func (m MNSBatch) String() string {
	switch m {
	case MNSBatchBoth:
		return "both"
	case MNSBatchOwnAction:
		return "own-action"
	case MNSBatchFolded:
		return "folded"
	}
	return fmt.Sprintf("MNSBatch(%d)", int(m))
}

// TagKeys says which forms of tag condition keys RAM puts in a request's context. Alibaba
// documents both <service>:tag/<key> and acs:ResourceTag/<key> with acs:RequestTag/<key>,
// and which ones RAM evaluates for a given ECS action is not documented.
type TagKeys int

const (
	// TagKeysAll, the default, sets both forms.
	TagKeysAll TagKeys = iota
	// TagKeysService sets only <service>:tag/<key> (ecs:tag/<key>).
	TagKeysService
	// TagKeysACS sets only acs:ResourceTag/<key> and acs:RequestTag/<key>.
	TagKeysACS
)

// String names the mode.
func (k TagKeys) String() string {
	switch k {
	case TagKeysAll:
		return "all"
	case TagKeysService:
		return "service"
	case TagKeysACS:
		return "acs"
	}
	return fmt.Sprintf("TagKeys(%d)", int(k))
}

// Options configures an Authorizer. The zero value is the local cloud's default.
type Options struct {
	// Table is the per-action model; nil means DefaultTable().
	Table []ActionSpec
	// MNSBatch picks the RAM action of MNS batch APIs.
	MNSBatch MNSBatch
	// TagKeys picks the forms of tag condition keys. Tests of a policy run it under each
	// form to prove it holds whichever RAM evaluates.
	TagKeys TagKeys
}

// ErrNotModelled is returned (wrapped) for a Call that the table cannot place: an action
// it has no row for, a resource of a type the action does not support, or a required
// resource type missing. It is a bug in the emulator's call site or the table, not a
// denial.
var ErrNotModelled = errors.New("ram: call does not fit the RAM table")

// Resource is one resource an API request touches.
type Resource struct {
	// ARN names it: acs:ecs:cn-hangzhou:123:eni/eni-1. For a list request, the list ARN
	// (…:instance/*); for a resource being created, its type's wildcard (…:eni/*).
	ARN string
	// Tags are the tags it carries: acs:ResourceTag/<key> and <service>:tag/<key> (service
	// from the ARN). For a list request, the request's tag filter (Tag.N).
	Tags map[string]string
}

// Call is one API request to authorize: the facts of the request. The table decides which
// RAM requests they become.
type Call struct {
	// Action is "<service>:<API>": "ecs:CreateNetworkInterface", "mns:BatchReceiveMessage".
	Action string
	// Resources are every resource the request touches.
	Resources []Resource
	// RequestTags are the tags the request sets (Tag.N of a create or of TagResources):
	// acs:RequestTag/<key> for every resource, and <service>:tag/<key> of the resource
	// the action creates.
	RequestTags map[string]string
	// Context holds the request's global condition keys (acs:SourceIp, acs:CurrentTime,
	// acs:SecureTransport) and their values.
	Context map[string][]string
}

// AuthorizeCall authorizes an API request the way the table says RAM does: each RAM
// action the API maps to, on every resource of a type the action supports ("*" for an
// All Resources action), with the condition keys of that resource. It returns nil when
// every one is allowed, a *DeniedError for the first refused, and an error wrapping
// ErrNotModelled when the call does not fit the table (checked for the account too, so
// that every test exercises the table).
func (a *Authorizer) AuthorizeCall(p auth.Principal, c Call) error {
	reqs, err := a.requests(c)
	if err != nil {
		return err
	}
	return a.Authorize(p, reqs...)
}

// requests turns a call into the RAM requests the table says RAM evaluates.
func (a *Authorizer) requests(c Call) ([]Request, error) {
	spec, ok := a.table[strings.ToLower(c.Action)]
	if !ok {
		return nil, fmt.Errorf("%w: no row for %s", ErrNotModelled, c.Action)
	}
	actions := []string{spec.Action}
	if spec.FoldedInto != "" {
		switch a.mnsBatch {
		case MNSBatchFolded:
			actions = []string{spec.FoldedInto}
		case MNSBatchBoth:
			actions = append(actions, spec.FoldedInto)
		}
	}
	requestCtx := make(map[string][]string, len(c.Context)+len(c.RequestTags))
	for k, v := range c.Context {
		requestCtx[k] = v
	}
	acs, svc := a.tagKeys != TagKeysService, a.tagKeys != TagKeysACS
	if acs {
		for k, v := range c.RequestTags {
			requestCtx["acs:RequestTag/"+k] = []string{v}
		}
	}

	var reqs []Request
	if spec.AllResources {
		for _, act := range actions {
			reqs = append(reqs, Request{Action: act, Resource: "*", Context: requestCtx})
		}
		return reqs, nil
	}
	seen := map[string]bool{}
	for _, r := range c.Resources {
		typ, ok := spec.typeOf(r.ARN)
		if !ok {
			return nil, fmt.Errorf("%w: %s does not take a resource %s", ErrNotModelled, c.Action, r.ARN)
		}
		seen[typ.Name] = true
		ctx := make(map[string][]string, len(requestCtx)+2*len(r.Tags))
		for k, v := range requestCtx {
			ctx[k] = v
		}
		service := arnService(r.ARN)
		for k, v := range r.Tags {
			if acs {
				ctx["acs:ResourceTag/"+k] = []string{v}
			}
			if svc {
				ctx[service+":tag/"+k] = []string{v}
			}
		}
		if typ.Created && svc {
			for k, v := range c.RequestTags {
				ctx[service+":tag/"+k] = []string{v}
			}
		}
		for _, act := range actions {
			reqs = append(reqs, Request{Action: act, Resource: r.ARN, Context: ctx})
		}
	}
	if len(reqs) == 0 {
		// An action whose types are all optional still acts on something: a call naming
		// nothing would otherwise be allowed unchecked.
		return nil, fmt.Errorf("%w: %s names no resource", ErrNotModelled, c.Action)
	}
	for _, typ := range spec.Resources {
		if typ.Required && !seen[typ.Name] {
			return nil, fmt.Errorf("%w: %s needs a %s resource (%s)", ErrNotModelled, c.Action, typ.Name, typ.ARN)
		}
	}
	return reqs, nil
}

// arnService is the service part of acs:<service>:<region>:<account>:<resource>.
func arnService(arn string) string {
	parts := strings.SplitN(arn, ":", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}
