package handler

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
)

// fakeCloud is a scriptable stand-in for the handler's own cloud interfaces (ECS, Lifecycle,
// DeadLetters). It models what the handler relies on (attaches go Attaching then InUse,
// detaches Detaching then Available, ECS refuses a detach of an ENI that is not InUse, at
// most 10 instance types per look-up) and lets a test script the interleavings production
// has and the local cloud cannot produce yet: reads that lag writes, answers lost after the
// action, ENIs attaching for another invocation.
type fakeCloud struct {
	mu    sync.Mutex
	insts map[string]*cloud.Instance
	types map[string]cloud.InstanceType
	enis  map[string]*fakeENI

	attachTime time.Duration
	detachTime time.Duration
	// slow gives some ENIs their own attach time.
	slow map[string]time.Duration

	// onAttach runs before an attach is applied; it may return an error to refuse it. With
	// lose set, the attach is applied and then the error returned (an answer lost).
	onAttach func(eni, instance string) (err error, lose bool)
	// onDetach is like onAttach for detaches.
	onDetach func(eni, instance string) (err error, lose bool)
	// lag, when set, is how far behind the truth reads of an ENI are (stale reads): a read
	// at now shows the ENI as it was at now-lag. Called with mu held.
	lag func(eni string) time.Duration
	// typesErr, when set, answers a DescribeInstanceTypes call naming these types.
	typesErr func(types []string) error
	// heartbeatErr and describeErr script failures of those calls.
	heartbeatErr func() error
	describeErr  func(q cloud.InstanceQuery) error
	// receiveErr, when set, answers a read of the dead-letter queue.
	receiveErr func() error

	// Auto Scaling: hooks by id, lifecycle actions by scaling activity, scaling instances
	// by instance id (openAction sets them up); essErr, when set, answers the ESS reads.
	hooks   map[string]cloud.LifecycleHook
	actions map[string][]cloud.LifecycleAction
	scaling map[string]cloud.ScalingInstance
	essErr  func(api string) error

	calls     map[string]int
	typeCalls [][]string
	dlq       [][]byte
	completes []string
	beats     int
}

type fakeENI struct {
	cloud.ENI
	history []fakeState // every state it had, oldest first, for stale reads
	readyAt time.Time   // when Attaching/Detaching settles
}

type fakeState struct {
	at  time.Time
	eni cloud.ENI
}

// changed records the ENI's current state as of now.
func (e *fakeENI) changed(now time.Time) {
	e.history = append(e.history, fakeState{now, e.ENI})
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{insts: map[string]*cloud.Instance{}, types: map[string]cloud.InstanceType{}, enis: map[string]*fakeENI{},
		attachTime: 30 * time.Millisecond, detachTime: 30 * time.Millisecond, calls: map[string]int{},
		hooks: map[string]cloud.LifecycleHook{}, actions: map[string][]cloud.LifecycleAction{}, scaling: map[string]cloud.ScalingInstance{}}
}

const (
	fakeRegion = "cn-hangzhou"
	fakeZone   = "cn-hangzhou-h"
	fakeVPC    = "vpc-fake0001"
	fakePool   = "web"
)

// addInstance adds a Running pool instance of the given type.
func (c *fakeCloud) addInstance(id, typ string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insts[id] = &cloud.Instance{ID: id, Region: fakeRegion, Zone: fakeZone, VpcID: fakeVPC, VSwitchID: "vsw-fake0001", Type: typ,
		Status: "Running", Tags: map[string]string{"enipool": fakePool}, ENIs: []string{"eni-primary-" + id}}
	if _, ok := c.types[typ]; !ok {
		c.types[typ] = cloud.InstanceType{ID: typ, Family: "ecs.g7", ENIQuantity: 8}
	}
}

// addENIs adds n Available pool ENIs named eni-<prefix>NN.
func (c *fakeCloud) addENIs(prefix string, n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("eni-%s%02d", prefix, i)
		e := cloud.ENI{ID: id, Status: cloud.StatusAvailable, Type: "Secondary", VpcID: fakeVPC, VSwitchID: "vsw-fake0001", Zone: fakeZone,
			PrivateIP: fmt.Sprintf("10.0.1.%d", len(c.enis)+10), Tags: map[string]string{"enipool": fakePool}}
		c.enis[id] = &fakeENI{ENI: e, history: []fakeState{{time.Time{}, e}}}
		ids = append(ids, id)
	}
	return ids
}

// put places an ENI in a state directly, as another invocation or an operator left it; an
// Attaching or Detaching ENI settles after settleIn.
func (c *fakeCloud) put(eni, status, instance string, settleIn time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.enis[eni]
	e.Status, e.InstanceID = status, instance
	e.history = []fakeState{{time.Time{}, e.ENI}} // as it always was
	e.readyAt = time.Time{}
	if status == cloud.StatusAttaching || status == cloud.StatusDetaching {
		e.readyAt = time.Now().Add(settleIn)
	}
}

