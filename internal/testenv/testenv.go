// Package testenv holds what the project's tests share about the machine they run on.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// CI reports whether the tests run under CI: CI set to anything in the environment, as
// .ci/run sets it.
func CI() bool { return os.Getenv("CI") != "" }

// CannotCheck ends a test whose check cannot run on this machine (a tool or a registry out of
// reach). Under CI that is a failure: a check that quietly stops checking proves nothing.
// Elsewhere the test skips, and says so on stderr even without -v, so that nobody takes the
// skip for a pass.
func CannotCheck(tb testing.TB, format string, args ...any) {
	tb.Helper()
	reason := fmt.Sprintf(format, args...)
	if CI() {
		tb.Fatalf("CI is set, and this check cannot run: %s", reason)
	}
	fmt.Fprintf(os.Stderr, "SKIPPED, NOT CHECKED: %s: %s\n", tb.Name(), reason)
	tb.Skip(reason)
}
