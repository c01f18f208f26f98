package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/trackertest"
)

var errUsage = errors.New("usage")

// jobScript is the command the workers run for each job: stage a counts the
// words of a sentence and answers JSON, stage b reads that JSON and answers
// a line of text. Progress goes to fd 3.
const jobScript = `#!/bin/sh
# dcdemo's job: the input is on stdin, the output goes to stdout.
input=$(cat)
echo "job $DC_JOB_NUMBER: started at stage $DC_STAGE ($DC_STAGE_NAME)" >&3
sleep 0.2
case "$DC_STAGE" in
a)
  words=$(printf '%s' "$input" | wc -w | tr -d ' ')
  echo "job $DC_JOB_NUMBER: $words words" >&3
  printf '{"job":%s,"words":%s}\n' "$DC_JOB_NUMBER" "$words"
  ;;
b)
  words=$(printf '%s' "$input" | sed -n 's/.*"words": *\([0-9][0-9]*\).*/\1/p')
  printf 'job %s: %s words\n' "$DC_JOB_NUMBER" "$words"
  ;;
*)
  echo "unexpected stage $DC_STAGE" >&2
  exit 1
  ;;
esac
`

var sentences = []string{
	"the tracker hands out jobs",
	"workers claim them one at a time",
	"every action is journaled before it is sent",
	"a spot instance can vanish at any moment",
	"the journal survives the crash",
	"on restart the worker replays its journal",
	"pending output is resubmitted",
	"an interrupted job is resumed with its checkpoint",
	"progress text keeps the worker alive",
	"nothing is lost",
	"output of one stage is the input of the next",
	"a flag marks invalid data",
	"bye hands the job back",
	"the tracker deletes idle workers",
	"a lost answer is not a lost job",
	"retries use exponential backoff",
	"checkpoints are stored durably",
	"slots share one journal",
	"fsync before send",
	"the operator reads the post mortem",
	"sigterm drains the worker",
	"a second signal stops it at once",
	"the demo ends by itself",
	"exit status zero means every job closed",
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dcdemo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	keep := fs.Bool("keep", false, "keep the temporary directory (journals, worker logs, the job script)")
	timeout := fs.Duration("timeout", 50*time.Second, "give up after this long")
	nJobs := fs.Int("jobs", 24, "number of jobs (at most 24)")
	crashAfter := fs.Int("crash-after", 3, "SIGKILL the stage-a worker at its Nth completion")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "usage: dcdemo [flags]\n\nRuns the quick start: a tracker, two journaled workers, a SIGKILL mid-completion,\nthe recovery, and the post-mortem. Ends by itself; exit 0 only if nothing was lost.\n\nflags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		fmt.Fprintf(stderr, "dcdemo: %v (see dcdemo -h)\n", err)
		return errUsage
	}
	bad := ""
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q: dcdemo takes flags only", fs.Arg(0))
	case *nJobs < 4 || *nJobs > len(sentences):
		bad = fmt.Sprintf("--jobs %d: give 4 to %d (the demo has %d sentences)", *nJobs, len(sentences), len(sentences))
	case *crashAfter < 1 || *crashAfter > *nJobs/2:
		bad = fmt.Sprintf("--crash-after %d: give 1 to %d (half of --jobs, so that the crash comes mid-run)", *crashAfter, *nJobs/2)
	case *timeout <= 0:
		bad = fmt.Sprintf("--timeout %v: must be positive", *timeout)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "dcdemo: %s (see dcdemo -h)\n", bad)
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	d := &demo{out: stdout, start: time.Now()}

	dir, err := os.MkdirTemp("", "dcdemo-")
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Fprintf(stdout, "\nkept %s: journals a.db and b.db, a-killed.db (a.db as the kill left it), report.html, worker logs, job.sh\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find my own binary to run workers: %w", err)
	}
	scriptPath := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(scriptPath, []byte(jobScript), 0o755); err != nil {
		return err
	}

	// 1. The tracker, in this process.
	jobs := make([]any, *nJobs)
	for i := range jobs {
		jobs[i] = sentences[i]
	}
	tr := trackertest.New(trackertest.Options{
		Project: "dcdemo",
		Stages:  map[string]string{"a": "count", "b": "check"},
		Jobs:    jobs,
		Logger:  slog.New(slog.DiscardHandler),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); _ = trackertest.Serve(srvCtx, ln, tr) }()
	defer func() { stopSrv(); <-srvDone }()
	url := "http://" + ln.Addr().String()
	d.say("tracker on %s: %d jobs, stage a (count words) then stage b (check)", url, *nJobs)

	common := func(stage, journalPath string) []string {
		return []string{workerCommand, "run", "--tracker", url, "--stage", stage, "--slots", "2",
			"--journal", journalPath, "--nickname", "demo-" + stage, "--heartbeat", "2s",
			"--wait-max", "200ms", "--empty-poll", "200ms", "--grace", "5s"}
	}
	aJournal, bJournal := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")

	// 2. Worker B (stage b) runs throughout; worker A (stage a) will be killed.
	b, err := startWorker(exe, "B", filepath.Join(dir, "b.log"), nil, append(common("b", bJournal), "--", "/bin/sh", scriptPath)...)
	if err != nil {
		return err
	}
	defer b.kill()
	a1, err := startWorker(exe, "A", filepath.Join(dir, "a-1.log"), []string{envCrashAfter + "=" + strconv.Itoa(*crashAfter)},
		append(common("a", aJournal), "--exit-when-empty", "--", "/bin/sh", scriptPath)...)
	if err != nil {
		return err
	}
	defer a1.kill()
	d.say("worker A (stage a, 2 slots, journal a.db) and worker B (stage b, 2 slots, journal b.db) started: %s", "/bin/sh job.sh per job")
	d.say("worker A will SIGKILL itself at its completion #%d, after the journal write and before the send", *crashAfter)

	if err := a1.wait(ctx); err != nil {
		return d.fail(err, a1, b)
	}
	if a1.signal() != syscall.SIGKILL {
		return d.fail(fmt.Errorf("worker A ended with %v, not by SIGKILL", a1.state()), a1, b)
	}
	pending, held, err := journalAfterCrash(aJournal)
	if err != nil {
		return d.fail(err, a1, b)
	}
	d.say("worker A was SIGKILLed: its journal holds the unsent output of job %v, and job(s) %v claimed mid-run", pending, held)
	// What the kill left, kept aside (a copy: the restart replays a.db).
	killed := filepath.Join(dir, "a-killed.db")
	if err := copyFile(aJournal, killed); err != nil {
		return d.fail(err, a1, b)
	}
	var postMortem strings.Builder
	if err := inspect(&postMortem, killed, !*keep); err != nil {
		return d.fail(err, a1, b)
	}

	// 3. Restart A on its journal: it replays first, then goes on.
	a2, err := startWorker(exe, "A", filepath.Join(dir, "a-2.log"), nil,
		append(common("a", aJournal), "--exit-when-empty", "--", "/bin/sh", scriptPath)...)
	if err != nil {
		return d.fail(err, a1, b)
	}
	defer a2.kill()
	d.say("worker A restarted on a.db: replay, then back to work")
	select { // a glimpse of the tracker's dashboard: fd 3 lines arrive as progress
	case <-ctx.Done():
	case <-time.After(800 * time.Millisecond):
	}
	for _, w := range tr.Workers() {
		if w.Job != 0 {
			d.say("  tracker: %s (stage %s) holds job %d, progress %q", w.DisplayName, w.Stage, w.Job, w.Progress)
		}
	}
	if err := a2.wait(ctx); err != nil {
		return d.fail(err, a2, b)
	}
	if code := a2.state().ExitCode(); code != 0 {
		return d.fail(fmt.Errorf("restarted worker A exited with %v", a2.state()), a2, b)
	}
	for _, line := range grepLog(a2.logPath, "journal replayed", "resuming") {
		d.say("  A: %s", line)
	}
	d.say("worker A: stage a empty and no slot busy, exited 0")

	// 4. Wait for stage b to finish everything, then stop B with SIGTERM.
	if err := waitClosed(ctx, tr, *nJobs); err != nil {
		return d.fail(err, a2, b)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.wait(ctx); err != nil || b.state().ExitCode() != 0 {
		return d.fail(fmt.Errorf("worker B did not drain cleanly: %v %v", err, b.state()), b)
	}
	d.say("all jobs closed; worker B drained on SIGTERM and exited 0")

	// 5. The summary, from the tracker's views and A's journal.
	sum, err := summarize(tr, aJournal, sentences[:*nJobs])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n== Summary (%.1fs) ==\n%s", time.Since(d.start).Seconds(), sum.text())

	fmt.Fprintf(stdout, "\n== dcjournal inspect %s: the killed worker's journal, right after the SIGKILL ==\n%s", killed, postMortem.String())
	if *keep {
		page := filepath.Join(dir, "report.html")
		if err := writeReport(page, aJournal, bJournal); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nThe whole run as a timeline (both workers, the kill, the recovery): open %s in a browser\n", page)
	} else {
		fmt.Fprintln(stdout, "\n(run with --keep to keep the journals and an HTML timeline of this run: the temporary directory is deleted now)")
	}
	if !sum.ok() {
		return errors.New("some jobs were not closed with the expected output")
	}
	return nil
}

