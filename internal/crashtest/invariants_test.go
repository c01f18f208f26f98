package crashtest_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/internal/crashtest"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

// seed returns CRASHTEST_SEED or a fresh seed, and logs it so that a failing
// run can be replayed.
func seed(t *testing.T) int64 {
	t.Helper()
	if s := os.Getenv("CRASHTEST_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CRASHTEST_SEED=%q: %v", s, err)
		}
		return n
	}
	n := rand.Int63()
	t.Logf("seed %d (replay with CRASHTEST_SEED=%d)", n, n)
	return n
}

func full() bool { return os.Getenv("CRASHTEST_FULL") != "" }

// makeJobs returns n distinct job inputs.
func makeJobs(rng *rand.Rand, n int) []any {
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("job-%04d-%08x", i+1, rng.Uint32())
	}
	return jobs
}

// allClosed reports whether every job is closed and held by no one.
func allClosed(tr *trackertest.Tracker) bool {
	for _, j := range tr.Jobs() {
		if j.State != trackertest.JobClosed || j.Holder != "" {
			return false
		}
	}
	return true
}

// completions counts the completions the tracker has accepted so far.
func completions(tr *trackertest.Tracker) int {
	n := 0
	for _, j := range tr.Jobs() {
		for _, c := range j.Completions {
			n += c
		}
	}
	return n
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return strconv.Quote(*p)
}

