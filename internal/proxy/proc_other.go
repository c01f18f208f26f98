//go:build !linux

package proxy

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs the program in its own process group.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
