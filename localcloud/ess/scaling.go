package ess

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// Scaling groups and their instances.
//
// The world names scaling groups only through its lifecycle hooks; the emulator keeps each
// group's instances here. An instance enters a group InService (AddInstances), or in the wait
// state of a lifecycle action (StartLifecycleAction, or a world's pending action):
// Pending:Wait for a SCALE_OUT hook, Removing:Wait for a SCALE_IN hook, with the action's
// scaling activity as its ScalingActivityId. When the action ends (completed, or timed out on
// the hook's default result) the instance moves on as the CompleteLifecycleAction reference
// describes the results: a scale-out CONTINUEd puts it InService, ABANDON or ROLLBACK takes it
// out of the group (Auto Scaling releases it); a scale-in ROLLBACK keeps it InService,
// CONTINUE or ABANDON removes it. The emulator changes only the group: it does not release or
// stop the ECS instance (tests that need that do it to the ECS store themselves).
//
// Real Auto Scaling holds an instance in one activity at a time. A world may name one
// instance in several pending actions at once (the demo world does, so that each sample event
// finds its own action in a fresh world): the instance then reports the oldest pending action
// that holds it, except to a call that filters by ScalingActivityId, which sees the
// instance's row for that activity.
//
// Assumed, not documented: that an instance in a wait state reports the activity that put it
// there as its ScalingActivityId (the reference says only "the ID of the scaling activity"),
// and that the ScalingActivityId filter selects on it.

// member is an instance of a scaling group outside any pending action.
type member struct {
	activity string // the activity of the last action that ended with it in the group
	created  time.Time
}

