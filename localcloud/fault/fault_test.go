package fault_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/enipool/enipool/localcloud/fault"
)

func TestDecideIsRepeatable(t *testing.T) {
	plan := fault.Plan{
		Seed:   42,
		Errors: []fault.Rule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 0.3, Code: "Throttling.User", HTTPStatus: 400}},
		Latency: []fault.Latency{{Service: "ecs", Base: fault.Duration(20 * time.Millisecond),
			Jitter: fault.Duration(5 * time.Millisecond)}},
	}
	run := func(interleave bool) []fault.Decision {
		in := fault.New(plan, nil)
		var out []fault.Decision
		for i := 0; i < 200; i++ {
			if interleave {
				in.Decide("ecs", "DescribeInstances") // other actions must not shift the schedule
			}
			out = append(out, in.Decide("ecs", "AttachNetworkInterface"))
		}
		return out
	}
	a, b := run(false), run(true)
	errs := 0
	for i := range a {
		if (a[i].Error == nil) != (b[i].Error == nil) || a[i].Delay != b[i].Delay {
			t.Fatalf("call %d differs between runs: %+v vs %+v", i, a[i], b[i])
		}
		if a[i].Delay < 20*time.Millisecond || a[i].Delay >= 25*time.Millisecond {
			t.Fatalf("call %d delay %v outside [20ms, 25ms)", i, a[i].Delay)
		}
		if a[i].Error != nil {
			errs++
		}
	}
	// 200 draws at 30%: 60 expected; 4 standard deviations is about 26.
	if math.Abs(float64(errs)-60) > 26 {
		t.Fatalf("%d of 200 calls failed, want about 60", errs)
	}
}

func TestDecideRules(t *testing.T) {
	in := fault.New(fault.Plan{Errors: []fault.Rule{
		{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1, Code: "InternalError", HTTPStatus: 500},
		{Service: "mns", Rate: 1, Reset: true},
	}}, nil)
	tests := []struct {
		service, action string
		wantCode        string
		wantReset       bool
	}{
		{"ecs", "AttachNetworkInterface", "InternalError", false},
		{"ecs", "DescribeInstances", "", false},
		{"mns", "SendMessage", "", true},
		{"ess", "CompleteLifecycleAction", "", false},
	}
	for _, tt := range tests {
		d := in.Decide(tt.service, tt.action)
		code, reset := "", false
		if d.Error != nil {
			code, reset = d.Error.Code, d.Error.Reset
		}
		if code != tt.wantCode || reset != tt.wantReset {
			t.Errorf("%s/%s: code %q reset %v, want %q %v", tt.service, tt.action, code, reset, tt.wantCode, tt.wantReset)
		}
	}
}

func TestOutages(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	in := fault.New(fault.Plan{Outages: []fault.Outage{{Service: "mns",
		Start: fault.Duration(10 * time.Second), End: fault.Duration(20 * time.Second)}}}, clock)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, false}, {10 * time.Second, true}, {19 * time.Second, true}, {20 * time.Second, false}}
	for _, s := range steps {
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(s.at)
		if got := in.Decide("mns", "SendMessage").Outage; got != s.want {
			t.Errorf("at %v: outage %v, want %v", s.at, got, s.want)
		}
	}
	in.StartOutage("ecs", time.Minute)
	if !in.Decide("ecs", "DescribeInstances").Outage {
		t.Error("StartOutage did not take effect")
	}
	in.EndOutages("ecs")
	if in.Decide("ecs", "DescribeInstances").Outage {
		t.Error("EndOutages did not take effect")
	}
}

