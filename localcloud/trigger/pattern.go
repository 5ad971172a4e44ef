package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrBadPattern is wrapped by every error about an eventRuleFilterPattern.
var ErrBadPattern = errors.New("trigger: bad event pattern")

// Pattern is a parsed EventBridge event pattern (eventRuleFilterPattern).
//
// Semantics follow EventBridge's "Event patterns" page
// (https://www.alibabacloud.com/help/en/eventbridge/user-guide/event-patterns): the pattern
// has the event's nesting; every field it names must match (AND); a field's value is an
// array of conditions of which one must match (OR); matching is exact and case-sensitive.
// A condition is a literal (string, number, boolean, null) or an operator object: prefix,
// suffix, contains, anything-but (a value, a list, or {"prefix"}/{"suffix"}), numeric
// (comparison pairs such as [">", 0, "<=", 5]), cidr (IPv4) or exists. When the event's
// value is an array, the condition holds if it holds for one element (as on AWS EventBridge,
// whose pattern language Alibaba's follows).
type Pattern struct {
	root map[string]any
}

// ParsePattern parses a JSON event pattern.
func ParsePattern(s string) (*Pattern, error) {
	var root map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPattern, err)
	}
	if err := checkPattern(root); err != nil {
		return nil, err
	}
	return &Pattern{root: root}, nil
}

func checkPattern(m map[string]any) error {
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			if err := checkPattern(v); err != nil {
				return err
			}
		case []any:
			for _, c := range v {
				if op, ok := c.(map[string]any); ok {
					if err := checkOperator(op); err != nil {
						return fmt.Errorf("%w: %s: %w", ErrBadPattern, k, err)
					}
				}
			}
		default:
			return fmt.Errorf("%w: %s: a field's conditions must be an array or an object", ErrBadPattern, k)
		}
	}
	return nil
}

func checkOperator(op map[string]any) error {
	if len(op) != 1 {
		return fmt.Errorf("an operator object has exactly one key, got %d", len(op))
	}
	for name, arg := range op {
		switch name {
		case "prefix", "suffix", "contains":
			if _, ok := arg.(string); !ok {
				return fmt.Errorf("%s takes a string", name)
			}
		case "anything-but", "exists":
		case "numeric":
			if _, err := numericPairs(arg); err != nil {
				return err
			}
		case "cidr":
			s, _ := arg.(string)
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Errorf("cidr: %w", err)
			}
		default:
			return fmt.Errorf("unknown operator %q", name)
		}
	}
	return nil
}

// MatchJSON reports whether a JSON event matches.
func (p *Pattern) MatchJSON(event []byte) (bool, error) {
	var ev map[string]any
	dec := json.NewDecoder(strings.NewReader(string(event)))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return false, fmt.Errorf("trigger: event is not a JSON object: %w", err)
	}
	return matchObject(p.root, ev), nil
}

func matchObject(pat, ev map[string]any) bool {
	for k, cond := range pat {
		v, present := ev[k]
		switch cond := cond.(type) {
		case map[string]any:
			sub, ok := v.(map[string]any)
			if !present || !ok || !matchObject(cond, sub) {
				return false
			}
		case []any:
			if !matchField(cond, v, present) {
				return false
			}
		}
	}
	return true
}

func matchField(conds []any, v any, present bool) bool {
	for _, c := range conds {
		if op, ok := c.(map[string]any); ok {
			if _, isExists := op["exists"]; isExists {
				if want, _ := op["exists"].(bool); want == present {
					return true
				}
				continue
			}
		}
		if !present {
			continue
		}
		vals := []any{v}
		if arr, ok := v.([]any); ok {
			vals = arr
		}
		for _, x := range vals {
			if matchCondition(c, x) {
				return true
			}
		}
	}
	return false
}

func matchCondition(c, v any) bool {
	op, ok := c.(map[string]any)
	if !ok {
		return equal(c, v)
	}
	for name, arg := range op {
		s, isStr := v.(string)
		switch name {
		case "prefix":
			return isStr && strings.HasPrefix(s, arg.(string))
		case "suffix":
			return isStr && strings.HasSuffix(s, arg.(string))
		case "contains":
			return isStr && strings.Contains(s, arg.(string))
		case "anything-but":
			switch a := arg.(type) {
			case []any:
				for _, x := range a {
					if equal(x, v) {
						return false
					}
				}
				return true
			case map[string]any:
				if p, ok := a["prefix"].(string); ok {
					return isStr && !strings.HasPrefix(s, p)
				}
				if p, ok := a["suffix"].(string); ok {
					return isStr && !strings.HasSuffix(s, p)
				}
				return false
			default:
				return !equal(a, v)
			}
		case "numeric":
			n, ok := v.(json.Number)
			if !ok {
				return false
			}
			f, err := n.Float64()
			if err != nil {
				return false
			}
			pairs, _ := numericPairs(arg)
			for _, p := range pairs {
				if !p.holds(f) {
					return false
				}
			}
			return true
		case "cidr":
			pfx, err := netip.ParsePrefix(arg.(string))
			if err != nil || !isStr {
				return false
			}
			addr, err := netip.ParseAddr(s)
			return err == nil && pfx.Contains(addr)
		}
	}
	return false
}

// equal compares JSON values decoded with UseNumber; numbers compare by value.
func equal(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		x, err1 := an.Float64()
		y, err2 := bn.Float64()
		return err1 == nil && err2 == nil && x == y
	}
	switch a.(type) {
	case map[string]any, []any:
		return false
	}
	return a == b
}

type numericPair struct {
	op string
	n  float64
}

func (p numericPair) holds(f float64) bool {
	switch p.op {
	case "=":
		return f == p.n
	case "<":
		return f < p.n
	case "<=":
		return f <= p.n
	case ">":
		return f > p.n
	case ">=":
		return f >= p.n
	}
	return false
}

func numericPairs(arg any) ([]numericPair, error) {
	a, ok := arg.([]any)
	if !ok || len(a) == 0 || len(a)%2 != 0 {
		return nil, errors.New("numeric takes operator/number pairs")
	}
	var out []numericPair
	for i := 0; i < len(a); i += 2 {
		op, ok := a[i].(string)
		n, nok := a[i+1].(json.Number)
		if !ok || !nok {
			return nil, errors.New("numeric takes operator/number pairs")
		}
		f, err := n.Float64()
		if err != nil {
			return nil, err
		}
		switch op {
		case "=", "<", "<=", ">", ">=":
		default:
			return nil, fmt.Errorf("numeric: unknown operator %q", op)
		}
		out = append(out, numericPair{op, f})
	}
	return out, nil
}
