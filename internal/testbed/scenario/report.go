package scenario

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/localcloud/ess"
	"github.com/enipool/enipool/localcloud/world"
)

// Report is what a scenario run did, measured on the world at the end and on its history.
// Its JSON form is the last line `run -scenario` of the demo command (internal/cmd/demo) prints.
type Report struct {
	Scenario string `json:"scenario"`
	// Ended is "quiet" or "deadline"; Seconds is the run's length from the first step.
	Ended   string  `json:"ended"`
	Seconds float64 `json:"seconds"`

	// Instances counts the instances alive at the end (released ones not included).
	Instances int `json:"instances"`
	// Eligible counts the live instances that should hold N pool ENIs: Running, tagged with a
	// pool, of a type that takes ENIs while Running, started after 2018-04-01.
	Eligible int `json:"eligible"`
	// N is the function's ENIPOOL_ENIS_PER_INSTANCE.
	N int `json:"n"`
	// ExactlyN counts eligible instances holding exactly N ENIs of their pool, all InUse, and
	// no other pool ENI.
	ExactlyN int `json:"exactlyN"`
	// OutsidePool counts pool ENIs bound to live instances that must not hold them: not
	// eligible (stopped, untagged, starting...), or of another pool. A Stopped instance of a
	// type that attaches only while Stopped keeps its own pool's ENIs.
	OutsidePool int `json:"outsidePool"`
	// DoubleAttach is ENIsOnTwo + OverNAtRest.
	DoubleAttach int `json:"doubleAttach"`
	// ENIsOnTwo counts ENIs that, over the run's history, began attaching to an instance while
	// still bound to another.
	ENIsOnTwo int `json:"enisOnTwo"`
	// OverNAtRest counts live instances holding more than N pool ENIs at the end.
	OverNAtRest int `json:"overNAtRest"`
	// OverNEver counts instances that held more than N pool ENIs at some moment (a surplus
	// attached and later detached shows here, not in DoubleAttach).
	OverNEver int `json:"overNEver"`

	// DeadLetters counts the messages in the dead-letter queue at the end: the function's
	// envelopes (Envelopes of them), FC's onFailure records and the stream's dead letters.
	DeadLetters int `json:"deadLetters"`
	Envelopes   int `json:"envelopes"`
	// Queued counts messages still in the work queue at the end, delayed ones included (work
	// the function put back for later, which the end condition does not wait for).
	Queued int `json:"queued"`
	// LifecycleActions counts the actions the timeline's launches started;
	// LifecycleCompleted those a caller completed (not timed out), LifecycleTimedOut those
	// whose hook timed out.
	LifecycleActions   int `json:"lifecycleActions"`
	LifecycleCompleted int `json:"lifecycleCompleted"`
	LifecycleTimedOut  int `json:"lifecycleTimedOut"`

	// Invocations counts finished invocation attempts; FailedAttempts those that failed.
	Invocations    int `json:"invocations"`
	FailedAttempts int `json:"failedAttempts"`
	FCInstances    int `json:"fcInstances"`
	ColdStarts     int `json:"coldStarts"`
	// Reclaimed counts FC instances stopped after fc.idleTimeout.
	Reclaimed int `json:"reclaimed"`
	// Deliveries counts the triggers' pushes by trigger name; TimerFirings the timer's.
	Deliveries   map[string]int `json:"deliveries"`
	TimerFirings int            `json:"timerFirings"`

	StaleReads        int `json:"staleReads"`
	FaultsAfterAction int `json:"faultsAfterAction"`
	APICalls          int `json:"apiCalls"`
	// Attaches and Detaches count the operations ECS accepted.
	Attaches int `json:"attaches"`
	Detaches int `json:"detaches"`

	// Launched, Stopped, Started, Released and Sent count what the timeline did.
	Launched   int `json:"launched"`
	Stopped    int `json:"stopped"`
	Started    int `json:"started"`
	Released   int `json:"released"`
	Sent       int `json:"sent"`
	SendErrors int `json:"sendErrors,omitempty"`

	// Final is the world at the end, for tests to check the counts against.
	Final world.Snapshot `json:"-"`
	// Off lists the eligible instances not holding exactly N, with what they hold.
	Off []string `json:"-"`
	// DeadLetterReasons counts the dead letters by reason.
	DeadLetterReasons map[string]int `json:"-"`
	// AttachTimes are the attaches' true durations, accepted order.
	AttachTimes []time.Duration `json:"-"`
}

// JSON is the report as one line of JSON.
func (rep *Report) JSON() []byte {
	b, err := json.Marshal(rep)
	if err != nil {
		// Every field is a number, a string or a map of them.
		panic(err)
	}
	return b
}

// Holdings are the pool ENIs bound to each instance (Attaching, InUse or Detaching), by
// instance id.
func Holdings(snap world.Snapshot, tagKey string) map[string][]world.ENI {
	out := map[string][]world.ENI{}
	for _, e := range snap.ENIs {
		if _, pooled := e.Tags[tagKey]; pooled && e.Type != world.ENIPrimary && e.InstanceID != "" &&
			(e.Status == world.ENIAttaching || e.Status == world.ENIInUse || e.Status == world.ENIDetaching) {
			out[e.InstanceID] = append(out[e.InstanceID], e)
		}
	}
	return out
}

