package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/world"
)

// Result is the end of one event in one invocation, as the handler reported it.
type Result struct {
	Instance     string
	Outcome      string
	Code         string
	Reason       string
	ENIs         []string // the pool ENIs the result says the instance holds
	DeadLetterID string
	APICalls     int
}

// Invocation is one run of the function: which delivery it served, its attempt (FC's
// retry count), when it ran in virtual time, what it returned.
type Invocation struct {
	Index      int
	Delivery   int
	RetryCount int
	Start, End time.Time
	Results    []Result
	// Err is the invocation's error (the platform keeps the event), "" when nil.
	Err string
}

// Delivery is one event FC delivered, and the invocations it took.
type Delivery struct {
	Event
	Invocations []int
}

// Final is the result of the delivery's last invocation; ok is false when it has none.
func (d Delivery) Final(r *Report) (Result, bool) {
	if len(d.Invocations) == 0 {
		return Result{}, false
	}
	inv := r.Invocations[d.Invocations[len(d.Invocations)-1]]
	for _, res := range inv.Results {
		if res.Instance == d.Instance {
			return res, true
		}
	}
	return Result{}, false
}

// Report is everything a scenario did, for the invariants.
type Report struct {
	Scenario    *Scenario
	Deliveries  []Delivery
	Invocations []Invocation
	Calls       []Call
	// Instances and ENIs are the world's at the end, every change settled.
	Instances map[string]world.Instance
	ENIs      map[string]world.ENI
	// Letters are the dead letters in the queue at the end, by message id.
	Letters map[string]*deadletter.Envelope
	// Disturbed names the instances a disturbance stopped or released.
	Disturbed map[string]string
	// Operations are every attach and detach ECS accepted, with how each ended.
	Operations []world.Operation
	// Reconcile is the reconcile timer's invocation after the events, the safety net for
	// what they missed; AfterReconcile are the ENIs once it settled.
	Reconcile      Invocation
	AfterReconcile map[string]world.ENI
}

// settle is how long the simulation waits after the last invocation so every attach and
// detach has ended: longer than the longest attach a world may draw.
const settle = 2 * time.Minute

// Run plays the scenario and reports what happened. Call it inside a synctest bubble: it
// waits in virtual time.
func Run(s *Scenario) (*Report, error) {
	cloud, err := NewCloud(s.World)
	if err != nil {
		return nil, err
	}
	opts := handler.DefaultOptions()
	opts.PerInstance = s.PerInstance
	opts.Region = Region
	opts.Pools = []string{Pool}
	opts.PlatformRetries = s.PlatformRetries
	opts.Concurrency = 4
	opts.Clock = simClock{}
	opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	p := &player{s: s, cloud: cloud, opts: opts, rep: &Report{Scenario: s, Disturbed: map[string]string{}}}
	var wg sync.WaitGroup
	for _, ev := range s.Events {
		wg.Go(func() {
			time.Sleep(ev.At)
			p.deliver(ev)
		})
	}
	for _, d := range s.Disturbances {
		wg.Go(func() {
			time.Sleep(d.At)
			p.disturb(d)
		})
	}
	wg.Wait()
	if p.err != nil {
		return nil, p.err
	}
	time.Sleep(settle)
	rep, err := p.collect()
	if err != nil {
		return nil, err
	}
	p.reconcile()
	time.Sleep(settle)
	rep.AfterReconcile = map[string]world.ENI{}
	for _, e := range cloud.Store.ENIs() {
		rep.AfterReconcile[e.ID] = e
	}
	return rep, nil
}

// reconcile runs the reconcile timer once, as its trigger does, on a fresh function instance.
func (p *player) reconcile() {
	h, err := handler.New(p.opts, connector{p.cloud})
	if err != nil {
		p.fail(err)
		return
	}
	idx := -1 // its calls are not any event's
	ctx, cancel := context.WithTimeout(withInvocation(context.Background(), idx), p.s.Timeout)
	defer cancel()
	start := Now()
	payload := fmt.Appendf(nil, `{"triggerTime":%q,"triggerName":"reconcile-timer","payload":"{\"action\":\"reconcile\"}"}`,
		start.UTC().Format(time.RFC3339))
	resp, ierr := h.Invoke(ctx, handler.Invocation{RequestID: "req-reconcile", FunctionName: "enipool", Region: Region, AccountID: Account}, payload)
	p.rep.Reconcile = record(idx, -1, 0, start, resp, ierr)
}

// player plays one scenario: it is FC (a pool of function instances, each running one
// request at a time, and the asynchronous retries) and the world around the fleet.
type player struct {
	s     *Scenario
	cloud *Cloud
	opts  handler.Options

	mu   sync.Mutex
	idle []*handler.Handler
	rep  *Report
	err  error
}

// instance takes an idle function instance or starts one. FC's go1 runtime runs one
// request per instance at a time; instances share no memory.
func (p *player) instance() (*handler.Handler, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		h := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return h, nil
	}
	return handler.New(p.opts, connector{p.cloud})
}

func (p *player) release(h *handler.Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, h)
}

