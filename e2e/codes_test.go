package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/internal/apidoc"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// firstRanked returns an ENI id, built from prefix, that the handler tries before every one
// of others for the instance: the ENI a test makes bad is then the one the function meets.
func firstRanked(instance, prefix string, others []world.ENI) string {
	var ids []string
	for _, e := range others {
		ids = append(ids, e.ID)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("eni-%s%03d", prefix, i)
		if engine.Rank(instance, append([]string{id}, ids...))[0] == id {
			return id
		}
	}
}

// attachFault makes the first n AttachNetworkInterface calls fail with code.
func attachFault(code string, status, n int) func(*world.World) {
	return func(w *world.World) {
		w.Faults.Errors = append(w.Faults.Errors, fault.Rule{Service: "ecs", Action: "AttachNetworkInterface",
			Rate: 1, Limit: n, Code: code, HTTPStatus: status, Message: "injected " + code})
	}
}

// TestSeedErrorCodes proves that each error code of AttachNetworkInterface (the seed's
// table), met through the real API, produces the action the error table documents. Codes a
// world condition can cause come from that condition; the rest come from fault rules (the
// function checks those conditions itself before calling, so the API never says them).
func TestSeedErrorCodes(t *testing.T) {
	t.Parallel()
	const a = "i-bp1code000000001"
	good := poolENIs("good", zoneH, 1)
	bad := func(mod func(*world.ENI)) []world.ENI {
		e := world.ENI{ID: firstRanked(a, "bad", good), VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
			Tags: map[string]string{"enipool": pool}}
		mod(&e)
		return append([]world.ENI{e}, good...)
	}
	base := inst(a, zoneH)
	with := func(mod func(*world.Instance)) []world.Instance {
		in := base
		mod(&in)
		return []world.Instance{in}
	}
	holder := inst("i-bp1code000000002", zoneH) // fills the one-instance security group
	holder.SecurityGroups = []string{"sg-testfull01"}

	tests := []struct {
		code   string
		spec   spec
		event  string
		action cloud.Verdict
		env    map[string]string
	}{
		{code: "InvalidUserType.NotSupported", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: func(w *world.World) { w.Account.Type = "unverified" }}, action: cloud.VerdictDeadLetter},
		{code: "MissingParameter", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("MissingParameter", 400, 1)}, action: cloud.VerdictDeadLetter},
		// Its world condition (another account's ENI shared with this one) never reaches the
		// API: the function skips ENIs of other accounts (TestSharedENIIsNotACandidate).
		{code: "Forbidden.NotSupportRAM", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("Forbidden.NotSupportRAM", 403, 1)}, action: cloud.VerdictDeadLetter},
		{code: "UnsupportedParameter", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("UnsupportedParameter", 400, 1)}, action: cloud.VerdictDeadLetter},
		{code: "Forbidden.SubUser", spec: spec{instances: with(func(i *world.Instance) { i.OwnerOnly = true }), enis: good},
			action: cloud.VerdictDeadLetter},
		{code: "InvalidParameter", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("InvalidParameter", 400, 1)}, action: cloud.VerdictDeadLetter},
		{code: "InvalidInstanceID.Malformed", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("InvalidInstanceID.Malformed", 400, 1)}, action: cloud.VerdictDeadLetter},
		// ECS says InvalidOperation.InvalidRegion only on Attach; an unknown region fails the
		// describe first (InvalidRegionId.NotFound, TestUnknownRegion).
		{code: "InvalidOperation.InvalidRegion", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("InvalidOperation.InvalidRegion", 400, 1)}, action: cloud.VerdictDeadLetter},
		// The world's x9 family needs Stopped; the function does not know that family, so ECS
		// says it: the instance is waited for, and at the deadline (no platform retries left)
		// dead-lettered with the code.
		{code: "InvalidOperation.InvalidEcsState", spec: spec{instances: with(func(i *world.Instance) { i.Type = "ecs.x9.large" }), enis: good},
			action: cloud.VerdictWaitInstance, env: map[string]string{"ENIPOOL_PLATFORM_RETRIES": "0"}},
		{code: "InvalidOperation.InvalidEniState", spec: spec{instances: []world.Instance{base}, enis: bad(func(*world.ENI) {}),
			mutate: attachFault("InvalidOperation.InvalidEniState", 400, 1)}, action: cloud.VerdictNextENI},
		{code: "InvalidOperation.DetachPrimaryEniNotAllowed", spec: spec{instances: []world.Instance{base},
			enis: append(poolENIs("p", zoneH, 1), world.ENI{ID: "eni-heldbyinst01", VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
				Tags: map[string]string{"enipool": pool}, Status: "InUse", InstanceID: a}),
			mutate: func(w *world.World) {
				w.Faults.Errors = append(w.Faults.Errors, fault.Rule{Service: "ecs", Action: "DetachNetworkInterface", Rate: 1,
					Code: "InvalidOperation.DetachPrimaryEniNotAllowed", HTTPStatus: 400})
			}},
			event: fmt.Sprintf(`{"action":"detach","instanceId":%q,"regionId":%q}`, a, region), action: cloud.VerdictDeadLetter},
		{code: "InvalidEcsId.NotFound", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("InvalidEcsId.NotFound", 404, 1)}, action: cloud.VerdictSkip},
		{code: "InvalidEniId.NotFound", spec: spec{instances: []world.Instance{base}, enis: bad(func(*world.ENI) {}),
			mutate: attachFault("InvalidEniId.NotFound", 404, 1)}, action: cloud.VerdictNextENI},
		{code: "InvalidVSwitchId.NotFound", spec: spec{instances: []world.Instance{base},
			enis: bad(func(e *world.ENI) { e.VSwitch = "vsw-goneh0001" })}, action: cloud.VerdictNextENI},
		{code: "InvalidSecurityGroupId.NotFound", spec: spec{instances: []world.Instance{base},
			enis: bad(func(e *world.ENI) { e.SecurityGroups = []string{"sg-testgone01"} })}, action: cloud.VerdictNextENI},
		{code: "MaxEniCountExceeded", spec: spec{instances: []world.Instance{base, inst("i-bp1code000000002", zoneH)}, enis: good,
			mutate: func(w *world.World) {
				w.Account.Quotas.AttachedENIs = 1
				w.ENIs = append(w.ENIs, busyENI("i-bp1code000000002"))
			}},
			action: cloud.VerdictDeadLetter},
		{code: "EniPerInstanceLimitExceeded", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("EniPerInstanceLimitExceeded", 403, 1)}, action: cloud.VerdictDeadLetter},
		{code: "InvalidOperation.AvailabilityZoneMismatch", spec: spec{instances: []world.Instance{base}, enis: bad(func(*world.ENI) {}),
			mutate: attachFault("InvalidOperation.AvailabilityZoneMismatch", 403, 1)}, action: cloud.VerdictNextENI},
		{code: "InvalidOperation.VpcMismatch", spec: spec{instances: []world.Instance{base}, enis: bad(func(*world.ENI) {}),
			mutate: attachFault("InvalidOperation.VpcMismatch", 403, 1)}, action: cloud.VerdictNextENI},
		{code: "SecurityGroupInstanceLimitExceed", spec: spec{instances: []world.Instance{base, holder},
			enis: bad(func(e *world.ENI) { e.SecurityGroups = []string{"sg-testfull01"} })}, action: cloud.VerdictNextENI},
		{code: "InvalidSecurityGroupId.NotVpc", spec: spec{instances: []world.Instance{base},
			enis: bad(func(e *world.ENI) { e.SecurityGroups = []string{"sg-classic001"} })}, action: cloud.VerdictNextENI},
		{code: "InvalidOperation.InvalidEniType", spec: spec{instances: []world.Instance{base}, enis: bad(func(*world.ENI) {}),
			mutate: attachFault("InvalidOperation.InvalidEniType", 403, 1)}, action: cloud.VerdictNextENI},
		{code: "Forbidden.RegionId", spec: spec{instances: []world.Instance{{ID: a, Type: "ecs.g7.large", VSwitch: "vsw-noeni0001",
			Status: "Running", Tags: map[string]string{"enipool": pool}, SecurityGroups: []string{"sg-noeni00001"}}},
			enis: []world.ENI{{ID: "eni-noeni00001", VSwitch: "vsw-noeni0001", SecurityGroups: []string{"sg-noeni00001"}, Tags: map[string]string{"enipool": pool}}},
			// The function serves one region, its own: deployed where ENIs are unsupported.
			mutate: func(w *world.World) { slices.Reverse(w.Regions) }},
			event: fmt.Sprintf(`{"instanceId":%q}`, a), action: cloud.VerdictDeadLetter},
		{code: "InvalidInstanceId.NotFound", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("InvalidInstanceId.NotFound", 403, 1)}, action: cloud.VerdictSkip},
		{code: "InvalidOperation.InvalidGeneration", spec: spec{instances: with(func(i *world.Instance) { i.Type = "ecs.s1.small" }), enis: good},
			action: cloud.VerdictDeadLetter},
		{code: "InvalidParams.EniId", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("InvalidParams.EniId", 400, 1)}, action: cloud.VerdictDeadLetter},
		{code: "InvalidOperation.Ipv4CountExceeded", spec: spec{instances: with(func(i *world.Instance) { i.Type = "ecs.g7.small" }),
			enis: bad(func(e *world.ENI) { e.PrivateIPs = []string{"10.0.1.201", "10.0.1.202", "10.0.1.203"} })}, action: cloud.VerdictNextENI},
		{code: "InvalidOperation.EniServiceManaged", spec: spec{instances: []world.Instance{base}, enis: bad(func(*world.ENI) {}),
			mutate: attachFault("InvalidOperation.EniServiceManaged", 403, 1)}, action: cloud.VerdictNextENI},
		{code: "InvalidOperation.Ipv6NotSupport", spec: spec{instances: with(func(i *world.Instance) { i.Type = "ecs.g7.small" }),
			enis: bad(func(e *world.ENI) { e.IPv6 = []string{"2408:4002:10f0::1"} })}, action: cloud.VerdictNextENI},
		// Transient codes beyond the seed: retried inside the invocation, then attached.
		{code: "Throttling.User", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("Throttling.User", 400, 3)}, action: cloud.VerdictRetry},
		{code: "ServiceUnavailable", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("ServiceUnavailable", 503, 2)}, action: cloud.VerdictRetry},
		{code: "Something.NewServerSide", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("Something.NewServerSide", 502, 1)}, action: cloud.VerdictRetry},
		{code: "Something.NewClientSide", spec: spec{instances: []world.Instance{base}, enis: good,
			mutate: attachFault("Something.NewClientSide", 400, 1)}, action: cloud.VerdictDeadLetter},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.code] = true
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"ENIPOOL_DEFAULT_TIMEOUT": "8s"}
			for k, v := range tt.env {
				env[k] = v
			}
			// 12 s: a refusal that reads may not explain yet (a lost race, a full instance) is
			// final only after ENIPOOL_STALE_READ_BOUND (5 s by default), as in production.
			b := newBed(t, newWorld(t, tt.spec), bedOptions{env: env, timeout: 12e9})
			event := tt.event
			if event == "" {
				event = direct(a)
			}
			resp, ferr := b.invoke(event)
			if ferr != nil {
				t.Fatalf("function error %s: %s", ferr.ErrorType, ferr.ErrorMessage)
			}
			r := resp.Results[0]
			met := false
			for _, c := range b.cloud.Calls.Calls() {
				if c.Code == tt.code {
					met = true
				}
			}
			if !met {
				t.Fatalf("the cloud never answered %s; result %s %s: %s", tt.code, r.Outcome, r.Code, r.Reason)
			}
			dl := b.deadLetters()
			switch tt.action {
			case cloud.VerdictDeadLetter, cloud.VerdictWaitInstance:
				if r.Outcome != engine.OutcomeDeadLettered || r.Code != tt.code || r.Verdict != tt.action {
					t.Fatalf("got %s %s (%s), want dead-lettered %s (%s): %s", r.Outcome, r.Code, r.Verdict, tt.code, tt.action, r.Reason)
				}
				if len(dl) != 1 || dl[0].Error.Code != tt.code || dl[0].InstanceID != a {
					t.Fatalf("dead letters %+v, want one for %s with %s", dl, a, tt.code)
				}
				if len(b.inUse(a)) != 0 && tt.event == "" {
					t.Fatalf("instance holds %v after a dead letter", b.inUse(a))
				}
			case cloud.VerdictNextENI:
				if r.Outcome != engine.OutcomeAttached || r.NetworkInterfaceID != good[0].ID || r.Attempts < 2 {
					t.Fatalf("got %s %s after %d attempts, want the next ENI %s attached: %s", r.Outcome, r.NetworkInterfaceID, r.Attempts, good[0].ID, r.Reason)
				}
				if got := b.inUse(a); len(got) != 1 || got[0] != good[0].ID || len(dl) != 0 {
					t.Fatalf("instance holds %v, dead letters %d", got, len(dl))
				}
			case cloud.VerdictSkip:
				if r.Outcome != engine.OutcomeSkipped || r.Code != tt.code || len(dl) != 0 {
					t.Fatalf("got %s %s with %d dead letters, want skipped %s", r.Outcome, r.Code, len(dl), tt.code)
				}
			case cloud.VerdictRetry:
				if r.Outcome != engine.OutcomeAttached || r.Attempts < 2 || len(dl) != 0 {
					t.Fatalf("got %s after %d attempts (%d dead letters), want attached after retrying", r.Outcome, r.Attempts, len(dl))
				}
			}
			if rule := ruleFor(tt.code); rule.Verdict != tt.action {
				t.Fatalf("the error table says %s for %s, the test expects %s", rule.Verdict, tt.code, tt.action)
			}
		})
	}
	// Every code of the seed has a case (Abs.InvalidAccount.NotFound has its own test: the
	// dead letter itself cannot be sent then).
	table, err := apidoc.AttachErrors("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range table {
		if !seen[c.Code] && c.Code != "Abs.InvalidAccount.NotFound" {
			t.Errorf("no case for the reference's %s", c.Code)
		}
	}
}

