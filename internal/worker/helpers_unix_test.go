//go:build unix

package worker_test

import "syscall"

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }
