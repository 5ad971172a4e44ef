package ram

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// record is testdata/ram-table.json: the documented tables with their sources.
type record struct {
	About   string            `json:"about"`
	Sources map[string]string `json:"sources"`
	Actions []struct {
		Action       string `json:"action"`
		Access       string `json:"access"`
		AllResources bool   `json:"allResources"`
		FoldedInto   string `json:"foldedInto"`
		Resources    []struct {
			Name     string `json:"name"`
			ARN      string `json:"arn"`
			Required bool   `json:"required"`
			Created  bool   `json:"created"`
		} `json:"resources"`
		ConditionKeys []string `json:"conditionKeys"`
		Status        string   `json:"status"`
		Source        string   `json:"source"`
		Notes         string   `json:"notes"`
	} `json:"actions"`
}

func loadRecord(t *testing.T) record {
	t.Helper()
	b, err := os.ReadFile("testdata/ram-table.json")
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	var r record
	if err := d.Decode(&r); err != nil {
		t.Fatalf("testdata/ram-table.json: %v", err)
	}
	return r
}

// TestTableMatchesRecord checks that the engine's per-action model (DefaultTable) is the
// documented one (testdata/ram-table.json), row by row, and that every row says where it
// comes from.
func TestTableMatchesRecord(t *testing.T) {
	rec := loadRecord(t)
	engine := map[string]ActionSpec{}
	for _, s := range DefaultTable() {
		engine[s.Action] = s
	}
	seen := map[string]bool{}
	for _, row := range rec.Actions {
		t.Run(row.Action, func(t *testing.T) {
			if seen[row.Action] {
				t.Fatal("row appears twice")
			}
			seen[row.Action] = true
			switch row.Status {
			case "confirmed", "reported":
				if rec.Sources[row.Source] == "" {
					t.Errorf("status %s needs a source among \"sources\", got %q", row.Status, row.Source)
				}
			case "assumed":
				if row.Notes == "" {
					t.Error("an assumed row needs notes saying why")
				}
				if row.Source != "" && rec.Sources[row.Source] == "" {
					t.Errorf("unknown source %q", row.Source)
				}
			default:
				t.Errorf("status %q, want confirmed, reported or assumed", row.Status)
			}
			s, ok := engine[row.Action]
			if !ok {
				t.Fatal("documented but not in DefaultTable")
			}
			if s.AllResources != row.AllResources || s.FoldedInto != row.FoldedInto {
				t.Errorf("engine AllResources=%v FoldedInto=%q, record %v %q", s.AllResources, s.FoldedInto, row.AllResources, row.FoldedInto)
			}
			var want []ResourceType
			for _, r := range row.Resources {
				want = append(want, ResourceType{Name: r.Name, ARN: r.ARN, Required: r.Required, Created: r.Created})
			}
			if !slices.Equal(s.Resources, want) {
				t.Errorf("engine resources %+v,\nrecord %+v", s.Resources, want)
			}
		})
	}
	for a := range engine {
		if !seen[a] {
			t.Errorf("%s is in DefaultTable but not documented in testdata/ram-table.json", a)
		}
	}
	for k, u := range rec.Sources {
		if !strings.HasPrefix(u, "https://") {
			t.Errorf("source %s: %q is not a URL", k, u)
		}
	}
}

func TestDefaultTableIsConsistent(t *testing.T) {
	if _, err := indexTable(DefaultTable()); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name  string
		specs []ActionSpec
	}{
		{"duplicate", []ActionSpec{{Action: "x:A", AllResources: true}, {Action: "X:a", AllResources: true}}},
		{"no service", []ActionSpec{{Action: "A", AllResources: true}}},
		{"neither", []ActionSpec{{Action: "x:A"}}},
		{"both", []ActionSpec{{Action: "x:A", AllResources: true, Resources: []ResourceType{{Name: "T", ARN: "acs:x:*:*:t/*"}}}}},
		{"bad arn", []ActionSpec{{Action: "x:A", Resources: []ResourceType{{Name: "T", ARN: "t/*"}}}}},
	}
	for _, tt := range bad {
		if _, err := NewAuthorizerWith(Options{Table: tt.specs}); err == nil {
			t.Errorf("%s: table accepted", tt.name)
		}
	}
	if _, err := NewAuthorizerWith(Options{MNSBatch: MNSBatch(9)}); err == nil {
		t.Error("unknown MNSBatch accepted")
	}
	if _, err := NewAuthorizerWith(Options{TagKeys: TagKeys(9)}); err == nil {
		t.Error("unknown TagKeys accepted")
	}
}

func TestResourceTypePattern(t *testing.T) {
	tests := []struct{ arn, want string }{
		{arnENI, "acs:ecs:*:*:eni/*"},
		{arnENIs, "acs:ecs:*:*:eni/*"},
		{arnVSwitch, "acs:vpc:*:*:vswitch/*"},
		{arnMessages, "acs:mns:*:*:/queues/*/messages"},
		{"acs:x:{#r:t/1", "acs:x:{#r:t/1"},
	}
	for _, tt := range tests {
		if got := (ResourceType{ARN: tt.arn}).pattern(); got != tt.want {
			t.Errorf("pattern(%q) = %q, want %q", tt.arn, got, tt.want)
		}
	}
}
