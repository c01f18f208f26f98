package postmortem

import (
	"fmt"
	"sort"
)

// Process is a running process that holds a journal file open.
type Process struct {
	PID     int
	Command string // its command name ("dcworker"), "" if unknown
	Locked  bool   // it holds a file lock on the journal, not only an open descriptor
}

// String formats p as "pid 1234 (dcworker)".
func (p Process) String() string {
	if p.Command == "" {
		return fmt.Sprintf("pid %d", p.PID)
	}
	return fmt.Sprintf("pid %d (%s)", p.PID, p.Command)
}

// Holders finds, best effort, the processes other than this one that hold
// path open or locked, lock holders first. How depends on the system:
//   - Linux reads /proc/locks and /proc/*/fd (processes it may not look at
//     are missed);
//   - Windows asks the Restart Manager, which knows open files but not their
//     locks (Locked is false);
//   - elsewhere (macOS, the BSDs) it finds nothing.
func Holders(path string) []Process {
	return sortProcesses(holders(path))
}

// sortProcesses orders lock holders first, then by PID.
func sortProcesses(out []Process) []Process {
	sort.Slice(out, func(i, k int) bool {
		if out[i].Locked != out[k].Locked {
			return out[i].Locked
		}
		return out[i].PID < out[k].PID
	})
	return out
}
