// Package ess emulates the Auto Scaling (ESS) OpenAPI, version 2014-08-28, for lifecycle
// hooks: CompleteLifecycleAction, RecordLifecycleActionHeartbeat, and the reads that let a
// caller check a lifecycle notification before acting on it: DescribeLifecycleActions,
// DescribeLifecycleHooks and DescribeScalingInstances (scaling.go).
//
// Lifecycle actions come from the world's lifecycleHooks[].pending, or from
// StartLifecycleAction (what a scale-out would do). Each action waits for its hook's
// heartbeat timeout; RecordLifecycleActionHeartbeat restarts the wait; when it runs out
// the hook's default result applies (status Timeout, applied lazily on the next look).
// CompleteLifecycleAction records the result exactly once: whoever called, when, with
// which result. Tests read it with LifecycleAction.
//
// Parameter names follow the API, not a guess: CompleteLifecycleAction takes
// LifecycleHookId, LifecycleActionToken, LifecycleActionResult, ClientToken (PascalCase);
// RecordLifecycleActionHeartbeat takes lifecycleHookId, lifecycleActionToken,
// heartbeatTimeout (lower camel case, as in the ESS API reference
// api-ess-2022-02-22-recordlifecycleactionheartbeat and every SDK's request model).
//
// Errors (AlibabaCloudDocs/ess, CompleteLifecycleAction.md and
// RecordLifecycleActionHeartbeat.md):
//
//	400 LifecycleHookIdAndLifecycleActionToken.Invalid  unknown token, token of another hook,
//	                                                   action completed or timed out
//	400 LifecycleAction.TimeExceeded                   a heartbeat would keep the instance
//	                                                   waiting more than 6 hours in all
//	400 LifecycleAction.RecordTimesExceeded            more than 20 heartbeats for one action
//	400 InvalidParameter                               LifecycleActionResult not CONTINUE,
//	                                                   ABANDON or ROLLBACK; heartbeatTimeout
//	                                                   outside 30..21600
//	403 Forbidden.RAM                                  no ess:<Action> on
//	                                                   acs:ess:<region>:<account>:scalinggroup/<id>
//
// The documents spell the parameter error "InvalidParamter"; this emulator answers the
// common InvalidParameter, which is what the gateway's own validation returns.
package ess

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	sdkess "github.com/aliyun/alibaba-cloud-sdk-go/services/ess"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// Version is the ESS API version served.
const Version = "2014-08-28"

// Lifecycle action statuses.
const (
	StatusPending   = "Pending"
	StatusCompleted = "Completed"
	StatusTimeout   = "Timeout"
)

// Limits of heartbeats, as documented for RecordLifecycleActionHeartbeat.
const (
	MaxWait       = 6 * time.Hour
	MaxHeartbeats = 20
)

// The scaling instances' LifecycleState values the emulator produces (the
// DescribeScalingInstances reference lists more: Pending, Protected, Standby, Removing, ...).
const (
	StateInService    = "InService"
	StatePendingWait  = "Pending:Wait"
	StateRemovingWait = "Removing:Wait"
)

// CompletedByTimeout is the CompletedBy of an action whose hook timed out.
const CompletedByTimeout = "timeout"

// Config wires the emulator to the rest of the local cloud.
type Config struct {
	World    *world.World     // required: hooks, regions, account
	Auth     *auth.Store      // required
	RAM      *ram.Authorizer  // nil denies every RAM user and role
	Faults   *fault.Injector  // nil injects nothing
	Recorder *record.Recorder // nil records nothing
	Limiter  *rpc.Limiter     // nil never throttles
	Now      func() time.Time // [time.Now]
	// HostID is the HostId of error bodies [ess.aliyuncs.com].
	HostID string
}

