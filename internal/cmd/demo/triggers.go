package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/mns"
	"github.com/enipool/enipool/localcloud/trigger"
	"github.com/enipool/enipool/localcloud/world"
)

// triggerOptions are the -triggers flags of run and serve.
type triggerOptions struct {
	sYAML      string
	clockScale float64
	seed       uint64
	duplicates float64
	maxDelay   time.Duration
	idle       time.Duration
}

// loadFunction renders s.yaml for the world's account and returns its function.
func loadFunction(sYAML string, w *world.World) (trigger.FunctionSpec, error) {
	p, err := trigger.LoadProject(sYAML, trigger.RenderOptions{Getenv: os.LookupEnv, AccountID: w.Account.ID})
	if err != nil {
		return trigger.FunctionSpec{}, err
	}
	if len(p.Functions) != 1 {
		return trigger.FunctionSpec{}, fmt.Errorf("%s: want one fc3 function, found %d", sYAML, len(p.Functions))
	}
	return p.Functions[0], nil
}

// deployed makes the local function carry s.yaml's configuration (testbed.Deployed): its
// environment (the cloud's endpoints still win), timeout and asyncInvokeConfig.
func deployed(spec trigger.FunctionSpec, idle time.Duration) func(*testbed.Function) {
	return func(f *testbed.Function) {
		d := testbed.Deployed(spec)
		d.Binary, d.Logs, d.IdleTimeout = f.Binary, f.Logs, idle
		*f = d
	}
}