// A closed account refuses every key: ECS fails, and so does the dead-letter queue. The
// function must then return an error so the platform keeps the event; asynchronously, FC's
// retries end in its onFailure destination (the same queue, written by FC itself).
func TestClosedAccountLosesNothing(t *testing.T) {
	t.Parallel()
	const a = "i-bp1closed0000001"
	w := newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: poolENIs("p", zoneH, 1),
		mutate: func(w *world.World) { w.Account.Closed = true }})
	b := newBed(t, w, bedOptions{env: map[string]string{"ENIPOOL_PLATFORM_RETRIES": "1"}, timeout: 6e9})
	resp, ferr := b.invoke(direct(a))
	if ferr == nil || len(resp.Results) != 0 && resp.Results[0].Outcome != engine.OutcomeFailed {
		t.Fatalf("want a function error and a failed outcome; got %v %+v", ferr, resp.Results)
	}
	if !strings.Contains(ferr.ErrorMessage, "Abs.InvalidAccount.NotFound") {
		t.Errorf("error %q does not name the code", ferr.ErrorMessage)
	}
	id := b.fn.InvokeAsync([]byte(direct(a)))
	waitAsync(t, b)
	msgs := b.cloud.MNS.Messages(dlq)
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Body), id) || !strings.Contains(string(msgs[0].Body), a) {
		t.Fatalf("onFailure destination holds %d messages, want FC's record of %s with the event", len(msgs), id)
	}
}

