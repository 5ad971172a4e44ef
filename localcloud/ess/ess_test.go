package ess_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	sdkess "github.com/aliyun/alibaba-cloud-sdk-go/services/ess"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ess"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/world"
)

const worldYAML = `
account: {id: "1234567890123456"}
principals:
  - {name: root, kind: account, accessKeys: [{id: LTAIroot, secret: root-secret}]}
  - {name: enipool-fn, kind: role, policies: [lifecycle]}
  - {name: viewer, kind: ram-user, accessKeys: [{id: LTAIviewer, secret: viewer-secret}], policies: [describe]}
policies:
  - name: lifecycle
    document:
      Version: "1"
      Statement:
        # CompleteLifecycleAction is an All Resources action (RAM authorizes it on "*");
        # the heartbeat is authorized on the scaling group.
        - {Effect: Allow, Action: "ess:CompleteLifecycleAction", Resource: "*"}
        - {Effect: Allow, Action: "ess:RecordLifecycleActionHeartbeat", Resource: "acs:ess:*:*:scalinggroup/asg-web"}
  - name: describe
    document: {Version: "1", Statement: [{Effect: Allow, Action: "ess:Describe*", Resource: "*"}]}
regions: [{id: cn-hangzhou, zones: [cn-hangzhou-h]}]
lifecycleHooks:
  - id: ash-web
    scalingGroupId: asg-web
    defaultResult: ABANDON
    heartbeatTimeout: 10m
    pending: [{token: TOKEN-FROM-WORLD, instanceIds: [i-1], scalingActivityId: asa-world}]
  - id: ash-other
    scalingGroupId: asg-other
  - id: ash-in
    scalingGroupId: asg-other
    transition: SCALE_IN
`

// clock is a settable clock that starts at the real time, so that requests the SDK signs
// with the real time stay inside the replay window while tests move lifecycle time.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.off += d }

type env struct {
	w     *world.World
	auth  *auth.Store
	svc   *ess.Service
	clock *clock
	host  string
	rec   *record.Recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvFaults(t, nil)
}

// newEnvFaults is newEnv with a fault injector (nil: none).
func newEnvFaults(t *testing.T, faults *fault.Injector) *env {
	t.Helper()
	w, err := world.Parse([]byte(worldYAML), "yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	as, az, err := w.Identities(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{w: w, auth: as, clock: &clock{}, rec: &record.Recorder{}}
	e.svc, err = ess.New(ess.Config{World: w, Auth: as, RAM: az, Recorder: e.rec, Now: e.clock.now, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.svc)
	t.Cleanup(srv.Close)
	e.host = strings.TrimPrefix(srv.URL, "http://")
	return e
}

func (e *env) client(t *testing.T, p credentials.CredentialsProvider) *sdkess.Client {
	t.Helper()
	c, err := sdkess.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false), p)
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = e.host
	return c
}

func (e *env) role(t *testing.T) *sdkess.Client {
	t.Helper()
	p, _ := e.w.PrincipalNamed("enipool-fn")
	k := e.auth.AssumeRole(p, time.Hour)
	return e.client(t, credentials.NewStaticSTSCredentialsProvider(k.ID, k.Secret, k.Token))
}

func complete(c *sdkess.Client, hook, token, result, clientToken string) error {
	r := sdkess.CreateCompleteLifecycleActionRequest()
	r.LifecycleHookId = hook
	r.LifecycleActionToken = token
	r.LifecycleActionResult = result
	r.ClientToken = clientToken
	_, err := c.CompleteLifecycleAction(r)
	return err
}

func heartbeat(c *sdkess.Client, hook, token string, seconds int) error {
	r := sdkess.CreateRecordLifecycleActionHeartbeatRequest()
	r.LifecycleHookId = hook
	r.LifecycleActionToken = token
	if seconds > 0 {
		r.HeartbeatTimeout = requests.NewInteger(seconds)
	}
	_, err := c.RecordLifecycleActionHeartbeat(r)
	return err
}

func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *errors.ServerError %s", err, code)
	}
	if se.ErrorCode() != code || se.HttpStatus() != status {
		t.Fatalf("got %s %d (%s), want %s %d", se.ErrorCode(), se.HttpStatus(), se.Message(), code, status)
	}
}

