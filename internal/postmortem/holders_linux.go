package postmortem

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// holders reads /proc/locks and /proc/*/fd for the processes that hold path.
func holders(path string) []Process {
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
