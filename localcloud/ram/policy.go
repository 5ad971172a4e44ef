package ram

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Effect is a statement's effect.
type Effect string

// The two effects a statement can have.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Policy is a parsed policy document.
type Policy struct {
	// Name labels the policy in denial messages; Parse leaves it empty.
	Name       string
	Version    string
	Statements []Statement
}

// Statement is one statement of a policy.
type Statement struct {
	Effect Effect
	// Exactly one of Actions and NotActions is set.
	Actions    []string
	NotActions []string
	// Exactly one of Resources and NotResources is set.
	Resources    []string
	NotResources []string
	Conditions   []Condition
}

// Condition is one operator applied to one key, with the values any of which may match.
type Condition struct {
	Operator string
	Key      string
	Values   []string
}

// Parse reads a policy document. Errors name the offending element, e.g.
// `Statement[1].Condition: unknown operator "StringEqual"`.
func Parse(doc []byte) (*Policy, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("ram: policy is not a JSON object: %w", err)
	}
	p := &Policy{}
	for k, v := range raw {
		switch k {
		case "Version":
			if err := json.Unmarshal(v, &p.Version); err != nil {
				return nil, fmt.Errorf("ram: Version: %w", err)
			}
		case "Statement":
			var stmts []json.RawMessage
			if err := json.Unmarshal(v, &stmts); err != nil {
				// A single statement object is accepted too.
				stmts = []json.RawMessage{v}
			}
			for i, s := range stmts {
				st, err := parseStatement(s)
				if err != nil {
					return nil, fmt.Errorf("ram: Statement[%d].%w", i, err)
				}
				p.Statements = append(p.Statements, st)
			}
		default:
			return nil, fmt.Errorf("ram: unknown policy element %q", k)
		}
	}
	if p.Version != "1" {
		return nil, fmt.Errorf("ram: Version: must be \"1\", got %q", p.Version)
	}
	if len(p.Statements) == 0 {
		return nil, errors.New("ram: Statement: at least one statement is required")
	}
	return p, nil
}

// MustParse is Parse for documents known to be valid (tests, built-in worlds); it panics
// on error, so never call it on input.
func MustParse(doc string) *Policy {
	p, err := Parse([]byte(doc))
	if err != nil {
		panic(err)
	}
	return p
}

func parseStatement(b []byte) (Statement, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Statement{}, fmt.Errorf("(statement): not an object: %w", err)
	}
	var st Statement
	var err error
	for k, v := range raw {
		switch k {
		case "Sid", "Principal":
		case "Effect":
			var e string
			if err := json.Unmarshal(v, &e); err != nil {
				return st, fmt.Errorf("Effect: %w", err)
			}
			switch Effect(e) {
			case Allow, Deny:
				st.Effect = Effect(e)
			default:
				return st, fmt.Errorf("Effect: must be Allow or Deny, got %q", e)
			}
		case "Action":
			st.Actions, err = stringOrList(v)
		case "NotAction":
			st.NotActions, err = stringOrList(v)
		case "Resource":
			st.Resources, err = stringOrList(v)
		case "NotResource":
			st.NotResources, err = stringOrList(v)
		case "Condition":
			st.Conditions, err = parseConditions(v)
		default:
			return st, fmt.Errorf("%s: unknown statement element", k)
		}
		if err != nil {
			return st, fmt.Errorf("%s: %w", k, err)
		}
	}
	switch {
	case st.Effect == "":
		return st, fieldErr("Effect", "missing")
	case (len(st.Actions) == 0) == (len(st.NotActions) == 0):
		return st, fieldErr("Action", "exactly one of Action and NotAction is required")
	case (len(st.Resources) == 0) == (len(st.NotResources) == 0):
		return st, fieldErr("Resource", "exactly one of Resource and NotResource is required")
	}
	for _, a := range append(append([]string{}, st.Actions...), st.NotActions...) {
		if a != "*" && !strings.Contains(a, ":") {
			return st, fieldErr("Action", fmt.Sprintf("%q is not \"*\" nor \"<service>:<action>\"", a))
		}
	}
	return st, nil
}

// fieldErr names the statement element an error is about.
func fieldErr(field, msg string) error { return fmt.Errorf("%s: %s", field, msg) }

func stringOrList(b []byte) ([]string, error) {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		if one == "" {
			return nil, errors.New("empty string")
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return nil, fmt.Errorf("want a string or a list of strings: %w", err)
	}
	if len(many) == 0 {
		return nil, errors.New("empty list")
	}
	for _, s := range many {
		if s == "" {
			return nil, errors.New("empty string in list")
		}
	}
	return many, nil
}

