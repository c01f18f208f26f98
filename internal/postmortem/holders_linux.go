package postmortem

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// openers reads /proc/*/fd for the processes that have path open.
func openers(path string) []int {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(fdDir)))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // not ours to look at
		}
		for _, fd := range fds {
			ofi, err := os.Stat(filepath.Join(fdDir, fd.Name()))
			if err == nil && os.SameFile(fi, ofi) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// commandName is /proc/PID/comm, "" if it cannot be read.
func commandName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
