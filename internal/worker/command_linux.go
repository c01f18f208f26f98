//go:build linux

package worker

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipeBuf is how much an empty pipe takes without blocking the writer
// (PIPE_BUF on Linux; a pipe's buffer is at least a page even when the
// user's pipe quota is spent).
const pipeBuf = 4096

// noPidFDPoll is how often pump looks for the command's exit when the
// kernel gave no pidfd (before 5.2) and its pipes are still open.
const noPidFDPoll = 100 * time.Millisecond

// cutPipesPoll is how often pump, after the command's exit, looks whether a
// drain or a stop bounds its wait for pipes a descendant holds open.
const cutPipesPoll = 100 * time.Millisecond

// start launches s in its own process group. The command is killed, with
// its whole group, when ctx ends. Wait for it with wait, which collects the
// command in the caller's goroutine.
//
// On Linux the command is forked by syscall.StartProcess, not os/exec, and
// wait collects it in one goroutine with no other goroutine involved: the
// command's stdin, stdout, stderr and fd 3 are plain blocking pipes, never
// registered with Go's poller, and wait reads (or writes) each when
// poll(2) says it is ready, with the command's pidfd in the same poll for
// its exit. os/exec made every pipe non-blocking and registered both of its
// ends with the poller (fcntl and epoll_ctl calls per end), set the child's
// ends back to blocking, and copied each output in a goroutine of its own
// that the runtime woke at the pipe's end and that Wait then waited for.
func start(ctx context.Context, s spec) (*proc, error) {
	if len(s.argv) == 0 {
		return nil, errors.New("no command")
	}
	if s.poll <= 0 {
		s.poll = 200 * time.Millisecond
	}
	if s.waitDelay <= 0 {
		s.waitDelay = 5 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.path
	if path == "" {
		var err error
		if path, err = exec.LookPath(s.argv[0]); err != nil {
			return nil, err
		}
	}
	env := s.env
	if env == nil {
		env = os.Environ()
	}
	// The child's ends are at 0..3 of child, the parent's at the same
	// places of parent (-1: none, or closed).
	child, parent := [4]int{-1, -1, -1, -1}, [4]int{-1, -1, -1, -1}
	closeFDs := func(fds *[4]int) {
		for i, fd := range fds {
			if fd >= 0 {
				syscall.Close(fd)
				fds[i] = -1
			}
		}
	}
	rest := s.stdin
	for i := range child {
		var fds [2]int
		// O_CLOEXEC: no other command forked meanwhile inherits them; the
		// fork puts the child's ends at 0..3 without it.
		if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
			closeFDs(&child)
			closeFDs(&parent)
			return nil, os.NewSyscallError("pipe2", err)
		}
		if i == 0 {
			child[0], parent[0] = fds[0], fds[1]
			var err error
			if rest, err = fillInput(parent[0], rest); err != nil {
				closeFDs(&child)
				closeFDs(&parent)
				return nil, err
			}
			if rest == "" { // all of it is in the pipe: the command reads it to its end
				syscall.Close(parent[0])
				parent[0] = -1
			}
			continue
		}
		child[i], parent[i] = fds[1], fds[0]
	}
	// Its own process group: a signal reaches its descendants too, and a
	// terminal's Ctrl-C does not. The pidfd (-1 if the kernel has none)
	// tells pump of the command's exit in the same poll as its pipes.
	pidfd := -1
	sys := &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd}
	if s.noPidFD {
		sys.PidFD = nil
	}
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(child[0]), uintptr(child[1]), uintptr(child[2]), uintptr(child[3])},
		Sys:   sys,
	}
	pid, _, err := syscall.StartProcess(path, s.argv, attr)
	closeFDs(&child) // the command holds its own copies
	if err != nil {
		closeFDs(&parent)
		return nil, &os.PathError{Op: "fork/exec", Path: path, Err: err}
	}
	p := &proc{pid: pid}
	stopKill := context.AfterFunc(ctx, func() {
		p.whileRunning(func() { _ = p.kill() })
		p.stopWaitingAt(time.Now())
	})
	finishFiles := watchFiles(s)
	p.collect = func() {
		out := &limitWriter{limit: s.maxOutput}
		tail := &tailBuffer{max: stderrTailSize, also: s.stderr}
		lines := &lineSplitter{fn: s.onProgress}
		ws, err := p.pump(parent, pidfd, rest, s.waitDelay, out, tail, lines)
		stopKill()
		lines.end()
		finishFiles()
		p.res = result{exitCode: -1, stderrTail: tail.bytes(), err: err}
		p.res.output, p.res.tooLarge = out.result()
		switch {
		case ws.Exited():
			p.res.exitCode = ws.ExitStatus()
		case ws.Signaled():
			p.res.signal = ws.Signal()
		}
	}
	return p, nil
}

