package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/enipool/enipool/config"
	"github.com/enipool/enipool/internal/syaml"
)

// Paths relative to this package's directory (go test runs tests there), all inside the
// repository.
const (
	repoRoot   = ".."
	sYAMLPath  = "../s.yaml"
	schemaPath = "../testdata/fc3-props.schema.json" // devsapp/fc3 src/schema.json; source in testdata/README.md
	policyPath = "ram-policy.json"
	readmePath = "README.md"
	makefile   = "../Makefile"
)

// testAccountID stands in for ${config('AccountID')} (the local cloud's demo account).
const testAccountID = "1234567890123456"

// pendingVariables are set in s.yaml ahead of the function reading them: names config does
// not know yet, each kept here (with a comment saying which change will read it) until
// config.Variables() learns it, when the test asks for its removal. Empty now: the issue-6
// variables (release on stop/delete, lifecycle hooks, warm target, redrive, reconcile) landed
// in config.
var pendingVariables = []string{}

// template is s.yaml, raw and rendered.
type template struct {
	raw  []byte
	doc  map[string]any // rendered, normalized to what encoding/json produces
	vars map[string]any // rendered
}

// loadTemplate renders s.yaml with the given shell environment and account id.
func loadTemplate(t *testing.T, env map[string]string, accountID string) template {
	t.Helper()
	raw, err := os.ReadFile(sYAMLPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("s.yaml is not YAML: %v", err)
	}
	vars, _ := doc["vars"].(map[string]any)
	r := &syaml.Renderer{Vars: vars, AccountID: accountID, Getenv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	rendered, err := r.Render(doc)
	if err != nil {
		t.Fatalf("s.yaml: %v", err)
	}
	out := template{raw: raw, doc: normalize(t, rendered)}
	out.vars, _ = out.doc["vars"].(map[string]any)
	return out
}

// normalize round-trips v through JSON, so YAML ints become float64 like `s preview -o json`.
func normalize(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fc3Resources returns the props of every fc3 resource, by resource name.
func (tp template) fc3Resources(t *testing.T) map[string]map[string]any {
	t.Helper()
	res, _ := tp.doc["resources"].(map[string]any)
	out := map[string]map[string]any{}
	for name, r := range res {
		r, _ := r.(map[string]any)
		if r["component"] != "fc3" {
			continue
		}
		props, ok := r["props"].(map[string]any)
		if !ok {
			t.Fatalf("resources.%s: no props", name)
		}
		out[name] = props
	}
	if len(out) == 0 {
		t.Fatal("s.yaml has no fc3 resource")
	}
	return out
}

// function returns the props of the single fc3 resource.
func (tp template) function(t *testing.T) map[string]any {
	t.Helper()
	all := tp.fc3Resources(t)
	if len(all) != 1 {
		t.Fatalf("s.yaml has %d fc3 resources, these tests expect one", len(all))
	}
	for _, p := range all {
		return p
	}
	return nil
}

// get walks a dotted path through maps and lists ("triggers.1.triggerConfig").
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func triggerByName(props map[string]any, name string) map[string]any {
	ts, _ := props["triggers"].([]any)
	for _, tr := range ts {
		if tr, _ := tr.(map[string]any); tr["triggerName"] == name {
			return tr
		}
	}
	return nil
}

func envVars(t *testing.T, props map[string]any) map[string]string {
	t.Helper()
	raw, _ := props["environmentVariables"].(map[string]any)
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		s, ok := v.(string)
		if !ok {
			// FC stores environment variables as strings; a bare ${vars.n} renders a number.
			t.Errorf("environmentVariables.%s = %v (%T): must be a string (use ${str('vars.x')})", k, v, v)
		}
		out[k] = s
	}
	return out
}

func TestSYAMLRenders(t *testing.T) {
	tp := loadTemplate(t, nil, testAccountID)
	if got := tp.doc["edition"]; got != "3.0.0" {
		t.Errorf("edition = %v, want 3.0.0", got)
	}
	// Every ${ left after rendering is a form internal/syaml did not see (it errors on those
	// it does not know), e.g. "$ {" typos or a ${ inside a YAML key.
	b, _ := json.Marshal(tp.doc)
	if bytes.Contains(b, []byte("${")) {
		t.Errorf("rendered s.yaml still contains ${: %s", b)
	}
}

// TestDeployerOverrides renders s.yaml with every ENIPOOL_DEPLOY_* override set and checks
// they land where a deployer expects.
func TestDeployerOverrides(t *testing.T) {
	env := map[string]string{
		"ENIPOOL_DEPLOY_REGION":                   "cn-shanghai",
		"ENIPOOL_DEPLOY_FUNCTION_NAME":            "enipool-staging",
		"ENIPOOL_DEPLOY_TAG_KEY":                  "pool",
		"ENIPOOL_DEPLOY_DLQ_QUEUE":                "staging-dlq",
		"ENIPOOL_DEPLOY_WORK_QUEUE":               "staging-work",
		"ENIPOOL_DEPLOY_ROLE_NAME":                "staging-fn",
		"ENIPOOL_DEPLOY_LIFECYCLE_FAILURE_RESULT": "CONTINUE",
		"ENIPOOL_DEPLOY_LOG_LEVEL":                "debug",
		"ENIPOOL_DEPLOY_POOLS":                    "web,db",
		"ENIPOOL_DEPLOY_SCALING_GROUPS":           "asg-bp1staging01",
	}
	p := loadTemplate(t, env, testAccountID).function(t)
	checks := []struct{ path, want string }{
		{"region", "cn-shanghai"},
		{"functionName", "enipool-staging"},
		{"role", "acs:ram::" + testAccountID + ":role/staging-fn"},
		{"environmentVariables.ENIPOOL_TAG_KEY", "pool"},
		{"environmentVariables.ENIPOOL_DLQ_QUEUE", "staging-dlq"},
		{"environmentVariables.ENIPOOL_LIFECYCLE_FAILURE_RESULT", "CONTINUE"},
		{"environmentVariables.ENIPOOL_LOG_LEVEL", "debug"},
		{"environmentVariables.ENIPOOL_POOLS", "web,db"},
		{"environmentVariables.ENIPOOL_SCALING_GROUPS", "asg-bp1staging01"},
		{"asyncInvokeConfig.destinationConfig.onFailure.destination", "acs:mns:cn-shanghai:" + testAccountID + ":/queues/staging-dlq/messages"},
	}
	for _, c := range checks {
		if got := get(p, c.path); got != c.want {
			t.Errorf("%s = %v, want %s", c.path, got, c.want)
		}
	}
	wq := triggerByName(p, "work-queue")
	if got := get(wq, "triggerConfig.eventSourceConfig.eventSourceParameters.sourceMNSParameters.QueueName"); got != "staging-work" {
		t.Errorf("work-queue QueueName = %v", got)
	}
	if got := get(wq, "triggerConfig.runOptions.deadLetterQueue.Arn"); got != "acs:mns:cn-shanghai:"+testAccountID+":/queues/staging-dlq" {
		t.Errorf("work-queue dead-letter queue = %v", got)
	}
	if got := get(wq, "triggerConfig.eventRuleFilterPattern"); got != `{"source":["MNS-enipool-staging-work-queue"]}` {
		t.Errorf("work-queue pattern = %v", got)
	}
}

// TestEnvironmentVariables checks s.yaml's environmentVariables against what the function
// reads (config.Variables) and that config.Load accepts them.
func TestEnvironmentVariables(t *testing.T) {
	tp := loadTemplate(t, nil, testAccountID)
	env := envVars(t, tp.function(t))

	known := map[string]bool{}
	for _, v := range config.Variables() {
		known[v.Name] = true
	}
	for _, name := range pendingVariables {
		if known[name] {
			t.Errorf("%s is now in config.Variables(): remove it from pendingVariables", name)
		}
		known[name] = true
	}

	t.Run("every variable the function reads is decided in s.yaml", func(t *testing.T) {
		for _, v := range config.Variables() {
			val, set := env[v.Name]
			switch {
			case v.Required && strings.TrimSpace(val) == "":
				t.Errorf("%s is required and s.yaml does not set it", v.Name)
			case !set && !bytes.Contains(tp.raw, []byte(v.Name)):
				// Left to its default is fine, but deliberately: s.yaml must name it in the
				// comment block of defaults, so a new variable forces a decision.
				t.Errorf("%s (default %q) is neither set in s.yaml nor listed there as left to its default", v.Name, v.Default)
			}
		}
	})

	t.Run("every variable s.yaml sets is one the function knows", func(t *testing.T) {
		for name := range env {
			if !known[name] {
				t.Errorf("environmentVariables.%s: the function does not read it (typo?)", name)
			}
		}
		for _, name := range pendingVariables {
			if _, ok := env[name]; !ok {
				t.Errorf("pending variable %s is not set in s.yaml", name)
			}
		}
	})

	t.Run("config.Load accepts them", func(t *testing.T) {
		cfg, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("config.Load with s.yaml's environment: %v", err)
		}
		if cfg.Cloud.DeadLetterQueue != tp.vars["dlqQueue"] {
			t.Errorf("the function's DLQ is %q, vars.dlqQueue is %v", cfg.Cloud.DeadLetterQueue, tp.vars["dlqQueue"])
		}
		if cfg.Handler.TagKey != tp.vars["poolTagKey"] {
			t.Errorf("the function's tag key is %q, vars.poolTagKey is %v", cfg.Handler.TagKey, tp.vars["poolTagKey"])
		}
	})
}

