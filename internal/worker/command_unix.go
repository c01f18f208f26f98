//go:build unix

package worker

import (
	"os"
	"os/exec"
	"syscall"
)

// procGroup is empty on Unix: the process group (pgid = the command's pid)
// is the handle on the command and its descendants.
type procGroup struct{}

// prepare puts the command in a process group of its own, so that a signal
// reaches its descendants too and a terminal's Ctrl-C does not.
func (p *proc) prepare() {
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// started has nothing to do on Unix: Setpgid took effect before exec.
func (p *proc) started() error { return nil }

// release has nothing to free on Unix.
func (p *proc) release() {}

// kill SIGKILLs the command's whole process group.
func (p *proc) kill() error {
	p.killed.Store(true)
	if p.cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// signal sends sig to the command's process group.
func (p *proc) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		_ = p.kill()
		return
	}
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// exitSignal is the signal that ended the command, 0 if it exited.
func (p *proc) exitSignal() syscall.Signal {
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// progressPipe gives the command fd 3 ($DC_PROGRESS_FD) as the write end of
// a pipe whose read end (r) the caller reads progress lines from.
func progressPipe(cmd *exec.Cmd) (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.ExtraFiles = []*os.File{w} // fd 3
	return r, w, nil
}