// fillInput writes as much of data as the pipe w takes at once and returns
// the rest. Input up to pipeBuf is written by one blocking write, which an
// empty pipe takes whole; w is made non-blocking only for larger input, the
// rest of which pump writes as the command reads.
func fillInput(w int, data string) (string, error) {
	if len(data) > pipeBuf {
		if _, err := unix.FcntlInt(uintptr(w), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
			return "", os.NewSyscallError("fcntl", err)
		}
	}
	rest, err := writeInput(w, data)
	if errors.Is(err, syscall.EAGAIN) {
		err = nil
	}
	return rest, err
}

// writeInput writes data to w until it is written, the pipe is full
// (EAGAIN) or an error; it returns what is left. The string's bytes are
// written, not a copy: write(2) only reads them.
func writeInput(w int, data string) (string, error) {
	for len(data) > 0 {
		n, err := syscall.Write(w, unsafe.Slice(unsafe.StringData(data), len(data)))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if n > 0 {
			data = data[n:]
		}
		if err != nil {
			return data, err
		}
	}
	return "", nil
}

// fdReader reads a blocking descriptor that poll(2) reported ready: a read
// returns what the pipe holds, or 0 (io.EOF) once every writer closed it.
type fdReader int

func (f fdReader) Read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(int(f), b)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// pump feeds the command the rest of its input, reads its stdout into out,
// its stderr into tail and fd 3's lines into lines until the command has
// exited and the pipes are closed, and reaps it. A pipe that a descendant
// still holds open waitDelay after the command's exit is closed on this
// side (what os/exec's WaitDelay did). fds are the parent's ends: stdin's
// write end (-1 if the input is all written), stdout, stderr, fd 3; pump
// closes them and pidfd.
func (p *proc) pump(fds [4]int, pidfd int, rest string, waitDelay time.Duration, out *limitWriter, tail *tailBuffer, lines *lineSplitter) (syscall.WaitStatus, error) {
	const (
		iIn, iOut, iErr, iProg, iPid = 0, 1, 2, 3, 4
	)
	fd := [5]int{fds[0], fds[1], fds[2], fds[3], pidfd}
	closeFD := func(i int) {
		if fd[i] >= 0 {
			syscall.Close(fd[i])
			fd[i] = -1
		}
	}
	defer func() {
		for i := range fd {
			closeFD(i)
		}
	}()
	buf := copyBufs.Get().(*[1 << 10]byte) // stderr's and fd 3's reads
	defer copyBufs.Put(buf)
	var (
		ioErr   error
		discard []byte // stdout over the limit
		ws      syscall.WaitStatus
		exited  bool
		end     time.Time // exit + waitDelay
		pfds    [5]unix.PollFd
		which   [5]int
	)
	keep := func(err error) {
		if ioErr == nil {
			ioErr = err
		}
	}
	for {
		pipesOpen := fd[iIn] >= 0 || fd[iOut] >= 0 || fd[iErr] >= 0 || fd[iProg] >= 0
		if exited && (!pipesOpen || ioErr != nil) {
			return ws, ioErr
		}
		if !exited && (!pipesOpen && fd[iPid] < 0 || ioErr != nil) {
			// Nothing left to read, and no pidfd (a kernel before 5.3)
			// to poll; or reading failed and the command is killed.
			if ioErr != nil {
				_ = p.kill()
			}
			var err error
			if ws, err = p.waitExit(); err != nil {
				return ws, err
			}
			exited, end = true, time.Now().Add(waitDelay)
			if ioErr != nil {
				return ws, ioErr
			}
			continue
		}
		timeout := -1
		switch {
		case exited:
			until := end
			if cut := p.cutPipes.Load(); cut != 0 && cut < until.UnixNano() {
				until = time.Unix(0, cut) // a drain's grace period ends first
			}
			left := time.Until(until)
			if left <= 0 {
				return ws, ioErr // a descendant holds the pipes: they are closed here
			}
			// Looked at again at least every cutPipesPoll: a drain may
			// start (stopWaitingAt) while this poll waits.
			timeout = int((min(left, cutPipesPoll) + time.Millisecond - 1) / time.Millisecond)
		case fd[iPid] < 0:
			// No pidfd: the exit of a command whose pipes a descendant
			// holds is looked for every noPidFDPoll.
			timeout = int(noPidFDPoll / time.Millisecond)
		}
		n := 0
		for i, f := range fd {
			if f < 0 {
				continue
			}
			ev := int16(unix.POLLIN)
			if i == iIn {
				ev = unix.POLLOUT
			}
			pfds[n], which[n] = unix.PollFd{Fd: int32(f), Events: ev}, i
			n++
		}
		if _, err := unix.Poll(pfds[:n], timeout); err != nil {
			if !errors.Is(err, syscall.EINTR) {
				keep(os.NewSyscallError("poll", err))
			}
			continue
		}
		if fd[iPid] < 0 && !exited {
			done, err := p.reap(&ws, syscall.WNOHANG)
			if err != nil {
				return ws, err
			}
			if done {
				exited, end = true, time.Now().Add(waitDelay)
			}
		}
		for j := range n {
			if pfds[j].Revents == 0 {
				continue
			}
			switch i := which[j]; i {
			case iIn:
				var err error
				if rest, err = writeInput(fd[iIn], rest); err == nil || !errors.Is(err, syscall.EAGAIN) {
					// All written, or the command closed its stdin
					// (EPIPE: it did not want the rest, as os/exec took it).
					if err != nil && !errors.Is(err, syscall.EPIPE) {
						keep(os.NewSyscallError("write", err))
					}
					closeFD(iIn)
				}
			case iOut:
				out.mu.Lock()
				_, err := out.fill(fdReader(fd[iOut]), &discard)
				out.mu.Unlock()
				if err != nil {
					if err != io.EOF {
						keep(err)
					}
					closeFD(iOut)
				}
			case iErr, iProg:
				k, err := fdReader(fd[i]).Read(buf[:])
				if k > 0 {
					if i == iErr {
						_, _ = tail.Write(buf[:k])
					} else {
						lines.write(buf[:k])
					}
				}
				if err != nil {
					if err != io.EOF {
						keep(err)
					}
					closeFD(i)
				}
			case iPid:
				done, err := p.reap(&ws, syscall.WNOHANG)
				if err != nil {
					return ws, err
				}
				if done {
					closeFD(iPid)
					exited, end = true, time.Now().Add(waitDelay)
				}
			}
		}
	}
}

// waitExit waits for the command's exit without reaping it (waitid with
// WNOWAIT: its pid stays its own, so that a drain's signal meanwhile cannot
// reach another process), then reaps it under p.mu.
func (p *proc) waitExit() (syscall.WaitStatus, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			p.mu.Lock()
			p.ended = true
			p.mu.Unlock()
			return 0, os.NewSyscallError("waitid", err)
		}
		break
	}
	var ws syscall.WaitStatus
	if _, err := p.reap(&ws, 0); err != nil {
		return ws, err
	}
	return ws, nil
}

// reap collects the command's exit status (wait4 with opts) under p.mu and
// marks it ended: from then on its pid may be another process's, and no
// signal is sent to it (whileRunning). It reports whether the command had
// exited.
func (p *proc) reap(ws *syscall.WaitStatus, opts int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		wpid, err := syscall.Wait4(p.pid, ws, opts, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			p.ended = true
			return true, os.NewSyscallError("wait4", err)
		case wpid == p.pid:
			p.ended = true
			return true, nil
		}
		return false, nil
	}
}
