package proxy_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes a test's child process die with the test binary, so
// that a killed test leaves no program retrying forever.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
