package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrintFloors checks the floor arithmetic on figures chosen so that
// every line has one answer: two rounds whose per-round sums differ, so a
// median of sums is not confused with a sum of medians.
func TestPrintFloors(t *testing.T) {
	// s makes a sample of 1,000 cycles from per-cycle figures in ms.
	s := func(wallMS, cpuMS, medianMS float64) sample {
		return sample{figures: figures{Cycles: 1000, Wall: wallMS, CPU: cpuMS, Median: medianMS}}
	}
	got := map[key][]sample{
		{"session", ""}:      {s(0.4, 0.30, 0.38), s(0.5, 0.30, 0.40)},
		{"bolt2", ""}:        {s(0.6, 0.28, 0.56), s(0.7, 0.30, 0.60)},
		{"bolt2-nosync", ""}: {s(0.02, 0.03, 0.02), s(0.02, 0.03, 0.02)},
		{"go-1", ""}:         {s(1.2, 0.80, 1.10), s(1.3, 0.84, 1.20)},
		{"go-nosync", ""}:    {s(0.6, 0.50, 0.55), s(0.6, 0.49, 0.55)},
		{"upstream", ""}:     {s(3.0, 2.7, 2.7), s(3.3, 2.8, 3.0)},
		{"spawn", ""}:        {s(1.0, 1.1, 0.9), s(1.2, 1.2, 1.1)},
	}
	var b bytes.Buffer
	printFloors(&b, got)
	out := b.String()
	for _, want := range []string{
		// session + bolt2 CPU: 0.58 and 0.60, median 0.59; go-1 above it:
		// 0.22 and 0.24, median 0.23.
		"session + bare bbolt (4 fdatasync) = 0.590 ms, so the target of 0.8 ms leaves 0.210 ms for the client and journal; they take 0.230 ms",
		// 0.33 both rounds; go-nosync above: 0.17 and 0.16.
		"session + bare bbolt NoSync = 0.330 ms, so the target of 0.4 ms leaves 0.070 ms for the client and journal; they take 0.165 ms",
		// median cycles: 0.94 and 1.00 → 0.97; go-1 1.15; 1.15/0.97.
		"session + bare bbolt = 0.970 ms; the client's cycle 1.150 ms is 1.186× that",
		// upstream mean 3.15 → 2.1; go-1 + spawn: 2.2 and 2.5 → 2.35.
		"needs a cycle of at most 2.100 ms (upstream 3.150 ms / 1.5); the Go client's cycle + the bare spawn of /bin/cat = 2.350 ms",
		"which alone costs 1.100 ms (mean), 1.000 ms (median)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// TestPrintFloorsPartial leaves out rows: a floor whose rows did not all
// run is not printed, and nothing is printed without any.
func TestPrintFloorsPartial(t *testing.T) {
	s := sample{figures: figures{Cycles: 10, Wall: 0.01, CPU: 0.01, Median: 1}}
	var b bytes.Buffer
	printFloors(&b, map[key][]sample{{"session", ""}: {s}})
	if b.Len() != 0 {
		t.Fatalf("printed %q from the session row alone", b.String())
	}
	printFloors(&b, map[key][]sample{{"session", ""}: {s, s}, {"bolt2", ""}: {s}, {"go-1", ""}: {s, s}})
	if strings.Contains(b.String(), "bare bbolt (4 fdatasync)") {
		t.Fatalf("summed rows that ran a different number of rounds:\n%s", b.String())
	}
	// The floor without the client's row: no figure for what it takes.
	b.Reset()
	printFloors(&b, map[key][]sample{{"session", ""}: {s}, {"bolt2", ""}: {s}})
	if out := b.String(); !strings.Contains(out, "leaves") || strings.Contains(out, "they take") {
		t.Fatalf("the floor alone printed:\n%s", out)
	}
}