// attachedAgo makes eni InUse on instance since ago, Available before: a read lagging by
// more than ago still shows it free.
func (c *fakeCloud) attachedAgo(eni, instance string, ago time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.enis[eni]
	e.history = []fakeState{{time.Time{}, e.ENI}}
	e.Status, e.InstanceID = cloud.StatusInUse, instance
	e.history = append(e.history, fakeState{time.Now().Add(-ago), e.ENI})
}

// setStatus changes an instance's status.
func (c *fakeCloud) setStatus(instance, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insts[instance].Status = status
}

// state returns the true state of an ENI (not what a stale read shows).
func (c *fakeCloud) state(eni string) cloud.ENI {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settle(time.Now())
	return c.enis[eni].ENI
}

// settle advances ENIs whose attach or detach finished. Called with mu held.
func (c *fakeCloud) settle(now time.Time) {
	for _, e := range c.enis {
		if e.readyAt.IsZero() || now.Before(e.readyAt) {
			continue
		}
		switch e.Status {
		case cloud.StatusAttaching:
			e.Status = cloud.StatusInUse
		case cloud.StatusDetaching:
			e.Status, e.InstanceID = cloud.StatusAvailable, ""
		}
		e.changed(e.readyAt)
		e.readyAt = time.Time{}
	}
}

// held returns the pool ENIs truly attached or attaching to an instance, sorted.
func (c *fakeCloud) held(instance string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settle(time.Now())
	var out []string
	for _, e := range c.enis {
		if e.InstanceID == instance && (e.Status == cloud.StatusInUse || e.Status == cloud.StatusAttaching) {
			out = append(out, e.ID)
		}
	}
	sort.Strings(out)
	return out
}

func (c *fakeCloud) count(api string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[api]
}

// record counts a call (mu held) and returns its report, which the caller sends once mu is
// released: the real adapters report calls concurrently, and so must the fake, or its lock
// would hide races among the observers.
func (c *fakeCloud) record(api string, err error) cloud.Call {
	c.calls[api]++
	return cloud.Call{Service: "ecs", API: api, RequestID: fmt.Sprintf("req-%s-%d", api, c.calls[api]), Err: err}
}

func fakeError(api, code string) *cloud.APIError {
	return &cloud.APIError{Service: "ecs", API: api, Code: code, HTTPStatus: 400, Message: code}
}

// view is what a read at now shows of e.
func (c *fakeCloud) view(e *fakeENI, now time.Time) cloud.ENI {
	if c.lag == nil {
		return e.ENI
	}
	asOf := now.Add(-c.lag(e.ID))
	v := e.history[0].eni
	for _, h := range e.history {
		if !h.at.After(asOf) {
			v = h.eni
		}
	}
	return v
}