// LifecycleAction is the state of one lifecycle action.
type LifecycleAction struct {
	Token             string    `json:"token"`
	HookID            string    `json:"hookId"`
	ScalingGroupID    string    `json:"scalingGroupId"`
	ScalingActivityID string    `json:"scalingActivityId"`
	InstanceIDs       []string  `json:"instanceIds"`
	Status            string    `json:"status"`
	StartedAt         time.Time `json:"startedAt"`
	Deadline          time.Time `json:"deadline"`
	Heartbeats        int       `json:"heartbeats"`
	// Result is CONTINUE, ABANDON or ROLLBACK once completed or timed out.
	Result string `json:"result,omitempty"`
	// CompletedBy is the principal that completed it, or CompletedByTimeout.
	CompletedBy string    `json:"completedBy,omitempty"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// ClientToken is the idempotency token of the completing call.
	ClientToken string `json:"clientToken,omitempty"`
}

// Service is the ESS endpoint (an http.Handler) and the lifecycle state behind it.
type Service struct {
	*rpc.Service
	w   *world.World
	now func() time.Time

	mu      sync.Mutex
	actions map[string]*LifecycleAction // by token
	// groups holds each scaling group's InService instances (AddInstances, a scale-out
	// continued, a scale-in rolled back); the pending actions hold the others (scaling.go).
	groups map[string]map[string]*member
}

// New returns the ESS endpoint with the world's pending lifecycle actions started now.
func New(cfg Config) (*Service, error) {
	if cfg.World == nil {
		return nil, errors.New("ess: Config.World is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{w: cfg.World, now: cfg.Now, actions: map[string]*LifecycleAction{}, groups: map[string]map[string]*member{}}
	now := cfg.Now()
	for _, h := range cfg.World.LifecycleHooks {
		for _, p := range h.Pending {
			act := p.ScalingActivityID
			if act == "" {
				act = "asa-" + randomID(10)
			}
			a := &LifecycleAction{
				Token: p.Token, HookID: h.ID, ScalingGroupID: h.ScalingGroupID, ScalingActivityID: act,
				InstanceIDs: slices.Clone(p.InstanceIDs), Status: StatusPending,
				StartedAt: now, Deadline: now.Add(h.HeartbeatTimeout.D()),
			}
			s.actions[p.Token] = a
		}
	}
	svc, err := rpc.NewService(rpc.Options{
		Service: "ess", Product: "Ess", Version: Version, HostID: cfg.HostID,
		Auth: cfg.Auth, RAM: cfg.RAM, Faults: cfg.Faults, Recorder: cfg.Recorder, Limiter: cfg.Limiter, Now: cfg.Now,
	},
		rpc.Action{Name: "CompleteLifecycleAction", Params: rpc.ParamsOf(sdkess.CreateCompleteLifecycleActionRequest()), Handle: s.complete},
		rpc.Action{Name: "RecordLifecycleActionHeartbeat", Params: rpc.ParamsOf(sdkess.CreateRecordLifecycleActionHeartbeatRequest()), Handle: s.heartbeat},
		rpc.Action{Name: "DescribeLifecycleActions", Params: rpc.ParamsOf(sdkess.CreateDescribeLifecycleActionsRequest()), Handle: s.describe},
		rpc.Action{Name: "DescribeLifecycleHooks", Params: rpc.ParamsOf(sdkess.CreateDescribeLifecycleHooksRequest()), Handle: s.describeHooks},
		rpc.Action{Name: "DescribeScalingInstances", Params: rpc.ParamsOf(sdkess.CreateDescribeScalingInstancesRequest()), Handle: s.describeInstances},
	)
	if err != nil {
		return nil, fmt.Errorf("ess: %w", err)
	}
	s.Service = svc
	return s, nil
}

// StartLifecycleAction starts a lifecycle action of a hook for instances, as a scaling
// activity does, and returns its token. The instances enter the hook's scaling group in
// Pending:Wait (a SCALE_OUT hook) or Removing:Wait (SCALE_IN) until the action ends.
func (s *Service) StartLifecycleAction(hookID string, instanceIDs ...string) (string, error) {
	h, ok := s.w.LifecycleHook(hookID)
	if !ok {
		return "", fmt.Errorf("ess: unknown lifecycle hook %q", hookID)
	}
	if len(instanceIDs) == 0 {
		return "", errors.New("ess: a lifecycle action needs at least one instance")
	}
	now := s.now()
	a := &LifecycleAction{
		Token:  newToken(),
		HookID: h.ID, ScalingGroupID: h.ScalingGroupID, ScalingActivityID: "asa-" + randomID(10),
		InstanceIDs: slices.Clone(instanceIDs), Status: StatusPending,
		StartedAt: now, Deadline: now.Add(h.HeartbeatTimeout.D()),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions[a.Token] = a
	return a.Token, nil
}

// LifecycleAction returns the state of the action with the given token.
func (s *Service) LifecycleAction(token string) (LifecycleAction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.actions[token]
	if !ok {
		return LifecycleAction{}, false
	}
	s.expire(a, s.now())
	c := *a
	c.InstanceIDs = slices.Clone(a.InstanceIDs)
	return c, true
}

// LifecycleActions returns every action, oldest first.
func (s *Service) LifecycleActions() []LifecycleAction {
	s.mu.Lock()
	var tokens []string
	for t := range s.actions {
		tokens = append(tokens, t)
	}
	s.mu.Unlock()
	out := make([]LifecycleAction, 0, len(tokens))
	for _, t := range tokens {
		if a, ok := s.LifecycleAction(t); ok {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].Token < out[j].Token
	})
	return out
}

// expire applies the default result of a timed-out pending action. The caller holds s.mu.
func (s *Service) expire(a *LifecycleAction, now time.Time) {
	if a.Status != StatusPending || now.Before(a.Deadline) {
		return
	}
	h, _ := s.w.LifecycleHook(a.HookID)
	a.Status = StatusTimeout
	a.Result = h.DefaultResult
	a.CompletedBy = CompletedByTimeout
	a.CompletedAt = a.Deadline
	s.release(a)
}

func errTokenInvalid() error {
	return rpc.Errorf(http.StatusBadRequest, "LifecycleHookIdAndLifecycleActionToken.Invalid",
		"The specified lifecycleActionToken and lifecycleHookId you provided does not match any in process lifecycle action.")
}

// region checks an optional RegionId.
func (s *Service) region(c *rpc.Call) error {
	if c.RegionID == "" {
		return nil
	}
	if _, ok := s.w.Region(c.RegionID); !ok {
		return rpc.Errorf(http.StatusNotFound, "InvalidRegionId.NotFound", "The specified RegionId does not exist.")
	}
	return nil
}

// pending finds the in-process action of hook and token, and authorizes action on its
// scaling group. The caller holds s.mu.
func (s *Service) pending(c *rpc.Call, action, hookID, token string) (*LifecycleAction, error) {
	h, ok := s.w.LifecycleHook(hookID)
	if !ok || (c.RegionID != "" && c.RegionID != h.Region) {
		return nil, errTokenInvalid()
	}
	a, ok := s.actions[token]
	if !ok || a.HookID != hookID {
		return nil, errTokenInvalid()
	}
	arn := ram.ARN("ess", h.Region, c.Principal.AccountID, "scalinggroup/"+h.ScalingGroupID)
	// The call names the scaling group; package ram's table decides whether RAM checks it
	// (RecordLifecycleActionHeartbeat) or "*" (CompleteLifecycleAction, All Resources).
	if err := c.Authorize(ram.Call{Action: "ess:" + action, Resources: []ram.Resource{{ARN: arn}}}); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Service) complete(_ context.Context, c *rpc.Call) (any, error) {
	if err := c.Require("LifecycleHookId", "LifecycleActionToken"); err != nil {
		return nil, err
	}
	result := strings.ToUpper(c.Get("LifecycleActionResult"))
	switch result {
	case "":
		result = world.ResultContinue
	case world.ResultContinue, world.ResultAbandon, world.ResultRollback:
	default:
		return nil, rpc.InvalidParameter("LifecycleActionResult", "It must be CONTINUE, ABANDON or ROLLBACK.")
	}
	clientToken := c.Get("ClientToken")
	if len(clientToken) > 64 {
		return nil, rpc.InvalidParameter("ClientToken", "At most 64 ASCII characters.")
	}
	if err := s.region(c); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.pending(c, "CompleteLifecycleAction", c.Get("LifecycleHookId"), c.Get("LifecycleActionToken"))
	if err != nil {
		return nil, err
	}
	s.expire(a, c.Time)
	if a.Status == StatusCompleted && clientToken != "" && a.ClientToken == clientToken {
		return struct{}{}, nil // an idempotent retry of the call that completed it
	}
	if a.Status != StatusPending {
		return nil, errTokenInvalid()
	}
	a.Status = StatusCompleted
	a.Result = result
	a.CompletedBy = c.Principal.Name
	a.CompletedAt = c.Time
	a.ClientToken = clientToken
	s.release(a)
	return struct{}{}, nil
}

func (s *Service) heartbeat(_ context.Context, c *rpc.Call) (any, error) {
	if err := c.Require("lifecycleHookId", "lifecycleActionToken"); err != nil {
		return nil, err
	}
	timeout, err := c.Int("heartbeatTimeout", 0, 30, 21600)
	if err != nil {
		return nil, err
	}
	if err := s.region(c); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.pending(c, "RecordLifecycleActionHeartbeat", c.Get("lifecycleHookId"), c.Get("lifecycleActionToken"))
	if err != nil {
		return nil, err
	}
	s.expire(a, c.Time)
	if a.Status != StatusPending {
		return nil, errTokenInvalid()
	}
	wait := time.Duration(timeout) * time.Second
	if timeout == 0 {
		h, _ := s.w.LifecycleHook(a.HookID)
		wait = h.HeartbeatTimeout.D()
	}
	deadline := c.Time.Add(wait)
	if deadline.Sub(a.StartedAt) > MaxWait {
		return nil, rpc.Errorf(http.StatusBadRequest, "LifecycleAction.TimeExceeded",
			"The specified parameter heartbeatTime exceed lifecycleAction max suspend time.")
	}
	if a.Heartbeats >= MaxHeartbeats {
		return nil, rpc.Errorf(http.StatusBadRequest, "LifecycleAction.RecordTimesExceeded",
			"The specified lifecycleAction exceed lifecycleAction max record times.")
	}
	a.Heartbeats++
	a.Deadline = deadline
	return struct{}{}, nil
}

type describeResponse struct {
	TotalCount       int    `json:"TotalCount"`
	NextToken        string `json:"NextToken"`
	MaxResults       int    `json:"MaxResults"`
	LifecycleActions struct {
		LifecycleAction []describedAction `json:"LifecycleAction"`
	} `json:"LifecycleActions"`
}

type describedAction struct {
	LifecycleHookId       string `json:"LifecycleHookId"`
	LifecycleActionToken  string `json:"LifecycleActionToken"`
	LifecycleActionStatus string `json:"LifecycleActionStatus"`
	LifecycleActionResult string `json:"LifecycleActionResult"`
	InstanceIds           struct {
		InstanceId []string `json:"InstanceId"`
	} `json:"InstanceIds"`
}

func (s *Service) describe(_ context.Context, c *rpc.Call) (any, error) {
	if err := c.Require("ScalingActivityId"); err != nil {
		return nil, err
	}
	limit, err := c.Int("MaxResults", 10, 1, 50)
	if err != nil {
		return nil, err
	}
	offset := 0
	if t := c.Get("NextToken"); t != "" {
		if _, err := fmt.Sscanf(t, "offset-%d", &offset); err != nil || offset < 0 {
			return nil, rpc.InvalidParameter("NextToken", "")
		}
	}
	if err := s.region(c); err != nil {
		return nil, err
	}
	status := c.Get("LifecycleActionStatus")
	switch status {
	case "", StatusPending, StatusCompleted, StatusTimeout:
	default:
		return nil, rpc.InvalidParameter("LifecycleActionStatus", "It must be Pending, Timeout or Completed.")
	}
	var acts []LifecycleAction
	for _, a := range s.LifecycleActions() {
		if a.ScalingActivityID == c.Get("ScalingActivityId") {
			acts = append(acts, a)
		}
	}
	// RAM checks the scaling group the activity belongs to (the table's required
	// ScalingGroup); an activity the emulator does not know is checked on scalinggroup/*.
	group := "*"
	if len(acts) > 0 {
		group = acts[0].ScalingGroupID
	}
	if err := c.Authorize(ram.Call{Action: "ess:DescribeLifecycleActions", Resources: []ram.Resource{{ARN: c.ARN("scalinggroup/" + group)}}}); err != nil {
		return nil, err
	}
	var match []describedAction
	for _, a := range acts {
		if status != "" && a.Status != status {
			continue
		}
		d := describedAction{LifecycleHookId: a.HookID, LifecycleActionToken: a.Token,
			LifecycleActionStatus: a.Status, LifecycleActionResult: a.Result}
		d.InstanceIds.InstanceId = a.InstanceIDs
		match = append(match, d)
	}
	resp := &describeResponse{TotalCount: len(match), MaxResults: limit}
	from := min(offset, len(match))
	to := min(from+limit, len(match))
	if to < len(match) {
		resp.NextToken = fmt.Sprintf("offset-%d", to)
	}
	resp.LifecycleActions.LifecycleAction = append([]describedAction{}, match[from:to]...)
	return resp, nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}

func randomID(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
