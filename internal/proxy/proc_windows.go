package proxy

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr runs the program in a process group of its own, so that a
// console interrupt meant for the proxy does not reach it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// signalGroup stops the program: Windows has no signals to pass on, so a
// stop is a kill (the program's held job stays in the proxy's journal and
// goes to its restart, as after a crash). The program's own children are
// not reached; dcworker's job objects (internal/worker) are the model for
// doing that.
func signalGroup(pid int, sig syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
