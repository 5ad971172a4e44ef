// Command demo runs enipool's function against the local cloud (package localcloud: ECS, ESS,
// MNS and the FC runtime on loopback) and says what it did, in enipool's terms. It is what
// `make run`, `make invoke`, `make scenario` and `make localcloud` run; it lives under
// internal/ beside the test bed it is built on (internal/testbed), so the function's build
// (the module's main package) never includes it.
//
//	demo serve  [-world FILE]                    run the cloud until Ctrl-C; print endpoints, credentials and the function's environment
//	demo run    [-world FILE] [-events DIR|FILE...]  build the function, handle every sample event, say what happened
//	demo run    -scenario FILE [-triggers s.yaml] [-logs FILE]  play a scenario; end with its JSON report
//	demo invoke [-world FILE] -event FILE         handle one event; print the function's JSON result
//
// With -triggers s.yaml, run and serve also run the function's triggers from that file (package
// trigger): timers fire, the work queue's event stream pushes batches, and EventBridge events
// reach the function through the default bus's rules, where the world's instance state
// changes and new lifecycle actions also land; run then feeds each sample event in the way its
// trigger would bring it.
//
// The default world is localcloud/worlds/demo.yaml.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/world"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "run":
		err = run(ctx, os.Args[2:], os.Stdout)
	case "invoke":
		err = invoke(ctx, os.Args[2:], os.Stdout)
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  demo serve  [-world FILE] [-ecs ADDR] [-ess ADDR] [-mns ADDR] [-debug ADDR] [-triggers s.yaml [-events-addr ADDR] [-idle D]]
  demo run    [-world FILE] [-events DIR] [-triggers s.yaml [-clock-scale N] [-seed N] [-duplicates P] [-max-delay D] [-idle D]] [FILE...]
  demo run    -scenario FILE [-triggers s.yaml] [-logs FILE]
  demo invoke [-world FILE] -event FILE