type demo struct {
	out   io.Writer
	start time.Time
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// fail shows the end of the workers' logs and returns err.
func (d *demo) fail(err error, ws ...*workerProc) error {
	for _, w := range ws {
		fmt.Fprintf(d.out, "--- end of worker %s's log (%s):\n", w.name, w.logPath)
		for _, l := range tail(w.logPath, 15) {
			fmt.Fprintln(d.out, "  "+l)
		}
	}
	return err
}

// workerProc is a worker process: this binary in its hidden worker mode.
type workerProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startWorker(exe, name, logPath string, env []string, args ...string) (*workerProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting worker %s: %w", name, err)
	}
	w := &workerProc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_ = cmd.Wait()
		f.Close()
	}()
	return w, nil
}

func (w *workerProc) wait(ctx context.Context) error {
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for worker %s: %w", w.name, ctx.Err())
	}
}

func (w *workerProc) kill() {
	select {
	case <-w.done:
	default:
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

func (w *workerProc) state() *os.ProcessState { return w.cmd.ProcessState }

func (w *workerProc) signal() syscall.Signal {
	if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// journalAfterCrash reads what the killed worker's journal holds.
func journalAfterCrash(path string) (pending, held []int, err error) {
	db, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	states, err := db.States()
	if err != nil {
		return nil, nil, err
	}
	for _, s := range states {
		if s.Completion != nil {
			pending = append(pending, s.Completion.Job.Number)
		}
		if s.Job != nil {
			held = append(held, s.Job.Number)
		}
	}
	if len(pending) == 0 {
		return nil, nil, errors.New("the killed worker's journal holds no pending completion")
	}
	return pending, held, nil
}

func waitClosed(ctx context.Context, tr *trackertest.Tracker, n int) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		closed := 0
		for _, j := range tr.Jobs() {
			if j.State == trackertest.JobClosed {
				closed++
			}
		}
		if closed == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d jobs closed: %w", closed, n, ctx.Err())
		case <-t.C:
		}
	}
}