// DescribeInstances implements ECS.
func (c *fakeCloud) DescribeInstances(ctx context.Context, q cloud.InstanceQuery) ([]cloud.Instance, error) {
	var report cloud.Call
	defer func() { cloud.ReportCall(ctx, report) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.describeErr != nil {
		err = c.describeErr(q)
	}
	report = c.record("DescribeInstances", err)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	c.settle(now)
	var out []cloud.Instance
	for _, in := range c.insts {
		if len(q.IDs) > 0 && !slices.Contains(q.IDs, in.ID) || q.Status != "" && in.Status != q.Status ||
			q.TagKey != "" && q.TagValue != "" && in.Tags[q.TagKey] != q.TagValue {
			continue
		}
		cp := *in
		cp.ENIs = append([]string(nil), in.ENIs...)
		for _, e := range c.enis {
			if v := c.view(e, now); v.InstanceID == in.ID {
				cp.ENIs = append(cp.ENIs, e.ID)
			}
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DescribeInstanceTypes implements ECS, refusing more than 10 types as ECS does.
func (c *fakeCloud) DescribeInstanceTypes(ctx context.Context, types []string) ([]cloud.InstanceType, error) {
	var report cloud.Call
	defer func() { cloud.ReportCall(ctx, report) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.typeCalls = append(c.typeCalls, append([]string(nil), types...))
	var err error
	if len(types) < 1 || len(types) > 10 {
		err = fakeError("DescribeInstanceTypes", "InvalidParameter")
	} else if c.typesErr != nil {
		err = c.typesErr(types)
	}
	report = c.record("DescribeInstanceTypes", err)
	if err != nil {
		return nil, err
	}
	var out []cloud.InstanceType
	for _, t := range types {
		if it, ok := c.types[t]; ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// DescribeENIs implements ECS.
func (c *fakeCloud) DescribeENIs(ctx context.Context, q cloud.ENIQuery) ([]cloud.ENI, error) {
	var report cloud.Call
	defer func() { cloud.ReportCall(ctx, report) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	report = c.record("DescribeNetworkInterfaces", nil)
	now := time.Now()
	c.settle(now)
	var out []cloud.ENI
	for _, e := range c.enis {
		v := c.view(e, now)
		if len(q.IDs) > 0 && !slices.Contains(q.IDs, v.ID) || q.InstanceID != "" && v.InstanceID != q.InstanceID ||
			q.Status != "" && v.Status != q.Status || q.VpcID != "" && v.VpcID != q.VpcID ||
			q.TagKey != "" && q.TagValue != "" && v.Tags[q.TagKey] != q.TagValue || q.TagKey != "" && v.Tags[q.TagKey] == "" {
			continue
		}
		v.Tags = map[string]string{"enipool": v.Tags["enipool"]}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// AttachENI implements ECS.
func (c *fakeCloud) AttachENI(ctx context.Context, eniID, instanceID string) error {
	var report cloud.Call
	defer func() { cloud.ReportCall(ctx, report) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.settle(now)
	var err error
	lose := false
	if c.onAttach != nil {
		c.mu.Unlock()
		err, lose = c.onAttach(eniID, instanceID)
		c.mu.Lock()
	}
	e, ok := c.enis[eniID]
	switch {
	case err != nil && !lose:
	case !ok:
		err = fakeError("AttachNetworkInterface", "InvalidEniId.NotFound")
	case e.Status != cloud.StatusAvailable:
		err = fakeError("AttachNetworkInterface", "InvalidOperation.InvalidEniState")
	default:
		d := c.attachTime
		if s, ok := c.slow[eniID]; ok {
			d = s
		}
		e.Status, e.InstanceID, e.readyAt = cloud.StatusAttaching, instanceID, now.Add(d)
		e.changed(now)
	}
	report = c.record("AttachNetworkInterface", err)
	return err
}

// DetachENI implements ECS: only an InUse ENI can be detached.
func (c *fakeCloud) DetachENI(ctx context.Context, eniID, instanceID string) error {
	var report cloud.Call
	defer func() { cloud.ReportCall(ctx, report) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.settle(now)
	var err error
	lose := false
	if c.onDetach != nil {
		c.mu.Unlock()
		err, lose = c.onDetach(eniID, instanceID)
		c.mu.Lock()
	}
	e, ok := c.enis[eniID]
	switch {
	case err != nil && !lose:
	case !ok:
		err = fakeError("DetachNetworkInterface", "InvalidEniId.NotFound")
	case e.InstanceID != instanceID || e.Status != cloud.StatusInUse:
		err = fakeError("DetachNetworkInterface", "InvalidOperation.InvalidEniState")
	default:
		e.Status, e.readyAt = cloud.StatusDetaching, now.Add(c.detachTime)
		e.changed(now)
	}
	report = c.record("DetachNetworkInterface", err)
	return err
}

// CreateENI implements ECS (unused by these tests).
func (c *fakeCloud) CreateENI(ctx context.Context, spec cloud.ENISpec) (cloud.ENI, error) {
	return cloud.ENI{}, fakeError("CreateNetworkInterface", "Forbidden.RAM")
}

// DeleteENI implements ECS (unused by these tests).
func (c *fakeCloud) DeleteENI(ctx context.Context, eniID string) error {
	return fakeError("DeleteNetworkInterface", "Forbidden.RAM")
}

// Complete implements Lifecycle.
func (c *fakeCloud) Complete(ctx context.Context, hookID, token, result string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.completes = append(c.completes, token+":"+result)
	for act, as := range c.actions {
		for i := range as {
			if as[i].Token == token && as[i].HookID == hookID {
				c.actions[act][i].Status, c.actions[act][i].Result = "Completed", result
			}
		}
	}
	return nil
}

// openAction opens a lifecycle action of a hook (created if new) for instances, which enter
// the hook's group in the transition's wait state, as Auto Scaling would.
func (c *fakeCloud) openAction(hook cloud.LifecycleHook, activity, token string, ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks[hook.ID] = hook
	c.actions[activity] = append(c.actions[activity], cloud.LifecycleAction{HookID: hook.ID, Token: token, Status: cloud.LifecyclePending, InstanceIDs: ids})
	state := cloud.StatePendingWait
	if hook.Transition == "SCALE_IN" {
		state = cloud.StateRemovingWait
	}
	for _, id := range ids {
		c.scaling[id] = cloud.ScalingInstance{InstanceID: id, ScalingGroupID: hook.ScalingGroupID, LifecycleState: state, ScalingActivityID: activity}
	}
}

// LifecycleHook implements Lifecycle.
func (c *fakeCloud) LifecycleHook(ctx context.Context, hookID string) (cloud.LifecycleHook, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["DescribeLifecycleHooks"]++
	if c.essErr != nil {
		if err := c.essErr("DescribeLifecycleHooks"); err != nil {
			return cloud.LifecycleHook{}, false, err
		}
	}
	hk, ok := c.hooks[hookID]
	return hk, ok, nil
}

// LifecycleActions implements Lifecycle.
func (c *fakeCloud) LifecycleActions(ctx context.Context, activityID, status string) ([]cloud.LifecycleAction, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["DescribeLifecycleActions"]++
	var out []cloud.LifecycleAction
	for _, a := range c.actions[activityID] {
		if status == "" || a.Status == status {
			out = append(out, a)
		}
	}
	return out, nil
}

// ScalingInstances implements Lifecycle.
func (c *fakeCloud) ScalingInstances(ctx context.Context, groupID, activityID string, ids []string) ([]cloud.ScalingInstance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["DescribeScalingInstances"]++
	var out []cloud.ScalingInstance
	for _, id := range ids {
		if si, ok := c.scaling[id]; ok && si.ScalingGroupID == groupID && (activityID == "" || si.ScalingActivityID == activityID) {
			out = append(out, si)
		}
	}
	return out, nil
}

// Heartbeat implements Lifecycle.
func (c *fakeCloud) Heartbeat(ctx context.Context, hookID, token string, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beats++
	if c.heartbeatErr != nil {
		return c.heartbeatErr()
	}
	return nil
}

// Send implements DeadLetters.
func (c *fakeCloud) Send(ctx context.Context, body []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dlq = append(c.dlq, append([]byte(nil), body...))
	return fmt.Sprintf("msg-%d", len(c.dlq)), nil
}

// Receive implements DeadLetters (nothing to redrive in these tests).
func (c *fakeCloud) Receive(ctx context.Context, max int, wait time.Duration) ([]cloud.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["BatchReceiveMessage"]++
	if c.receiveErr != nil {
		return nil, c.receiveErr()
	}
	return nil, nil
}

// Delete implements DeadLetters.
func (c *fakeCloud) Delete(ctx context.Context, receiptHandle string) error { return nil }

// Hide implements DeadLetters.
func (c *fakeCloud) Hide(ctx context.Context, receiptHandle string, d time.Duration) error {
	return nil
}

func (c *fakeCloud) deadLetters() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, b := range c.dlq {
		out = append(out, string(b))
	}
	return out
}

// Connect implements Connector.
func (c *fakeCloud) Connect(ctx context.Context, s cloud.Session) (*cloud.Clients, error) {
	return &cloud.Clients{ECS: c, Lifecycle: c, DeadLetters: c}, nil
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeHandler returns a handler on c with short timings; mutate adjusts its options.
func fakeHandler(t *testing.T, c *fakeCloud, mutate func(*Options)) (*Handler, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	o := DefaultOptions()
	o.Region = fakeRegion
	o.AttachTime, o.DetachTime = c.attachTime, c.detachTime
	o.DeadLetterReserve = 200 * time.Millisecond
	o.StaleReadBound = 200 * time.Millisecond // the fake's reads lag only where a test says so
	o.DefaultTimeout = 3 * time.Second
	o.PlatformRetries = 0
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if mutate != nil {
		mutate(&o)
	}
	h, err := New(o, c)
	if err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// invoke runs one invocation with a deadline of d.
func invoke(t *testing.T, h *Handler, payload string, d time.Duration) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.Invoke(ctx, Invocation{RequestID: "req-" + t.Name(), Region: fakeRegion, AccountID: "1234567890123456"}, []byte(payload))
}

func directPayload(ids ...string) string {
	if len(ids) == 1 {
		return fmt.Sprintf(`{"instanceId":%q}`, ids[0])
	}
	return `{"instanceIds":["` + strings.Join(ids, `","`) + `"]}`
}

// stateEvent is an EventBridge ECS instance state change.
func stateEvent(instance, state string) string {
	return fmt.Sprintf(`{"id":"%s-%s","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:cn-hangzhou:1234567890123456:instance/%s","aliyunregionid":"cn-hangzhou",`+
		`"aliyunpublishtime":"2024-05-01T10:00:01.179PRC","data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":%q}}`,
		instance, state, instance, instance, state)
}

func resultFor(t *testing.T, resp *Response, instance string) Result {
	t.Helper()
	for _, r := range resp.Results {
		if r.InstanceID == instance {
			return r
		}
	}
	t.Fatalf("no result for %s: %+v", instance, resp.Results)
	return Result{}
}
