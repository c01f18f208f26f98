package journal

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolders lists, best effort, the processes holding a lock on the file
// at path, as /proc/locks lists them; nil if it cannot be read.
func lockHolders(path string) []int {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return lockPIDs("/proc/locks", uint64(st.Dev), uint64(st.Ino)) // uint32 on some platforms
}

// lockPIDs reads a file in the format of /proc/locks and returns the PIDs
// holding a lock on the file with device dev and inode ino, in the order
// listed; waiters are left out. It returns nil if locksFile cannot be read.
// Lines look like
//
//	1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF
//	2: -> FLOCK  ADVISORY  WRITE 23456 08:01:1234567 0 EOF   (a waiter)
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
