package peer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
)

func TestWaits(t *testing.T) {
	s := time.Second
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	tests := []struct {
		name string
		p    Policy
		u    float64 // every jitter draw
		want []time.Duration
	}{
		{"terway, no jitter drawn", Terway(), 0, []time.Duration{3 * s, 3 * s, ms(4.5), ms(6.75), ms(10.125), ms(15.1875), ms(22.78125), ms(34.171875)}},
		{"terway, the most jitter", Terway(), 0.999999, []time.Duration{3 * s, ms(4.5), ms(6.75), ms(10.125), ms(15.1875), ms(22.78125), ms(34.171875), ms(51.2578125)}},
		{"oos: at once, then 15 s x 7", OOS(), 0.5, []time.Duration{0, 15 * s, 15 * s, 15 * s, 15 * s, 15 * s, 15 * s, 15 * s}},
		{"scaled", OOS().Scaled(0.1), 0, []time.Duration{0, ms(1.5), ms(1.5), ms(1.5), ms(1.5), ms(1.5), ms(1.5), ms(1.5)}},
	}
	for _, tt := range tests {
		got := tt.p.Waits(func() float64 { return tt.u })
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if d := got[i] - tt.want[i]; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("%s: wait %d is %v, want %v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
	fixed := Fixed().Waits(func() float64 { return 0.3 })
	if len(fixed) != 60 || fixed[0] != 0 || slices.ContainsFunc(fixed[1:], func(d time.Duration) bool { return d != 2*time.Second }) {
		t.Errorf("fixed2s: %v", fixed)
	}
}

// fakeECS is a one-instance ECS: the listing offers ENIs in order, attaches answer from a
// script, and the ENI becomes InUse at the polls-th describe of it.
type fakeECS struct {
	cloud.ECS
	enis     []cloud.ENI
	attach   []error // answers of the attaches, in order; nil after
	inUseAt  int     // the describe of the attached ENI that first says InUse
	attached []string
	polls    int
}

func (f *fakeECS) DescribeInstances(context.Context, cloud.InstanceQuery) ([]cloud.Instance, error) {
	return []cloud.Instance{{ID: "i-1", Zone: "z1", VpcID: "vpc-1", Tags: map[string]string{"enipool": "web"}}}, nil
}

func (f *fakeECS) DescribeENIs(_ context.Context, q cloud.ENIQuery) ([]cloud.ENI, error) {
	if len(q.IDs) == 1 {
		f.polls++
		e := cloud.ENI{ID: q.IDs[0], Status: cloud.StatusAttaching, InstanceID: "i-1"}
		if f.polls >= f.inUseAt {
			e.Status = cloud.StatusInUse
		}
		return []cloud.ENI{e}, nil
	}
	return f.enis, nil
}

func (f *fakeECS) AttachENI(_ context.Context, eni, _ string) error {
	f.attached = append(f.attached, eni)
	if len(f.attach) > 0 {
		err := f.attach[0]
		f.attach = f.attach[1:]
		return err
	}
	return nil
}

func TestAttach(t *testing.T) {
	throttle := &cloud.APIError{Code: "Throttling.User", HTTPStatus: 400}
	lost := &cloud.APIError{Code: "InvalidOperation.InvalidEniState", HTTPStatus: 400}
	avail := []cloud.ENI{
		{ID: "eni-other-zone", Status: cloud.StatusAvailable, Zone: "z2"},
		{ID: "eni-a", Status: cloud.StatusAvailable, Zone: "z1"},
	}
	tests := []struct {
		name    string
		enis    []cloud.ENI
		attach  []error
		inUseAt int
		checks  int // the policy's
		want    Result
		wantErr error
	}{
		{"InUse at the third check", avail, nil, 3, 8, Result{ENI: "eni-a", Checks: 3, Calls: 6}, nil},
		{"a throttled attach is tried again", avail, []error{throttle}, 1, 8, Result{ENI: "eni-a", Checks: 1, Calls: 5, Throttled: 1}, nil},
		{"a lost race lists again", avail, []error{lost}, 1, 8, Result{ENI: "eni-a", Checks: 1, Calls: 6, LostRaces: 1}, nil},
		{"never InUse", avail, nil, 99, 2, Result{ENI: "eni-a", Checks: 2, Calls: 5}, ErrNotInUse},
		{"no ENI in the zone", avail[:1], nil, 1, 8, Result{Calls: 2}, ErrNoENI},
	}
	for _, tt := range tests {
		f := &fakeECS{enis: tt.enis, attach: tt.attach, inUseAt: tt.inUseAt}
		pol := OOS()
		pol.Checks = tt.checks
		var slept time.Duration
		a := Attacher{ECS: f, TagKey: "enipool", Policy: pol, Rand: func() float64 { return 0 },
			Sleep: func(_ context.Context, d time.Duration) error { slept += d; return nil }}
		got, err := a.Attach(context.Background(), "i-1")
		tt.want.Policy, tt.want.Instance = "oos", "i-1"
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if tt.wantErr == nil && slept != time.Duration(got.Checks-1)*15*time.Second {
			t.Errorf("%s: slept %v over %d checks", tt.name, slept, got.Checks)
		}
		if slices.Contains(f.attached, "eni-other-zone") {
			t.Errorf("%s: attached an ENI of another zone", tt.name)
		}
	}
}
