package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// trimSpace removes JSON whitespace (not Unicode spaces) around b.
func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// shape is what a cheap pass over a JSON text found.
type shape struct {
	depth    int // deepest bracket nesting
	elements int // top-level array elements (0 unless b is an array)
}

// scanShape measures bracket depth and counts top-level array elements
// without decoding anything, stopping as soon as depth exceeds maxDepth. It
// does not validate syntax; it runs before json.Valid so that hostile
// nesting is refused in linear time with a precise error.
func scanShape(b []byte, maxDepth int) (shape, error) {
	var s shape
	depth, inString, escaped := 0, false, false
	topArray := len(b) > 0 && b[0] == '['
	seen := false // a value started at depth 1 of the top-level array
	for i, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if topArray && depth == 1 && !seen && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != ']' && c != ',' {
			seen = true
			s.elements++
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > maxDepth {
				return s, fmt.Errorf("%w: JSON nesting exceeds %d levels (at offset %d)", ErrTooDeep, maxDepth, i)
			}
			s.depth = max(s.depth, depth)
		case ']', '}':
			depth--
		case ',':
			if depth == 1 {
				seen = false
			}
		}
	}
	return s, nil
}

// checkText refuses what encoding/json would silently accept or alter: NUL
// bytes, invalid UTF-8 and text that is not exactly one JSON value.
func checkText(b []byte) error {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return fmt.Errorf("%w: NUL byte at offset %d", ErrMalformed, i)
	}
	if !json.Valid(b) {
		var v json.RawMessage
		err := json.Unmarshal(b, &v)
		if !utf8.Valid(b) {
			return fmt.Errorf("%w: not JSON and not valid UTF-8 (%v)", ErrMalformed, err)
		}
		return fmt.Errorf("%w: not valid JSON: %v", ErrMalformed, err)
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: invalid UTF-8 at offset %d", ErrMalformed, invalidUTF8At(b))
	}
	return nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// maxKeys bounds the keys of one object; events have a few dozen, and
// decoding hundreds of thousands costs time and memory for nothing.
const maxKeys = 1000

// checkDuplicateKeys refuses an object, at any depth of b, that names a key
// twice: encoding/json would keep the last silently, while another reader
// could keep the first. It also refuses objects of more than maxKeys keys.
// b must be valid JSON.
func checkDuplicateKeys(b []byte) error {
	// One key set per open object; nil marks an array.
	var stack []map[string]struct{}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			stack = append(stack, map[string]struct{}{})
		case '[':
			stack = append(stack, nil)
		case '}', ']':
			stack = stack[:len(stack)-1]
		case '"':
			end, hasEscape := stringEnd(b, i)
			if end < 0 {
				return fmt.Errorf("%w: unterminated string", ErrMalformed)
			}
			lit := b[i : end+1]
			i = end
			if len(stack) == 0 || stack[len(stack)-1] == nil || !followedByColon(b, end+1) {
				continue
			}
			keys := stack[len(stack)-1]
			key := string(lit[1 : len(lit)-1])
			if hasEscape {
				if err := json.Unmarshal(lit, &key); err != nil {
					return fmt.Errorf("%w: %v", ErrMalformed, err)
				}
			}
			if _, dup := keys[key]; dup {
				return fmt.Errorf("%w: duplicate key %q", ErrMalformed, clip(key))
			}
			if len(keys) == maxKeys {
				return fmt.Errorf("%w: object with more than %d keys", ErrTooLarge, maxKeys)
			}
			keys[key] = struct{}{}
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the string that opens at
// b[start], and whether the string holds escapes.
func stringEnd(b []byte, start int) (int, bool) {
	escape := false
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escape = true
			i++
		case '"':
			return i, escape
		}
	}
	return -1, escape
}

func followedByColon(b []byte, i int) bool {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw json.RawMessage) string {
	raw = trimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// clip shortens s for an error message or a log line.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
