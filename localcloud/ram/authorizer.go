package ram

import (
	"fmt"
	"sync"

	"github.com/enipool/enipool/localcloud/auth"
)

// Request is one authorization question: may the principal perform Action ("ecs:AttachNetworkInterface")
// on Resource (an ARN), given Context (condition keys such as "ecs:tag/enipool" or
// "acs:SourceIp" and their values)?
type Request struct {
	Action   string
	Resource string
	Context  map[string][]string
}

// DeniedError says which request was refused and why. Match it with errors.As.
type DeniedError struct {
	Principal auth.Principal
	Action    string
	Resource  string
	// Explicit is true when a Deny statement matched, false for an implicit deny (no Allow
	// matched).
	Explicit bool
	// Policy names the policy whose Deny matched (explicit denies only).
	Policy string
}

// Error describes the denial.
func (e *DeniedError) Error() string {
	kind := "implicitly"
	if e.Explicit {
		kind = "explicitly"
		if e.Policy != "" {
			kind += " (policy " + e.Policy + ")"
		}
	}
	return fmt.Sprintf("ram: %s %q is %s denied %s on %s", e.Principal.Kind, e.Principal.Name, kind, e.Action, e.Resource)
}

type principalKey struct{ account, name string }

// Authorizer holds the policies attached to each principal and answers authorization
// requests: AuthorizeCall for an API request, through the per-action table; Authorize
// for RAM requests already spelled out. It is safe for concurrent use. The zero value is
// not usable; use NewAuthorizer.
type Authorizer struct {
	table    map[string]ActionSpec // read-only after construction
	mnsBatch MNSBatch
	tagKeys  TagKeys

	mu       sync.RWMutex
	policies map[principalKey][]*Policy
}

// NewAuthorizer returns an Authorizer with DefaultTable, MNS batch APIs authorized as
// both actions, both forms of tag keys, and no policies: every RAM user and role is implicitly denied everything
// until policies are attached.
func NewAuthorizer() *Authorizer {
	a, err := NewAuthorizerWith(Options{})
	if err != nil {
		// DefaultTable is checked by the package's tests; failing here is a bug in it.
		panic(err)
	}
	return a
}

// NewAuthorizerWith returns an Authorizer configured by o, with no policies. It fails
// when the table is inconsistent (a duplicate action, an action that is neither All
// Resources nor has resource types).
func NewAuthorizerWith(o Options) (*Authorizer, error) {
	specs := o.Table
	if specs == nil {
		specs = DefaultTable()
	}
	table, err := indexTable(specs)
	if err != nil {
		return nil, err
	}
	switch o.MNSBatch {
	case MNSBatchBoth, MNSBatchOwnAction, MNSBatchFolded:
	default:
		return nil, fmt.Errorf("ram: unknown MNSBatch %d", int(o.MNSBatch))
	}
	switch o.TagKeys {
	case TagKeysAll, TagKeysService, TagKeysACS:
	default:
		return nil, fmt.Errorf("ram: unknown TagKeys %d", int(o.TagKeys))
	}
	return &Authorizer{table: table, mnsBatch: o.MNSBatch, tagKeys: o.TagKeys, policies: make(map[principalKey][]*Policy)}, nil
}

// Attach adds policies to a principal, as AttachPolicyToUser / AttachPolicyToRole do.
func (a *Authorizer) Attach(p auth.Principal, policies ...*Policy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := principalKey{p.AccountID, p.Name}
	a.policies[k] = append(a.policies[k], policies...)
}

// Detach removes every policy from a principal.
func (a *Authorizer) Detach(p auth.Principal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.policies, principalKey{p.AccountID, p.Name})
}

// Authorize answers RAM requests as given (action, resource ARN, condition keys), without
// the table, and returns nil when all are allowed, or a *DeniedError for the first one
// refused. Emulated APIs use AuthorizeCall, which builds these requests from the table.
func (a *Authorizer) Authorize(p auth.Principal, reqs ...Request) error {
	if p.Kind == auth.KindAccount {
		return nil
	}
	a.mu.RLock()
	pols := a.policies[principalKey{p.AccountID, p.Name}]
	a.mu.RUnlock()
	for _, r := range reqs {
		if err := evaluate(p, pols, r); err != nil {
			return err
		}
	}
	return nil
}

func evaluate(p auth.Principal, pols []*Policy, r Request) error {
	ctx := make(map[string][]string, len(r.Context))
	for k, v := range r.Context {
		ctx[NormalizeKey(k)] = v
	}
	allowed := false
	for _, pol := range pols {
		for _, st := range pol.Statements {
			if !st.matches(r, ctx) {
				continue
			}
			if st.Effect == Deny {
				return &DeniedError{Principal: p, Action: r.Action, Resource: r.Resource, Explicit: true, Policy: pol.Name}
			}
			allowed = true
		}
	}
	if !allowed {
		return &DeniedError{Principal: p, Action: r.Action, Resource: r.Resource}
	}
	return nil
}

func (st Statement) matches(r Request, ctx map[string][]string) bool {
	if len(st.Actions) > 0 && !anyMatch(st.Actions, r.Action, true) {
		return false
	}
	if len(st.NotActions) > 0 && anyMatch(st.NotActions, r.Action, true) {
		return false
	}
	if len(st.Resources) > 0 && !anyMatch(st.Resources, r.Resource, false) {
		return false
	}
	if len(st.NotResources) > 0 && anyMatch(st.NotResources, r.Resource, false) {
		return false
	}
	for _, c := range st.Conditions {
		if !c.holds(ctx[NormalizeKey(c.Key)]) {
			return false
		}
	}
	return true
}

func anyMatch(patterns []string, s string, foldCase bool) bool {
	for _, p := range patterns {
		if foldCase {
			if Match(toLower(p), toLower(s)) {
				return true
			}
		} else if Match(p, s) {
			return true
		}
	}
	return false
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ARN builds an Alibaba Cloud Resource Name: acs:<service>:<region>:<accountID>:<resource>.
func ARN(service, region, accountID, resource string) string {
	return "acs:" + service + ":" + region + ":" + accountID + ":" + resource
}
