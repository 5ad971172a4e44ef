//go:build race

package sim

// raceEnabled: under the race detector a scenario costs several times as much, so the
// default run is smaller (make test runs the full count without -race as well).
const raceEnabled = true
