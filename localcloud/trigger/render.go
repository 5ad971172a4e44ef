package trigger

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// renderer renders the Serverless Devs variable forms s.yaml uses, as `s preview` does:
//
//	${vars.a.b}              the value of vars.a.b, itself rendered
//	${env('NAME')}           the shell variable NAME (an error when unset)
//	${env('NAME', default)}  ... or default, a quoted string or a number
//	${config('AccountID')}   the account id of the access alias
//	${str('vars.a')}         vars.a as a string
//
// A value that is exactly one ${...} keeps the type of what it refers to; ${...} inside a
// longer string is formatted into it. Any other form is an error, so that the local cloud
// never runs a configuration it only half understood. It follows the resolver the deploy tests
// check against `s preview` (deploy/resolve_test.go).
type renderer struct {
	vars      map[string]any
	getenv    func(string) (string, bool)
	accountID string
	depth     int
}

var (
	exprRE = regexp.MustCompile(`\$\{([^{}]*)\}`)
	callRE = regexp.MustCompile(`^([a-zA-Z]+)\((.*)\)$`)
)

func (r *renderer) value(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if strings.Contains(k, "${") {
				return nil, fmt.Errorf("key %q: variables in keys are not supported", k)
			}
			rv, err := r.value(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = rv
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			rv, err := r.value(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = rv
		}
		return out, nil
	case string:
		return r.str(v)
	}
	return v, nil
}

func (r *renderer) str(s string) (any, error) {
	locs := exprRE.FindAllStringSubmatchIndex(s, -1)
	if len(locs) == 0 {
		if strings.Contains(s, "${") {
			return nil, fmt.Errorf("%q: unterminated or nested ${", s)
		}
		return s, nil
	}
	if len(locs) == 1 && locs[0][0] == 0 && locs[0][1] == len(s) {
		return r.expr(s[locs[0][2]:locs[0][3]])
	}
	var b strings.Builder
	last := 0
	for _, l := range locs {
		b.WriteString(s[last:l[0]])
		v, err := r.expr(s[l[2]:l[3]])
		if err != nil {
			return nil, err
		}
		switch v.(type) {
		case map[string]any, []any, nil:
			return nil, fmt.Errorf("%q: ${%s} is not a scalar and cannot be part of a string", s, s[l[2]:l[3]])
		}
		fmt.Fprint(&b, v)
		last = l[1]
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

func (r *renderer) expr(e string) (any, error) {
	e = strings.TrimSpace(e)
	if path, ok := strings.CutPrefix(e, "vars."); ok {
		return r.lookup(path)
	}
	m := callRE.FindStringSubmatch(e)
	if m == nil {
		return nil, fmt.Errorf("${%s}: unknown variable form", e)
	}
	args, err := parseArgs(m[2])
	if err != nil {
		return nil, fmt.Errorf("${%s}: %w", e, err)
	}
	switch m[1] {
	case "env":
		if len(args) < 1 || len(args) > 2 {
			return nil, fmt.Errorf("${%s}: env takes a name and an optional default", e)
		}
		name, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("${%s}: the variable name must be a string", e)
		}
		if v, ok := r.getenv(name); ok {
			return v, nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return nil, fmt.Errorf("${%s}: %s is not set and there is no default", e, name)
	case "config":
		if len(args) != 1 || args[0] != "AccountID" {
			return nil, fmt.Errorf("${%s}: only config('AccountID') is supported", e)
		}
		return r.accountID, nil
	case "str":
		path, ok := "", false
		if len(args) == 1 {
			path, ok = args[0].(string)
		}
		rest, isVar := strings.CutPrefix(path, "vars.")
		if !ok || !isVar {
			return nil, fmt.Errorf("${%s}: str takes one quoted path under vars, e.g. str('vars.x')", e)
		}
		v, err := r.lookup(rest)
		if err != nil {
			return nil, err
		}
		return fmt.Sprint(v), nil
	}
	return nil, fmt.Errorf("${%s}: unknown function %s", e, m[1])
}

// lookup finds vars.<path> and renders it (vars may use env and other vars).
func (r *renderer) lookup(path string) (any, error) {
	if r.depth > 10 {
		return nil, fmt.Errorf("vars.%s: variables refer to each other in a loop", path)
	}
	var cur any = r.vars
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("vars.%s: not found", path)
		}
		if cur, ok = m[k]; !ok {
			return nil, fmt.Errorf("vars.%s: not found", path)
		}
	}
	r.depth++
	defer func() { r.depth-- }()
	return r.value(cur)
}

// parseArgs reads a comma-separated list of single- or double-quoted strings and numbers.
func parseArgs(s string) ([]any, error) {
	var out []any
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for {
		var arg any
		if q := s[0]; q == '\'' || q == '"' {
			end := strings.IndexByte(s[1:], q)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			arg, s = s[1:end+1], s[end+2:]
		} else {
			tok, rest, found := strings.Cut(s, ",")
			tok = strings.TrimSpace(tok)
			if n, err := strconv.Atoi(tok); err == nil {
				arg = n
			} else if f, err := strconv.ParseFloat(tok, 64); err == nil {
				arg = f
			} else {
				return nil, fmt.Errorf("argument %q is neither a quoted string nor a number", tok)
			}
			s = ""
			if found {
				s = "," + rest
			}
		}
		out = append(out, arg)
		s = strings.TrimSpace(s)
		if s == "" {
			return out, nil
		}
		if s[0] != ',' {
			return nil, fmt.Errorf("expected ',' before %q", s)
		}
		if s = strings.TrimSpace(s[1:]); s == "" {
			return nil, fmt.Errorf("trailing ','")
		}
	}
}