func TestCompleteExactlyOnce(t *testing.T) {
	e := newEnv(t)
	token, err := e.svc.StartLifecycleAction("ash-web", "i-bp1", "i-bp2")
	if err != nil {
		t.Fatal(err)
	}
	c := e.role(t)
	if err := complete(c, "ash-web", token, "CONTINUE", "ct-1"); err != nil {
		t.Fatal(err)
	}
	a, ok := e.svc.LifecycleAction(token)
	if !ok || a.Status != ess.StatusCompleted || a.Result != "CONTINUE" || a.CompletedBy != "enipool-fn" || a.CompletedAt.IsZero() ||
		len(a.InstanceIDs) != 2 {
		t.Fatalf("action %+v", a)
	}
	// The same call again (same ClientToken) is an idempotent success that changes nothing.
	if err := complete(c, "ash-web", token, "CONTINUE", "ct-1"); err != nil {
		t.Fatal(err)
	}
	// Any other completion of a completed action is refused; the first result stands.
	wantCode(t, complete(c, "ash-web", token, "ABANDON", "ct-2"), "LifecycleHookIdAndLifecycleActionToken.Invalid", 400)
	wantCode(t, complete(c, "ash-web", token, "ABANDON", ""), "LifecycleHookIdAndLifecycleActionToken.Invalid", 400)
	if b, _ := e.svc.LifecycleAction(token); b.Result != "CONTINUE" || !b.CompletedAt.Equal(a.CompletedAt) {
		t.Fatalf("result changed: %+v", b)
	}
}

func TestCompleteErrors(t *testing.T) {
	e := newEnv(t)
	token, err := e.svc.StartLifecycleAction("ash-web", "i-bp1")
	if err != nil {
		t.Fatal(err)
	}
	c := e.role(t)
	tests := []struct {
		name, hook, token, result, code string
		status                          int
	}{
		{"unknown token", "ash-web", "NOPE", "", "LifecycleHookIdAndLifecycleActionToken.Invalid", 400},
		{"token of another hook", "ash-other", token, "", "LifecycleHookIdAndLifecycleActionToken.Invalid", 400},
		{"unknown hook", "ash-nope", token, "", "LifecycleHookIdAndLifecycleActionToken.Invalid", 400},
		{"bad result", "ash-web", token, "MAYBE", "InvalidParameter", 400},
		{"no token", "ash-web", "", "", "MissingParameter", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, complete(c, tt.hook, tt.token, tt.result, ""), tt.code, tt.status)
		})
	}
	// The role may only extend its scaling group's actions (completion cannot be scoped to
	// a group: it is an All Resources action); the viewer may not complete at all.
	other, _ := e.svc.StartLifecycleAction("ash-other", "i-bp9")
	wantCode(t, heartbeat(c, "ash-other", other, 0), "Forbidden.RAM", 403)
	viewer := e.client(t, credentials.NewStaticAKCredentialsProvider("LTAIviewer", "viewer-secret"))
	wantCode(t, complete(viewer, "ash-web", token, "", ""), "Forbidden.RAM", 403)
	if a, _ := e.svc.LifecycleAction(token); a.Status != ess.StatusPending {
		t.Fatalf("refused calls changed the action: %+v", a)
	}
	// Omitted LifecycleActionResult means CONTINUE.
	if err := complete(c, "ash-web", token, "", ""); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.svc.LifecycleAction(token); a.Result != "CONTINUE" {
		t.Fatalf("default result %q", a.Result)
	}
}

func TestHeartbeatAndTimeout(t *testing.T) {
	e := newEnv(t)
	c := e.role(t)
	// A world action, 10 minutes of timeout.
	e.clock.advance(8 * time.Minute)
	if err := heartbeat(c, "ash-web", "TOKEN-FROM-WORLD", 300); err != nil {
		t.Fatal(err)
	}
	a, _ := e.svc.LifecycleAction("TOKEN-FROM-WORLD")
	if a.Heartbeats != 1 || a.Deadline.Sub(a.StartedAt) < 12*time.Minute {
		t.Fatalf("after heartbeat %+v", a)
	}
	e.clock.advance(4 * time.Minute) // 12 minutes in: past the original timeout, not the extended one
	if a, _ := e.svc.LifecycleAction("TOKEN-FROM-WORLD"); a.Status != ess.StatusPending {
		t.Fatalf("expired despite the heartbeat: %+v", a)
	}
	wantCode(t, heartbeat(c, "ash-web", "TOKEN-FROM-WORLD", 10), "InvalidParameter", 400)
	wantCode(t, heartbeat(c, "ash-other", "TOKEN-FROM-WORLD", 0), "LifecycleHookIdAndLifecycleActionToken.Invalid", 400)

	// Past the extended deadline the hook's default result applies.
	e.clock.advance(2 * time.Minute)
	a, _ = e.svc.LifecycleAction("TOKEN-FROM-WORLD")
	if a.Status != ess.StatusTimeout || a.Result != "ABANDON" || a.CompletedBy != ess.CompletedByTimeout {
		t.Fatalf("after timeout %+v", a)
	}
	wantCode(t, complete(c, "ash-web", "TOKEN-FROM-WORLD", "CONTINUE", ""), "LifecycleHookIdAndLifecycleActionToken.Invalid", 400)
	wantCode(t, heartbeat(c, "ash-web", "TOKEN-FROM-WORLD", 0), "LifecycleHookIdAndLifecycleActionToken.Invalid", 400)
}

