package postmortem

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Process is a running process that holds a journal file open.
type Process struct {
	PID     int
	Command string // its command name (/proc/PID/comm), "" if unknown
	Locked  bool   // it holds a file lock on the journal, not only an open descriptor
}

// String formats p as "pid 1234 (dcworker)".
func (p Process) String() string {
	if p.Command == "" {
		return fmt.Sprintf("pid %d", p.PID)
	}
	return fmt.Sprintf("pid %d (%s)", p.PID, p.Command)
}

// Holders finds, best effort, the processes that hold path open, reading /proc/*/fd
// (Linux; elsewhere, or without permission to look, it finds nothing), and names
// those of locked, the PIDs of the processes holding its lock (as a
// *journal.LockedError lists them). The calling process is left out. Lock holders
// come first.
func Holders(path string, locked []int) []Process {
	fi, err := os.Stat(path)
	if err != nil {
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
			p = &Process{PID: pid, Command: commOf(pid)}
			found[pid] = p
		}
		p.Locked = p.Locked || locked
	}
	for _, pid := range locked {
		add(pid, true)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(fdDir)))
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // not ours to look at
		}
		for _, fd := range fds {
			ofi, err := os.Stat(filepath.Join(fdDir, fd.Name()))
			if err == nil && os.SameFile(fi, ofi) {
				add(pid, false)
				break
			}
		}
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

func commOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
