package postmortem

import (
	"fmt"
	"os"
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

// Holders finds, best effort, the processes that hold path open, and names
// those of locked, the PIDs of the processes holding its lock (as a
// *journal.LockedError lists them). How it finds open files and names
// processes depends on the system:
//   - Linux reads /proc/*/fd and /proc/PID/comm (processes it may not look
//     at are missed);
//   - Windows asks the Restart Manager, and names a process by its
//     executable;
//   - elsewhere (macOS, the BSDs) it only lists locked, unnamed.
//
// The calling process is left out. Lock holders come first.
func Holders(path string, locked []int) []Process {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	self := os.Getpid()
	found := map[int]*Process{}
	add := func(pid int, locked bool) {
		if pid <= 0 || pid == self {
			return
		}
		p := found[pid]
		if p == nil {
			p = &Process{PID: pid, Command: commandName(pid)}
			found[pid] = p
		}
		p.Locked = p.Locked || locked
	}
	for _, pid := range locked {
		add(pid, true)
	}
	for _, pid := range openers(path) {
		add(pid, false)
	}
	out := make([]Process, 0, len(found))
	for _, p := range found {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].Locked != out[k].Locked {
			return out[i].Locked
		}
		return out[i].PID < out[k].PID
	})
	return out
}
