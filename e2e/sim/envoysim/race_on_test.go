//go:build race

package envoysim_test

// raceEnabled: make test runs this package a second time with -race, for
// data races in the host code; the long guest runs need not repeat there.
const raceEnabled = true