// eniCutoff is the start time before which a Running instance cannot take ENIs.
var eniCutoff = time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC)

// Eligible reports whether an instance should hold N pool ENIs.
func Eligible(w *world.World, in world.Instance, tagKey string) bool {
	t, ok := w.InstanceType(in.Type)
	return ok && !in.Released && in.Status == world.StatusRunning && in.Tags[tagKey] != "" &&
		t.ENIQuantity > 1 && t.Generation != world.GenerationWithoutENI && !t.AttachRequiresStopped &&
		(in.StartTime.Time().IsZero() || !in.StartTime.Time().Before(eniCutoff))
}

// report measures the world at the end.
func (r *run) report(ended string) *Report {
	w, key := r.sc.World, r.sc.TagKey
	st := r.c.State()
	snap := st.World
	rep := &Report{Scenario: r.sc.Name, Ended: ended, Seconds: round1(r.clock.Now().Sub(r.story.start).Seconds()), N: r.n,
		Final: snap, Launched: r.launched, Stopped: r.stopped, Started: r.started, Released: r.released,
		Sent: r.sent, SendErrors: r.sendErrors, Deliveries: map[string]int{}, DeadLetterReasons: map[string]int{}}

	held := Holdings(snap, key)
	for _, in := range snap.Instances {
		if in.Released {
			continue
		}
		rep.Instances++
		mine := held[in.ID]
		if len(mine) > r.n {
			rep.OverNAtRest++
		}
		if Eligible(w, in, key) {
			rep.Eligible++
			good := len(mine) == r.n
			for _, e := range mine {
				good = good && e.Status == world.ENIInUse && e.Tags[key] == in.Tags[key]
			}
			if good {
				rep.ExactlyN++
			} else {
				rep.Off = append(rep.Off, fmt.Sprintf("%s (%s) holds %s", in.ID, in.Status, describeENIs(mine)))
			}
			for _, e := range mine {
				if e.Tags[key] != in.Tags[key] {
					rep.OutsidePool++
				}
			}
			continue
		}
		t, _ := w.InstanceType(in.Type)
		keeps := t != nil && t.AttachRequiresStopped && in.Status == world.StatusStopped
		for _, e := range mine {
			if !keeps || e.Tags[key] != in.Tags[key] {
				rep.OutsidePool++
			}
		}
	}
	rep.ENIsOnTwo, rep.OverNEver = history(r.c.Store.Changes(1), snap, w, key, r.n)
	rep.DoubleAttach = rep.ENIsOnTwo + rep.OverNAtRest

	if r.work != "" {
		rep.Queued = len(st.Queues[r.work])
	}
	dlq := st.Queues[r.dlq]
	rep.DeadLetters = len(dlq)
	for _, m := range dlq {
		env, err := deadletter.Parse(m.Body)
		if err != nil {
			rep.DeadLetterReasons["(not an enipool envelope: FC's onFailure record or the stream's dead letter)"]++
			continue
		}
		rep.Envelopes++
		code := ""
		if env.Error != nil {
			code = env.Error.Code + ": "
		}
		rep.DeadLetterReasons[code+clip(generic(env.Reason), 120)]++
	}

	r.mu.Lock()
	tokens := slices.Clone(r.actions)
	r.mu.Unlock()
	rep.LifecycleActions = len(tokens)
	for _, a := range st.Lifecycle {
		if !slices.Contains(tokens, a.Token) || a.Result == "" {
			continue
		}
		if a.CompletedBy == ess.CompletedByTimeout {
			rep.LifecycleTimedOut++
		} else {
			rep.LifecycleCompleted++
		}
	}

	fs := r.rt.Stats()
	rep.Invocations, rep.FCInstances, rep.ColdStarts, rep.Reclaimed = fs.Invocations, fs.InstancesStarted, fs.ColdStarts, fs.Reclaimed
	for _, inv := range r.rt.Invocations() {
		if inv.Error != nil {
			rep.FailedAttempts++
		}
	}
	for _, d := range r.tr.Deliveries() {
		rep.Deliveries[d.Trigger]++
	}
	rep.TimerFirings = r.tr.Stats().TimerFirings
	rep.StaleReads, rep.FaultsAfterAction = st.Realism.StaleReads, st.Realism.FaultsAfterAction
	for _, c := range st.CallCounts {
		rep.APICalls += c.N
	}
	for _, op := range snap.Operations {
		switch op.Op {
		case "attach":
			rep.Attaches++
			rep.AttachTimes = append(rep.AttachTimes, op.Duration)
		case "detach":
			rep.Detaches++
		}
	}
	return rep
}

