package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/enipool/enipool/bench/internal/peer"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/trigger"
)

// Enipool is the policy name of the function itself; the peers go by peer.Policy.Name.
const Enipool = "enipool"

// Policies returns every policy the bench compares: enipool first, then the peers.
func Policies() []string {
	out := []string{Enipool}
	for _, p := range peer.Policies() {
		out = append(out, p.Name)
	}
	return out
}

// Functions are the built binaries: enipool (testbed.BuildFunction, as `make build`) and
// the peers' function (bench/peerfn), built the same way.
type Functions struct {
	Enipool string `json:"-"`
	Peer    string `json:"-"`
	// Spec is the function as s.yaml deploys it (rendered with every default).
	Spec trigger.FunctionSpec `json:"-"`
}

// BuildFunctions builds both binaries into dir and renders s.yaml.
func BuildFunctions(ctx context.Context, dir string) (Functions, error) {
	var f Functions
	root, err := moduleRoot(ctx)
	if err != nil {
		return f, err
	}
	if f.Enipool, err = testbed.BuildFunction(ctx, dir); err != nil {
		return f, err
	}
	f.Peer = filepath.Join(dir, "peerfn")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", f.Peer, "./bench/peerfn")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return f, fmt.Errorf("harness: building the peers' function: %w\n%s", err, msg)
	}
	// Rendered with no environment: what a deploy from a clean shell gets.
	p, err := trigger.LoadProject(filepath.Join(root, "s.yaml"), trigger.RenderOptions{AccountID: "1234567890123456"})
	if err != nil {
		return f, err
	}
	if len(p.Functions) != 1 {
		return f, fmt.Errorf("harness: s.yaml: want one function, found %d", len(p.Functions))
	}
	f.Spec = p.Functions[0]
	return f, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("harness: not inside the enipool module")
	}
	return filepath.Dir(mod), nil
}

// Bed is a local cloud and, per policy, a function running against it under the local FC
// runtime.
type Bed struct {
	Cloud  *localcloud.Cloud
	Params CloudParams
	fns    map[string]*fcrt.Runtime
}

// NewBed starts a cloud for p. Its world has a role per peer (RoleOf).
func NewBed(p CloudParams) (*Bed, error) {
	for _, pol := range peer.Policies() {
		p.Roles = append(p.Roles, RoleOf(pol.Name))
	}
	w, err := p.World()
	if err != nil {
		return nil, err
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		return nil, err
	}
	return &Bed{Cloud: c, Params: p, fns: map[string]*fcrt.Runtime{}}, nil
}

// RoleOf is the role a policy's function runs as: enipool's own, or one per peer, so that
// the cloud's call records say whose each call was.
func RoleOf(policy string) string {
	if policy == Enipool {
		return Role
	}
	return "bench-" + policy
}

// FunctionOptions are the FC settings of a policy's function beyond s.yaml's.
type FunctionOptions struct {
	// MaxInstances bounds the function's instances (FC's per-function limit).
	MaxInstances int
	// PeerScale multiplies the peers' schedules (BENCH_PEER_SCALE); 0 leaves them as published.
	PeerScale float64
}

// Start runs policy's function: enipool's binary or the peers' with BENCH_PEER_POLICY, both
// with s.yaml's environment, timeout and asyncInvokeConfig (testbed.Deployed), and an
// onSuccess destination that keeps the function's answer in the task's record.
func (b *Bed) Start(policy string, bins Functions, o FunctionOptions) error {
	if _, ok := b.fns[policy]; ok {
		return fmt.Errorf("harness: %s already runs", policy)
	}
	f := testbed.Deployed(bins.Spec)
	f.Binary, f.Role, f.MaxInstances = bins.Enipool, RoleOf(policy), o.MaxInstances
	if policy != Enipool {
		if _, ok := peer.ByName(policy); !ok {
			return fmt.Errorf("harness: no policy %q", policy)
		}
		f.Binary = bins.Peer
		f.Env = maps.Clone(f.Env)
		f.Env["BENCH_PEER_POLICY"] = policy
		if o.PeerScale > 0 {
			f.Env["BENCH_PEER_SCALE"] = strconv.FormatFloat(o.PeerScale, 'g', -1, 64)
		}
	}
	f.Async.OnSuccess = fcrt.DestinationFunc(func(context.Context, []byte) error { return nil })
	rt, err := testbed.StartFunction(b.Cloud, f)
	if err != nil {
		return fmt.Errorf("harness: starting %s: %w", policy, err)
	}
	b.fns[policy] = rt
	return nil
}

// Runtime returns policy's runtime (nil if it was not started).
func (b *Bed) Runtime(policy string) *fcrt.Runtime { return b.fns[policy] }

// Close stops the functions and the cloud.
func (b *Bed) Close() {
	for _, rt := range b.fns {
		_ = rt.Close() // unsettled tasks are the caller's to report, from its own reading
	}
	b.Cloud.Close()
}

// Submit delivers the EventBridge ECS Running event of instance to policy's function as an
// asynchronous invocation, as EventBridge delivers it to FC, and returns its ticket.
func (b *Bed) Submit(policy, instance string) Ticket {
	rt := b.fns[policy]
	t := Ticket{Policy: policy, Instance: instance, Enqueued: time.Now()}
	t.RequestID = rt.InvokeAsync(ECSRunning(instance, b.Cloud.Region, b.Cloud.AccountID))
	return t
}