func TestPlanDecodesFromYAMLAndJSON(t *testing.T) {
	y := "seed: 7\nattachRollback: 0.02\nlatency:\n  - service: ecs\n    base: 20ms\n    jitter: 5ms\noutages:\n  - service: mns\n    start: 10s\n    end: 20s\n"
	var fromYAML fault.Plan
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON fault.Plan
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if fromJSON.Latency[0].Base.D() != 20*time.Millisecond || fromJSON.Outages[0].End.D() != 20*time.Second ||
		fromJSON.Seed != 7 || fromJSON.AttachRollback != 0.02 {
		t.Fatalf("round trip lost values: %+v", fromJSON)
	}
	var bad fault.Plan
	if err := yaml.Unmarshal([]byte("latency:\n  - base: soon\n"), &bad); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

func TestLimits(t *testing.T) {
	in := fault.New(fault.Plan{
		Errors:              []fault.Rule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1, Code: "Throttling.User", Limit: 2}},
		AttachRollback:      1,
		AttachRollbackLimit: 1,
	}, nil)
	var codes []string
	for range 4 {
		d := in.Decide("ecs", "AttachNetworkInterface")
		if d.Error != nil {
			codes = append(codes, d.Error.Code)
		} else {
			codes = append(codes, "ok")
		}
	}
	if want := "Throttling.User Throttling.User ok ok"; strings.Join(codes, " ") != want {
		t.Fatalf("limited rule fired %v, want %s", codes, want)
	}
	if !in.RollbackAttach() || in.RollbackAttach() {
		t.Fatal("AttachRollbackLimit 1 should roll back exactly the first attach")
	}
	in.SetPlan(in.Plan())
	if d := in.Decide("ecs", "AttachNetworkInterface"); d.Error == nil {
		t.Fatal("SetPlan should restart the limits")
	}
}

func TestDecideAfter(t *testing.T) {
	tests := []struct {
		name     string
		rules    []fault.AfterRule
		calls    int
		wantLost int
	}{
		{"off", nil, 10, 0},
		{"every call", []fault.AfterRule{{Service: "ecs", Action: "AttachNetworkInterface", Rate: 1, Kind: fault.AfterReset}}, 10, 10},
		{"limited", []fault.AfterRule{{Service: "ecs", Rate: 1, Kind: fault.AfterError, Limit: 3}}, 10, 3},
		{"other action", []fault.AfterRule{{Service: "ecs", Action: "DetachNetworkInterface", Rate: 1, Kind: fault.AfterReset}}, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fault.New(fault.Plan{Seed: 3, AfterAction: tt.rules}, nil)
			lost := 0
			for range tt.calls {
				if in.DecideAfter("ecs", "AttachNetworkInterface") != nil {
					lost++
				}
			}
			st := in.Stats()
			if lost != tt.wantLost || st.FaultsAfterAction != tt.wantLost {
				t.Fatalf("lost %d, stats %+v, want %d", lost, st, tt.wantLost)
			}
		})
	}
}

func TestSpreadQuantiles(t *testing.T) {
	s := fault.Spread{Median: fault.Duration(2 * time.Second), P99: fault.Duration(8 * time.Second)}
	near := func(got, want time.Duration) bool { return math.Abs(float64(got-want)) < float64(time.Millisecond) }
	if got := s.Quantile(0.5); !near(got, 2*time.Second) {
		t.Fatalf("median %v", got)
	}
	if got := s.Quantile(0.99); !near(got, 8*time.Second) {
		t.Fatalf("p99 %v", got)
	}
	if got := s.Quantile(0.01); got >= 2*time.Second || got <= 0 {
		t.Fatalf("p1 %v", got)
	}
	capped := s
	capped.Max = fault.Duration(5 * time.Second)
	if got := capped.Quantile(0.999); got != 5*time.Second {
		t.Fatalf("capped p99.9 %v", got)
	}
	fixed := fault.Spread{Median: fault.Duration(time.Second)}
	if got := fixed.Quantile(0.99); got != time.Second {
		t.Fatalf("a spread without p99 gave %v", got)
	}
}

func TestPlanProblems(t *testing.T) {
	p := fault.Plan{
		Staleness:   []fault.Staleness{{Max: 0}},
		AfterAction: []fault.AfterRule{{Rate: 2, Kind: "explode"}},
	}
	var msgs []string
	for _, err := range p.Problems() {
		msgs = append(msgs, err.Error())
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{"staleness[0].max:", "afterAction[0].rate:", "afterAction[0].kind:"} {
		if !strings.Contains(got, want) {
			t.Fatalf("problems %q miss %q", got, want)
		}
	}
	if n := len((fault.Plan{}).Problems()); n != 0 {
		t.Fatalf("the zero plan has %d problems", n)
	}
}