// ScalingInstance is an instance of a scaling group as DescribeScalingInstances reports it.
type ScalingInstance struct {
	InstanceID        string    `json:"instanceId"`
	ScalingGroupID    string    `json:"scalingGroupId"`
	LifecycleState    string    `json:"lifecycleState"`
	ScalingActivityID string    `json:"scalingActivityId,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
}

// AddInstances puts instances in a scaling group, InService, as a finished scale-out (or
// AttachInstances) leaves them.
func (s *Service) AddInstances(groupID string, instanceIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.group(groupID)
	for _, id := range instanceIDs {
		if _, ok := g[id]; !ok {
			g[id] = &member{created: s.now()}
		}
	}
}

// ScalingInstances returns the instances of a scaling group, by instance id, after applying
// any lifecycle action that timed out; activity, when not empty, picks each instance's row
// for that scaling activity (see the package's notes on overlapping actions).
func (s *Service) ScalingInstances(groupID, activity string) []ScalingInstance {
	acts := s.LifecycleActions() // expires what timed out; oldest first
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows(groupID, activity, acts)
}

// rows lists a group's instances; acts are every action, oldest first. The caller holds s.mu.
func (s *Service) rows(groupID, activity string, acts []LifecycleAction) []ScalingInstance {
	byID := map[string]ScalingInstance{}
	for id, m := range s.groups[groupID] {
		if activity == "" || m.activity == activity {
			byID[id] = ScalingInstance{InstanceID: id, ScalingGroupID: groupID, LifecycleState: StateInService, ScalingActivityID: m.activity, CreatedAt: m.created}
		}
	}
	held := map[string]bool{}
	for _, a := range acts {
		if a.Status != StatusPending || a.ScalingGroupID != groupID || (activity != "" && a.ScalingActivityID != activity) {
			continue
		}
		h, _ := s.w.LifecycleHook(a.HookID)
		state := StatePendingWait
		if h != nil && h.Transition == world.ScaleIn {
			state = StateRemovingWait
		}
		for _, id := range a.InstanceIDs {
			if held[id] {
				continue // an older pending action holds it
			}
			held[id] = true
			created := a.StartedAt
			if m, ok := s.groups[groupID][id]; ok {
				created = m.created
			}
			byID[id] = ScalingInstance{InstanceID: id, ScalingGroupID: groupID, LifecycleState: state, ScalingActivityID: a.ScalingActivityID, CreatedAt: created}
		}
	}
	out := make([]ScalingInstance, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out
}

// group returns a scaling group's members, creating the group. The caller holds s.mu.
func (s *Service) group(id string) map[string]*member {
	g, ok := s.groups[id]
	if !ok {
		g = map[string]*member{}
		s.groups[id] = g
	}
	return g
}

// release moves the instances of an action that ended on, per its result. The caller holds
// s.mu.
func (s *Service) release(a *LifecycleAction) {
	h, _ := s.w.LifecycleHook(a.HookID)
	stay := a.Result == world.ResultContinue
	if h != nil && h.Transition == world.ScaleIn {
		stay = a.Result == world.ResultRollback
	}
	g := s.group(a.ScalingGroupID)
	for _, id := range a.InstanceIDs {
		switch m, ok := g[id]; {
		case stay && ok:
			m.activity = a.ScalingActivityID
		case stay:
			g[id] = &member{activity: a.ScalingActivityID, created: a.StartedAt}
		default:
			delete(g, id)
		}
	}
}

// describeHooks serves DescribeLifecycleHooks. Parameters and response follow the SDK's
// DescribeLifecycleHooksRequest/Response (alibaba-cloud-sdk-go services/ess) and the API
// reference (api-ess-2014-08-28-describelifecyclehooks): LifecycleHookId.N takes precedence
// over ScalingGroupId and LifecycleHookName; PageSize 1-50, default 50; RAM checks
// ess:DescribeLifecycleHooks on the scaling group (required ScalingGroup type). Hook ids
// that do not exist are left out, not refused (assumed); a call naming neither ids nor a
// group lists the region's hooks (assumed).
func (s *Service) describeHooks(_ context.Context, c *rpc.Call) (any, error) {
	page, err := c.Int("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return nil, err
	}
	size, err := c.Int("PageSize", 50, 1, 50)
	if err != nil {
		return nil, err
	}
	if err := s.region(c); err != nil {
		return nil, err
	}
	ids := c.List("LifecycleHookId")
	group, name := c.Get("ScalingGroupId"), c.Get("LifecycleHookName")
	var hooks []*world.LifecycleHook
	for i := range s.w.LifecycleHooks {
		h := &s.w.LifecycleHooks[i]
		if c.RegionID != "" && h.Region != c.RegionID {
			continue
		}
		switch {
		case len(ids) > 0 && !slices.Contains(ids, h.ID):
			continue
		case len(ids) == 0 && group != "" && (h.ScalingGroupID != group || (name != "" && h.Name != name)):
			continue
		}
		hooks = append(hooks, h)
	}
	// RAM is asked about every scaling group the answer names (or the one the call names).
	groups := map[string]bool{}
	if group != "" && len(ids) == 0 {
		groups[group] = true
	}
	for _, h := range hooks {
		groups[h.ScalingGroupID] = true
	}
	var res []ram.Resource
	for g := range groups {
		res = append(res, ram.Resource{ARN: c.ARN("scalinggroup/" + g)})
	}
	if len(res) == 0 {
		res = []ram.Resource{{ARN: c.ARN("scalinggroup/*")}}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].ARN < res[j].ARN })
	if err := c.Authorize(ram.Call{Action: "ess:DescribeLifecycleHooks", Resources: res}); err != nil {
		return nil, err
	}
	resp := &describeHooksResponse{TotalCount: len(hooks), PageNumber: page, PageSize: size}
	resp.LifecycleHooks.LifecycleHook = []describedHook{}
	from := min((page-1)*size, len(hooks))
	for _, h := range hooks[from:min(from+size, len(hooks))] {
		resp.LifecycleHooks.LifecycleHook = append(resp.LifecycleHooks.LifecycleHook, describedHook{
			LifecycleHookId: h.ID, LifecycleHookName: h.Name, ScalingGroupId: h.ScalingGroupID,
			LifecycleTransition: h.Transition, DefaultResult: h.DefaultResult,
			HeartbeatTimeout: int(h.HeartbeatTimeout.D().Seconds()), LifecycleHookStatus: "Active",
			NotificationArn: fmt.Sprintf("acs:ess:%s:%s:null/null", h.Region, c.Principal.AccountID),
		})
	}
	return resp, nil
}

// describeHooksResponse is DescribeLifecycleHooksResponse's JSON shape.
type describeHooksResponse struct {
	TotalCount     int `json:"TotalCount"`
	PageNumber     int `json:"PageNumber"`
	PageSize       int `json:"PageSize"`
	LifecycleHooks struct {
		LifecycleHook []describedHook `json:"LifecycleHook"`
	} `json:"LifecycleHooks"`
}

// describedHook is the SDK's LifecycleHook struct's JSON shape.
type describedHook struct {
	LifecycleHookId      string `json:"LifecycleHookId"`
	LifecycleHookName    string `json:"LifecycleHookName"`
	ScalingGroupId       string `json:"ScalingGroupId"`
	LifecycleTransition  string `json:"LifecycleTransition"`
	DefaultResult        string `json:"DefaultResult"`
	HeartbeatTimeout     int    `json:"HeartbeatTimeout"`
	NotificationArn      string `json:"NotificationArn"`
	NotificationMetadata string `json:"NotificationMetadata"`
	LifecycleHookStatus  string `json:"LifecycleHookStatus"`
}

// maxInstanceIDs is how many InstanceId.N DescribeScalingInstances takes (API reference:
// "up to 20"; ids that do not exist are left out of the answer without an error).
const maxInstanceIDs = 20

// describeInstances serves DescribeScalingInstances. Parameters and response follow the
// SDK's DescribeScalingInstancesRequest/Response and the API reference
// (api-ess-2014-08-28-describescalinginstances): RegionId required; ScalingGroupId,
// InstanceId.N (at most 20), LifecycleState or LifecycleStates.N (not both),
// ScalingActivityId filter; PageNumber from 1, PageSize 1-50 default 10 (assumed, as
// ESS's other pages); RAM checks ess:DescribeScalingInstances on the scaling group
// (required ScalingGroup type). Filters the emulator has no data for (HealthStatus,
// CreationType, ScalingConfigurationId) are accepted and ignored; every instance is
// Healthy and AutoCreated.
func (s *Service) describeInstances(_ context.Context, c *rpc.Call) (any, error) {
	if c.RegionID == "" {
		return nil, rpc.MissingParameter("RegionId")
	}
	if err := s.region(c); err != nil {
		return nil, err
	}
	page, err := c.Int("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return nil, err
	}
	size, err := c.Int("PageSize", 10, 1, 50)
	if err != nil {
		return nil, err
	}
	ids := c.List("InstanceId")
	if len(ids) > maxInstanceIDs {
		return nil, rpc.InvalidParameter("InstanceId", fmt.Sprintf("At most %d instance ids.", maxInstanceIDs))
	}
	states := c.List("LifecycleStates")
	if st := c.Get("LifecycleState"); st != "" {
		if len(states) > 0 {
			return nil, rpc.InvalidParameter("LifecycleState", "Specify LifecycleState or LifecycleStates, not both.")
		}
		states = []string{st}
	}
	group, activity := c.Get("ScalingGroupId"), c.Get("ScalingActivityId")
	arn := c.ARN("scalinggroup/*")
	if group != "" {
		arn = c.ARN("scalinggroup/" + group)
	}
	if err := c.Authorize(ram.Call{Action: "ess:DescribeScalingInstances", Resources: []ram.Resource{{ARN: arn}}}); err != nil {
		return nil, err
	}
	acts := s.LifecycleActions() // expires what timed out; oldest first
	s.mu.Lock()
	groups := map[string]bool{}
	if group != "" {
		groups[group] = true
	} else {
		for g := range s.groups {
			groups[g] = true
		}
		for _, a := range acts {
			groups[a.ScalingGroupID] = true
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var match []ScalingInstance
	for _, g := range names {
		for _, m := range s.rows(g, activity, acts) {
			if (len(ids) > 0 && !slices.Contains(ids, m.InstanceID)) || (len(states) > 0 && !slices.Contains(states, m.LifecycleState)) {
				continue
			}
			match = append(match, m)
		}
	}
	s.mu.Unlock()

	resp := &describeInstancesResponse{TotalCount: len(match), PageNumber: page, PageSize: size}
	resp.ScalingInstances.ScalingInstance = []describedInstance{}
	from := min((page-1)*size, len(match))
	for _, m := range match[from:min(from+size, len(match))] {
		at := m.CreatedAt.UTC().Format("2006-01-02T15:04Z")
		resp.ScalingInstances.ScalingInstance = append(resp.ScalingInstances.ScalingInstance, describedInstance{
			InstanceId: m.InstanceID, ScalingGroupId: m.ScalingGroupID, LifecycleState: m.LifecycleState,
			ScalingActivityId: m.ScalingActivityID, HealthStatus: "Healthy", CreationType: "AutoCreated",
			CreationTime: at, CreatedTime: at, Entrusted: true,
		})
	}
	return resp, nil
}

// describeInstancesResponse is DescribeScalingInstancesResponse's JSON shape.
type describeInstancesResponse struct {
	TotalCount       int `json:"TotalCount"`
	TotalSpotCount   int `json:"TotalSpotCount"`
	PageNumber       int `json:"PageNumber"`
	PageSize         int `json:"PageSize"`
	ScalingInstances struct {
		ScalingInstance []describedInstance `json:"ScalingInstance"`
	} `json:"ScalingInstances"`
}

// describedInstance is the part of the SDK's ScalingInstance struct the emulator fills.
type describedInstance struct {
	InstanceId        string `json:"InstanceId"`
	ScalingGroupId    string `json:"ScalingGroupId"`
	LifecycleState    string `json:"LifecycleState"`
	ScalingActivityId string `json:"ScalingActivityId"`
	HealthStatus      string `json:"HealthStatus"`
	CreationType      string `json:"CreationType"`
	CreationTime      string `json:"CreationTime"`
	CreatedTime       string `json:"CreatedTime"`
	Entrusted         bool   `json:"Entrusted"`
}
