//go:build !linux

package worker

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// start launches s in its own process group (on Windows, also in a job
// object that holds its descendants). The command is killed, with its
// whole group, when ctx ends. Wait for it with wait, which collects the
// command in the caller's goroutine: a run costs no goroutine beyond the
// copies of its outputs and the progress reader, and the command's end
// wakes the goroutine that goes on with its result.
func start(ctx context.Context, s spec) (*proc, error) {
	if len(s.argv) == 0 {
		return nil, errors.New("no command")
	}
	if s.poll <= 0 {
		s.poll = 200 * time.Millisecond
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Not exec.CommandContext: its context watcher is a goroutine per run,
	// which Wait hands the result to and waits for; context.AfterFunc
	// kills the group (p.kill, as Cancel did) without one.
	var cmd *exec.Cmd
	if s.path != "" {
		// Resolved once by the caller: exec.Command would look the name
		// up in $PATH again on every run.
		cmd = &exec.Cmd{Path: s.path, Args: s.argv}
	} else {
		cmd = exec.Command(s.argv[0], s.argv[1:]...)
	}
	p := &proc{cmd: cmd}
	cmd.Env = s.env
	// The job's input goes into the pipe before the command starts when it
	// fits in the pipe's buffer: no goroutine has to feed the command, which
	// then never waits for one to be scheduled. Larger input is copied by
	// os/exec's goroutine as the command reads it.
	stdin, err := filledPipe(s.stdin)
	if err != nil {
		return nil, err
	}
	if stdin != nil {
		cmd.Stdin = stdin
	} else {
		cmd.Stdin = strings.NewReader(s.stdin)
	}
	p.prepare()
	cmd.WaitDelay = s.waitDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 5 * time.Second
	}

	out := &limitWriter{limit: s.maxOutput}
	cmd.Stdout = out
	tail := &tailBuffer{max: stderrTailSize, also: s.stderr}
	cmd.Stderr = tail
	pr, pw, err := progressPipe(cmd)
	if err != nil {
		closeAll(stdin)
		return nil, err
	}
	err = cmd.Start()
	closeAll(stdin, pw) // the child holds its own copies
	if err != nil {
		closeAll(pr)
		return nil, err
	}
	p.pid = cmd.Process.Pid
	if err := p.started(); err != nil {
		_ = p.kill()
		_ = cmd.Wait()
		closeAll(pr)
		return nil, err
	}
	stopKill := context.AfterFunc(ctx, func() { p.whileRunning(func() { _ = p.kill() }) })

	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if pr != nil {
			readLines(pr, s.onProgress)
		}
	}()

	finishFiles := watchFiles(s)

	p.collect = func() {
		// Wait returns once the process has exited and its stdout and stderr
		// are copied, or WaitDelay after exit if a grandchild keeps them open.
		werr := cmd.Wait()
		stopKill()
		p.mu.Lock()
		p.ended = true
		p.mu.Unlock()
		select {
		case <-progressDone: // most often: fd 3 closed with the command
		default:
			t := time.NewTimer(cmd.WaitDelay)
			select {
			case <-progressDone:
			case <-t.C:
			}
			t.Stop()
		}
		closeAll(pr) // unblocks the progress reader if a grandchild holds fd 3
		<-progressDone
		finishFiles()
		p.res = result{exitCode: -1, stderrTail: tail.bytes()}
		p.res.output, p.res.tooLarge = out.result()
		if cmd.ProcessState != nil {
			p.res.exitCode = cmd.ProcessState.ExitCode()
			p.res.signal = p.exitSignal()
		}
		p.release()
		var ee *exec.ExitError
		if werr != nil && !errors.As(werr, &ee) && !errors.Is(werr, exec.ErrWaitDelay) {
			p.res.err = werr
		}
	}
	return p, nil
}

// lineBufs are readLines' buffers, reused from run to run: a command
// that writes no progress (most) would otherwise cost a fresh 4 KiB per
// run, a quarter of what a run allocated.
var lineBufs = sync.Pool{New: func() any { return new([maxProgressLine]byte) }}

// readLines calls fn for each progress line of r (see lineSplitter).
func readLines(r io.Reader, fn func(string)) {
	buf := lineBufs.Get().(*[maxProgressLine]byte)
	defer lineBufs.Put(buf)
	l := lineSplitter{fn: fn}
	for {
		n, err := r.Read(buf[:])
		l.write(buf[:n])
		if err != nil {
			l.end()
			return
		}
	}
}
