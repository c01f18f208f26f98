package proxy

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs the program in its own process group (signals reach its
// children too) and kills it if the proxy dies: a program outliving a
// killed proxy would hold jobs the restarted proxy hands to the next copy.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group the program leads.
func signalGroup(pid int, sig syscall.Signal) { _ = syscall.Kill(-pid, sig) }
