// Command policy renders the function role's RAM policy and trust policy for one deployment,
// from the values s.yaml deploys with: it renders s.yaml as `s deploy` would (ENIPOOL_DEPLOY_*
// from the shell, the account given), reads the function's configuration from the rendered
// environment variables with package config, and pins the policy to the region, the account,
// the pools (ENIPOOL_POOLS), the scaling groups (ENIPOOL_SCALING_GROUPS) and, only when the
// warm target is configured, its vSwitches and security groups.
//
//	go run ./deploy/cmd/policy -account 1234567890123456   # = make policy ACCOUNT=...
//	go run ./deploy/cmd/policy -example                     # = make policy-example
//
// It writes ram-policy.json and trust-policy.json into -out (dist/policy). It renders
// nothing while ENIPOOL_DEPLOY_POOLS or ENIPOOL_DEPLOY_SCALING_GROUPS is unset: a policy open to
// every pool or scaling group must be asked for with "*", and then it warns on standard error. -example renders the repository's example
// (deploy/ram-policy.json) for the local cloud's demo world; a test keeps it current.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/enipool/enipool/config"
	"github.com/enipool/enipool/deploy"
	"github.com/enipool/enipool/internal/syaml"
)

// The example's deployment: the demo world's account, pool and scaling group
// (localcloud/worlds/demo.yaml), s.yaml's defaults otherwise.
var (
	exampleAccount = "1234567890123456"
	exampleEnv     = map[string]string{
		"ENIPOOL_DEPLOY_POOLS":          "web",
		"ENIPOOL_DEPLOY_SCALING_GROUPS": "asg-bp1demo0000000001",
	}
)

func main() {
	account := flag.String("account", "", "the Alibaba Cloud account id the function is deployed in (required)")
	sPath := flag.String("syaml", "s.yaml", "the Serverless Devs project to read")
	out := flag.String("out", filepath.Join("dist", "policy"), "the folder to write ram-policy.json and trust-policy.json into")
	example := flag.Bool("example", false, "render the repository's example into deploy/ instead (ignores -account, -out and the shell)")
	flag.Parse()
	getenv := os.LookupEnv
	if *example {
		*account, *out = exampleAccount, "deploy"
		getenv = func(k string) (string, bool) { v, ok := exampleEnv[k]; return v, ok }
	}
	if err := run(*sPath, *account, *out, getenv); err != nil {
		fmt.Fprintln(os.Stderr, "policy:", err)
		os.Exit(1)
	}
}

func run(sPath, account, out string, getenv func(string) (string, bool)) error {
	raw, err := os.ReadFile(sPath)
	if err != nil {
		return err
	}
	d, warnings, err := fromSYAML(raw, account, getenv)
	if err != nil {
		return fmt.Errorf("%s: %w", sPath, err)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "policy: warning:", w)
	}
	pol, err := deploy.RAMPolicy(d)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"ram-policy.json": pol.JSON(), "trust-policy.json": deploy.TrustPolicy()} {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "policy: wrote %s and %s for account %s in %s\n",
		filepath.Join(out, "ram-policy.json"), filepath.Join(out, "trust-policy.json"), d.AccountID, d.Region)
	return nil
}

// fromSYAML renders s.yaml with getenv and account and reads the deployment from its one fc3
// function: the region from its props, everything else through config.Load of its
// environment variables (so the policy follows exactly what the function will run with).
func fromSYAML(raw []byte, account string, getenv func(string) (string, bool)) (deploy.Deployment, []string, error) {
	if account == "" {
		return deploy.Deployment{}, nil, errors.New("the account id is required (-account)")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return deploy.Deployment{}, nil, err
	}
	vars, _ := doc["vars"].(map[string]any)
	r := &syaml.Renderer{Vars: vars, AccountID: account, Getenv: getenv}
	rendered, err := r.Render(doc)
	if err != nil {
		return deploy.Deployment{}, nil, err
	}
	resources, _ := rendered.(map[string]any)["resources"].(map[string]any)
	var props map[string]any
	for name, res := range resources {
		res, _ := res.(map[string]any)
		if res["component"] != "fc3" {
			continue
		}
		if props != nil {
			return deploy.Deployment{}, nil, fmt.Errorf("resources.%s: a second fc3 function; the policy serves one", name)
		}
		props, _ = res["props"].(map[string]any)
	}
	if props == nil {
		return deploy.Deployment{}, nil, errors.New("no fc3 function with props")
	}
	region, _ := props["region"].(string)
	envVars, _ := props["environmentVariables"].(map[string]any)
	cfg, err := config.Load(func(k string) string { s, _ := envVars[k].(string); return s })
	if err != nil {
		return deploy.Deployment{}, nil, fmt.Errorf("the function's environment: %w", err)
	}
	h := cfg.Handler
	d := deploy.Deployment{Region: region, AccountID: account, TagKey: h.TagKey, Pools: h.Pools,
		ScalingGroups: h.ScalingGroups, DeadLetterQueue: cfg.Cloud.DeadLetterQueue}
	if h.Warm.Enabled() {
		w := &deploy.Warm{Pool: h.Warm.Pool, SecurityGroups: h.Warm.SecurityGroups}
		for _, vsws := range h.Warm.VSwitches {
			w.VSwitches = append(w.VSwitches, vsws...)
		}
		slices.Sort(w.VSwitches)
		d.Warm = w
	}
	// An empty list would render a policy open to every pool or every scaling group without
	// anybody having asked for it: only "*", written out, does.
	var warnings []string
	var missing []error
	for _, l := range []struct {
		list           *[]string
		fn, shell      string
		what, anyMeans string
	}{
		{&d.Pools, "ENIPOOL_POOLS", "ENIPOOL_DEPLOY_POOLS", "the pool tag values this deployment serves",
			"the policy lets the function attach and detach ENIs of any pool"},
		{&d.ScalingGroups, "ENIPOOL_SCALING_GROUPS", "ENIPOOL_DEPLOY_SCALING_GROUPS", "the scaling groups whose lifecycle hooks it serves",
			"the policy lets the function heartbeat and read the instances of any scaling group of the region"},
	} {
		raw, _ := envVars[l.fn].(string)
		switch {
		case strings.TrimSpace(raw) == deploy.Any:
			*l.list = []string{deploy.Any}
			warnings = append(warnings, fmt.Sprintf("%s is %q (%s): %s", l.fn, deploy.Any, l.shell, l.anyMeans))
		case len(*l.list) == 0:
			missing = append(missing, fmt.Errorf("%s is empty: set %s to %s, comma-separated, or to %q if it should serve any (then %s)",
				l.fn, l.shell, l.what, deploy.Any, l.anyMeans))
		}
	}
	if len(missing) > 0 {
		return deploy.Deployment{}, nil, errors.Join(missing...)
	}
	return d, warnings, nil
}
