package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/preempt"
	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestCompletesStringAndJSON: string input on stdin, string and JSON output.
func TestCompletesStringAndJSON(t *testing.T) {
	srv := startTracker(t, "the quick brown fox", []any{"x", "y"}, map[string]any{"n": 3})
	sh := script(t, `
input=$(cat)
if [ "$DC_DATA_KIND" = json ]; then
  printf '{"job":%s,"input":%s}\n' "$DC_JOB_NUMBER" "$input"
else
  printf '%s words\n' "$(printf '%s' "$input" | wc -w | tr -d ' ')"
fi`)
	run(t, config(t, srv.URL, sh))
	for n, want := range map[int]string{
		1: "4 words",
		2: `<!json!>{"job":2,"input":["x", "y"]}`, // the tracker serves Python's json.dumps text
		3: `<!json!>{"job":3,"input":{"n": 3}}`,
	} {
		v := job(t, srv, n)
		if v.State != trackertest.JobClosed || output(v, "a") != want {
			t.Errorf("job %d: state %s output %q; want closed %q", n, v.State, output(v, "a"), want)
		}
	}
}

// TestEnvironment checks the DC_* variables the command gets, for a fresh
// job and for a null-data job (stage b of a Quirks tracker serves null),
// and that the ones dcworker inherited are not passed on beside them.
func TestEnvironment(t *testing.T) {
	for _, name := range []string{worker.EnvJobNumber, worker.EnvStage, worker.EnvStageName, worker.EnvProject,
		worker.EnvWorker, worker.EnvSlot, worker.EnvCheckpointFile, worker.EnvResumed, worker.EnvAttempt,
		worker.EnvProgressFD, worker.EnvProgressFile, worker.EnvDataKind, worker.EnvDataNull} {
		t.Setenv(name, "inherited")
	}
	srv := trackertest.Start(t, trackertest.Options{Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"in"}, Quirks: true, Seed: 1})
	sh := script(t, `
stdin=$(cat | wc -c | tr -d ' ')
test -f "$DC_CHECKPOINT_FILE" && test -f "$DC_PROGRESS_FILE" && files=ok
twice=0 # the environment as passed (a shell's own keeps one value of a name)
test -r /proc/$$/environ && twice=$(tr '\0' '\n' </proc/$$/environ | grep -c '=inherited$')
echo "n=$DC_JOB_NUMBER s=$DC_STAGE sn=$DC_STAGE_NAME w=$DC_WORKER r=$DC_RESUMED fd=$DC_PROGRESS_FD k=$DC_DATA_KIND null=$DC_DATA_NULL a=$DC_ATTEMPT stdin=$stdin files=$files twice=$twice"`)
	cfg := config(t, srv.URL, sh)
	cfg.Nickname = "envtest"
	run(t, cfg)
	v := job(t, srv, 1)
	if got := output(v, "a"); !strings.HasPrefix(got, "n=1 s=a sn=CPU w=") || !strings.HasSuffix(got, " r=0 fd=3 k=string null=0 a=1 stdin=2 files=ok twice=0") {
		t.Errorf("stage a output %q", got)
	}
	cfg = config(t, srv.URL, sh)
	cfg.Stage = "b"
	run(t, cfg)
	v = job(t, srv, 1)
	if got := output(v, "b"); !strings.HasPrefix(got, "n=1 s=b sn=GPU") || !strings.Contains(got, " k=null null=1 a=1 stdin=0 ") {
		t.Errorf("stage b output %q", got)
	}
}