// TestConsistency checks the facts that tie s.yaml's parts to each other and to the build.
func TestConsistency(t *testing.T) {
	tp := loadTemplate(t, nil, testAccountID)
	p := tp.function(t)
	env := envVars(t, p)
	region, dlq := tp.vars["region"], tp.vars["dlqQueue"]

	t.Run("platform retries", func(t *testing.T) {
		retries, ok := get(p, "asyncInvokeConfig.maxAsyncRetryAttempts").(float64)
		if !ok {
			t.Fatalf("asyncInvokeConfig.maxAsyncRetryAttempts = %v, want a number", get(p, "asyncInvokeConfig.maxAsyncRetryAttempts"))
		}
		if env["ENIPOOL_PLATFORM_RETRIES"] != strconv.Itoa(int(retries)) {
			t.Errorf("ENIPOOL_PLATFORM_RETRIES = %q, asyncInvokeConfig.maxAsyncRetryAttempts = %v", env["ENIPOOL_PLATFORM_RETRIES"], retries)
		}
		cfg, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Handler.PlatformRetries != int(retries) {
			t.Errorf("the function counts %d platform retries, FC makes %v", cfg.Handler.PlatformRetries, retries)
		}
	})

	t.Run("dead-letter queue", func(t *testing.T) {
		want := fmt.Sprintf("acs:mns:%s:%s:/queues/%s/messages", region, testAccountID, dlq)
		if got := get(p, "asyncInvokeConfig.destinationConfig.onFailure.destination"); got != want {
			t.Errorf("onFailure destination = %v, want %s", got, want)
		}
		if env["ENIPOOL_DLQ_QUEUE"] != dlq {
			t.Errorf("ENIPOOL_DLQ_QUEUE = %q, want vars.dlqQueue %v", env["ENIPOOL_DLQ_QUEUE"], dlq)
		}
		wq := triggerByName(p, "work-queue")
		// The trigger's dead-letter queue ARN has no /messages suffix.
		want = fmt.Sprintf("acs:mns:%s:%s:/queues/%s", region, testAccountID, dlq)
		if got := get(wq, "triggerConfig.runOptions.deadLetterQueue.Arn"); got != want {
			t.Errorf("work-queue deadLetterQueue.Arn = %v, want %s", got, want)
		}
		if q := get(wq, "triggerConfig.eventSourceConfig.eventSourceParameters.sourceMNSParameters.QueueName"); q == dlq {
			t.Errorf("the work queue is the dead-letter queue (%v): dead letters would loop", q)
		}
	})

	t.Run("work-queue visibility", func(t *testing.T) {
		// The work-queue stream deletes a batch's messages only when its synchronous push
		// returned: a queue whose visibility timeout is not longer than the function's timeout
		// hands messages out again while their batch still runs. fc3 does not create queues,
		// so the rule lives in the deploy steps of both READMEs, which must agree.
		timeout, ok := p["timeout"].(float64)
		if !ok || timeout != tp.vars["functionTimeout"] {
			t.Fatalf("timeout = %v, vars.functionTimeout = %v: want the same number", p["timeout"], tp.vars["functionTimeout"])
		}
		re := regexp.MustCompile("`VisibilityTimeout`\\s+(\\d+)")
		var seen []int
		for _, path := range []string{readmePath, filepath.Join(repoRoot, "README.md")} {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m := re.FindSubmatch(b)
			if m == nil || !bytes.Contains(b, []byte("enipool-work")) {
				t.Errorf("%s: no \"`VisibilityTimeout` <seconds>\" for the work queue enipool-work", path)
				continue
			}
			v, _ := strconv.Atoi(string(m[1]))
			if v <= int(timeout) || v > 43200 {
				t.Errorf("%s: the work queue's VisibilityTimeout %d s, want above the function's timeout (%v s) and at most MNS's 43200", path, v, timeout)
			}
			seen = append(seen, v)
		}
		if len(seen) == 2 && seen[0] != seen[1] {
			t.Errorf("the READMEs disagree on the work queue's VisibilityTimeout: %v", seen)
		}
	})

	t.Run("code and handler", func(t *testing.T) {
		if p["runtime"] != "go1" || p["handler"] != "main" {
			t.Errorf("runtime %v handler %v, want go1 and main", p["runtime"], p["handler"])
		}
		if _, set := p["instanceConcurrency"]; set {
			t.Error("instanceConcurrency is set: go1 does not support it")
		}
		// make build writes BIN; code must be the folder holding it, named as handler.
		mk, err := os.ReadFile(makefile)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^BIN\s*:?=\s*(\S+)\s*$`).FindSubmatch(mk)
		if m == nil {
			t.Fatal("Makefile: no BIN := line")
		}
		bin := filepath.Clean(string(m[1]))
		code, _ := p["code"].(string)
		if filepath.Join(filepath.Clean(code), p["handler"].(string)) != bin {
			t.Errorf("code %q + handler %q is not where make build writes (%s)", code, p["handler"], bin)
		}
		actions := get(tp.doc, "resources")
		found := false
		for _, r := range actions.(map[string]any) {
			pre, _ := get(r, "actions.pre-deploy").([]any)
			for _, a := range pre {
				if get(a, "run") == "make build" && get(a, "path") == "./" {
					found = true
				}
			}
		}
		if !found {
			t.Error("no pre-deploy action running `make build` in ./")
		}
	})

	t.Run("triggers", func(t *testing.T) {
		type want struct {
			typ, pattern string
			async        bool
		}
		wants := map[string]want{
			"ecs-state-change":   {"eventbridge", `{"source":["acs.ecs"],"type":["ecs:Instance:StateChange"]}`, true},
			"ess-lifecycle-hook": {"eventbridge", `{"source":["acs.ess"],"type":["ess:LifecycleHook:ScaleOut","ess:LifecycleHook:ScaleIn"]}`, true},
			"work-queue":         {"eventbridge", `{"source":["MNS-enipool-work-queue"]}`, false},
			"reconcile-timer":    {"timer", "", false},
		}
		ts, _ := p["triggers"].([]any)
		if len(ts) != len(wants) {
			t.Errorf("%d triggers, want %d", len(ts), len(wants))
		}
		sawEB := false
		for i, tr := range ts {
			name, _ := get(tr, "triggerName").(string)
			w, ok := wants[name]
			if !ok {
				t.Errorf("unexpected trigger %q", name)
				continue
			}
			if get(tr, "triggerType") != w.typ {
				t.Errorf("%s: type %v, want %s", name, get(tr, "triggerType"), w.typ)
			}
			// The fc3 quirk (an unchanged eventbridge trigger ends the deploy loop): keep
			// non-eventbridge triggers ahead of every eventbridge one.
			if w.typ == "eventbridge" {
				sawEB = true
			} else if sawEB {
				t.Errorf("%s (#%d) comes after an eventbridge trigger: an unchanged one before it stops its deploy", name, i)
			}
			if w.typ != "eventbridge" {
				continue
			}
			if got := get(tr, "triggerConfig.eventRuleFilterPattern"); got != w.pattern {
				t.Errorf("%s: pattern %v, want %s", name, got, w.pattern)
			}
			if got := get(tr, "triggerConfig.asyncInvocationType"); got != w.async {
				t.Errorf("%s: asyncInvocationType %v, want %v", name, got, w.async)
			}
			var pat any
			if err := json.Unmarshal([]byte(w.pattern), &pat); err != nil {
				t.Errorf("%s: pattern is not JSON: %v", name, err)
			}
		}
		timer := triggerByName(p, "reconcile-timer")
		var payload map[string]any
		if err := json.Unmarshal([]byte(fmt.Sprint(get(timer, "triggerConfig.payload"))), &payload); err != nil || payload["action"] != "reconcile" {
			t.Errorf("timer payload %v: want {\"action\":\"reconcile\"} (%v)", get(timer, "triggerConfig.payload"), err)
		}
		if got := get(timer, "triggerConfig.cronExpression"); got != "@every 5m" {
			t.Errorf("timer cronExpression = %v, want @every 5m", got)
		}
		wq := triggerByName(p, "work-queue")
		for path, want := range map[string]any{
			"triggerConfig.eventSourceConfig.eventSourceType":                                          "MNS",
			"triggerConfig.eventSourceConfig.eventSourceParameters.sourceMNSParameters.IsBase64Decode": false,
			"triggerConfig.eventSinkConfig.deliveryOption.mode":                                        "event-streaming",
			"triggerConfig.eventSinkConfig.deliveryOption.eventSchema":                                 "CloudEvents",
			"triggerConfig.runOptions.mode":                                                            "event-streaming",
			"triggerConfig.runOptions.batchWindow.CountBasedWindow":                                    float64(100),
			"triggerConfig.runOptions.batchWindow.TimeBasedWindow":                                     float64(2),
			"triggerConfig.runOptions.maximumTasks":                                                    float64(5),
			"triggerConfig.runOptions.retryStrategy.PushRetryStrategy":                                 "BACKOFF_RETRY",
			"triggerConfig.runOptions.errorsTolerance":                                                 "ALL",
		} {
			if got := get(wq, path); got != want {
				t.Errorf("work-queue %s = %v, want %v", path, got, want)
			}
		}
	})
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