`)
}

const defaultWorld = "localcloud/worlds/demo.yaml"

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	worldFile := fs.String("world", defaultWorld, "world file")
	var o localcloud.Options
	fs.StringVar(&o.ECSAddr, "ecs", "127.0.0.1:0", "ECS listen address")
	fs.StringVar(&o.ESSAddr, "ess", "127.0.0.1:0", "ESS listen address")
	fs.StringVar(&o.MNSAddr, "mns", "127.0.0.1:0", "MNS listen address")
	fs.StringVar(&o.DebugAddr, "debug", "127.0.0.1:0", "debug endpoint listen address")
	var to triggerOptions
	addTriggerFlags(fs, &to)
	eventsAddr := fs.String("events-addr", "127.0.0.1:0", "with -triggers: listen address of POST /events (onto the default bus)")
	fs.Parse(args)
	if to.sYAML != "" {
		return serveTriggers(ctx, *worldFile, o, to, *eventsAddr)
	}
	w, err := world.Load(*worldFile)
	if err != nil {
		return err
	}
	c, err := localcloud.Start(w, o)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("local cloud up: world %s, region %s, account %s\n\n", *worldFile, c.Region, c.AccountID)
	fmt.Printf("  ECS    http://%s   (SDK: client.Domain=%q, scheme HTTP)\n", c.ECSEndpoint, c.ECSEndpoint)
	fmt.Printf("  ESS    http://%s\n", c.ESSEndpoint)
	fmt.Printf("  MNS    %s, dialled at %s (install a transport that dials it; see package localcloud)\n", c.MNSEndpoint, c.MNSAddr)
	fmt.Printf("  state  %s/state   calls  %s/calls\n\n", c.DebugURL, c.DebugURL)
	if k, err := c.RootKey(); err == nil {
		fmt.Printf("  account AccessKey: %s / %s (local only)\n", k.ID, k.Secret)
	}
	if k, err := c.AssumeRole(testbed.Role, 12*time.Hour); err == nil {
		fmt.Printf("  role "+testbed.Role+" STS (12h): ALIBABA_CLOUD_ACCESS_KEY_ID=%s ALIBABA_CLOUD_ACCESS_KEY_SECRET=%s ALIBABA_CLOUD_SECURITY_TOKEN=%s\n", k.ID, k.Secret, k.Token)
	}
	fmt.Println("\n  run the function against it (outside FC, one event):")
	env := testbed.FunctionEnv(c, testbed.DeadLetterQueue)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Print("    ")
	for _, k := range keys {
		fmt.Printf("%s=%s ", k, env[k])
	}
	fmt.Printf("ENIPOOL_REGION=%s ENIPOOL_ACCOUNT_ID=%s ALIBABA_CLOUD_ACCESS_KEY_ID=... go run . events/direct.json\n\n", c.Region, c.AccountID)
	fmt.Println("Ctrl-C stops it.")
	<-ctx.Done()
	fmt.Println("\nstopping")
	return nil
}

type fcResult struct {
	payload []byte
	errType string
	errMsg  string
}

func start(ctx context.Context, worldFile string, logs io.Writer) (*localcloud.Cloud, func(context.Context, []byte) (*fcResult, error), func(), error) {
	w, err := world.Load(worldFile)
	if err != nil {
		return nil, nil, nil, err
	}
	c, rt, closeAll, err := launch(ctx, w, localcloud.Options{}, logs, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, syncInvoker(rt), closeAll, nil
}

// syncInvoker invokes rt synchronously, as `s invoke` does.
func syncInvoker(rt *fcrt.Runtime) func(context.Context, []byte) (*fcResult, error) {
	return func(ctx context.Context, payload []byte) (*fcResult, error) {
		res, err := rt.Invoke(ctx, payload)
		if err != nil {
			return nil, err
		}
		out := &fcResult{payload: res.Payload}
		if res.Error != nil {
			out.errType, out.errMsg = res.Error.ErrorType, res.Error.ErrorMessage
		}
		return out, nil
	}
}

// launch builds the function, brings the cloud up from w and runs the function under the
// local FC runtime; configure, when not nil, adjusts the function before it starts.
func launch(ctx context.Context, w *world.World, o localcloud.Options, logs io.Writer, configure func(*testbed.Function)) (*localcloud.Cloud, *fcrt.Runtime, func(), error) {
	dir, err := os.MkdirTemp("", "enipool-run-")
	if err != nil {
		return nil, nil, nil, err
	}
	bin, err := testbed.BuildFunction(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	c, err := localcloud.Start(w, o)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	// The function starts from its defaults, as a fresh deployment does: nothing tells it how
	// long this world's attaches take; it learns that from what its polls see.
	f := testbed.Function{Binary: bin, Logs: logs}
	if configure != nil {
		configure(&f)
	}
	rt, err := testbed.StartFunction(c, f)
	if err != nil {
		c.Close()
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	closeAll := func() {
		rt.Close()
		c.Close()
		os.RemoveAll(dir)
	}
	return c, rt, closeAll, nil
}

func invoke(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("invoke", flag.ExitOnError)
	worldFile := fs.String("world", defaultWorld, "world file")
	eventFile := fs.String("event", "", "event file")
	fs.Parse(args)
	if *eventFile == "" {
		return errors.New("invoke needs -event FILE")
	}
	payload, err := os.ReadFile(*eventFile)
	if err != nil {
		return err
	}
	_, call, closeAll, err := start(ctx, *worldFile, os.Stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := call(ctx, payload)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, res.payload, "", "  ") == nil {
		pretty.WriteByte('\n')
		stdout.Write(pretty.Bytes())
	} else if len(res.payload) > 0 {
		fmt.Fprintf(stdout, "%s\n", res.payload)
	}
	if res.errType != "" {
		return fmt.Errorf("the function returned an error (%s): %s", res.errType, res.errMsg)
	}
	return nil
}

// story is the order `run` tells the sample events in: launches first, then the forms the
// same work can arrive in, then scale-in and the operations.
var story = []string{
	"ecs-running.json", "direct.json", "direct-list.json", "mns-single.json", "mns-batch.json",
	"ecs-notification-mns.json", "ess-scale-out.json", "ess-scale-out-mns.json",
	"ecs-stopped.json", "ess-scale-in.json", "action-detach.json",
	"deadletter-redrive.json", "fc-destination.json", "action-redrive.json", "action-reconcile.json", "action-status.json",
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	worldFile := fs.String("world", defaultWorld, "world file")
	eventsDir := fs.String("events", "", "directory of sample events (run in story order)")
	logFile := fs.String("logs", "", "write the function's log lines to this file (default: discard)")
	scenarioFile := fs.String("scenario", "", "run a scenario file (package scenario) instead of sample events; -triggers overrides its project")
	var to triggerOptions
	addTriggerFlags(fs, &to)
	fs.Parse(args)
	if *scenarioFile != "" {
		return runScenario(ctx, out, *scenarioFile, to.sYAML, *logFile)
	}
	files := fs.Args()
	if *eventsDir != "" {
		all, err := filepath.Glob(filepath.Join(*eventsDir, "*.json"))
		if err != nil {
			return err
		}
		files = append(files, all...)
	}
	if len(files) == 0 {
		return errors.New("run needs -events DIR or event files")
	}
	sort.SliceStable(files, func(i, j int) bool { return storyRank(files[i]) < storyRank(files[j]) })

	logs := io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logs = f
	}
	if to.sYAML != "" {
		return runTriggers(ctx, out, *worldFile, to, files, logs)
	}
	fmt.Fprintf(out, "Building the function and starting the local cloud (%s)...\n", *worldFile)
	c, call, closeAll, err := start(ctx, *worldFile, logs)
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Fprintf(out, "Region %s, account %s, pool tag %q. Each event goes through the real function binary under the local FC runtime.\n\n",
		c.Region, c.AccountID, "enipool")

	for _, f := range files {
		payload, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		start := time.Now()
		res, err := call(ctx, payload)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		fmt.Fprintf(out, "%s  (%s)\n", filepath.Base(f), time.Since(start).Round(time.Millisecond))
		var resp handler.Response
		if err := json.Unmarshal(res.payload, &resp); err != nil || len(resp.Results) == 0 {
			if res.errType != "" {
				fmt.Fprintf(out, "    returned an error to the platform (it retries): %s\n\n", firstLine(res.errMsg))
			}
			continue
		}
		for _, r := range resp.Results {
			fmt.Fprintln(out, "    "+describe(r))
		}
		if res.errType != "" {
			fmt.Fprintf(out, "    -> error returned to the platform, which retries the event: %s\n", firstLine(res.errMsg))
		}
		if resp.Report != nil {
			printReport(out, resp.Report)
		}
		fmt.Fprintln(out)
	}

	letters := testbed.DeadLetters(c, testbed.DeadLetterQueue)
	fmt.Fprintf(out, "Dead-letter queue %s: %d message(s)\n", testbed.DeadLetterQueue, len(letters))
	for i, l := range letters {
		env := l.Envelope
		if env == nil {
			fmt.Fprintf(out, "  %d. (not an enipool envelope: %d bytes from FC's onFailure)\n", i+1, len(l.Body))
			continue
		}
		code := ""
		if env.Error != nil {
			code = env.Error.Code
		}
		fmt.Fprintf(out, "  %d. %s  %s  %s\n", i+1, orDash(env.InstanceID), code, clip(env.Reason, 160))
	}
	fmt.Fprintln(out)
	st := c.State()
	for _, a := range st.Lifecycle {
		if a.Result != "" {
			fmt.Fprintf(out, "Lifecycle action %s: %s (by %s)\n", a.Token, a.Result, a.CompletedBy)
		}
	}
	fmt.Fprintf(out, "API calls answered by the local cloud: %d. Whole state: see `make localcloud` and its /debug/state.\n", len(c.Calls.Calls()))
	return nil
}

// printReport prints an action's report: the pools in words, the rest as JSON.
func printReport(out io.Writer, report any) {
	b, _ := json.Marshal(report)
	var rep struct {
		Pools []engine.PoolStatus `json:"pools"`
	}
	json.Unmarshal(b, &rep)
	var rest map[string]any
	json.Unmarshal(b, &rest)
	delete(rest, "pools")
	if len(rest) > 0 {
		r, _ := json.Marshal(rest)
		fmt.Fprintf(out, "    report: %s\n", clip(string(r), 300))
	}
	for _, p := range rep.Pools {
		for _, z := range p.Zones {
			low := ""
			if z.BelowLowWatermark {
				low = "  (below the low watermark)"
			}
			if z.ReleasedWithInstance > 0 {
				low += fmt.Sprintf("  (%d deleted with their instance: DeleteOnRelease)", z.ReleasedWithInstance)
			}
			fmt.Fprintf(out, "    pool %-6s %-15s %2d available, %2d in use, %2d attaching, %2d detaching, %2d total%s\n",
				p.Pool, z.Zone, z.Available, z.InUse, z.Attaching, z.Detaching, z.Total, low)
			for _, e := range z.ENIs {
				if e.InstanceID != "" {
					fmt.Fprintf(out, "      %s %-12s %s on %s\n", e.ID, e.PrivateIP, e.Status, e.InstanceID)
				}
			}
		}
	}
}

func storyRank(path string) int {
	if i := slices.Index(story, filepath.Base(path)); i >= 0 {
		return i
	}
	return len(story)
}

// describe says in one line what happened to one event.
func describe(r handler.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-17s %-21s", r.Outcome, orDash(r.InstanceID))
	switch r.Outcome {
	case engine.OutcomeAttached, engine.OutcomeAlreadyAttached:
		fmt.Fprintf(&b, " %s %s  zone %s  pool %s", r.NetworkInterfaceID, r.PrivateIP, r.Zone, r.Pool)
		for _, e := range r.ENIs[min(1, len(r.ENIs)):] {
			fmt.Fprintf(&b, " + %s %s", e.ID, e.PrivateIP)
		}
	case engine.OutcomeDetached:
		fmt.Fprintf(&b, " back to the pool: %s", strings.Join(r.Detached, ", "))
	default:
		if r.Code != "" {
			fmt.Fprintf(&b, " %s:", r.Code)
		}
		fmt.Fprintf(&b, " %s", clip(r.Reason, 140))
	}
	fmt.Fprintf(&b, "  [%d ms, %d API calls]", r.DurationMs, r.APICalls)
	if r.DeadLetterID != "" {
		fmt.Fprintf(&b, "  dead letter %s", r.DeadLetterID)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