// Ticket is a submitted event.
type Ticket struct {
	Policy, Instance, RequestID string
	Enqueued                    time.Time
}

// Event is one event as the runtime and the cloud recorded it.
type Event struct {
	Policy   string `json:"policy"`
	Instance string `json:"instance"`
	// Lane is the single-event lane that sent it (-1 in a burst).
	Lane int `json:"lane"`
	// Cold is true when its first attempt waited for a new instance to start.
	Cold bool `json:"cold"`
	// Status is the asynchronous task's end (Succeeded, Failed), Attempts how many times FC
	// ran it, Error the last attempt's error message.
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
	// Outcome is enipool's result outcome, or "attached" for a peer that returned.
	Outcome string `json:"outcome"`
	// Latency is from the event's delivery to the end of its last attempt: for a success,
	// the ENI confirmed InUse.
	Latency Duration `json:"latencyMs"`
	// ENI, AttachTime and Accepted describe the attach that ended InUse on the instance, from
	// the cloud's record: its true duration and when ECS accepted it. Attaches counts every
	// attach ECS accepted for the instance.
	ENI        string    `json:"eni,omitempty"`
	AttachTime Duration  `json:"attachTimeMs"`
	Accepted   time.Time `json:"-"`
	Attaches   int       `json:"attaches"`
	// QuotaWait is the least the attach quota made this event wait (see Floors), Floor its
	// floor, 3L + AttachTime + QuotaWait, Ratio Latency / Floor.
	QuotaWait Duration `json:"quotaWaitMs"`
	Floor     Duration `json:"floorMs"`
	Ratio     float64  `json:"ratio"`
	// Polls counts the reads of the attached ENI (by its id or by the instance) that reached
	// the cloud after ECS accepted the attach; FirstPoll is when the first of them arrived,
	// from the acceptance (see Polls).
	Polls     int      `json:"polls"`
	FirstPoll Duration `json:"firstPollMs"`

	enqueued, end time.Time
}

// Collect reads what became of the tickets from the runtimes' records. Call it after
// WaitAll.
func (b *Bed) Collect(tickets []Ticket) []*Event {
	byPolicy := map[string][]Ticket{}
	for _, t := range tickets {
		byPolicy[t.Policy] = append(byPolicy[t.Policy], t)
	}
	found := map[string]*Event{}
	for policy, ts := range byPolicy {
		rt := b.fns[policy]
		tasks := map[string]fcrt.AsyncTask{}
		for _, t := range rt.AsyncTasks() {
			tasks[t.RequestID] = t
		}
		attempts := map[string][]fcrt.Invocation{}
		for _, inv := range rt.Invocations() {
			attempts[inv.RequestID] = append(attempts[inv.RequestID], inv)
		}
		for _, t := range ts {
			ev := &Event{Policy: policy, Instance: t.Instance, Lane: -1, enqueued: t.Enqueued, Outcome: "no answer"}
			task := tasks[t.RequestID]
			ev.Status = task.Status
			if !task.Enqueued.IsZero() {
				ev.enqueued = task.Enqueued
			}
			att := attempts[t.RequestID]
			slices.SortFunc(att, func(x, y fcrt.Invocation) int { return x.Attempt - y.Attempt })
			ev.Attempts = len(att)
			for i, a := range att {
				if i == 0 {
					ev.Cold = a.ColdStart
				}
				if end := a.Start.Add(a.Duration); end.After(ev.end) {
					ev.end = end
				}
				if a.Error != nil {
					ev.Error = a.Error.ErrorMessage
				}
			}
			if !ev.end.IsZero() {
				ev.Latency = Duration(ev.end.Sub(ev.enqueued))
			}
			for _, d := range task.Deliveries {
				if d.Target == fcrt.TargetOnSuccess {
					ev.Outcome = outcomeOfRecord(policy, d.Body)
				}
			}
			if task.Status == fcrt.StatusFailed {
				ev.Outcome = "failed"
			}
			found[t.RequestID] = ev
		}
	}
	out := make([]*Event, 0, len(tickets))
	for _, t := range tickets {
		out = append(out, found[t.RequestID])
	}
	return out
}

// outcomeOfRecord reads the function's answer from an onSuccess destination record.
func outcomeOfRecord(policy string, body []byte) string {
	var rec fcrt.DestinationRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return "unreadable record"
	}
	if policy != Enipool {
		return "attached"
	}
	var resp handler.Response
	if err := json.Unmarshal([]byte(rec.ResponsePayload), &resp); err != nil || len(resp.Results) != 1 {
		return "unreadable response"
	}
	r := resp.Results[0]
	if r.Code != "" && r.Outcome != "attached" {
		return string(r.Outcome) + ":" + r.Code
	}
	return string(r.Outcome)
}

// WaitAll waits until every asynchronous invocation of every function has settled.
func (b *Bed) WaitAll(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 0, len(b.fns))
	var mu sync.Mutex
	for p, rt := range b.fns {
		wg.Go(func() {
			if err := rt.Wait(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
