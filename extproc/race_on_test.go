//go:build race

package extproc

// raceEnabled: the race detector allows at most 8128 live goroutines, so the
// concurrency tests scale down under -race.
const raceEnabled = true
