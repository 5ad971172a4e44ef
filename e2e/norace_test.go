//go:build !race

package e2e

// buildFlags: without -race, the function is built as make build builds it.
var buildFlags []string
