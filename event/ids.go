package event

import (
	"fmt"
	"strings"
	"unicode"
)

// The id syntax is checked by hand rather than with package-level regexps.

// ValidInstanceID reports whether s is an ECS instance id: ^i-[a-z0-9]{1,64}$.
func ValidInstanceID(s string) bool { return prefixedID(s, "i-") }

// ValidENIID reports whether s is an ENI id: ^eni-[a-z0-9]{1,64}$.
func ValidENIID(s string) bool { return prefixedID(s, "eni-") }

// ValidAccountID reports whether s is an Alibaba Cloud account id: 1 to 32 digits.
func ValidAccountID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ValidRegion reports whether s is a region id:
// ^[a-z]{2,4}(-[a-z0-9]+){1,3}$, at most 64 bytes.
func ValidRegion(s string) bool {
	if len(s) > 64 {
		return false
	}
	parts := strings.Split(s, "-")
	if len(parts) < 2 || len(parts) > 4 || len(parts[0]) < 2 || len(parts[0]) > 4 {
		return false
	}
	for _, c := range []byte(parts[0]) {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	for _, p := range parts[1:] {
		if p == "" || !lowerAlnum(p) {
			return false
		}
	}
	return true
}

func prefixedID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	return ok && len(rest) >= 1 && len(rest) <= 64 && lowerAlnum(rest)
}

func lowerAlnum(s string) bool {
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// token reports whether s is a plausible opaque id (hook id, token, group
// id): 1-256 bytes of letters, digits and ._:-.
func token(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// printable reports whether s is 1-max bytes of printable text (no control
// characters), fit for a log line.
func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, r := range s {
		// Format characters (Cf) include the bidirectional overrides and isolates, which
		// make a log line read other than it is.
		if r < 0x20 || r == 0x7f || r == '\uFFFD' || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

func badInstanceID(field, v string) error {
	return fmt.Errorf("%w: instance id %q in %s: want i- followed by 1-64 lowercase letters or digits", ErrInvalidID, clip(v), field)
}

func badENIID(field, v string) error {
	return fmt.Errorf("%w: ENI id %q in %s: want eni- followed by 1-64 lowercase letters or digits", ErrInvalidID, clip(v), field)
}

func badRegion(field, v string) error {
	return fmt.Errorf("%w: region %q in %s: want a region id such as cn-hangzhou", ErrInvalidID, clip(v), field)
}

// normalizeState returns an ECS state name in ECS's capitalisation:
// "running" and "RUNNING" give "Running". ECS states (Pending, Created,
// Starting, Running, Stopping, Stopped, Deleted) are single words, so one rule
// serves them and any new one; a name that is not 1-32 letters is refused.
func normalizeState(s string) (string, bool) {
	if len(s) == 0 || len(s) > 32 {
		return "", false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return "", false
		}
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:]), true
}