func busyENI(instance string) world.ENI {
	return world.ENI{ID: "eni-busyelse01", VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"}, Status: "InUse", InstanceID: instance}
}

func ruleFor(code string) cloud.Rule {
	_, r := cloud.Classify(&cloud.APIError{Code: code, HTTPStatus: 400})
	if strings.HasPrefix(code, "Something.NewServerSide") {
		_, r = cloud.Classify(&cloud.APIError{Code: code, HTTPStatus: 502})
	}
	return r
}

// A pool-tagged ENI that another account shares with this one is never a candidate: a RAM
// identity may not attach it (Forbidden.NotSupportRAM), and trying it first every time would
// poison the pool for the instances that rank it first.
func TestSharedENIIsNotACandidate(t *testing.T) {
	t.Parallel()
	const a = "i-bp1shared000001"
	good := poolENIs("good", zoneH, 1)
	shared := world.ENI{ID: firstRanked(a, "shared", good), VSwitch: vswH, SecurityGroups: []string{"sg-testweb001"},
		Tags: map[string]string{"enipool": pool}, OwnerID: "9999999999999999", SharedWithAccount: true}
	b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(a, zoneH)}, enis: append([]world.ENI{shared}, good...)}), bedOptions{})
	r := result(t, b.mustInvoke(direct(a)), a)
	if r.Outcome != engine.OutcomeAttached || r.NetworkInterfaceID != good[0].ID || r.Attempts != 1 {
		t.Fatalf("got %s %s after %d attempts, want %s at once", r.Outcome, r.NetworkInterfaceID, r.Attempts, good[0].ID)
	}
}
