//go:build unix

package worker

import "syscall"

// procGroup is empty on Unix: the process group (pgid = the command's pid)
// is the handle on the command and its descendants.
type procGroup struct{}

// started has nothing to do on Unix: the process group was made before exec.
func (p *proc) started() error { return nil }

// release has nothing to free on Unix.
func (p *proc) release() {}

// kill SIGKILLs the command's whole process group.
func (p *proc) kill() error {
	p.killed.Store(true)
	if p.pid <= 0 {
		return nil
	}
	return syscall.Kill(-p.pid, syscall.SIGKILL)
}

// signal sends sig to the command's process group.
func (p *proc) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		_ = p.kill()
		return
	}
	if p.pid > 0 {
		_ = syscall.Kill(-p.pid, sig)
	}
}
