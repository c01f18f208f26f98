//go:build linux

package storagefault_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/trackertest"
)

// binaries are the programs under test, built once per test binary.
var bins struct {
	once                          sync.Once
	dir                           string
	dcworker, dcjournal, goworker string
	dcproxy                       string
	err                           error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// need skips the test when ok is false, saying why, except under CI=true,
// where every part of the suite must run: it fails instead.
func need(t *testing.T, ok bool, format string, a ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, a...)
	if why := os.Getenv("STORAGEFAULT_UNAVAILABLE"); why != "" {
		// .ci/run found that this machine refuses mounts and said so.
		t.Skipf("storage-fault suite skipped: %s (%s)", msg, why)
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("storage-fault suite cannot run under CI: %s", msg)
	}
	t.Skipf("storage-fault suite skipped: %s", msg)
}

func requireRoot(t *testing.T) {
	t.Helper()
	need(t, runtime.GOOS == "linux", "Linux only (tmpfs, strace), this is %s", runtime.GOOS)
	need(t, os.Geteuid() == 0, "needs root, to mount file systems and trace processes (run as root, as CI does)")
}

// build builds dcworker, dcjournal, dcproxy and goworker (without -race: the
// processes are what is tested, the race detector runs on the packages'
// own tests).
func build(t *testing.T) {
	t.Helper()
	bins.once.Do(func() {
		dir, err := os.MkdirTemp("", "storagefault-bin-")
		if err != nil {
			bins.err = err
			return
		}
		bins.dir = dir
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		cmd := exec.Command(goTool, "build", "-o", dir+string(filepath.Separator), "../../cmd/dcworker", "../../cmd/dcjournal", "../../cmd/dcproxy", "./goworker")
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		bins.dcworker, bins.dcjournal, bins.goworker = filepath.Join(dir, "dcworker"), filepath.Join(dir, "dcjournal"), filepath.Join(dir, "goworker")
		bins.dcproxy = filepath.Join(dir, "dcproxy")
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
}

// mountTmpfs mounts a tmpfs of size (mount's syntax: "300k", "64m") on a
// new directory, unmounted when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	need(t, err == nil, "mount -t tmpfs failed (%v: %s): no mount in this container?", err, bytes.TrimSpace(out))
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -o remount,%s %s: %v: %s", opts, dir, err, out)
	}
}

// logBuf collects a process's output; waiters are woken on every write.
type logBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{})} }

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns how many lines contain s.
func (l *logBuf) count(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// wroteWritable reports whether the program logged that its journal is
// writable again, waiting up to 10 s for the line: a program's /metrics
// and live page change with its state, and the log line written at that
// moment reaches the test through a pipe a little later. A program that
// says it is writable without the line is wrong.
func (l *logBuf) wroteWritable() bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l.count(msgWritable) > 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// proc is a running worker process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *logBuf
	done chan struct{}
	code int // exit status, once done is closed (-1: killed by a signal)
	// quit: the test sent SIGQUIT (a hang): the Go program's output ends
	// with its goroutines' stacks, shown whole.
	quit bool
}

func start(t *testing.T, name string, argv ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, argv...)
}

// startEnv is start with env added to the test's environment.
func startEnv(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: newLogBuf(), done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			out := p.log.String()
			if !p.quit {
				out = tail(out, 60)
			}
			t.Logf("--- output of %s (exit %d):\n%s", p.name, p.code, out)
		}
		if dir := os.Getenv("STORAGEFAULT_LOGS"); dir != "" {
			name := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()+"-"+p.name)+".log")
			if err := os.WriteFile(name, []byte(p.log.String()), 0o644); err == nil && t.Failed() {
				t.Logf("the whole output of %s is in %s", p.name, name)
			}
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it holds or timeout passes (then the test
// fails, saying what it waited for). The timeout is a bound for a hung
// run, far above what the work needs on a loaded machine; nothing is
// decided by it.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitExit waits for p to exit by itself and checks its status.
func waitExit(t *testing.T, p *proc, timeout time.Duration, want int) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		// A hang: SIGQUIT makes a Go program print every goroutine's
		// stack and exit, which the cleanup shows.
		p.quit = true
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("%s did not exit within %s (SIGQUIT sent: its goroutines are below)", p.name, timeout)
	}
	if p.code != want {
		t.Fatalf("%s exited %d, want %d", p.name, p.code, want)
	}
}

// jobData is the input of job i: padded, so that the journals grow.
func jobData(i, pad int) string {
	return fmt.Sprintf("job-%04d-%s", i, strings.Repeat(string(rune('a'+i%26)), pad))
}

// startTracker serves n jobs at stage a.
func startTracker(t *testing.T, n, pad int) *trackertest.Server {
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = jobData(i+1, pad)
	}
	return trackertest.Start(t, trackertest.Options{Jobs: jobs, Seed: 1})
}