// runTriggers is `run -triggers`: every sample event goes in the way its trigger would bring
// it (EventBridge events onto the default bus, MNS queue events as messages on the work queue,
// anything else invoked directly), the timer fires once, and what happened is printed, ending
// with one JSON line of counters.
func runTriggers(ctx context.Context, out io.Writer, worldFile string, to triggerOptions, files []string, logs io.Writer) error {
	w, err := world.Load(worldFile)
	if err != nil {
		return err
	}
	spec, err := loadFunction(to.sYAML, w)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Building the function and starting the local cloud (%s) with the triggers of %s...\n", worldFile, to.sYAML)
	c, rt, closeAll, err := launch(ctx, w, localcloud.Options{}, logs, deployed(spec, to.idle))
	if err != nil {
		return err
	}
	defer closeAll()
	clock := trigger.NewScaledClock(time.Now(), to.clockScale)
	tr, err := trigger.Start(trigger.Options{Function: spec, Target: rt, Queues: c.MNS, AccountID: c.AccountID,
		Clock: clock, Seed: to.seed, Bus: trigger.BusOptions{MaxDelay: to.maxDelay, DuplicateRate: to.duplicates}})
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := tr.Watch(trigger.WatchOptions{Instances: c.Store, Lifecycle: c.ESS, World: w, Region: c.Region}); err != nil {
		return err
	}
	workQueue := ""
	for _, t := range spec.Triggers {
		if eb := t.EventBridge; eb != nil && eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters != nil {
			workQueue = eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters.QueueName
		}
	}
	fmt.Fprintf(out, "Region %s, account %s; clock %gx real time. Events go in through the triggers of %s.\n\n", c.Region, c.AccountID, to.clockScale, to.sYAML)

	for _, f := range files {
		payload, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		how, err := feed(ctx, tr, rt, c, workQueue, payload)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		fmt.Fprintf(out, "%-28s %s\n", filepath.Base(f), how)
	}

	fmt.Fprintln(out, "\nWaiting for the deliveries, the work queue and one timer firing...")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// Messages the function delayed (work it put back for later) do not hold the run up.
	pending := func() bool {
		for _, m := range c.MNS.Messages(workQueue) {
			if m.State != mns.StateDelayed {
				return true
			}
		}
		return false
	}
	for tr.Stats().TimerFirings == 0 || (workQueue != "" && pending()) {
		select {
		case <-wctx.Done():
			return fmt.Errorf("waiting for the triggers: %w", wctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := tr.Idle(wctx); err != nil {
		return err
	}
	if err := rt.Wait(wctx); err != nil {
		return err
	}

	failures := map[string][]string{} // request id: each failed attempt, in order
	for _, inv := range rt.Invocations() {
		if inv.Error != nil {
			failures[inv.RequestID] = append(failures[inv.RequestID],
				fmt.Sprintf("attempt %d failed after %s: %s", inv.Attempt, inv.Duration.Round(time.Millisecond), clip(firstLine(inv.Error.ErrorMessage), 140)))
		}
	}
	tasks := map[string]fcrt.AsyncTask{}
	for _, t := range rt.AsyncTasks() {
		tasks[t.RequestID] = t
	}
	fmt.Fprintln(out, "\nDeliveries (repeats counted):")
	var lines []string
	for _, d := range tr.Deliveries() {
		outcome := "ok"
		switch {
		case d.Async:
			t := tasks[d.RequestID]
			outcome = fmt.Sprintf("async %s after %d retries", t.Status, t.AlreadyRetriedTimes)
		case d.Err != "":
			outcome = "failed: " + clip(firstLine(d.Err), 120)
		}
		line := fmt.Sprintf("  %-20s attempt %d, %2d event(s): %s", d.Trigger, d.Attempt, d.Events, outcome)
		if d.Async {
			for _, f := range failures[d.RequestID] {
				line += "\n      " + f
			}
		}
		lines = append(lines, line)
	}
	printCounted(out, lines)
	for _, e := range tr.Errors() {
		fmt.Fprintf(out, "  trigger error: %v\n", e)
	}

	dlqName := testbed.Deployed(spec).DeadLetterQueue
	dlq := testbed.DeadLetters(c, dlqName)
	fmt.Fprintf(out, "\nDead-letter queue %s: %d message(s)\n", dlqName, len(dlq))
	lines = lines[:0]
	for _, l := range dlq {
		if l.Envelope == nil {
			lines = append(lines, fmt.Sprintf("  (not an enipool envelope: %d bytes from FC's onFailure or the stream)", len(l.Body)))
			continue
		}
		lines = append(lines, fmt.Sprintf("  %s  %s", orDash(l.Envelope.InstanceID), clip(l.Envelope.Reason, 160)))
	}
	printCounted(out, lines)
	lifecycle := 0
	for _, a := range c.State().Lifecycle {
		if a.Result != "" {
			lifecycle++
		}
	}
	st, fs := tr.Stats(), rt.Stats()
	summary, _ := json.Marshal(map[string]any{
		"invocations": fs.Invocations, "fcInstances": fs.InstancesStarted, "coldStarts": fs.ColdStarts,
		"timerFirings": st.TimerFirings, "published": st.Published, "matched": st.Matched, "duplicates": st.Duplicates,
		"messages": st.MessagesTaken, "batches": st.Batches, "streamRetries": st.Retries, "streamDeadLetters": st.DeadLettered,
		"deadLetters": len(dlq), "lifecycleCompleted": lifecycle, "reclaimed": fs.Reclaimed,
	})
	fmt.Fprintf(out, "\n%s\n", summary)
	return nil
}

// feed delivers one sample event the way it would reach the function, and says how.
func feed(ctx context.Context, tr *trigger.Triggers, rt *fcrt.Runtime, c *localcloud.Cloud, workQueue string, payload []byte) (string, error) {
	var one struct {
		Source      string          `json:"source"`
		Type        string          `json:"type"`
		SpecVersion string          `json:"specversion"`
		Data        json.RawMessage `json:"data"`
	}
	var many []json.RawMessage
	trimmed := bytes.TrimSpace(payload)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[' && json.Unmarshal(trimmed, &many) == nil:
	case json.Unmarshal(trimmed, &one) == nil && one.Type != "":
		many = []json.RawMessage{trimmed}
	}
	var bodies []string
	for _, raw := range many {
		if json.Unmarshal(raw, &one) != nil {
			bodies = nil
			break
		}
		switch {
		case one.Type == trigger.TypeMNSSendMessage && workQueue != "":
			var d struct {
				MessageBody string `json:"messageBody"`
			}
			if json.Unmarshal(one.Data, &d) != nil {
				return "", errors.New("an MNS event without data.messageBody")
			}
			bodies = append(bodies, d.MessageBody)
		case one.SpecVersion != "" && (one.Source == "acs.ecs" || one.Source == "acs.ess") && len(many) == 1:
			// Only Alibaba Cloud services publish to the default bus.
			n, err := tr.PublishJSON(trimmed)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("published on the default bus (%s): %d rule(s) matched", one.Type, n), nil
		}
	}
	if len(bodies) > 0 {
		for _, b := range bodies {
			if err := c.MNS.Deliver(ctx, workQueue, []byte(b)); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%d message(s) sent to queue %s", len(bodies), workQueue), nil
	}
	res, err := rt.Invoke(ctx, payload)
	if err != nil {
		return "", err
	}
	if res.Error != nil {
		return "invoked directly (no trigger brings it): error " + res.Error.ErrorType, nil
	}
	return "invoked directly (no trigger brings it): ok", nil
}

// serveTriggers is `serve -triggers`: the cloud, the function and its triggers on real time,
// and an endpoint that puts events on the default bus.
func serveTriggers(ctx context.Context, worldFile string, o localcloud.Options, to triggerOptions, eventsAddr string) error {
	w, err := world.Load(worldFile)
	if err != nil {
		return err
	}
	spec, err := loadFunction(to.sYAML, w)
	if err != nil {
		return err
	}
	c, rt, closeAll, err := launch(ctx, w, o, os.Stderr, deployed(spec, to.idle))
	if err != nil {
		return err
	}
	defer closeAll()
	tr, err := trigger.Start(trigger.Options{Function: spec, Target: rt, Queues: c.MNS, AccountID: c.AccountID,
		Seed: to.seed, Bus: trigger.BusOptions{MaxDelay: to.maxDelay, DuplicateRate: to.duplicates}})
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := tr.Watch(trigger.WatchOptions{Instances: c.Store, Lifecycle: c.ESS, World: w, Region: c.Region}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", eventsAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n, err := tr.PublishJSON(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "{\"matched\":%d}\n", n)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	names := make([]string, 0, len(spec.Triggers))
	for _, t := range spec.Triggers {
		names = append(names, t.Name+" ("+t.Type+")")
	}
	slices.Sort(names)
	fmt.Printf("local cloud up with function %s and the triggers of %s: %s\n\n", spec.Name, to.sYAML, strings.Join(names, ", "))
	fmt.Printf("  ECS    http://%s\n  ESS    http://%s\n  MNS    %s, dialled at %s\n  state  %s/state\n", c.ECSEndpoint, c.ESSEndpoint, c.MNSEndpoint, c.MNSAddr, c.DebugURL)
	fmt.Printf("  events curl -X POST --data @events/ecs-running.json http://%s/events   (onto the default bus)\n\n", ln.Addr())
	fmt.Println("The function's logs go to stderr. Ctrl-C stops it.")
	<-ctx.Done()
	st, fs := tr.Stats(), rt.Stats()
	fmt.Printf("\nstopping: %d timer firings, %d events published (%d matched), %d queue messages in %d batches; %d invocations on %d instances (%d cold starts)\n",
		st.TimerFirings, st.Published, st.Matched, st.MessagesTaken, st.Batches, fs.Invocations, fs.InstancesStarted, fs.ColdStarts)
	return nil
}

// addTriggerFlags declares the -triggers flags on fs.
func addTriggerFlags(fs *flag.FlagSet, to *triggerOptions) {
	fs.StringVar(&to.sYAML, "triggers", "", "run the function's triggers from this s.yaml")
	fs.Float64Var(&to.clockScale, "clock-scale", 100, "with -triggers (run): how much faster than real time the triggers' clock runs")
	fs.Uint64Var(&to.seed, "seed", 1, "with -triggers: seed of the event bus's delays and duplicates")
	fs.Float64Var(&to.duplicates, "duplicates", 0, "with -triggers: probability that the event bus delivers an event twice")
	fs.DurationVar(&to.maxDelay, "max-delay", 0, "with -triggers: longest delay of an event bus delivery (on the triggers' clock)")
	fs.DurationVar(&to.idle, "idle", 0, "with -triggers: reclaim a function instance idle this long (real time; 0: never)")
}

// printCounted prints lines, each distinct line once, in order of first appearance, with how
// many times it came when more than once.
func printCounted(out io.Writer, lines []string) {
	counts := map[string]int{}
	var order []string
	for _, l := range lines {
		if counts[l] == 0 {
			order = append(order, l)
		}
		counts[l]++
	}
	for _, l := range order {
		if n := counts[l]; n > 1 {
			head, rest, _ := strings.Cut(l, "\n")
			l = fmt.Sprintf("%s  (x%d)", head, n)
			if rest != "" {
				l += "\n" + rest
			}
		}
		fmt.Fprintln(out, l)
	}
}
