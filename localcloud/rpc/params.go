package rpc

import (
	"reflect"
	"strings"
)

// CommonParams returns the parameters every RPC action accepts (signature, routing and
// format).
func CommonParams() []string {
	return []string{
		"Action", "Version", "Format", "RegionId",
		"AccessKeyId", "SecurityToken", "Signature", "SignatureMethod",
		"SignatureVersion", "SignatureNonce", "SignatureType", "Timestamp",
	}
}

// ParamsOf lists the request parameters of an RPC request struct from its field tags, the
// way alibaba-cloud-sdk-go request structs declare them (name:"X", type:"Repeated",
// type:"Struct", type:"Map", type:"Json"). Repeated fields become "X.N" (strings) or
// "X.N.Field" (structs), Struct fields "X.Field", Map fields "X.*". N in a pattern stands
// for 1, 2, ...; "*" for any suffix. Embedded structs (the SDK's RpcRequest) are skipped.
func ParamsOf(req any) []string {
	t := reflect.TypeOf(req)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return paramsOf(t, "")
}

func paramsOf(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			continue
		}
		name, ok := f.Tag.Lookup("name")
		if !ok {
			continue
		}
		full := prefix + name
		switch f.Tag.Get("type") {
		case "Repeated":
			elem := f.Type
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
				elem = elem.Elem()
			}
			if elem.Kind() == reflect.Struct {
				out = append(out, paramsOf(elem, full+".N.")...)
			} else {
				out = append(out, full+".N")
			}
		case "Struct":
			elem := f.Type
			for elem.Kind() == reflect.Pointer {
				elem = elem.Elem()
			}
			out = append(out, paramsOf(elem, full+".")...)
		case "Map":
			out = append(out, full+".*")
		default:
			out = append(out, full)
		}
	}
	return out
}

// paramSet matches parameter names against patterns.
type paramSet struct {
	exact    map[string]bool
	patterns [][]string
}

func newParamSet(patterns []string) paramSet {
	ps := paramSet{exact: map[string]bool{}}
	for _, p := range append(CommonParams(), patterns...) {
		if strings.Contains(p, ".N") || strings.HasSuffix(p, ".*") {
			ps.patterns = append(ps.patterns, strings.Split(p, "."))
		} else {
			ps.exact[p] = true
		}
	}
	return ps
}

func (ps paramSet) allows(name string) bool {
	if ps.exact[name] {
		return true
	}
	segs := strings.Split(name, ".")
	for _, p := range ps.patterns {
		if matchPattern(p, segs) {
			return true
		}
	}
	return false
}

func matchPattern(pattern, segs []string) bool {
	for i, want := range pattern {
		if want == "*" && i == len(pattern)-1 {
			return len(segs) > i
		}
		if i >= len(segs) {
			return false
		}
		if want == "N" {
			if !isIndex(segs[i]) {
				return false
			}
		} else if want != segs[i] {
			return false
		}
	}
	return len(segs) == len(pattern)
}

// isIndex reports whether s is a list index: 1, 2, ... without leading zeros.
func isIndex(s string) bool {
	if s == "" || s[0] == '0' || len(s) > 4 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