// checkTracker checks that every job was completed exactly once, with the
// output the command computes.
func checkTracker(t *testing.T, name string, srv *trackertest.Server, pad int) {
	t.Helper()
	jobs := srv.Tracker.Jobs()
	bad := 0
	for _, j := range jobs {
		want := "done:" + jobData(j.Number, pad)
		out := j.Outputs["a"]
		if j.State != trackertest.JobClosed || j.Completions["a"] != 1 || out == nil || *out != want {
			got := "<none>"
			if out != nil {
				got = fmt.Sprintf("%.40q", *out)
			}
			if bad < 5 {
				t.Errorf("%s: job %d: state %s, completed %d times, output %s; want closed, once, %.40q", name, j.Number, j.State, j.Completions["a"], got, want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d jobs not completed exactly once with the right output", name, bad, len(jobs))
	}
}

func allClosed(srv *trackertest.Server) bool {
	for _, j := range srv.Tracker.Jobs() {
		if j.State != trackertest.JobClosed {
			return false
		}
	}
	return true
}

func closedCount(srv *trackertest.Server) int {
	n := 0
	for _, j := range srv.Tracker.Jobs() {
		if j.State == trackertest.JobClosed {
			n++
		}
	}
	return n
}

func claims(srv *trackertest.Server) int { return srv.Tracker.Stats()["newJob"].Requests }

// verify runs dcjournal verify on a journal.
func verify(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command(bins.dcjournal, "verify", path).CombinedOutput()
	if err != nil {
		t.Errorf("dcjournal verify %s: %v\n%s", path, err, out)
	}
}

// noPanic checks that no process printed a panic or a fatal runtime error.
func noPanic(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		s := p.log.String()
		for _, bad := range []string{"panic:", "fatal error:", "goroutine 1 ["} {
			if strings.Contains(s, bad) {
				t.Errorf("%s printed %q", p.name, bad)
			}
		}
	}
}

// allowed is how many attempts one retry loop may make in d: the first,
// then one after each pause, pauses doubling from lo to hi.
func allowed(d, lo, hi time.Duration) int {
	n, at, p := 1, time.Duration(0), lo
	for {
		at += p
		if at > d {
			return n
		}
		n++
		p = min(2*p, hi)
	}
}

// perMinute is attempts in d, per minute.
func perMinute(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Minutes()
}

// dcworkerArgs are the arguments of a dcworker run over journal jpath: the
// command prints "done:" + its input; --json-log so that the test reads
// the log lines' messages.
func dcworkerArgs(url, jpath string, slots int, extra ...string) []string {
	args := []string{bins.dcworker, "run", "--tracker", url, "--journal", jpath, "--slots", fmt.Sprint(slots),
		"--exit-when-empty", "--empty-poll", "50ms", "--status-addr", "127.0.0.1:0", "--json-log", "--retry-delay", "10ms"}
	args = append(args, extra...)
	return append(args, "--", "/bin/sh", "-c", `printf 'done:%s' "$(cat)"`)
}

// logLine is one line of dcworker's JSON log.
type logLine struct {
	Msg  string `json:"msg"`
	Addr string `json:"addr"`
}

func logLines(s string) []logLine {
	var out []logLine
	for _, line := range strings.Split(s, "\n") {
		var l logLine
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg != "" {
			out = append(out, l)
		}
	}
	return out
}

// statusAddr waits for dcworker's (or dcproxy's) status server address in
// its log.
func statusAddr(t *testing.T, p *proc) string {
	t.Helper()
	return logAddr(t, p, "status server listening")
}

// logAddr waits for the address in the log line whose message is msg.
func logAddr(t *testing.T, p *proc, msg string) string {
	t.Helper()
	var addr string
	waitFor(t, 60*time.Second, fmt.Sprintf("%s to log %q", p.name, msg), func() bool {
		for _, l := range logLines(p.log.String()) {
			if l.Msg == msg {
				addr = l.Addr
				return true
			}
		}
		return p.exited()
	})
	if addr == "" {
		t.Fatalf("%s exited before it logged %q", p.name, msg)
	}
	return addr
}

// status reads dcworker's /status; ok is false when it does not answer.
func status(addr string) (st worker.Status, ok bool) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// pageData is the part of dcworker's /page.json (the live page's data)
// that the suite reads.
type pageData struct {
	Disk worker.JournalStatus `json:"disk"`
}

func page(addr string) (pageData, bool) {
	var pg pageData
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/page.json")
	if err != nil {
		return pg, false
	}
	defer resp.Body.Close()
	return pg, json.NewDecoder(resp.Body).Decode(&pg) == nil
}

// metric reads one metric's value from dcworker's /metrics.
func metric(addr, name string) (float64, bool) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			if _, err := fmt.Sscan(f[1], &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// Log messages of dcworker's journal state (package worker).
const (
	msgUnwritable  = "cannot be written: no job is claimed until it can"
	msgNotStarting = "cannot be written: not starting until it can"
	msgWritable    = "writable again"
	msgGoNotRec    = "goworker: not recorded"
)

// figures prints a scenario's figures (go test -v shows them; CI's log keeps
// them when STORAGEFAULT_FIGURES names a file to append to).
func figures(t *testing.T, format string, a ...any) {
	t.Helper()
	line := fmt.Sprintf("storagefault: %s: ", t.Name()) + fmt.Sprintf(format, a...)
	t.Log(line)
	if f := os.Getenv("STORAGEFAULT_FIGURES"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, line)
			fh.Close()
		}
	}
}
