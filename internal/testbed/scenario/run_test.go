package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud/world"
)

// TestRun plays scenarios through the real function binary and the project's s.yaml.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the function and runs for about 40 seconds")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := testbed.BuildFunction(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The two runs share only the built binary (each has its own cloud and function), and
	// mostly wait on the world's timing: they run side by side.
	run := func(name string, test func(context.Context, *testing.T, string)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			test(ctx, t, bin)
		})
	}
	run("small", testRunSmall)
	run("deadline", testRunDeadline)
}

// testRunDeadline: a run with only a deadline runs until it, and says it ended there.
func testRunDeadline(ctx context.Context, t *testing.T, bin string) {
	sc, err := Parse([]byte(`
project: ../../../s.yaml
world: ../../../localcloud/scenarios/worlds/fleet.yaml
pools: [{pool: web, count: 4}]
timeline:
  - launch: {count: 2, pool: web, hook: none}
end: {deadline: 4s}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	var story bytes.Buffer
	rep, err := Run(ctx, sc, Options{Binary: bin, Story: &story})
	if err != nil {
		t.Fatalf("%v\n%s", err, story.String())
	}
	if rep.Ended != "deadline" || rep.Seconds < 4 || rep.Seconds > 10 || rep.Launched != 2 || rep.Instances != 2 {
		t.Errorf("ended %s after %gs, launched %d, instances %d; want deadline after 4s, 2, 2\n%s",
			rep.Ended, rep.Seconds, rep.Launched, rep.Instances, story.String())
	}
}

// testRunSmall plays testdata/small.yaml through the real function binary and the project's
// s.yaml, and checks the report's counts against the world it leaves, recounted here.
func testRunSmall(ctx context.Context, t *testing.T, bin string) {
	sc, err := Load("testdata/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var story, logs bytes.Buffer
	rep, err := Run(ctx, sc, Options{Binary: bin, Story: &story, Logs: &logs})
	if err != nil {
		t.Fatalf("%v\nstory:\n%s", err, story.String())
	}
	t.Logf("story:\n%s\n%s", story.String(), rep.JSON())

	// What the timeline did.
	if rep.Ended != "quiet" || rep.Launched != 12 || rep.Stopped != 2 || rep.Started != 2 || rep.Released != 1 || rep.Sent != 20 {
		t.Errorf("timeline: ended %s, launched %d, stopped %d, started %d, released %d, sent %d; want quiet, 12, 2, 2, 1, 20",
			rep.Ended, rep.Launched, rep.Stopped, rep.Started, rep.Released, rep.Sent)
	}
	releasedMidAttach := false
	for _, op := range rep.Final.Operations {
		releasedMidAttach = releasedMidAttach || op.Op == "attach" && op.Outcome == world.OutcomeReleased
	}
	if !releasedMidAttach {
		t.Error("no attach ended with its instance released")
	}

	// The counts, recounted from the world at the end.
	var instances, eligible, exactly, outside, over int
	held := map[string][]world.ENI{}
	for _, e := range rep.Final.ENIs {
		if e.Tags["enipool"] != "" && e.Type != world.ENIPrimary && e.InstanceID != "" && e.Status != world.ENIAvailable {
			held[e.InstanceID] = append(held[e.InstanceID], e)
		}
	}
	for _, in := range rep.Final.Instances {
		if in.Released {
			if len(held[in.ID]) > 0 {
				t.Errorf("released %s still holds %v", in.ID, held[in.ID])
			}
			continue
		}
		instances++
		if len(held[in.ID]) > 1 {
			over++
		}
		// Every instance of this world is of a type that takes ENIs while Running.
		if in.Status != world.StatusRunning || in.Tags["enipool"] == "" {
			outside += len(held[in.ID])
			continue
		}
		eligible++
		if h := held[in.ID]; len(h) == 1 && h[0].Status == world.ENIInUse && h[0].Tags["enipool"] == in.Tags["enipool"] {
			exactly++
		}
	}
	if instances != 11 || rep.Instances != instances || rep.Eligible != eligible || rep.ExactlyN != exactly ||
		rep.OutsidePool != outside || rep.OverNAtRest != over || rep.N != 1 {
		t.Errorf("report says instances %d, eligible %d, exactlyN %d, outsidePool %d, overNAtRest %d (n %d); the world %d, %d, %d, %d, %d (want 11 instances)",
			rep.Instances, rep.Eligible, rep.ExactlyN, rep.OutsidePool, rep.OverNAtRest, rep.N, instances, eligible, exactly, outside, over)
	}
	// ECS refuses to attach an ENI that is bound: one on two instances would be a bug here or
	// in the emulator.
	if rep.ENIsOnTwo != 0 || rep.DoubleAttach != rep.ENIsOnTwo+rep.OverNAtRest || rep.OverNEver < rep.OverNAtRest {
		t.Errorf("doubleAttach %d = enisOnTwo %d + overNAtRest %d; overNEver %d", rep.DoubleAttach, rep.ENIsOnTwo, rep.OverNAtRest, rep.OverNEver)
	}
	if rep.LifecycleActions != 1 || rep.LifecycleCompleted+rep.LifecycleTimedOut > 1 {
		t.Errorf("lifecycle: %d started, %d completed, %d timed out", rep.LifecycleActions, rep.LifecycleCompleted, rep.LifecycleTimedOut)
	}
	if rep.DeadLetters < rep.Envelopes {
		t.Errorf("deadLetters %d < envelopes %d", rep.DeadLetters, rep.Envelopes)
	}

	// Only the triggers brought work: every invocation came from a delivery of s.yaml's
	// EventBridge rules or the work queue's stream (the timer's 5 minutes never came). The
	// stream cuts batches at 100 messages (CountBasedWindow) or 2 s (TimeBasedWindow), so the
	// 20 messages sent over 1 s take one delivery or more.
	if rep.Deliveries["ecs-state-change"] == 0 || rep.Deliveries["ess-lifecycle-hook"] != 1 || rep.Deliveries["work-queue"] < 1 ||
		len(rep.Deliveries) != 3 || rep.TimerFirings != 0 {
		t.Errorf("deliveries %v, timer firings %d", rep.Deliveries, rep.TimerFirings)
	}
	if want := rep.Deliveries["ecs-state-change"] + rep.Deliveries["ess-lifecycle-hook"] + rep.Deliveries["work-queue"]; rep.Invocations < want ||
		rep.FCInstances == 0 || rep.ColdStarts == 0 || rep.ColdStarts > rep.FCInstances {
		t.Errorf("invocations %d, fcInstances %d, coldStarts %d", rep.Invocations, rep.FCInstances, rep.ColdStarts)
	}
	if rep.StaleReads == 0 || rep.Attaches == 0 || rep.APICalls == 0 {
		t.Errorf("staleReads %d, attaches %d, apiCalls %d: the realism knobs did nothing", rep.StaleReads, rep.Attaches, rep.APICalls)
	}

	// And the function did its job: every eligible instance holds exactly its one pool ENI,
	// however the reads lagged and the answers were lost (before the function's correctness
	// fixes it left 10 of 11 with exactly one, and 6 dead letters).
	if rep.ExactlyN != rep.Eligible || rep.DoubleAttach != 0 || rep.OutsidePool != 0 || rep.DeadLetters != 0 || rep.LifecycleCompleted != 1 {
		t.Errorf("the function left exactlyN %d of %d eligible, doubleAttach %d, outsidePool %d, %d dead letter(s), %d lifecycle action(s) completed",
			rep.ExactlyN, rep.Eligible, rep.DoubleAttach, rep.OutsidePool, rep.DeadLetters, rep.LifecycleCompleted)
	}

	// The JSON line carries the fields.
	var line map[string]any
	if err := json.Unmarshal(rep.JSON(), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"instances", "eligible", "exactlyN", "outsidePool", "doubleAttach", "deadLetters", "lifecycleCompleted",
		"invocations", "fcInstances", "coldStarts", "staleReads", "faultsAfterAction"} {
		if _, ok := line[k]; !ok {
			t.Errorf("JSON line lacks %q", k)
		}
	}
	if !strings.Contains(story.String(), "lifecycle action") {
		t.Errorf("the story does not tell of the lifecycle action")
	}
}

// history finds an ENI that starts attaching while still bound elsewhere, and instances
// holding more than N at once, however briefly.
func TestHistory(t *testing.T) {
	w := &world.World{ENIs: []world.ENI{
		{ID: "eni-a", Tags: map[string]string{"enipool": "web"}},
		{ID: "eni-b", Tags: map[string]string{"enipool": "web"}},
		{ID: "eni-x"}, // not a pool ENI: ignored
	}}
	ch := func(eni, inst, to string) world.Change {
		return world.Change{Kind: world.KindENI, ID: eni, Instance: inst, To: to}
	}
	tests := []struct {
		name          string
		changes       []world.Change
		onTwo, overN1 int
	}{
		{"attach, detach, attach elsewhere", []world.Change{
			ch("eni-a", "i-1", world.ENIAttaching), ch("eni-a", "i-1", world.ENIInUse), ch("eni-a", "i-1", world.ENIDetaching),
			ch("eni-a", "i-1", world.ENIAvailable), ch("eni-a", "i-2", world.ENIAttaching)}, 0, 0},
		{"attached elsewhere while bound", []world.Change{
			ch("eni-a", "i-1", world.ENIAttaching), ch("eni-a", "i-2", world.ENIAttaching)}, 1, 0},
		{"two on one, one detached later", []world.Change{
			ch("eni-a", "i-1", world.ENIAttaching), ch("eni-b", "i-1", world.ENIAttaching),
			ch("eni-b", "i-1", world.ENIDetaching), ch("eni-b", "i-1", world.ENIAvailable)}, 0, 1},
		{"released with its instance, then reused", []world.Change{
			ch("eni-a", "i-1", world.ENIAttaching), ch("eni-a", "i-1", world.StatusDeleted), ch("eni-b", "i-1", world.ENIAttaching)}, 0, 0},
		{"not pool ENIs", []world.Change{
			ch("eni-x", "i-1", world.ENIAttaching), ch("eni-x", "i-2", world.ENIAttaching), ch("eni-a", "i-1", world.ENIAttaching)}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onTwo, over := history(tt.changes, world.Snapshot{}, w, "enipool", 1)
			if onTwo != tt.onTwo || over != tt.overN1 {
				t.Errorf("history = %d on two, %d over N; want %d, %d", onTwo, over, tt.onTwo, tt.overN1)
			}
		})
	}
}
