package postmortem

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
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

// Holders finds, best effort, the processes that hold path open or locked, reading
// /proc/locks and /proc/*/fd (Linux; elsewhere, or without permission to look, it
// finds nothing). The calling process is left out. Lock holders come first.
func Holders(path string) []Process {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
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
	for _, pid := range lockPIDs("/proc/locks", uint64(st.Dev), st.Ino) {
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

// lockPIDs reads a /proc/locks file for the PIDs holding a lock on the file with
// device dev and inode ino. Lines look like
//
//	1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF
//	2: -> FLOCK  ADVISORY  WRITE 23456 08:01:1234567 0 EOF   (a waiter, skipped)
func lockPIDs(locksFile string, dev, ino uint64) []int {
	f, err := os.Open(locksFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil {
			continue
		}
		id := strings.Split(fields[5], ":")
		if len(id) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(id[0], 16, 64)
		mnr, err2 := strconv.ParseUint(id[1], 16, 64)
		in, err3 := strconv.ParseUint(id[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || in != ino {
			continue
		}
		if maj == major && mnr == minor {
			pids = append(pids, pid)
		}
	}
	return pids
}

func commOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