// history replays the status changes: ENIs that began attaching to an instance while bound
// to another, and instances that held more than n pool ENIs at once.
func history(changes []world.Change, snap world.Snapshot, w *world.World, key string, n int) (onTwo, overN int) {
	pooled := map[string]bool{}
	for _, e := range w.ENIs {
		_, pooled[e.ID] = e.Tags[key]
	}
	for _, e := range snap.ENIs {
		if _, ok := e.Tags[key]; ok {
			pooled[e.ID] = true
		}
	}
	boundTo := map[string]string{}        // ENI: instance
	holds := map[string]map[string]bool{} // instance: pool ENIs bound
	twice, over := map[string]bool{}, map[string]bool{}
	unbind := func(eni string) {
		if in := boundTo[eni]; in != "" {
			delete(holds[in], eni)
			delete(boundTo, eni)
		}
	}
	for _, ch := range changes {
		if ch.Kind != world.KindENI || !pooled[ch.ID] {
			continue
		}
		switch ch.To {
		case world.ENIAttaching:
			if prev := boundTo[ch.ID]; prev != "" && prev != ch.Instance {
				twice[ch.ID] = true
			}
			unbind(ch.ID)
			boundTo[ch.ID] = ch.Instance
			if holds[ch.Instance] == nil {
				holds[ch.Instance] = map[string]bool{}
			}
			holds[ch.Instance][ch.ID] = true
			if len(holds[ch.Instance]) > n {
				over[ch.Instance] = true
			}
		case world.ENIAvailable, world.StatusDeleted:
			unbind(ch.ID)
		}
	}
	return len(twice), len(over)
}

// tell prints the end of the story: what the world looks like and what it took.
func (r *run) tell(rep *Report) {
	s := r.story
	if rep.Ended == "quiet" {
		s.say("quiet for %s: the end", r.sc.End.Quiet.D())
	} else {
		s.say("deadline: the end, with work possibly still in flight")
	}
	s.say("world: %d instance(s), %d eligible, %d holding exactly %d pool ENI(s); %d pool ENI(s) where they must not be; %d ENI(s) on two instances, %d instance(s) over %d at rest (%d at some moment)",
		rep.Instances, rep.Eligible, rep.ExactlyN, rep.N, rep.OutsidePool, rep.ENIsOnTwo, rep.OverNAtRest, rep.N, rep.OverNEver)
	for i, o := range rep.Off {
		if i == 10 {
			s.say("  ... and %d more", len(rep.Off)-10)
			break
		}
		s.say("  %s", o)
	}
	names := slices.Sorted(maps.Keys(rep.Deliveries))
	var ds []string
	for _, n := range names {
		ds = append(ds, fmt.Sprintf("%s %d", n, rep.Deliveries[n]))
	}
	s.say("triggers: %s; timer firings %d", orElse(strings.Join(ds, ", "), "no deliveries"), rep.TimerFirings)
	s.say("function: %d invocation attempt(s) (%d failed) on %d FC instance(s), %d cold start(s), %d reclaimed idle",
		rep.Invocations, rep.FailedAttempts, rep.FCInstances, rep.ColdStarts, rep.Reclaimed)
	s.say("ECS: %d attach(es) (true time %s), %d detach(es); %d API call(s); %d stale read(s); %d answer(s) lost after the action",
		rep.Attaches, spread(rep.AttachTimes), rep.Detaches, rep.APICalls, rep.StaleReads, rep.FaultsAfterAction)
	s.say("lifecycle: %d action(s) started, %d completed, %d timed out", rep.LifecycleActions, rep.LifecycleCompleted, rep.LifecycleTimedOut)
	s.say("dead letters: %d (%d enipool envelope(s)); %d message(s) left in the work queue", rep.DeadLetters, rep.Envelopes, rep.Queued)
	reasons := slices.Collect(maps.Keys(rep.DeadLetterReasons))
	sort.Slice(reasons, func(i, j int) bool {
		a, b := rep.DeadLetterReasons[reasons[i]], rep.DeadLetterReasons[reasons[j]]
		return a > b || a == b && reasons[i] < reasons[j]
	})
	for i, why := range reasons {
		if i == 8 {
			s.say("  ... and %d other reason(s)", len(reasons)-8)
			break
		}
		s.say("  %3dx %s", rep.DeadLetterReasons[why], why)
	}
}

// spread says the median and the largest of durations.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("median %s, max %s", s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

func describeENIs(es []world.ENI) string {
	if len(es) == 0 {
		return "no pool ENI"
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.ID + " " + e.Status
	}
	return strings.Join(parts, ", ")
}

// Request ids and instance ids make every reason unique; without them, reasons count.
var (
	reRequestID = regexp.MustCompile(`[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}`)
	reInstance  = regexp.MustCompile(`\bi-[a-z0-9]+`)
)

// generic strips a dead letter's reason of what differs between instances.
func generic(reason string) string {
	return reInstance.ReplaceAllString(reRequestID.ReplaceAllString(reason, "<request>"), "<instance>")
}

func round1(f float64) float64 {
	return float64(int64(f*10+0.5)) / 10
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
