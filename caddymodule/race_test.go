//go:build race

package caddymodule

// raceEnabled: the race detector is on, and its instrumentation allocates.
const raceEnabled = true