// checkTracker checks the tracker-side invariants over a pipeline
// of stages (in order) fed with inputs (job n has inputs[n-1]): every job
// closed and held by no one, every stage of every job completed exactly once,
// every output the tracker holds equal to what the pipeline computes for the
// job (Compute of the stage's input: the job's input at the first stage, the
// previous stage's output after it, or null in Quirks mode, where the
// upstream tracker serves null past stage a) and to what some worker recorded
// it computed, and no job flagged more than maxFlags times at a stage.
func checkTracker(t *testing.T, tr *trackertest.Tracker, stages []string, inputs []any, quirks bool, computed []crashtest.Computation, maxFlags int) {
	t.Helper()
	type key struct {
		stage string
		job   int
	}
	recorded := map[key]map[string]bool{}
	for _, c := range computed {
		k := key{c.Stage, c.Job}
		if recorded[k] == nil {
			recorded[k] = map[string]bool{}
		}
		recorded[k][c.Output] = true
	}
	jobs := tr.Jobs()
	if len(jobs) != len(inputs) {
		t.Errorf("tracker holds %d jobs, want %d", len(jobs), len(inputs))
	}
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	for _, j := range jobs {
		if j.State != trackertest.JobClosed {
			report("job %d: state %q at stage %q (holder %q), want closed", j.Number, j.State, j.Stage, j.Holder)
		}
		if j.Holder != "" {
			report("job %d: held by %q", j.Number, j.Holder)
		}
		if j.Number < 1 || j.Number > len(inputs) {
			report("job %d: not a job the test made", j.Number)
			continue
		}
		first := inputs[j.Number-1].(string)
		in := &first
		for i, s := range stages {
			if i > 0 && quirks {
				in = nil
			}
			if n := j.Completions[s]; n != 1 {
				report("job %d: stage %s completed %d times, want exactly 1", j.Number, s, n)
			}
			if n := j.Flags[s]; n > maxFlags {
				report("job %d: flagged %d times at stage %s, want at most %d", j.Number, n, s, maxFlags)
			}
			want := crashtest.Compute(s, j.Number, in)
			out := j.Outputs[s]
			switch {
			case out == nil:
				report("job %d: no output of stage %s (data %v)", j.Number, s, dataString(j.Data))
			case *out != want:
				report("job %d: stage %s output %s, want %q (computed from input %s)", j.Number, s, str(out), want, str(in))
			case !recorded[key{s, j.Number}][*out]:
				report("job %d: stage %s output %s is not among the outputs workers recorded computing for it", j.Number, s, str(out))
			}
			in = &want
		}
	}
	for _, w := range tr.Workers() {
		if w.Job != 0 {
			report("worker %q (stage %s) still holds job %d", w.DisplayName, w.Stage, w.Job)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 30 {
			problems = append(problems[:30], fmt.Sprintf("... and %d more", len(problems)-30))
		}
		t.Errorf("tracker invariants broken:\n  %s", strings.Join(problems, "\n  "))
	}
}

func dataString(d map[string]*string) string {
	var parts []string
	for k, v := range d {
		parts = append(parts, k+"="+str(v))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

// journalFigures are counted from the journals' events after a run.
type journalFigures struct {
	Events             int
	Completions        map[string]int // completion-settled by outcome
	Flags              map[string]int // flag-settled by outcome
	OrphansResolved    map[string]int // orphan-resolved by outcome
	Orphans            int            // orphans still listed
	SessionsLost       int
	Replays            int
	Released           int
	CompletionsPending int // completion-pending events

	orphans []journal.Orphan
}

// resolved counts the orphans resolved.
func (f journalFigures) resolved() int {
	n := 0
	for _, v := range f.OrphansResolved {
		n += v
	}
	return n
}

func (f journalFigures) String() string {
	return fmt.Sprintf("events=%d completion-pending=%d settled=%v flags=%v orphan-resolved=%v orphans-listed=%d sessions-lost=%d replays=%d released=%d",
		f.Events, f.CompletionsPending, f.Completions, f.Flags, f.OrphansResolved, f.Orphans, f.SessionsLost, f.Replays, f.Released)
}

// checkJournals opens each journal (read-only), verifies it, checks that no
// slot is left with a held job or a pending completion, flag or bye, and
// counts its events.
func checkJournals(t *testing.T, paths []string) journalFigures {
	t.Helper()
	fig := journalFigures{Completions: map[string]int{}, Flags: map[string]int{}, OrphansResolved: map[string]int{}}
	for _, path := range paths {
		db, err := journal.Open(path, &journal.Options{ReadOnly: true})
		if err != nil {
			t.Errorf("journal %s: open: %v", path, err)
			continue
		}
		if errs := db.Verify(); len(errs) > 0 {
			t.Errorf("journal %s does not verify: %v", path, errs)
		}
		states, err := db.States()
		if err != nil {
			t.Errorf("journal %s: states: %v", path, err)
		}
		for _, s := range states {
			if s.Job != nil {
				t.Errorf("journal %s slot %q: still holds job %d", path, s.Slot, s.Job.Number)
			}
			if s.Completion != nil {
				t.Errorf("journal %s slot %q: completion of job %d still pending", path, s.Slot, s.Completion.Job.Number)
			}
			if s.FlagPending || s.ByePending {
				t.Errorf("journal %s slot %q: flag pending %v, bye pending %v", path, s.Slot, s.FlagPending, s.ByePending)
			}
		}
		orphans, err := db.Orphans()
		if err != nil {
			t.Errorf("journal %s: orphans: %v", path, err)
		}
		fig.Orphans += len(orphans)
		fig.orphans = append(fig.orphans, orphans...)
		err = db.Events(journal.Filter{}, func(e journal.Event) error {
			fig.Events++
			switch e.Kind {
			case journal.KindCompletionPending:
				fig.CompletionsPending++
			case journal.KindCompletionSettled:
				fig.Completions[e.Outcome]++
			case journal.KindFlagSettled:
				fig.Flags[e.Outcome]++
			case journal.KindOrphanResolved:
				fig.OrphansResolved[e.Outcome]++
			case journal.KindSessionLost:
				fig.SessionsLost++
			case journal.KindReplayed:
				fig.Replays++
			case journal.KindReleased:
				fig.Released++
			}
			return nil
		})
		if err != nil {
			t.Errorf("journal %s: events: %v", path, err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("journal %s: close: %v", path, err)
		}
	}
	return fig
}

// decodeLines decodes a file of JSON lines.
func decodeLines[T any](t *testing.T, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s line %d: %v: %q", path, i+1, err, line)
		}
		out = append(out, v)
	}
	return out
}

// checkOrphans checks that every output a journal still holds as an orphan
// (its worker was timed out before the completion was confirmed) is the
// right output for its job and stage, and that the tracker holds that same
// output: the work was done again, by someone, with the same result, so
// nothing was lost.
func checkOrphans(t *testing.T, tr *trackertest.Tracker, orphans []journal.Orphan) {
	t.Helper()
	for _, o := range orphans {
		want := crashtest.Compute(o.Stage, o.Job, o.Input)
		if o.Output != want {
			t.Errorf("orphan of job %d stage %s (slot %s): output %q, want %q", o.Job, o.Stage, o.Slot, o.Output, want)
		}
		j, ok := tr.Job(o.Job)
		if !ok {
			t.Errorf("orphan of job %d: the tracker has no such job", o.Job)
			continue
		}
		if got := j.Outputs[o.Stage]; got == nil || *got != o.Output {
			t.Errorf("orphan of job %d stage %s: the tracker holds %s, the orphan %q", o.Job, o.Stage, str(got), o.Output)
		}
	}
}
