package event

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// fields is one decoded JSON object, with its path for error messages.
type fields struct {
	m    map[string]json.RawMessage
	path string
}

func (f fields) name(key string) string {
	if f.path == "" {
		return key
	}
	return f.path + "." + key
}

// has reports whether key is present and not null.
func (f fields) has(key string) bool {
	v, ok := f.m[key]
	return ok && string(trimSpace(v)) != "null"
}

// keys returns the object's keys, sorted, for error messages.
func (f fields) keys() string {
	ks := make([]string, 0, len(f.m))
	for k := range f.m {
		ks = append(ks, strconv.Quote(clip(k)))
	}
	slices.Sort(ks)
	if len(ks) > 8 {
		ks = append(ks[:8], "...")
	}
	return "[" + strings.Join(ks, " ") + "]"
}

// reader reads fields, keeping the first error so that a form can read all
// it needs and check once. Absent and null fields read as zero values.
type reader struct {
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) wrongType(f fields, key, want string) {
	r.fail(fmt.Errorf("%w: %s must be %s, got %s", ErrMalformed, f.name(key), want, jsonKind(f.m[key])))
}

func (r *reader) str(f fields, key string) string {
	if !f.has(key) {
		return ""
	}
	var s string
	if err := json.Unmarshal(f.m[key], &s); err != nil {
		r.wrongType(f, key, "a string")
		return ""
	}
	return s
}

func (r *reader) obj(f fields, key string) (fields, bool) {
	if !f.has(key) {
		return fields{}, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(f.m[key], &m); err != nil {
		r.wrongType(f, key, "an object")
		return fields{}, false
	}
	return fields{m: m, path: f.name(key)}, true
}

// strs reads an array of at most limit strings; it counts before decoding.
func (r *reader) strs(f fields, key string, limit int) ([]string, bool) {
	if !f.has(key) {
		return nil, false
	}
	if sh, err := scanShape(trimSpace(f.m[key]), 2); err == nil && sh.elements > limit {
		r.fail(fmt.Errorf("%w: %s lists %d items, more than the limit of %d", ErrTooLarge, f.name(key), sh.elements, limit))
		return nil, false
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(f.m[key], &raws); err != nil {
		r.wrongType(f, key, "an array of strings")
		return nil, false
	}
	out := make([]string, 0, len(raws))
	for i, v := range raws {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			r.fail(fmt.Errorf("%w: %s[%d] must be a string, got %s", ErrMalformed, f.name(key), i, jsonKind(v)))
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// count reads a non-negative integer no larger than limit.
func (r *reader) count(f fields, key string, limit int) int {
	if !f.has(key) {
		return 0
	}
	var n json.Number
	if jsonKind(f.m[key]) != "a number" || json.Unmarshal(f.m[key], &n) != nil {
		r.wrongType(f, key, "a number")
		return 0
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || i < 0 || i > int64(limit) {
		r.fail(fmt.Errorf("%w: %s must be a whole number from 0 to %d, got %s", ErrMalformed, f.name(key), limit, clip(string(trimSpace(f.m[key])))))
		return 0
	}
	return int(i)
}

// exactly refuses keys that differ from a known key only in case
// ("instanceID" for "instanceId"), which would otherwise be ignored.
func (r *reader) exactly(f fields, known ...string) {
	for k := range f.m {
		for _, want := range known {
			if k != want && strings.EqualFold(k, want) {
				r.fail(fmt.Errorf("%w: field %q: did you mean %q?", ErrMalformed, clip(f.name(k)), want))
			}
		}
	}
}

// only refuses keys other than the known ones.
func (r *reader) only(f fields, what string, known ...string) {
	var unknown []string
	for k := range f.m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, clip(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		r.fail(fmt.Errorf("%w: unknown field %q in %s (known: %s)", ErrMalformed, unknown[0], what, strings.Join(known, ", ")))
	}
}
