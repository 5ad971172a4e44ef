//go:build race

package e2e

// buildFlags build the function with the race detector when the tests run with it (make
// test), so a data race in the function fails the end-to-end test that provoked it.
var buildFlags = []string{"-race"}