// operators lists the supported condition operators and whether each is negated.
var operators = map[string]bool{
	"StringEquals": false, "StringNotEquals": true,
	"StringEqualsIgnoreCase": false, "StringNotEqualsIgnoreCase": true,
	"StringLike": false, "StringNotLike": true,
	"NumericEquals": false, "NumericNotEquals": true,
	"NumericLessThan": false, "NumericLessThanEquals": false,
	"NumericGreaterThan": false, "NumericGreaterThanEquals": false,
	"DateEquals": false, "DateNotEquals": true,
	"DateLessThan": false, "DateLessThanEquals": false,
	"DateGreaterThan": false, "DateGreaterThanEquals": false,
	"Bool":      false,
	"IpAddress": false, "NotIpAddress": true,
}

func parseConditions(b []byte) ([]Condition, error) {
	var ops map[string]map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&ops); err != nil {
		return nil, fmt.Errorf("want {operator: {key: values}}: %w", err)
	}
	var out []Condition
	for op, keys := range ops {
		if _, ok := operators[op]; !ok {
			return nil, fmt.Errorf("unknown operator %q", op)
		}
		for key, raw := range keys {
			vals, err := conditionValues(raw)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", op, key, err)
			}
			c := Condition{Operator: op, Key: key, Values: vals}
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", op, key, err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// conditionValues accepts a string, number or bool, or a list of them.
func conditionValues(b []byte) ([]string, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	if len(list) == 0 {
		return nil, errors.New("no values")
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		switch e := e.(type) {
		case string:
			out = append(out, e)
		case json.Number:
			out = append(out, e.String())
		case bool:
			out = append(out, strconv.FormatBool(e))
		default:
			return nil, fmt.Errorf("value %v is not a string, number or boolean", e)
		}
	}
	return out, nil
}

// check validates the condition values against the operator's type.
func (c Condition) check() error {
	for _, v := range c.Values {
		switch {
		case strings.HasPrefix(c.Operator, "Numeric"):
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
		case strings.HasPrefix(c.Operator, "Date"):
			if _, err := parseDate(v); err != nil {
				return err
			}
		case c.Operator == "Bool":
			if _, err := strconv.ParseBool(v); err != nil {
				return fmt.Errorf("%q is not a boolean", v)
			}
		case strings.HasSuffix(c.Operator, "IpAddress"):
			if _, err := parsePrefix(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (ISO 8601 or epoch seconds)", s)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR block", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// holds evaluates the condition against the request context values of its key (nil when
// the key is absent).
func (c Condition) holds(ctx []string) bool {
	negated := operators[c.Operator]
	if ctx == nil {
		return negated
	}
	matched := false
	for _, have := range ctx {
		for _, want := range c.Values {
			if c.match(have, want) {
				matched = true
			}
		}
	}
	if negated {
		return !matched
	}
	return matched
}

// match applies the positive form of the operator to one context value and one policy
// value.
func (c Condition) match(have, want string) bool {
	op := c.Operator
	switch op {
	case "StringEquals", "StringNotEquals":
		return have == want
	case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
		return strings.EqualFold(have, want)
	case "StringLike", "StringNotLike":
		return Match(want, have)
	case "Bool":
		h, err1 := strconv.ParseBool(have)
		w, err2 := strconv.ParseBool(want)
		return err1 == nil && err2 == nil && h == w
	case "IpAddress", "NotIpAddress":
		a, err := netip.ParseAddr(have)
		p, err2 := parsePrefix(want)
		return err == nil && err2 == nil && p.Contains(a.Unmap())
	}
	if strings.HasPrefix(op, "Numeric") {
		h, err1 := strconv.ParseFloat(have, 64)
		w, err2 := strconv.ParseFloat(want, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		return compare(strings.TrimPrefix(op, "Numeric"), cmpFloat(h, w))
	}
	if strings.HasPrefix(op, "Date") {
		h, err1 := parseDate(have)
		w, err2 := parseDate(want)
		if err1 != nil || err2 != nil {
			return false
		}
		return compare(strings.TrimPrefix(op, "Date"), h.Compare(w))
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare maps an operator suffix and a comparison result to the outcome. NotEquals is
// handled as the positive Equals; the caller negates.
func compare(suffix string, c int) bool {
	switch suffix {
	case "Equals", "NotEquals":
		return c == 0
	case "LessThan":
		return c < 0
	case "LessThanEquals":
		return c <= 0
	case "GreaterThan":
		return c > 0
	case "GreaterThanEquals":
		return c >= 0
	}
	return false
}

// Match reports whether s matches pattern, where "*" matches any run of characters and
// "?" exactly one.
func Match(pattern, s string) bool {
	// Iterative wildcard matching with single-star backtracking: linear in practice.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// NormalizeKey canonicalizes a condition key: the "service:key" part is lower-cased, the
// part after the first "/" (for example a tag key) is kept as written.
func NormalizeKey(k string) string {
	head, tail, found := strings.Cut(k, "/")
	if !found {
		return strings.ToLower(k)
	}
	return strings.ToLower(head) + "/" + tail
}
