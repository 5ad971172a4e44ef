package world

import (
	"slices"
	"strings"
	"testing"
)

// policies[].rendered renders the function's policy for the world: its account, its first
// region unless told, the pools and scaling groups listed. Fails on 968df3d (a policy could
// only be a document or a file, so every world ran the one shipped file, pinned to nothing).
func TestRenderedPolicy(t *testing.T) {
	const base = `
account: {id: "1234567890123456"}
regions: [{id: cn-hangzhou, zones: [cn-hangzhou-h]}, {id: cn-shanghai, zones: [cn-shanghai-a]}]
principals: [{name: enipool-fn, kind: role, policies: [fn]}]
policies:
`
	tests := []struct {
		name, policy string
		want         []string // substrings of the rendered document
		wantErr      string
	}{
		{"defaults, any pool and group", `  - {name: fn, rendered: {pools: ["*"], scalingGroups: ["*"]}}`,
			[]string{`"acs:ecs:cn-hangzhou:1234567890123456:eni/*"`, `"ecs:tag/enipool": [`, `/queues/enipool-dlq/messages`, `scalinggroup/*`}, ""},
		// As make policy, a world renders no policy open to any pool or group unless asked.
		{"no pools", `  - {name: fn, rendered: {scalingGroups: ["*"]}}`, nil, "no pools"},
		{"no scaling groups", `  - {name: fn, rendered: {pools: [web]}}`, nil, "no scaling groups"},
		{"pinned", `  - {name: fn, rendered: {region: cn-shanghai, pools: [web], scalingGroups: [asg-1], tagKey: pool, deadLetterQueue: dlq}}`,
			[]string{`acs:ecs:cn-shanghai:1234567890123456:instance/*`, `"ecs:tag/pool": [`, `"web"`, `scalinggroup/asg-1"`, `/queues/dlq/messages`}, ""},
		{"warm", `  - {name: fn, rendered: {pools: [web], scalingGroups: [asg-1], warm: {pool: web, vswitches: [vsw-1], securityGroups: [sg-1]}}}`,
			[]string{`WarmTargetCreate`, `acs:vpc:cn-hangzhou:1234567890123456:vswitch/vsw-1`, `securitygroup/sg-1`}, ""},
		{"a pattern in a pool", `  - {name: fn, rendered: {pools: ["w*"], scalingGroups: ["*"]}}`, nil, "policies[0]: rendered:"},
		{"rendered and file", `  - {name: fn, file: x.json, rendered: {}}`, nil, "mutually exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Parse([]byte(base+tt.policy+"\n"), "yaml", ".")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			doc, err := w.Policies[0].bytes(w, ".")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.want {
				if !strings.Contains(string(doc), s) {
					t.Errorf("rendered policy lacks %s:\n%s", s, doc)
				}
			}
			if p, ok := w.Policy("fn"); !ok || len(p.Statements) == 0 {
				t.Fatal("policy fn not parsed")
			}
			hasWarm := slices.ContainsFunc(w.Policies, func(d PolicyDoc) bool { return d.Rendered.Warm != nil })
			if strings.Contains(string(doc), "CreateNetworkInterface") != hasWarm {
				t.Errorf("create granted %v, warm configured %v", !hasWarm, hasWarm)
			}
		})
	}
}