func TestHeartbeatLimits(t *testing.T) {
	e := newEnv(t)
	c := e.role(t)
	token, _ := e.svc.StartLifecycleAction("ash-web", "i-bp1")
	// More than 6 hours of waiting in all.
	wantCode(t, heartbeat(c, "ash-web", token, 21600), "LifecycleAction.TimeExceeded", 400)
	for i := range ess.MaxHeartbeats {
		if err := heartbeat(c, "ash-web", token, 60); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
	}
	wantCode(t, heartbeat(c, "ash-web", token, 60), "LifecycleAction.RecordTimesExceeded", 400)
}

// The heartbeat's parameters are lower camel case on the wire; the PascalCase spelling is
// not the API's and is refused.
func TestHeartbeatParameterNames(t *testing.T) {
	e := newEnv(t)
	token, _ := e.svc.StartLifecycleAction("ash-web", "i-bp1")
	r := sdkess.CreateRecordLifecycleActionHeartbeatRequest()
	r.QueryParams["LifecycleHookId"] = "ash-web"
	r.QueryParams["LifecycleActionToken"] = token
	_, err := e.role(t).RecordLifecycleActionHeartbeat(r)
	wantCode(t, err, "UnsupportedParameter", 400)
	calls := e.rec.Calls(record.Match("ess", "RecordLifecycleActionHeartbeat"))
	if len(calls) != 1 || calls[0].Code != "UnsupportedParameter" {
		t.Fatalf("record %+v", calls)
	}
}

func TestDescribeLifecycleActions(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, credentials.NewStaticAKCredentialsProvider("LTAIviewer", "viewer-secret"))
	r := sdkess.CreateDescribeLifecycleActionsRequest()
	r.ScalingActivityId = "asa-world"
	resp, err := c.DescribeLifecycleActions(r)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.LifecycleActions.LifecycleAction
	if resp.TotalCount != 1 || len(got) != 1 || got[0].LifecycleActionToken != "TOKEN-FROM-WORLD" ||
		got[0].LifecycleActionStatus != ess.StatusPending || got[0].InstanceIds.InstanceId[0] != "i-1" {
		t.Fatalf("actions %+v", resp)
	}
}

// TestCompleteLosesItsAnswer shows CompleteLifecycleAction applied and its answer lost
// (reset, 5xx, timeout): the action is completed with the result sent, the client sees a
// failure, the fault is counted, and the retry with the same ClientToken succeeds without
// changing the result. Without a rule the answer arrives.
func TestCompleteLosesItsAnswer(t *testing.T) {
	tests := []struct {
		name    string
		kind    string
		wantErr func(error) bool
	}{
		{"reset", fault.AfterReset, func(err error) bool {
			var se *sdkerrors.ServerError
			return err != nil && !errors.As(err, &se)
		}},
		{"5xx", fault.AfterError, func(err error) bool {
			var se *sdkerrors.ServerError
			return errors.As(err, &se) && se.HttpStatus() == 503 && se.ErrorCode() == "ServiceUnavailable"
		}},
		{"timeout", fault.AfterTimeout, func(err error) bool {
			return err != nil && strings.Contains(strings.ToLower(err.Error()), "timeout")
		}},
		{"off", "", func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plan fault.Plan
			if tt.kind != "" {
				plan.AfterAction = []fault.AfterRule{{Service: "ess", Action: "CompleteLifecycleAction", Rate: 1, Kind: tt.kind,
					Hold: fault.Duration(3 * time.Second), Limit: 1}}
			}
			in := fault.New(plan, nil)
			e := newEnvFaults(t, in)
			token, err := e.svc.StartLifecycleAction("ash-web", "i-bp1")
			if err != nil {
				t.Fatal(err)
			}
			p, _ := e.w.PrincipalNamed("enipool-fn")
			k := e.auth.AssumeRole(p, time.Hour)
			c, err := sdkess.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false).WithTimeout(500*time.Millisecond),
				credentials.NewStaticSTSCredentialsProvider(k.ID, k.Secret, k.Token))
			if err != nil {
				t.Fatal(err)
			}
			c.Domain = e.host
			if err := complete(c, "ash-web", token, "CONTINUE", "ct-1"); !tt.wantErr(err) {
				t.Fatalf("err = %v", err)
			}
			a, _ := e.svc.LifecycleAction(token)
			if a.Status != ess.StatusCompleted || a.Result != "CONTINUE" {
				t.Fatalf("the completion was not applied: %+v", a)
			}
			want := 0
			if tt.kind != "" {
				want = 1
			}
			if st := in.Stats(); st.FaultsAfterAction != want || st.FaultsAfterActionBy["ess/CompleteLifecycleAction/"+tt.kind] != want {
				t.Fatalf("stats %+v, want %d", st, want)
			}
			if err := complete(c, "ash-web", token, "CONTINUE", "ct-1"); err != nil {
				t.Fatalf("the retry with the same ClientToken: %v", err)
			}
		})
	}
}