// TestInvalidExitCode flags the job's input (exit 65 by default, or the code
// given) instead of completing it.
func TestInvalidExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		exit int
	}{{"default 65", 0, 65}, {"custom", 9, 9}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTracker(t, "bad input")
			cfg := config(t, srv.URL, script(t, "cat >/dev/null; echo 'cannot parse' >&2; exit "+strconv.Itoa(tc.exit)))
			cfg.InvalidExitCode = tc.code
			cfg.ExitWhenEmpty = false
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sigs := make(chan os.Signal, 2)
			cfg.Signals = sigs
			done := start(t, ctx, cfg)
			waitFor(t, 10*time.Second, "a flag", func() bool { return job(t, srv, 1).Flags["a"] >= 1 })
			sigs <- syscall.SIGTERM
			if err := waitErr(t, done, 10*time.Second); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if c := job(t, srv, 1).Completions["a"]; c != 0 {
				t.Errorf("completions = %d, want 0", c)
			}
		})
	}
}

// TestFailureRetriedThenReleased: a failing command runs 1+Retries times,
// then the job is released and the failure journaled with stderr's tail.
func TestFailureRetriedThenReleased(t *testing.T) {
	srv := startTracker(t, "doomed")
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `echo run >> `+dir+`/runs; echo "exploded on purpose" >&2; exit 3`))
	cfg.Retries = 2
	cfg.ExitWhenEmpty = false
	// A 4th run means the job was released after 3 and claimed again.
	runUntilRuns(t, cfg, filepath.Join(dir, "runs"), 4)
	fails := events(t, cfg.Journal, journal.KindFailed)
	if len(fails) == 0 {
		t.Fatal("no failed event in the journal")
	}
	f := fails[0]
	if f.Job != 1 || !strings.Contains(f.Reason, "exit status 3") || !strings.Contains(f.Reason, "exploded on purpose") || !strings.Contains(f.Reason, "attempt 3 of 3") {
		t.Errorf("failed event: job %d reason %q", f.Job, f.Reason)
	}
	if len(events(t, cfg.Journal, journal.KindReleased)) == 0 {
		t.Error("no released event in the journal")
	}
	if c := job(t, srv, 1).Completions["a"]; c != 0 {
		t.Errorf("completions = %d", c)
	}
}

// TestOutputOverLimit: output over MaxOutput is a failed run, not a crash.
func TestOutputOverLimit(t *testing.T) {
	srv := startTracker(t, "big")
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `echo run >> `+dir+`/runs; head -c 5000 /dev/zero | tr '\0' x`))
	cfg.MaxOutput = 1000
	cfg.Retries = -1
	cfg.ExitWhenEmpty = false
	runUntilRuns(t, cfg, filepath.Join(dir, "runs"), 2)
	if f := events(t, cfg.Journal, journal.KindFailed)[0]; !strings.Contains(f.Reason, "size limit") {
		t.Errorf("reason %q", f.Reason)
	}
}

// TestOutputNotText: output that is not UTF-8 (binary) is a failed run that
// says so, not text silently changed (the tracker stores strings: the
// bytes would arrive as U+FFFD).
func TestOutputNotText(t *testing.T) {
	srv := startTracker(t, "bin")
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `echo run >> `+dir+`/runs; printf 'ok \377\376 binary'`))
	cfg.Retries = -1
	cfg.ExitWhenEmpty = false
	runUntilRuns(t, cfg, filepath.Join(dir, "runs"), 2)
	if f := events(t, cfg.Journal, journal.KindFailed)[0]; !strings.Contains(f.Reason, "not UTF-8 text (byte 3 of 12") {
		t.Errorf("reason %q", f.Reason)
	}
	if v := job(t, srv, 1); v.State == trackertest.JobClosed {
		t.Errorf("the job was completed with output %q", output(v, "a"))
	}
}