// summary is what the demo proves, computed from the tracker's views and
// the killed worker's journal.
type summary struct {
	jobs, done            int
	twice, lost, wrong    []int
	resubmitted, resumed  []int
	appliedEarly, orphans []int
}

func (s summary) ok() bool {
	return s.done == s.jobs && len(s.twice) == 0 && len(s.lost) == 0 && len(s.wrong) == 0 && len(s.resubmitted) > 0
}

func (s summary) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jobs:                                 %d\n", s.jobs)
	fmt.Fprintf(&b, "done through both stages (checked):   %d\n", s.done)
	fmt.Fprintf(&b, "resubmitted from the journal:         %d %v\n", len(s.resubmitted), s.resubmitted)
	fmt.Fprintf(&b, "resumed after the kill:               %d %v\n", len(s.resumed), s.resumed)
	fmt.Fprintf(&b, "completed twice at a stage:           %d %v\n", len(s.twice), s.twice)
	fmt.Fprintf(&b, "wrong output:                         %d %v\n", len(s.wrong), s.wrong)
	fmt.Fprintf(&b, "lost:                                 %d %v\n", len(s.lost), s.lost)
	if s.ok() {
		b.WriteString("result: OK, every job closed with the expected output; nothing lost\n")
	} else {
		b.WriteString("result: FAILED\n")
	}
	return b.String()
}

