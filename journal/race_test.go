//go:build race

package journal_test

// raceEnabled halves the randomized tests' default sizes under the race
// detector, which makes them several times slower.
const raceEnabled = true