// TestProgressReachesTracker: lines on fd 3 and in $DC_PROGRESS_FILE become
// the worker's progress on the tracker.
func TestProgressReachesTracker(t *testing.T) {
	srv := startTracker(t, "p")
	dir := t.TempDir()
	sh := script(t, `
echo "fd3: halfway" >&3
while [ ! -f `+dir+`/next ]; do sleep 0.02; done
echo "file: almost" >> "$DC_PROGRESS_FILE"
while [ ! -f `+dir+`/go ]; do sleep 0.02; done
echo done`)
	done := start(t, context.Background(), config(t, srv.URL, sh))
	progress := func(want string) func() bool {
		return func() bool {
			for _, w := range srv.Tracker.Workers() {
				if w.Progress == want {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, 10*time.Second, "fd 3 progress on the tracker", progress("fd3: halfway"))
	os.WriteFile(filepath.Join(dir, "next"), nil, 0o600)
	waitFor(t, 10*time.Second, "file progress on the tracker", progress("file: almost"))
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := output(job(t, srv, 1), "a"); got != "done" {
		t.Errorf("output %q", got)
	}
}

// TestCheckpointSurvivesSIGKILL: a dcworker process is SIGKILLed while its
// command runs; restarted on the same journal, it hands the job back with
// its last checkpoint pre-filled and DC_RESUMED=1.
func TestCheckpointSurvivesSIGKILL(t *testing.T) {
	srv := startTracker(t, "long job")
	dir := t.TempDir()
	jpath := filepath.Join(dir, "journal.db")
	t.Cleanup(func() { verifyJournal(t, jpath) })
	pidFile := filepath.Join(dir, "pid")
	killGroupFrom(t, pidFile)
	sh := script(t, `
if [ "$DC_RESUMED" = 1 ]; then
  echo "resumed from $(cat "$DC_CHECKPOINT_FILE")"
  exit 0
fi
echo $$ > `+pidFile+`
printf 'step 41' > "$DC_CHECKPOINT_FILE"
sleep 0.1
printf 'step 42' > "$DC_CHECKPOINT_FILE"
touch `+dir+`/checkpointed
sleep 30`)
	status := freeAddr(t)
	cmd, out := workerProcess(t, "--tracker", srv.URL, "--journal", jpath, "--status-addr", status, "--status-journal", "--", "/bin/sh", sh)
	waitFor(t, 15*time.Second, "the command's checkpoint", func() bool {
		_, err := os.Stat(filepath.Join(dir, "checkpointed"))
		return err == nil
	})
	// The checkpoint file is polled: wait until the journal (seen through
	// the live snapshot) holds the last one.
	waitFor(t, 15*time.Second, "the last checkpoint in the journal", func() bool {
		return lastCheckpoint(t, "http://"+status+"/journal", filepath.Join(dir, "snap.db")) == "step 42"
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t.Logf("killed worker's output:\n%s", out.String())

	if v := job(t, srv, 1); v.State != trackertest.JobHeld {
		t.Fatalf("job state after the kill = %s, want held", v.State)
	}
	cfg := config(t, srv.URL, sh)
	cfg.Journal = jpath
	run(t, cfg)
	v := job(t, srv, 1)
	if got := output(v, "a"); v.State != trackertest.JobClosed || got != "resumed from step 42" {
		t.Errorf("after restart: state %s output %q", v.State, got)
	}
	if cps := events(t, jpath, journal.KindCheckpoint); len(cps) == 0 || string(cps[len(cps)-1].Checkpoint) != "step 42" {
		t.Errorf("checkpoint events %v", cps)
	}
}

// TestSIGTERMGrace: SIGTERM reaches both running commands (own process
// groups); the one that finishes inside the grace period completes its job,
// the other is killed at its end and its job stays held, resumable; the
// restarted worker resumes it.
func TestSIGTERMGrace(t *testing.T) {
	srv := startTracker(t, "fast", "slow")
	dir := t.TempDir()
	jpath := filepath.Join(dir, "journal.db")
	t.Cleanup(func() { verifyJournal(t, jpath) })
	sh := script(t, `
input=$(cat)
if [ "$DC_RESUMED" = 1 ]; then echo "$input resumed"; exit 0; fi
if [ "$input" = fast ]; then
  trap 'echo "fast finished on TERM"; exit 0' TERM
else
  trap 'echo "slow ignores TERM" >&2' TERM
fi
touch `+dir+`/running-$input
i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "$input timed out"`)
	cmd, out := workerProcess(t, "--tracker", srv.URL, "--journal", jpath, "--slots", "2", "--grace", "1s", "--", "/bin/sh", sh)
	waitFor(t, 15*time.Second, "both commands running", func() bool {
		_, e1 := os.Stat(filepath.Join(dir, "running-fast"))
		_, e2 := os.Stat(filepath.Join(dir, "running-slow"))
		return e1 == nil && e2 == nil
	})
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	elapsed := time.Since(t0)
	t.Logf("worker output:\n%s", out.String())
	if err != nil {
		t.Fatalf("worker exit: %v", err)
	}
	if elapsed < time.Second || elapsed > 8*time.Second {
		t.Errorf("drain took %v, want about the 1s grace", elapsed)
	}
	fast, slow := job(t, srv, 1), job(t, srv, 2)
	if fast.State != trackertest.JobClosed || output(fast, "a") != "fast finished on TERM" {
		t.Errorf("fast job: %s %q", fast.State, output(fast, "a"))
	}
	if slow.State != trackertest.JobHeld {
		t.Errorf("slow job state %s, want held (resumable)", slow.State)
	}

	run(t, config(t, srv.URL, sh)) // a different journal: nothing to resume
	if job(t, srv, 2).State == trackertest.JobClosed {
		t.Fatal("a fresh worker got the held job")
	}
	cfg := config(t, srv.URL, sh)
	cfg.Journal = jpath
	cfg.Slots = 2
	run(t, cfg)
	if v := job(t, srv, 2); v.State != trackertest.JobClosed || output(v, "a") != "slow resumed" {
		t.Errorf("slow job after restart: %s %q", v.State, output(v, "a"))
	}
}

// TestReleaseOnExit: with ReleaseOnExit the unfinished job goes back to the
// tracker at once instead of staying held.
func TestReleaseOnExit(t *testing.T) {
	srv := startTracker(t, "slow")
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `trap '' TERM; touch `+dir+`/running; sleep 5`))
	cfg.ReleaseOnExit = true
	cfg.Grace = 300 * time.Millisecond
	sigs := make(chan os.Signal, 2)
	cfg.Signals = sigs
	done := start(t, context.Background(), cfg)
	waitFor(t, 10*time.Second, "the command", func() bool {
		_, err := os.Stat(filepath.Join(dir, "running"))
		return err == nil
	})
	sigs <- syscall.SIGTERM
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if v := job(t, srv, 1); v.State != trackertest.JobOpen {
		t.Errorf("job state %s, want open (released)", v.State)
	}
}

// TestSecondSignalStopsAtOnce: a second signal kills the commands without
// waiting for the grace period.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	srv := startTracker(t, "stubborn")
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `trap '' TERM INT; touch `+dir+`/running; sleep 20`))
	cfg.Grace = 30 * time.Second
	sigs := make(chan os.Signal, 2)
	cfg.Signals = sigs
	done := start(t, context.Background(), cfg)
	waitFor(t, 10*time.Second, "the command", func() bool {
		_, err := os.Stat(filepath.Join(dir, "running"))
		return err == nil
	})
	sigs <- syscall.SIGTERM
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	sigs <- syscall.SIGINT
	err := waitErr(t, done, 10*time.Second)
	if err != worker.ErrStopped {
		t.Errorf("Run = %v, want ErrStopped", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("hard stop took %v", d)
	}
	if v := job(t, srv, 1); v.State != trackertest.JobHeld {
		t.Errorf("job state %s, want held (in the journal)", v.State)
	}
}

// TestPreemptionNoticeDrains: a (fake, loopback) cloud preemption notice
// drains the worker like SIGTERM: no more claims, the command gets SIGTERM
// and its output is completed.
func TestPreemptionNoticeDrains(t *testing.T) {
	for _, p := range []preempt.Provider{preempt.AWS, preempt.GCP, preempt.Azure} {
		t.Run(string(p), func(t *testing.T) {
			var notice atomic.Bool
			var polls atomic.Int64
			meta := httptest.NewServer(fakeMetadata(p, &notice, &polls))
			defer meta.Close()
			srv := startTracker(t, "work", "more work")
			dir := t.TempDir()
			cfg := config(t, srv.URL, script(t, `trap 'echo "saved on notice"; exit 0' TERM; touch `+dir+`/running; sleep 20 & wait`))
			cfg.ExitWhenEmpty = false
			cfg.PreemptionNotice = p
			cfg.MetadataAddr = meta.Listener.Addr().String()
			cfg.MetadataClient = loopbackClient()
			cfg.MetadataInterval = 20 * time.Millisecond
			done := start(t, context.Background(), cfg)
			waitFor(t, 10*time.Second, "the command and a few metadata polls", func() bool {
				_, err := os.Stat(filepath.Join(dir, "running"))
				return err == nil && polls.Load() >= 2
			})
			notice.Store(true)
			if err := waitErr(t, done, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			closed, open := 0, 0
			for _, v := range srv.Tracker.Jobs() {
				switch v.State {
				case trackertest.JobClosed:
					closed++
					if output(v, "a") != "saved on notice" {
						t.Errorf("job %d output %q", v.Number, output(v, "a"))
					}
				case trackertest.JobOpen:
					open++
				}
			}
			if closed != 1 || open != 1 {
				t.Errorf("closed %d open %d, want 1 and 1 (no claim after the notice)", closed, open)
			}
		})
	}
}

// fakeMetadata serves provider p's preemption endpoint: no notice until
// notice is set.
func fakeMetadata(p preempt.Provider, notice *atomic.Bool, polls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case p == preempt.AWS && r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Write([]byte("token"))
		case p == preempt.AWS && r.URL.Path == "/latest/meta-data/spot/instance-action" && r.Header.Get("X-aws-ec2-metadata-token") == "token":
			polls.Add(1)
			if !notice.Load() {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(`{"action":"terminate","time":"2026-11-26T23:59:00Z"}`))
		case p == preempt.GCP && r.URL.Path == "/computeMetadata/v1/instance/preempted" && r.Header.Get("Metadata-Flavor") == "Google":
			polls.Add(1)
			if r.URL.Query().Get("wait_for_change") == "true" {
				// A short long-poll: the real one waits for a change.
				for i := 0; i < 10 && !notice.Load(); i++ {
					time.Sleep(10 * time.Millisecond)
				}
			}
			w.Header().Set("ETag", "etag-1")
			if notice.Load() {
				w.Write([]byte("TRUE"))
			} else {
				w.Write([]byte("FALSE"))
			}
		case p == preempt.Azure && r.URL.Path == "/metadata/scheduledevents" && r.Header.Get("Metadata") == "true":
			polls.Add(1)
			if notice.Load() {
				w.Write([]byte(`{"DocumentIncarnation":2,"Events":[{"EventId":"e","EventType":"Preempt","ResourceType":"VirtualMachine","Resources":["vm"],"EventStatus":"Scheduled","NotBefore":"Thu, 26 Nov 2026 23:59:00 GMT"}]}`))
			} else {
				w.Write([]byte(`{"DocumentIncarnation":1,"Events":[]}`))
			}
		default:
			http.Error(w, "unexpected request", http.StatusBadRequest)
		}
	})
}

