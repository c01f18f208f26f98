//go:build windows

package worker

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// procGroup is the job object that holds the command and every process it
// starts: Windows has no process-group kill, and a process tree outlives a
// killed parent, but terminating a job ends all of it.
type procGroup struct {
	mu  sync.Mutex // kill may run (ctx's end, the engine) while release closes the job
	job windows.Handle
}

// killExitCode is the exit code that kill gives the command's processes.
const killExitCode = 1

// statusControlCExit is how a console program that a Ctrl-C or Ctrl-Break
// ended exits (STATUS_CONTROL_C_EXIT).
const statusControlCExit = 0xC000013A

// prepare starts the command suspended (so that it can start nothing before
// it is in the job) in a new process group (so that a Ctrl-Break can be
// sent to it alone; a new group also ignores the console's Ctrl-C, as a Unix
// command in its own process group does not get the terminal's).
func (p *proc) prepare() {
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		CreationFlags: windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_SUSPENDED,
	}
	p.cmd.Env = withoutEnv(p.cmd.Env, EnvProgressFD)
}

// withoutEnv drops the variable name from env: Windows cannot pass a
// descriptor as fd 3, so $DC_PROGRESS_FD is not offered there
// ($DC_PROGRESS_FILE is).
func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if len(kv) > len(name) && kv[:len(name)+1] == name+"=" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// started puts the suspended command in a new job object that kills its
// processes when the last handle to it closes (so that they die with
// dcworker too), then lets it run.
func (p *proc) started() error {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return fmt.Errorf("job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("job object limits: %w", err)
	}
	pid := uint32(p.cmd.Process.Pid)
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, pid)
	if err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("open process %d: %w", pid, err)
	}
	err = windows.AssignProcessToJobObject(job, h)
	windows.CloseHandle(h)
	if err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("assign process %d to a job object: %w", pid, err)
	}
	p.group.mu.Lock()
	p.group.job = job
	p.group.mu.Unlock()
	return resumeProcess(pid)
}

// resumeProcess resumes the threads of a process started suspended (one,
// its main thread). os/exec does not hand out the thread handle that
// CreateProcess returned, so the thread is found by a snapshot.
func resumeProcess(pid uint32) error {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return fmt.Errorf("resume process %d: %w", pid, err)
	}
	defer windows.CloseHandle(snap)
	te := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	resumed := 0
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		if te.OwnerProcessID != pid {
			continue
		}
		th, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, te.ThreadID)
		if err != nil {
			return fmt.Errorf("resume process %d: thread %d: %w", pid, te.ThreadID, err)
		}
		_, err = windows.ResumeThread(th)
		windows.CloseHandle(th)
		if err != nil {
			return fmt.Errorf("resume process %d: thread %d: %w", pid, te.ThreadID, err)
		}
		resumed++
	}
	if resumed == 0 {
		return fmt.Errorf("resume process %d: no thread found", pid)
	}
	return nil
}

// release closes the job object once the command has exited; with
// KILL_ON_JOB_CLOSE this also ends whatever it left running.
func (p *proc) release() {
	p.group.mu.Lock()
	defer p.group.mu.Unlock()
	if p.group.job != 0 {
		windows.CloseHandle(p.group.job)
		p.group.job = 0
	}
}

// kill terminates every process of the command's job (the command alone if
// it has no job yet).
func (p *proc) kill() error {
	p.killed.Store(true)
	p.group.mu.Lock()
	defer p.group.mu.Unlock()
	if p.group.job != 0 {
		if err := windows.TerminateJobObject(p.group.job, killExitCode); err == nil {
			return nil
		}
	}
	if p.cmd.Process == nil {
		return nil
	}
	return p.cmd.Process.Kill()
}

// signal passes a stop signal on the way Windows can: SIGKILL terminates the
// job; any other signal becomes a Ctrl-Break sent to the command's process
// group, which console programs treat as an interrupt (a batch file ends,
// Python raises KeyboardInterrupt). It reaches the command only when it shares
// dcworker's console; otherwise the grace period ends with a kill.
func (p *proc) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		_ = p.kill()
		return
	}
	if p.cmd.Process != nil {
		_ = windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.cmd.Process.Pid))
	}
}

// exitSignal reports SIGKILL for a command that kill ended and SIGINT for
// one that a Ctrl-Break ended, so that results read as on Unix.
func (p *proc) exitSignal() syscall.Signal {
	code := uint32(p.cmd.ProcessState.ExitCode())
	switch {
	case p.killed.Load() && code == killExitCode:
		return syscall.SIGKILL
	case code == statusControlCExit:
		return syscall.SIGINT
	}
	return 0
}

// progressPipe offers no fd 3 on Windows (os/exec cannot pass extra
// descriptors there): progress comes through $DC_PROGRESS_FILE only.
func progressPipe(*exec.Cmd) (r, w *os.File, err error) { return nil, nil, nil }

// filledPipe returns nil on Windows: os/exec feeds the command its input.
func filledPipe(string) (*os.File, error) { return nil, nil }
