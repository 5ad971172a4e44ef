package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

const schemaURL = "file:///fc3-props.schema.json"

// triggerConfigDefs maps a triggerType to the schema definition of its triggerConfig. The
// schema's own ITrigger.triggerConfig is an anyOf of all of them, and one of them
// (IOtsConfig) has neither properties nor required ones, so that anyOf accepts any object:
// validating the props alone never checks a triggerConfig. Each one is therefore also
// validated against the definition of its type.
var triggerConfigDefs = map[string]string{
	"timer":       "ITimerTriggerConfig",
	"eventbridge": "IEventBridge",
	"http":        "IHttpTriggerConfig",
	"oss":         "IOssTriggerConfig",
	"log":         "ILogTriggerConfig",
	"mns_topic":   "IMnsTriggerConfig",
	"cdn_events":  "ICdnTriggerConfig",
	"tablestore":  "IOtsConfig",
}

// deviation is one schema error that s.yaml accepts on purpose, as documented in the
// "Schema deviations" table of deploy/README.md.
type deviation struct {
	pointer  string // JSON pointer into the props
	keyword  string // the failing schema keyword
	property string // for required: the missing property
}

func (d deviation) String() string {
	if d.property != "" {
		return fmt.Sprintf("%s %s %s", d.pointer, d.keyword, d.property)
	}
	return d.pointer + " " + d.keyword
}

// documentedDeviations reads the table rows of the "Schema deviations" section of README.md:
// | `pointer` | `keyword` | `property` | ... |
func documentedDeviations(t *testing.T) map[deviation]bool {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[deviation]bool{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.HasPrefix(line, "## Schema deviations")
			continue
		}
		if !in || !strings.HasPrefix(line, "| `/") {
			continue
		}
		cols := strings.Split(line, "|")
		if len(cols) < 5 {
			t.Fatalf("README.md: malformed deviation row %q", line)
		}
		cell := func(i int) string { return strings.Trim(strings.TrimSpace(cols[i]), "`") }
		d := deviation{pointer: cell(1), keyword: cell(2), property: cell(3)}
		if d.property == "-" {
			d.property = ""
		}
		out[d] = true
	}
	if len(out) == 0 {
		t.Fatal("README.md: no rows in the Schema deviations table")
	}
	return out
}

func compileSchemas(t *testing.T) (props *jsonschema.Schema, defs map[string]*jsonschema.Schema) {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatalf("the fc3 props schema: %v", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, doc); err != nil {
		t.Fatal(err)
	}
	if props, err = c.Compile(schemaURL); err != nil {
		t.Fatal(err)
	}
	defs = map[string]*jsonschema.Schema{}
	for typ, def := range triggerConfigDefs {
		if defs[typ], err = c.Compile(schemaURL + "#/definitions/" + def); err != nil {
			t.Fatal(err)
		}
	}
	return props, defs
}

// instance converts a rendered value into what jsonschema validates (json.Number numbers).
func instance(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// violation is a schema error with where it is.
type violation struct {
	dev deviation
	msg string
}

// unexplained returns the leaf errors of e that are not allowed. An anyOf (or a oneOf that
// matched nothing) holds when any one branch has no unexplained error: that is how anyOf
// would judge the document if the allowed deviations were fixed. prefix is the JSON pointer
// of the validated value within the props.
func unexplained(e *jsonschema.ValidationError, prefix string, allowed map[deviation]bool, seen map[deviation]bool) []violation {
	switch k := e.ErrorKind.(type) {
	case *kind.AnyOf:
		return branches(e, prefix, allowed, seen)
	case *kind.OneOf:
		if k.Subschemas == nil {
			return branches(e, prefix, allowed, seen)
		}
	}
	if len(e.Causes) > 0 {
		var out []violation
		for _, c := range e.Causes {
			out = append(out, unexplained(c, prefix, allowed, seen)...)
		}
		return out
	}
	ptr := prefix + pointer(e.InstanceLocation)
	kw := strings.Join(e.ErrorKind.KeywordPath(), "/")
	if r, ok := e.ErrorKind.(*kind.Required); ok {
		var out []violation
		for _, p := range r.Missing {
			d := deviation{pointer: ptr, keyword: "required", property: p}
			if allowed[d] {
				seen[d] = true
				continue
			}
			out = append(out, violation{d, "missing property " + p})
		}
		return out
	}
	d := deviation{pointer: ptr, keyword: kw}
	if allowed[d] {
		seen[d] = true
		return nil
	}
	return []violation{{d, e.Error()}}
}

func branches(e *jsonschema.ValidationError, prefix string, allowed, seen map[deviation]bool) []violation {
	var all []violation
	for _, c := range e.Causes {
		branchSeen := map[deviation]bool{}
		v := unexplained(c, prefix, allowed, branchSeen)
		if len(v) == 0 {
			for d := range branchSeen {
				seen[d] = true
			}
			return nil
		}
		all = append(all, v...)
	}
	return []violation{{deviation{pointer: prefix + pointer(e.InstanceLocation), keyword: "anyOf"},
		fmt.Sprintf("no branch matches; branch errors: %v", all)}}
}

func pointer(loc []string) string {
	var b strings.Builder
	for _, s := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(s))
	}
	return b.String()
}