// TestSlots4 runs four jobs at once under four worker identities.
func TestSlots4(t *testing.T) {
	jobs := make([]any, 12)
	for i := range jobs {
		jobs[i] = "job " + strconv.Itoa(i)
	}
	srv := startTracker(t, jobs...)
	dir := t.TempDir()
	// Each command waits until four are running at once (or 3 s), proving
	// the slots run concurrently.
	sh := script(t, `
touch `+dir+`/running-$DC_JOB_NUMBER
i=0; while [ $(ls `+dir+` | wc -l) -lt 4 ] && [ $i -lt 150 ]; do sleep 0.02; i=$((i+1)); done
echo "slot $DC_SLOT: $(ls `+dir+` | wc -l | tr -d ' ')"`)
	cfg := config(t, srv.URL, sh)
	cfg.Slots = 4
	run(t, cfg)
	names := map[string]bool{}
	for _, w := range srv.Tracker.Workers() {
		names[w.DisplayName] = true
	}
	if len(names) != 4 {
		t.Errorf("%d worker identities, want 4", len(names))
	}
	for _, v := range srv.Tracker.Jobs() {
		if v.State != trackertest.JobClosed {
			t.Errorf("job %d %s", v.Number, v.State)
		}
	}
	if got := output(job(t, srv, 1), "a"); strings.HasSuffix(got, ": 1") {
		t.Errorf("job 1 ran alone: %q", got)
	}
}