func summarize(tr *trackertest.Tracker, aJournal string, inputs []string) (summary, error) {
	s := summary{jobs: len(inputs)}
	views := tr.Jobs()
	sort.Slice(views, func(i, j int) bool { return views[i].Number < views[j].Number })
	for _, v := range views {
		if v.Number < 1 || v.Number > len(inputs) {
			continue
		}
		words := len(strings.Fields(inputs[v.Number-1]))
		wantA := fmt.Sprintf(`<!json!>{"job":%d,"words":%d}`, v.Number, words)
		wantB := fmt.Sprintf("job %d: %d words", v.Number, words)
		if v.Completions["a"] > 1 || v.Completions["b"] > 1 {
			s.twice = append(s.twice, v.Number)
		}
		switch {
		case v.State != trackertest.JobClosed:
			s.lost = append(s.lost, v.Number)
		case deref(v.Outputs["a"]) != wantA || deref(v.Outputs["b"]) != wantB:
			s.wrong = append(s.wrong, v.Number)
		default:
			s.done++
		}
	}
	db, err := journal.Open(aJournal, &journal.Options{ReadOnly: true})
	if err != nil {
		return s, err
	}
	defer db.Close()
	err = db.Events(journal.Filter{}, func(e journal.Event) error {
		if e.Kind != journal.KindReplayed || len(e.Report) == 0 {
			return nil
		}
		var r replay.Report
		if err := json.Unmarshal(e.Report, &r); err != nil {
			return fmt.Errorf("replay report: %w", err)
		}
		s.resubmitted = append(s.resubmitted, r.Resubmitted...)
		s.resumed = append(s.resumed, r.Resumed...)
		s.appliedEarly = append(s.appliedEarly, r.AppliedEarlier...)
		s.orphans = append(s.orphans, r.Orphaned...)
		return nil
	})
	return s, err
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// inspect writes `dcjournal inspect` of the journal at path; noNextSteps leaves
// out the commands that would point at it (it is about to be deleted).
func inspect(w io.Writer, path string, noNextSteps bool) error {
	db, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return postmortem.Inspect(w, db, postmortem.InspectOptions{Command: "go run ./cmd/dcjournal", NoNextSteps: noNextSteps})
}

// writeReport writes `dcjournal report` of the journals to page.
func writeReport(page string, paths ...string) error {
	var js []postmortem.ReportJournal
	for _, p := range paths {
		db, err := journal.Open(p, &journal.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer db.Close()
		js = append(js, postmortem.ReportJournal{DB: db})
	}
	f, err := os.Create(page)
	if err != nil {
		return err
	}
	if _, err := postmortem.Report(f, js, postmortem.ReportOptions{Title: "dcdemo: worker A killed mid-completion, restarted; worker B drained"}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

func tail(path string, n int) []string {
	lines := readLines(path)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func grepLog(path string, words ...string) []string {
	var out []string
	for _, l := range readLines(path) {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
