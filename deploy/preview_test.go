package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/internal/testenv"
)

// serverlessDevsVersion is the Serverless Devs CLI the preview test installs from the npm
// registry: the newest @serverless-devs/s there (`npm view @serverless-devs/s versions`
// lists 2.2.2 and 3.1.10), and it installs and runs on Node 20 (engines: node >=14.14.0).
// It is one self-contained package (about 8 MB, no dependencies). ${str(...)} in s.yaml
// needs a 3.x CLI.
const serverlessDevsVersion = "3.1.10"

// networkErrors are npm's words for "could not reach the registry".
var networkErrors = []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH", "network", "socket hang up"}

// installServerlessDevs installs @serverless-devs/s once into a cache directory and returns
// the path of its `s` command. When npm is missing or the registry cannot be reached, the
// test cannot check anything (testenv.CannotCheck).
func installServerlessDevs(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.CannotCheck(t, "npm is not on PATH: cannot install Serverless Devs")
	}
	if _, err := exec.LookPath("node"); err != nil {
		testenv.CannotCheck(t, "node is not on PATH: cannot run Serverless Devs")
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = filepath.Join(repoRoot, ".s", "cache") // .s/ is gitignored
	}
	base, err = filepath.Abs(filepath.Join(base, "enipool"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "serverless-devs-s@"+serverlessDevsVersion)
	bin := filepath.Join(dir, "node_modules", ".bin", "s")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// Install into a fresh directory and rename it into place, so a run killed halfway or a
	// concurrent run never leaves a half-installed CLI behind.
	tmp, err := os.MkdirTemp(base, "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund",
		"--no-save", "--loglevel=error", "@serverless-devs/s@"+serverlessDevsVersion)
	cmd.Env = append(os.Environ(),
		"npm_config_cache="+filepath.Join(base, "npm-cache"),
		"npm_config_update_notifier=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		for _, w := range networkErrors {
			if strings.Contains(string(out), w) {
				testenv.CannotCheck(t, "the npm registry is unreachable (%s): cannot install @serverless-devs/s@%s\n%s", w, serverlessDevsVersion, out)
			}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			testenv.CannotCheck(t, "npm install of @serverless-devs/s@%s did not finish in 90s (registry unreachable or slow)", serverlessDevsVersion)
		}
		t.Fatalf("npm install @serverless-devs/s@%s: %v\n%s", serverlessDevsVersion, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(bin); statErr != nil { // lost a race to another run: fine
			t.Fatalf("installing into %s: %v", dir, err)
		}
	}
	return bin
}

// sPreview runs `s preview -o json` on s.yaml with only the given ENIPOOL_DEPLOY_* variables
// set, in a throwaway HOME (no access aliases, logs under it), and returns the rendered
// document.
func sPreview(t *testing.T, s string, env map[string]string) map[string]any {
	t.Helper()
	tpl, err := filepath.Abs(sYAMLPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s, "preview", "-o", "json", "-t", tpl)
	cmd.Dir = repoRoot
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1", "LANG=C.UTF-8",
		// No daemons: s otherwise spawns detached update checks and usage reports that outlive
		// the test and call the Serverless Devs servers (serverless_devs_daemon_enable=false
		// runs them in the foreground instead, printing into the output). NODE_ENV=test is
		// what its own code checks to skip them.
		"NODE_ENV=test"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("s preview: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	// s prints warnings (e.g. about running as root) before the JSON document.
	out := stdout.Bytes()
	start := bytes.Index(out, []byte("\n{"))
	if bytes.HasPrefix(out, []byte("{")) {
		start = -1
	} else if start < 0 {
		t.Fatalf("s preview printed no JSON document:\n%s\nstderr:\n%s", out, stderr.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out[start+1:], &doc); err != nil {
		t.Fatalf("s preview output is not JSON: %v\n%s", err, out)
	}
	return doc
}

// TestServerlessDevsPreview renders s.yaml with the real Serverless Devs CLI, offline: `s
// preview` resolves the variables without credentials or the fc3 component. It checks that
// the result names the function and its triggers, and that it equals what internal/syaml
// renders (the other tests validate that rendering). `s preview` leaves
// ${config('AccountID')} unrendered (it needs an access alias), so the comparison renders
// that form as itself.
//
// What needs the Serverless Devs registry (api.devsapp.cn) or an account cannot run here:
// `s verify` and `s plan`/`s deploy` download the fc3 component first; see deploy/README.md.
func TestServerlessDevsPreview(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips installing Serverless Devs from npm and running s preview")
	}
	s := installServerlessDevs(t)
	const accountLiteral = "${config('AccountID')}"
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"defaults", nil},
		{"deployer overrides", map[string]string{
			"ENIPOOL_DEPLOY_REGION":     "cn-shanghai",
			"ENIPOOL_DEPLOY_DLQ_QUEUE":  "staging-dlq",
			"ENIPOOL_DEPLOY_TAG_KEY":    "pool",
			"ENIPOOL_DEPLOY_ROLE_NAME":  "staging-fn",
			"ENIPOOL_DEPLOY_LOG_LEVEL":  "debug",
			"ENIPOOL_DEPLOY_WORK_QUEUE": "staging-work",
			"ENIPOOL_DEPLOY_POOLS":      "web,db",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sPreview(t, s, tt.env)
			props, _ := get(got, "resources.enipool.props").(map[string]any)
			if props == nil {
				t.Fatalf("s preview: no resources.enipool.props in %v", got)
			}
			if props["functionName"] != "enipool" {
				t.Errorf("s preview: functionName = %v", props["functionName"])
			}
			for _, name := range []string{"reconcile-timer", "work-queue", "ecs-state-change", "ess-lifecycle-hook"} {
				if triggerByName(props, name) == nil {
					t.Errorf("s preview: no trigger %s", name)
				}
			}
			want := loadTemplate(t, tt.env, accountLiteral).doc
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("s preview and internal/syaml disagree.\ns preview:\n%s\nsyaml:\n%s", g, w)
			}
		})
	}
}
