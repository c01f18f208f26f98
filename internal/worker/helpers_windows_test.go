//go:build windows

package worker_test

import "os"

// killGroup kills the process pid (Windows has no process groups to kill;
// dcworker's job object ends the command's tree with the worker).
func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