// TestStatusServer: /status JSON, /metrics in Prometheus text format, and
// /journal a snapshot that opens as a journal.
func TestStatusServer(t *testing.T) {
	srv := startTracker(t, "one", "two")
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `if [ -f `+dir+`/one ]; then touch `+dir+`/two; while [ ! -f `+dir+`/go ]; do sleep 0.02; done; fi; touch `+dir+`/one; echo ok`))
	cfg.Slots = 1
	cfg.StatusAddr = "127.0.0.1:0"
	cfg.StatusJournal = true
	addrCh := make(chan net.Addr, 1)
	cfg.StatusListening = func(a net.Addr) { addrCh <- a }
	done := start(t, context.Background(), cfg)
	base := "http://" + (<-addrCh).String()
	waitFor(t, 10*time.Second, "the second job", func() bool {
		_, err := os.Stat(filepath.Join(dir, "two"))
		return err == nil
	})
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	st := get("/status")
	for _, want := range []string{`"state": "running"`, `"completed": 1`, `"job": `} {
		if !strings.Contains(st, want) {
			t.Errorf("/status lacks %s:\n%s", want, st)
		}
	}
	m := get("/metrics")
	checkExposition(t, m)
	for _, want := range []string{"dcworker_jobs_completed_total 1", "dcworker_jobs_failed_total 0", "dcworker_jobs_flagged_total 0",
		"dcworker_jobs_resubmitted_total 0", "dcworker_jobs_orphaned_total 0",
		// Present, whatever its value: a heartbeat may time out on a loaded
		// machine (flakehunt saw one beside a CPU hog).
		"dcworker_heartbeat_failures_total ",
		`dcworker_state_seconds_total{state="running"}`, `dcworker_slots{state="running"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	snap := filepath.Join(dir, "snapshot.db")
	os.WriteFile(snap, []byte(get("/journal")), 0o600)
	db, err := journal.Open(snap, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("snapshot does not open: %v", err)
	}
	if errs := db.Verify(); len(errs) > 0 {
		t.Errorf("snapshot verify: %v", errs)
	}
	db.Close()
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// checkExposition parses the text with Prometheus's own parser and checks that the
// standard go_* and process_* families are there beside ours.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v\n%s", err, text)
	}
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "dcworker_jobs_completed_total", "dcworker_tracker_reachable"} {
		if fams[want] == nil {
			t.Errorf("/metrics lacks the family %s", want)
		}
	}
}

// TestHeartbeatFailuresCounted: failed progress requests show in /metrics.
func TestHeartbeatFailuresCounted(t *testing.T) {
	srv := startTracker(t, "one")
	srv.Tracker.SetFault(func(r *http.Request, endpoint string) (trackertest.Fault, time.Duration) {
		if endpoint == "updateProgress" {
			return trackertest.Fault503, 0
		}
		return trackertest.FaultNone, 0
	})
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `echo working >&3; while [ ! -f `+dir+`/go ]; do sleep 0.02; done; echo ok`))
	cfg.StatusAddr = "127.0.0.1:0"
	addrCh := make(chan net.Addr, 1)
	cfg.StatusListening = func(a net.Addr) { addrCh <- a }
	done := start(t, context.Background(), cfg)
	base := "http://" + (<-addrCh).String()
	waitFor(t, 15*time.Second, "a counted heartbeat failure", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return !strings.Contains(string(b), "dcworker_heartbeat_failures_total 0\n") && strings.Contains(string(b), "dcworker_heartbeat_failures_total ")
	})
	srv.Tracker.SetFault(nil)
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := waitErr(t, done, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestTrackerOutage: the tracker answers 503 to everything for a while,
// longer than the client's retry policy; the worker keeps its completed
// output in the journal, keeps trying, and finishes every job exactly once.
func TestTrackerOutage(t *testing.T) {
	srv := startTracker(t, "one", "two", "three")
	// The outage starts with the first completion (so it meets one for
	// sure, however fast the machine) and ends after a number of refused
	// requests, not after a time: it outlasts the client's retry budget
	// (MaxElapsedTime below) on any machine, so the worker must keep the
	// output and settle it after the outage.
	const outageAnswers = 12
	var mu sync.Mutex
	down, refused := false, 0
	srv.Tracker.SetFault(func(r *http.Request, endpoint string) (trackertest.Fault, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if endpoint == "completeJob" && refused == 0 {
			down = true
		}
		if !down {
			return trackertest.FaultNone, 0
		}
		if refused++; refused >= outageAnswers {
			down = false
		}
		return trackertest.Fault503, 0
	})
	cfg := config(t, srv.URL, script(t, `cat`))
	cfg.ClientOptions = append(cfg.ClientOptions, client.WithRetry(session.RetryPolicy{
		InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Multiplier: 1.5,
		MaxElapsedTime: 200 * time.Millisecond, AttemptTimeout: time.Second,
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.Run(ctx, cfg); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, v := range srv.Tracker.Jobs() {
		want := []string{"", "one", "two", "three"}[v.Number]
		if v.State != trackertest.JobClosed || v.Completions["a"] != 1 || output(v, "a") != want {
			t.Errorf("job %d: %s, %d completions, output %q", v.Number, v.State, v.Completions["a"], output(v, "a"))
		}
	}
	if st := srv.Tracker.Stats()["completeJob"]; st.Status[503] == 0 {
		t.Errorf("the outage did not hit a completion: %+v", st)
	}
}

// TestDrainWhileStarting: a stop signal while the tracker cannot be reached
// at start-up ends the run within the grace period.
func TestDrainWhileStarting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens: registration retries
	cfg := config(t, url, script(t, "cat"))
	cfg.Grace = 300 * time.Millisecond
	sigs := make(chan os.Signal, 2)
	cfg.Signals = sigs
	done := start(t, context.Background(), cfg)
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	sigs <- syscall.SIGTERM
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Errorf("Run = %v, want nil (drained)", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("took %v after the signal", d)
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lastCheckpoint fetches a live journal snapshot and returns the data of
// its last checkpoint event ("" if none or unreachable).
func lastCheckpoint(t testing.TB, url, tmp string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cps := events(t, tmp, journal.KindCheckpoint)
	if len(cps) == 0 {
		return ""
	}
	return string(cps[len(cps)-1].Checkpoint)
}

// runUntilRuns runs the worker until its command has logged n lines "run" to
// runs (a release and a new claim), then drains it with SIGTERM and checks it
// stopped cleanly.
func runUntilRuns(t *testing.T, cfg worker.Config, runs string, n int) {
	t.Helper()
	sigs := make(chan os.Signal, 2)
	cfg.Signals = sigs
	// The test stops the worker once it saw n runs; the worker's own stop
	// after MaxFailedRuns failed runs must not come first on a machine
	// where the poll below is slow (flakehunt caught it).
	cfg.MaxFailedRuns = -1
	done := start(t, context.Background(), cfg)
	waitFor(t, 10*time.Second, "a release and a new claim", func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "run") >= n
	})
	sigs <- syscall.SIGTERM
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestJobFilesFreshPerJob: a slot keeps its checkpoint and progress files
// from job to job, but every job starts with both empty whatever the last
// one left in them (written, replaced by a directory, removed), and Run
// removes them when the slot stops.
func TestJobFilesFreshPerJob(t *testing.T) {
	srv := startTracker(t, "one", "two", "three", "four")
	sh := script(t, `
cp=$(cat "$DC_CHECKPOINT_FILE"); pg=$(cat "$DC_PROGRESS_FILE")
test -f "$DC_CHECKPOINT_FILE" && test -f "$DC_PROGRESS_FILE" && files=ok
case "$DC_JOB_NUMBER" in
1) printf 'step 1' > "$DC_CHECKPOINT_FILE"; echo "half way" >> "$DC_PROGRESS_FILE" ;;
2) rm "$DC_CHECKPOINT_FILE"; rm "$DC_PROGRESS_FILE"; mkdir "$DC_PROGRESS_FILE" ;;
3) printf 'x' > "$DC_CHECKPOINT_FILE.tmp"; mv "$DC_CHECKPOINT_FILE.tmp" "$DC_CHECKPOINT_FILE" ;;
esac
echo "cp=[$cp] pg=[$pg] files=$files"`)
	cfg := config(t, srv.URL, sh)
	cfg.WorkDir = t.TempDir()
	run(t, cfg)
	for n := 1; n <= 4; n++ {
		if got := output(job(t, srv, n), "a"); got != "cp=[] pg=[] files=ok" {
			t.Errorf("job %d: output %q, want empty files", n, got)
		}
	}
	slot := filepath.Join(cfg.WorkDir, "slot-0")
	for _, f := range []string{"checkpoint", "progress"} {
		if _, err := os.Lstat(filepath.Join(slot, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after Run: %v", f, err)
		}
	}
}

// The journal's size limit (--journal-max-size) is a full disk to the
// worker: outputs that would pass it are held, not lost, no job is claimed,
// and past --journal-deadline the worker exits with ErrJournalUnwritable.
// No job is completed without its output recorded first.
func TestJournalMaxSize(t *testing.T) {
	var jobs []any
	for i := 0; i < 40; i++ {
		jobs = append(jobs, fmt.Sprintf("job-%d", i))
	}
	srv := startTracker(t, jobs...)
	// Each output is 64 KiB: a 1 MiB journal holds a few before it is full.
	cfg := config(t, srv.URL, script(t, `head -c 65536 /dev/zero | tr '\0' x`))
	cfg.Slots = 1
	cfg.JournalMaxSize = 1 << 20
	cfg.JournalDeadline = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := worker.Run(ctx, cfg)
	if !errors.Is(err, worker.ErrJournalUnwritable) || !errors.Is(err, journal.ErrFull) {
		t.Fatalf("Run with a 1 MiB journal limit: %v, want ErrJournalUnwritable wrapping journal.ErrFull", err)
	}
	fi, err := os.Stat(cfg.Journal)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > cfg.JournalMaxSize {
		t.Errorf("journal grew to %d bytes past its 1 MiB limit", fi.Size())
	}
	done := 0
	for _, j := range srv.Tracker.Jobs() {
		if j.Completions["a"] > 0 {
			done++
		}
	}
	if done == 0 || done >= len(jobs) {
		t.Errorf("%d of %d jobs completed, want some (before the limit) but not all", done, len(jobs))
	}
}