// validate validates sch on v and returns the unexplained errors.
func validate(t *testing.T, sch *jsonschema.Schema, v any, prefix string, allowed, seen map[deviation]bool) []violation {
	t.Helper()
	err := sch.Validate(instance(t, v))
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: %v", prefix, err)
	}
	return unexplained(ve, prefix, allowed, seen)
}

// TestPropsSchema validates the props of every fc3 resource against fc3's own props schema
// (testdata/fc3-props.schema.json). The only errors allowed are those documented in
// README.md's "Schema deviations" table, and every documented one must still occur.
func TestPropsSchema(t *testing.T) {
	propsSchema, defs := compileSchemas(t)
	allowed := documentedDeviations(t)
	seen := map[deviation]bool{}
	tp := loadTemplate(t, nil, testAccountID)
	for name, props := range tp.fc3Resources(t) {
		var bad []violation
		bad = append(bad, validate(t, propsSchema, props, "", allowed, seen)...)
		triggers, _ := props["triggers"].([]any)
		for i, tr := range triggers {
			typ, _ := get(tr, "triggerType").(string)
			sch, ok := defs[typ]
			if !ok {
				bad = append(bad, violation{deviation{pointer: fmt.Sprintf("/triggers/%d/triggerType", i), keyword: "enum"}, "unknown trigger type " + typ})
				continue
			}
			bad = append(bad, validate(t, sch, get(tr, "triggerConfig"), fmt.Sprintf("/triggers/%d/triggerConfig", i), allowed, seen)...)
		}
		for _, v := range bad {
			t.Errorf("resources.%s.props%s: %s (keyword %s); fix s.yaml, or document it in README.md's Schema deviations table", name, v.dev.pointer, v.msg, v.dev.keyword)
		}
	}
	for d := range allowed {
		if !seen[d] {
			t.Errorf("README.md documents schema deviation %q, but s.yaml no longer has it: remove the row", d)
		}
	}
}

// TestDeviationMatcher checks the matcher on a small schema: allowed errors pass, others and
// anyOf failures outside the list do not.
func TestDeviationMatcher(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(`{
	  "type": "object",
	  "properties": {
	    "a": {"anyOf": [{"required": ["x", "y"]}, {"required": ["z"], "properties": {"n": {"type": "number"}}}]},
	    "n": {"type": "integer"}
	  },
	  "required": ["r"]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("file:///t.json", doc); err != nil {
		t.Fatal(err)
	}
	sch := c.MustCompile("file:///t.json")
	tests := []struct {
		name    string
		doc     string
		allowed []deviation
		bad     int
		seen    int
	}{
		{"clean", `{"r":1,"a":{"z":1}}`, nil, 0, 0},
		{"required allowed", `{"a":{"z":1}}`, []deviation{{"", "required", "r"}}, 0, 1},
		{"required not allowed", `{"a":{"z":1}}`, nil, 1, 0},
		{"wrong type", `{"r":1,"n":"x"}`, []deviation{{"/n", "required", "n"}}, 1, 0},
		{"type allowed", `{"r":1,"n":"x"}`, []deviation{{"/n", "type", ""}}, 0, 1},
		{"anyOf: one branch allowed", `{"r":1,"a":{"x":1}}`, []deviation{{"/a", "required", "y"}}, 0, 1},
		{"anyOf: no branch allowed", `{"r":1,"a":{"x":1}}`, []deviation{{"/a", "required", "q"}}, 1, 0},
		{"anyOf: other error in branch", `{"r":1,"a":{"n":"s"}}`, []deviation{{"/a", "required", "z"}}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.doc), &v); err != nil {
				t.Fatal(err)
			}
			allowed, seen := map[deviation]bool{}, map[deviation]bool{}
			for _, d := range tt.allowed {
				allowed[d] = true
			}
			bad := validate(t, sch, v, "", allowed, seen)
			if len(bad) != tt.bad || len(seen) != tt.seen {
				t.Fatalf("unexplained %v, seen %v; want %d unexplained, %d seen", bad, seen, tt.bad, tt.seen)
			}
		})
	}
}
