package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/enipool/enipool/deploy"
)

const sYAML = "../../../s.yaml"

func readSYAML(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(sYAML)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestExampleIsCurrent keeps deploy/ram-policy.json and deploy/trust-policy.json equal to
// what `make policy-example` renders from today's s.yaml.
func TestExampleIsCurrent(t *testing.T) {
	d, _, err := fromSYAML(readSYAML(t), exampleAccount, envOf(exampleEnv))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := deploy.RAMPolicy(d)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]byte{"../../ram-policy.json": pol.JSON(), "../../trust-policy.json": deploy.TrustPolicy()} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what s.yaml renders: run make policy-example", strings.TrimPrefix(file, "../../"))
		}
	}
}

// TestFromSYAML reads the deployment from s.yaml as the function will run: the region of the
// function, the pools and scaling groups from ENIPOOL_DEPLOY_*, "*" for either kept as the
// explicit any (with a warning), and the warm target only when s.yaml configures it.
func TestFromSYAML(t *testing.T) {
	raw := readSYAML(t)
	warm := bytes.Replace(raw, []byte("ENIPOOL_WARM_POOL: ''"), []byte("ENIPOOL_WARM_POOL: web"), 1)
	warm = bytes.Replace(warm, []byte("ENIPOOL_WARM_VSWITCHES: ''"), []byte("ENIPOOL_WARM_VSWITCHES: cn-shanghai-b:vsw-b,cn-shanghai-a:vsw-a"), 1)
	warm = bytes.Replace(warm, []byte("ENIPOOL_WARM_SECURITY_GROUPS: ''"), []byte("ENIPOOL_WARM_SECURITY_GROUPS: sg-1"), 1)
	if bytes.Equal(warm, raw) {
		t.Fatal("s.yaml no longer sets ENIPOOL_WARM_POOL: '': update this test")
	}
	overrides := map[string]string{"ENIPOOL_DEPLOY_REGION": "cn-shanghai", "ENIPOOL_DEPLOY_TAG_KEY": "pool",
		"ENIPOOL_DEPLOY_DLQ_QUEUE": "staging-dlq", "ENIPOOL_DEPLOY_POOLS": "web, db", "ENIPOOL_DEPLOY_SCALING_GROUPS": "asg-1"}
	anyOf := map[string]string{"ENIPOOL_DEPLOY_POOLS": "*", "ENIPOOL_DEPLOY_SCALING_GROUPS": " * "}
	tests := []struct {
		name     string
		raw      []byte
		env      map[string]string
		want     deploy.Deployment
		warnings int
	}{
		{"explicit any", raw, anyOf, deploy.Deployment{Region: "cn-hangzhou", AccountID: "1", TagKey: "enipool",
			Pools: []string{"*"}, ScalingGroups: []string{"*"}, DeadLetterQueue: "enipool-dlq"}, 2},
		{"overrides", raw, overrides, deploy.Deployment{Region: "cn-shanghai", AccountID: "1", TagKey: "pool",
			Pools: []string{"web", "db"}, ScalingGroups: []string{"asg-1"}, DeadLetterQueue: "staging-dlq"}, 0},
		{"warm target", warm, overrides, deploy.Deployment{Region: "cn-shanghai", AccountID: "1", TagKey: "pool",
			Pools: []string{"web", "db"}, ScalingGroups: []string{"asg-1"}, DeadLetterQueue: "staging-dlq",
			Warm: &deploy.Warm{Pool: "web", VSwitches: []string{"vsw-a", "vsw-b"}, SecurityGroups: []string{"sg-1"}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, warnings, err := fromSYAML(tt.raw, "1", envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !equal(d, tt.want) || len(warnings) != tt.warnings {
				t.Errorf("got %+v (warm %+v), %d warnings %q; want %+v (warm %+v), %d", d, d.Warm, len(warnings), warnings, tt.want, tt.want.Warm, tt.warnings)
			}
			if _, err := deploy.RAMPolicy(d); err != nil {
				t.Errorf("RAMPolicy: %v", err)
			}
		})
	}
	if _, _, err := fromSYAML(raw, "", envOf(anyOf)); err == nil {
		t.Error("no account: want an error")
	}
	if _, _, err := fromSYAML(raw, "1", envOf(map[string]string{"ENIPOOL_DEPLOY_POOLS": "web", "ENIPOOL_DEPLOY_SCALING_GROUPS": "group-1"})); err == nil ||
		!strings.Contains(err.Error(), "ENIPOOL_SCALING_GROUPS") {
		t.Errorf("a bad scaling group: err %v, want one naming ENIPOOL_SCALING_GROUPS", err)
	}
}

// TestFromSYAMLRefusesUnlisted: with ENIPOOL_DEPLOY_POOLS or ENIPOOL_DEPLOY_SCALING_GROUPS unset
// (or empty) nothing is rendered, and the error names each variable left out. Fails on
// a0bb83d, which rendered StringLike "*" and scalinggroup/* with only a warning.
func TestFromSYAMLRefusesUnlisted(t *testing.T) {
	raw := readSYAML(t)
	tests := []struct {
		name          string
		env           map[string]string
		named, absent []string
	}{
		{"neither", nil, []string{"ENIPOOL_DEPLOY_POOLS", "ENIPOOL_DEPLOY_SCALING_GROUPS"}, nil},
		{"no pools", map[string]string{"ENIPOOL_DEPLOY_SCALING_GROUPS": "asg-1"}, []string{"ENIPOOL_DEPLOY_POOLS"}, []string{"ENIPOOL_DEPLOY_SCALING_GROUPS"}},
		{"no scaling groups", map[string]string{"ENIPOOL_DEPLOY_POOLS": "*"}, []string{"ENIPOOL_DEPLOY_SCALING_GROUPS"}, []string{"ENIPOOL_DEPLOY_POOLS"}},
		{"empty values", map[string]string{"ENIPOOL_DEPLOY_POOLS": " ", "ENIPOOL_DEPLOY_SCALING_GROUPS": ","}, []string{"ENIPOOL_DEPLOY_POOLS", "ENIPOOL_DEPLOY_SCALING_GROUPS"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			s := filepath.Join(out, "s.yaml")
			if err := os.WriteFile(s, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			err := run(s, "1", filepath.Join(out, "policy"), envOf(tt.env))
			if err == nil {
				t.Fatal("rendered")
			}
			for _, v := range tt.named {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("error %q does not name %s", err, v)
				}
			}
			for _, v := range tt.absent {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error %q names %s, which is set", err, v)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "policy")); !os.IsNotExist(err) {
				t.Errorf("the output folder exists (%v): a policy was written", err)
			}
		})
	}
}

func equal(a, b deploy.Deployment) bool {
	if (a.Warm == nil) != (b.Warm == nil) {
		return false
	}
	if a.Warm != nil && (a.Warm.Pool != b.Warm.Pool || !slices.Equal(a.Warm.VSwitches, b.Warm.VSwitches) ||
		!slices.Equal(a.Warm.SecurityGroups, b.Warm.SecurityGroups)) {
		return false
	}
	return a.Region == b.Region && a.AccountID == b.AccountID && a.TagKey == b.TagKey && a.DeadLetterQueue == b.DeadLetterQueue &&
		slices.Equal(a.Pools, b.Pools) && slices.Equal(a.ScalingGroups, b.ScalingGroups)
}