func (p *player) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// deliver delivers one event asynchronously, as FC does: it invokes the function and, while
// the invocation fails and retries are left, invokes it again after a pause.
func (p *player) deliver(ev Event) {
	p.mu.Lock()
	d := len(p.rep.Deliveries)
	p.rep.Deliveries = append(p.rep.Deliveries, Delivery{Event: ev})
	p.mu.Unlock()
	payload := fmt.Appendf(nil, `{"id":%q,"source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:%s:%s:instance/%s","aliyunaccountid":%q,"aliyunregionid":%q,`+
		`"data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":%q}}`,
		ev.ID, Region, Account, ev.Instance, Account, Region, ev.Instance, ev.State)
	for retry := 0; ; retry++ {
		failed := p.invoke(d, retry, payload)
		if !failed || retry >= p.s.PlatformRetries {
			return
		}
		// FC's asynchronous retries back off; the figures are an assumption.
		time.Sleep(time.Duration(1<<retry) * 5 * time.Second)
	}
}

// invoke runs one invocation on a function instance and records it; it reports whether
// the invocation failed (the platform retries it).
func (p *player) invoke(d, retry int, payload []byte) bool {
	h, err := p.instance()
	if err != nil {
		p.fail(err)
		return false
	}
	defer p.release(h)
	p.mu.Lock()
	idx := len(p.rep.Invocations)
	p.rep.Invocations = append(p.rep.Invocations, Invocation{Index: idx, Delivery: d, RetryCount: retry})
	p.rep.Deliveries[d].Invocations = append(p.rep.Deliveries[d].Invocations, idx)
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(withInvocation(context.Background(), idx), p.s.Timeout)
	defer cancel()
	start := Now()
	resp, ierr := h.Invoke(ctx, handler.Invocation{RequestID: fmt.Sprintf("req-%d", idx), FunctionName: "enipool",
		Region: Region, AccountID: Account, RetryCount: retry}, payload)
	inv := record(idx, d, retry, start, resp, ierr)
	p.mu.Lock()
	p.rep.Invocations[idx] = inv
	p.mu.Unlock()
	return ierr != nil
}

// record turns what an invocation returned into an Invocation.
func record(idx, d, retry int, start time.Time, resp *handler.Response, ierr error) Invocation {
	inv := Invocation{Index: idx, Delivery: d, RetryCount: retry, Start: start, End: Now()}
	if ierr != nil {
		inv.Err = ierr.Error()
		var e *handler.InvocationError
		if !errors.As(ierr, &e) {
			inv.Err = "not an InvocationError: " + inv.Err
		}
	}
	if resp != nil {
		for _, r := range resp.Results {
			res := Result{Instance: r.InstanceID, Outcome: string(r.Outcome), Code: r.Code, Reason: r.Reason,
				DeadLetterID: r.DeadLetterID, APICalls: r.APICalls}
			if r.NetworkInterfaceID != "" && len(r.ENIs) == 0 {
				res.ENIs = []string{r.NetworkInterfaceID}
			}
			for _, e := range r.ENIs {
				res.ENIs = append(res.ENIs, e.ID)
			}
			inv.Results = append(inv.Results, res)
		}
	}
	return inv
}

// disturb stops or releases an instance, and delivers the state-change event ECS sends
// when it gets there.
func (p *player) disturb(d Disturbance) {
	st := p.cloud.Store
	switch d.Kind {
	case "stop":
		stop := p.s.World.Timing.Stop.D()
		if err := st.StopInstance(d.Instance, stop); err != nil {
			return // not Running (still starting, or released): nothing stops
		}
		p.mu.Lock()
		p.rep.Disturbed[d.Instance] = "stopped"
		p.mu.Unlock()
		time.Sleep(stop + d.Notify)
		p.deliver(Event{At: d.At + stop + d.Notify, ID: "ev-stop-" + d.Instance, Instance: d.Instance, State: "Stopped"})
	case "release":
		if err := st.ReleaseInstance(d.Instance); err != nil {
			return
		}
		p.mu.Lock()
		p.rep.Disturbed[d.Instance] = "released"
		p.mu.Unlock()
		time.Sleep(d.Notify)
		p.deliver(Event{At: d.At + d.Notify, ID: "ev-release-" + d.Instance, Instance: d.Instance, State: "Deleted"})
	}
}

// collect reads the world and the dead-letter queue at the end.
func (p *player) collect() (*Report, error) {
	rep := p.rep
	rep.Calls = p.cloud.Calls.All()
	rep.Operations = p.cloud.Store.Operations()
	rep.Instances = map[string]world.Instance{}
	for _, in := range p.cloud.Store.Instances() {
		rep.Instances[in.ID] = in
	}
	rep.ENIs = map[string]world.ENI{}
	for _, e := range p.cloud.Store.ENIs() {
		rep.ENIs[e.ID] = e
	}
	rep.Letters = map[string]*deadletter.Envelope{}
	for _, m := range p.cloud.MNS.Messages(DeadLetterQueue) {
		env, err := deadletter.Parse(m.Body)
		if err != nil {
			return nil, fmt.Errorf("dead letter %s does not parse: %w", m.ID, err)
		}
		rep.Letters[m.ID] = env
	}
	return rep, nil
}
