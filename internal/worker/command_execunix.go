//go:build unix && !linux

package worker

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"unsafe"
)

// prepare puts the command in a process group of its own, so that a signal
// reaches its descendants too and a terminal's Ctrl-C does not.
func (p *proc) prepare() {
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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

// filledPipe returns the read end of a pipe that holds all of data and
// whose write end is closed: the command's stdin, read to its end without
// a goroutine writing it. It returns nil (and no error) when data does not
// fit in the pipe's buffer (64 KiB on Linux): os/exec then feeds the
// command as it reads. Neither end is registered with Go's poller (the
// parent never waits on them).
func filledPipe(data string) (*os.File, error) {
	var fds [2]int
	syscall.ForkLock.RLock() // no child may inherit the pipe before it is close-on-exec
	err := syscall.Pipe(fds[:])
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, os.NewSyscallError("pipe", err)
	}
	r, w := fds[0], fds[1]
	if err := syscall.SetNonblock(w, true); err != nil {
		syscall.Close(r)
		syscall.Close(w)
		return nil, os.NewSyscallError("fcntl", err)
	}
	for len(data) > 0 {
		// The string's bytes, not a copy: write(2) only reads them.
		n, err := syscall.Write(w, unsafe.Slice(unsafe.StringData(data), len(data)))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || n <= 0 { // EAGAIN: full; the pipe is dropped
			syscall.Close(r)
			syscall.Close(w)
			return nil, nil
		}
		data = data[n:]
	}
	syscall.Close(w)
	return os.NewFile(uintptr(r), "|0"), nil
}
