package engine

import "testing"

// The looks a target waits for move it as the attach loop expects: each look taken clears
// what it was asked for and nothing else, and an outcome is final.
func TestTargetStates(t *testing.T) {
	tests := []struct {
		name  string
		steps func(t *target)
		want  state
	}{
		{"nothing asked", func(*target) {}, stateDeciding},
		{"a look at the ENIs", func(t *target) { t.want(stateLookENIs) }, stateLookENIs},
		{"taken", func(t *target) { t.want(stateLookENIs); t.looked(stateLookENIs) }, stateDeciding},
		{"both, ENIs then instance asked", func(t *target) { t.want(stateLookENIs); t.want(stateLookInstance) }, stateLookBoth},
		{"both, instance then ENIs asked", func(t *target) { t.want(stateLookInstance); t.want(stateLookENIs) }, stateLookBoth},
		{"both, the ENIs looked at", func(t *target) {
			t.want(stateLookENIs)
			t.want(stateLookInstance)
			t.looked(stateLookENIs)
		}, stateLookInstance},
		{"both, the instance looked at", func(t *target) {
			t.want(stateLookInstance)
			t.want(stateLookENIs)
			t.looked(stateLookInstance)
		}, stateLookENIs},
		{"a look not asked for changes nothing", func(t *target) { t.want(stateListPool); t.looked(stateLookENIs) }, stateListPool},
		{"asked twice, taken once", func(t *target) {
			t.want(stateLookInstance)
			t.want(stateLookInstance)
			t.looked(stateLookInstance)
		}, stateDeciding},
		{"done stays done", func(t *target) {
			t.finish(OutcomeAttached, nil)
			t.want(stateLookENIs)
			t.looked(stateLookENIs)
		}, stateDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget("i-1", "", false)
			tt.steps(tg)
			if tg.state != tt.want {
				t.Fatalf("state %s, want %s", tg.state, tt.want)
			}
		})
	}
}

// awaits answers for the looks the combined state holds.
func TestTargetAwaits(t *testing.T) {
	tg := newTarget("i-1", "", false)
	tg.want(stateLookENIs)
	tg.want(stateLookInstance)
	if !tg.awaits(stateLookENIs) || !tg.awaits(stateLookInstance) || tg.awaits(stateListPool) || tg.done() {
		t.Fatalf("in %s: awaits ENIs %v, instance %v, pool %v, done %v", tg.state,
			tg.awaits(stateLookENIs), tg.awaits(stateLookInstance), tg.awaits(stateListPool), tg.done())
	}
}
