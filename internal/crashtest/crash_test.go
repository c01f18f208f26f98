package crashtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/crashtest"
	"github.com/distcompute/distcompute-go/internal/faultnet"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/trackertest"
)

// crashConfig sizes a multi-process crash run.
type crashConfig struct {
	Jobs        int           // jobs in the two-stage pipeline
	RandomKills int           // kills at random moments planned, by the test
	MinRandom   int           // random kills that must have happened (the work may end before the last plans)
	ReleaseRate float64       // share of lives started with client.WithRelease (held job handed back)
	NamedEach   int           // kills at each named point (self-inflicted by the worker)
	Episodes    int           // idle-timeout episodes beyond those after completion kills
	Steps       int           // steps of one job's computation
	StepDelay   time.Duration // duration of one step
	FlagRate    float64       // share of inputs a worker flags (once)
	Heartbeat   time.Duration // client heartbeat
	Timeout     time.Duration // the whole run

	Name      string // names the run in its figures
	PerStage  int    // worker processes per stage (at most 4: see crashtest.FlagSet)
	Quirks    bool   // the tracker reproduces the upstream bugs
	Chaos     bool   // the workers' requests go through the network chaos
	ByePhase  bool   // end with kills at the bye points
	Retention int    // the workers' journal.Options.Retention (-1: keep all, for exact figures)
}

func crashSize() crashConfig {
	c := crashConfig{
		Jobs:        200,
		RandomKills: 220,
		MinRandom:   200,
		ReleaseRate: 0.15,
		NamedEach:   3,
		Episodes:    6,
		Steps:       4,
		StepDelay:   time.Millisecond,
		FlagRate:    0.05,
		Heartbeat:   50 * time.Millisecond,
		Timeout:     150 * time.Second,
		Name:        "contract",
		PerStage:    2,
		ByePhase:    true,
		Retention:   -1,
	}
	if full() {
		c.Jobs, c.RandomKills, c.MinRandom, c.NamedEach, c.Episodes, c.Timeout = 1000, 1100, 1000, 10, 10, 15*time.Minute
	}
	return c
}

// The named kill points: the worker kills itself when its client's hook
// fires with this point and op (on a chosen occurrence), or halfway through a
// job ("mid-job").
var (
	mainPoints = []string{
		"after-send:claim",         // a claim is journaled when its answer arrived: no after-journal point
		"after-journal:checkpoint", // a checkpoint is not sent: no after-send point
		"after-journal:complete", "after-send:complete",
		"after-journal:flag", "after-send:flag",
		"mid-job",
	}
	registerPoints = []string{"after-journal:register", "after-send:register"}
	byePoints      = []string{"after-journal:bye", "after-send:bye"}
	// designPoints are the points docs/DESIGN.md "Testing" names; each must
	// have been reached at least once.
	designPoints = []string{"after-journal:complete", "after-send:complete", "mid-job"}
)

// plan says how one life of a worker process ends.
type plan struct {
	Point     string        // named point ("" for none or random)
	N         int           // the occurrence of Point that kills
	Random    time.Duration // > 0: the test kills the process after this delay
	Fallback  time.Duration // > 0 with Point: the test kills it if the point was not reached by then
	FlagFirst bool
	Release   bool // start with client.WithRelease: recovery hands a held job back to the tracker
}

func (p plan) String() string {
	s := "none"
	switch {
	case p.Point != "":
		s = fmt.Sprintf("%s#%d", p.Point, p.N)
	case p.Random > 0:
		s = "random@" + p.Random.String()
	}
	if p.Release {
		s += "+release"
	}
	return s
}

// figures are what the test counts as it goes.
type figures struct {
	mu          sync.Mutex
	Lives       int
	RandomKills int            // by the test after a random delay
	PointKills  map[string]int // self-inflicted at a named point
	Fallback    map[string]int // named point not reached in time: killed by the test
	NotReached  map[string]int // life ended cleanly before its named point
	Dropped     map[string]int // named plans dropped as unreachable
	WorkerGone  int            // lives that ended with client.ErrWorkerGone
	Unused      int            // kill plans left when the work was done
}

func (f *figures) kills() int {
	n := f.RandomKills
	for _, v := range f.PointKills {
		n += v
	}
	for _, v := range f.Fallback {
		n += v
	}
	return n
}

// scheduler hands out kill plans to the workers' lives.
type scheduler struct {
	mu      sync.Mutex
	rng     *rand.Rand
	cfg     crashConfig
	tr      *trackertest.Tracker
	start   time.Time
	plans   []plan // main phase, in order
	firstOf map[int]plan
	total   int // completions when all is done
	planned int // main-phase plans
	done    atomic.Bool
	fig     *figures
}

func newScheduler(rng *rand.Rand, cfg crashConfig, tr *trackertest.Tracker, workers int, fig *figures) *scheduler {
	s := &scheduler{rng: rng, cfg: cfg, tr: tr, start: time.Now(), firstOf: map[int]plan{}, total: 2 * cfg.Jobs, fig: fig}
	for _, p := range mainPoints {
		for i := 0; i < cfg.NamedEach; i++ {
			n := 1 + rng.Intn(3)
			switch {
			case p == "mid-job":
				n = 1 + rng.Intn(2)
			case strings.HasSuffix(p, ":flag"):
				n = 1 // FlagFirst makes the first job of the life a flag
			}
			s.plans = append(s.plans, plan{Point: p, N: n, Fallback: 3 * time.Second, FlagFirst: strings.HasSuffix(p, ":flag")})
		}
	}
	// The named plans are mixed into the first half of the random ones, so
	// that they come while there is work left to reach their points.
	head := cfg.RandomKills / 2
	for i := 0; i < head; i++ {
		s.plans = append(s.plans, plan{Random: -1}) // delay chosen when handed out
	}
	rng.Shuffle(len(s.plans), func(i, j int) { s.plans[i], s.plans[j] = s.plans[j], s.plans[i] })
	for i := head; i < cfg.RandomKills; i++ {
		s.plans = append(s.plans, plan{Random: -1})
	}
	s.planned = len(s.plans)
	for w := 0; w < workers && cfg.NamedEach > 0; w++ {
		s.firstOf[w] = plan{Point: registerPoints[w%len(registerPoints)], N: 1, Fallback: 3 * time.Second}
	}
	return s
}

// next returns the plan of worker w's next life in the main phase.
func (s *scheduler) next(w int) plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done.Load() {
		return plan{}
	}
	if p, ok := s.firstOf[w]; ok {
		delete(s.firstOf, w)
		return p
	}
	if len(s.plans) == 0 {
		return plan{}
	}
	p := s.plans[0]
	s.plans = s.plans[1:]
	if p.Random < 0 {
		p.Random = s.randomDelay(len(s.plans) + 1)
	}
	p.Release = s.rng.Float64() < s.cfg.ReleaseRate
	return p
}

// randomDelay paces random kills over the work: when the share of kill
// plans handed out lags behind the share of completions done, lives are cut
// short; when it is ahead, they are given time to work.
func (s *scheduler) randomDelay(killsLeft int) time.Duration {
	progress := float64(completions(s.tr)) / float64(s.total)
	issued := 1 - float64(killsLeft)/float64(s.planned)
	var mean time.Duration
	switch behind := progress - issued; {
	case behind > 0.02:
		mean = 10 * time.Millisecond
	case behind > -0.03:
		mean = 40 * time.Millisecond
	default:
		mean = 150 * time.Millisecond
	}
	return time.Duration(1 + s.rng.Int63n(int64(2*mean)))
}

// requeue gives a named plan whose point was not reached another chance, or
// drops the point's plans when it has never been reached at all.
func (s *scheduler) requeue(p plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fig.mu.Lock()
	reached := s.fig.PointKills[p.Point] > 0
	misses := s.fig.Fallback[p.Point] + s.fig.NotReached[p.Point]
	s.fig.mu.Unlock()
	if !reached && misses >= 2 {
		kept := s.plans[:0]
		for _, q := range s.plans {
			if q.Point == p.Point {
				s.fig.mu.Lock()
				s.fig.Dropped[p.Point]++
				s.fig.mu.Unlock()
				continue
			}
			kept = append(kept, q)
		}
		s.plans = kept
		return
	}
	if misses <= 3*s.cfg.NamedEach {
		s.plans = append(s.plans, p)
	}
}

// shortfall says what the run has not reached yet that it must reach before
// the work may end: the random kills it wants and a kill at each design
// point ("" when all is reached). Plans still running count as not reached.
func (r *crashRun) shortfall() string {
	r.fig.mu.Lock()
	defer r.fig.mu.Unlock()
	var miss []string
	if r.fig.RandomKills < r.cfg.MinRandom {
		miss = append(miss, fmt.Sprintf("%d of %d random kills", r.fig.RandomKills, r.cfg.MinRandom))
	}
	for _, p := range designPoints {
		if r.cfg.NamedEach > 0 && r.fig.PointKills[p] == 0 {
			miss = append(miss, "no kill at "+p)
		}
	}
	return strings.Join(miss, ", ")
}

// extend adds n jobs to the pipeline (numbered after the first `have`), and
// enough kill plans that the quota can still be reached: random ones for the
// kills missing, and named ones again for each design point not reached
// (their earlier plans may have been dropped as unreachable while the work
// ran out).
func (r *crashRun) extend(n, have int) []any {
	r.rngMu.Lock()
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("job-%04d-%08x", have+i+1, r.rng.Uint32())
	}
	r.rngMu.Unlock()
	r.srv.Tracker.AddJobs(jobs...)

	s := r.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	r.fig.mu.Lock()
	missing := r.cfg.MinRandom - r.fig.RandomKills
	var points []string
	for _, p := range designPoints {
		if r.cfg.NamedEach > 0 && r.fig.PointKills[p] == 0 {
			points = append(points, p)
		}
	}
	r.fig.mu.Unlock()
	s.total += 2 * n
	random := 0
	for _, p := range s.plans {
		if p.Random != 0 {
			random++
		}
	}
	for i := random; i < missing+5; i++ {
		s.plans = append(s.plans, plan{Random: -1})
	}
	for _, p := range points {
		q := plan{Point: p, N: 1, Fallback: 3 * time.Second}
		s.plans = append([]plan{q}, s.plans...)
	}
	s.planned = max(s.planned, len(s.plans))
	return jobs
}

// crashRun is one multi-process crash run.
type crashRun struct {
	t         *testing.T
	cfg       crashConfig
	bin       string
	srv       *trackertest.Server
	clock     *trackertest.FakeClock
	idle      time.Duration
	dir       string
	doneFile  string
	sched     *scheduler
	fig       *figures
	rng       *rand.Rand
	rngMu     sync.Mutex
	episode   sync.Mutex
	episodes  atomic.Int64
	verified  atomic.Int64 // journals verified after a kill
	checkTime atomic.Int64 // time spent in afterKill (ns)
	seed      int64
}

type workerProc struct {
	id      int
	name    string
	stage   string
	dir     string
	journal string
	stderr  *os.File
	life    int
}

// TestCrashPipeline is the crash suite against a tracker that
// keeps the documented contract (stage b gets stage a's output).
func TestCrashPipeline(t *testing.T) {
	runCrash(t, crashSize())
}

// TestCrashPipelineQuirks is a smaller run against a tracker with the
// upstream bugs (stage b is served null), with journals keeping the history
// of only 3 jobs per slot, so that pruning runs under the kills too (the
// figures counted from journal events are then lower bounds).
func TestCrashPipelineQuirks(t *testing.T) {
	cfg := crashSize()
	cfg.Name, cfg.Quirks, cfg.Retention = "quirks", true, 3
	cfg.Jobs, cfg.RandomKills, cfg.MinRandom, cfg.NamedEach, cfg.Episodes = 40, 30, 25, 2, 1
	if full() {
		cfg.Jobs, cfg.RandomKills, cfg.MinRandom, cfg.NamedEach, cfg.Episodes = 300, 330, 300, 3, 3
	}
	runCrash(t, cfg)
}

// TestChaosPipeline runs 1,000 jobs through 8 worker processes
// (4 per stage) whose every request goes through the network chaos of issue
// 4 (crashtest.ChaosTransport), and checks the same invariants.
// CRASHTEST_FULL=1 adds 200 random kills to the chaos.
func TestChaosPipeline(t *testing.T) {
	cfg := crashSize()
	cfg.Name, cfg.Chaos, cfg.ByePhase = "chaos", true, false
	cfg.Jobs, cfg.PerStage, cfg.RandomKills, cfg.MinRandom, cfg.NamedEach, cfg.Episodes, cfg.ReleaseRate = 1000, 4, 0, 0, 0, 0, 0
	cfg.Steps, cfg.StepDelay = 2, 0
	if full() {
		cfg.RandomKills, cfg.MinRandom = 220, 200
	}
	runCrash(t, cfg)
}

// runCrash runs cfg.PerStage worker processes per stage over a two-stage
// pipeline of cfg.Jobs jobs, killing them as planned and restarting each on
// its journal, then checks the invariants and prints the figures.
func runCrash(t *testing.T, cfg crashConfig) {
	sd := seed(t)
	rng := rand.New(rand.NewSource(sd))
	bin := buildWorker(t)

	clock := trackertest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	const idle = time.Hour
	inputs := makeJobs(rng, cfg.Jobs)
	srv := trackertest.Start(t, trackertest.Options{
		Stages:      map[string]string{"a": "CPU", "b": "GPU"},
		Jobs:        inputs,
		Quirks:      cfg.Quirks,
		IdleTimeout: idle,
		Clock:       clock,
		Seed:        sd,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	dir := t.TempDir()
	t.Cleanup(func() { keepIfFailed(t, dir, fmt.Sprintf("crashtest-%s-%d", cfg.Name, sd)) })
	fig := &figures{PointKills: map[string]int{}, Fallback: map[string]int{}, NotReached: map[string]int{}, Dropped: map[string]int{}}
	r := &crashRun{
		t: t, cfg: cfg, bin: bin, srv: srv, clock: clock, idle: idle, dir: dir,
		doneFile: filepath.Join(dir, "done"), fig: fig, rng: rand.New(rand.NewSource(sd + 1)), seed: sd,
	}
	nWorkers := 2 * cfg.PerStage
	r.sched = newScheduler(rng, cfg, srv.Tracker, nWorkers, fig)

	workers := make([]*workerProc, nWorkers)
	for i := range workers {
		stage := []string{"a", "b"}[i/cfg.PerStage]
		wdir := filepath.Join(dir, fmt.Sprintf("w%d-%s", i, stage))
		if err := os.MkdirAll(wdir, 0o755); err != nil {
			t.Fatal(err)
		}
		stderr, err := os.Create(filepath.Join(wdir, "stderr.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stderr.Close() })
		workers[i] = &workerProc{id: i, name: fmt.Sprintf("crash-%d-%s", i, stage), stage: stage, dir: wdir,
			journal: filepath.Join(wdir, "journal.db"), stderr: stderr}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	start := time.Now()

	// Main phase: work the pipeline while killing. The watcher declares the
	// work done once every job is closed; workers then say bye and exit.
	// The first worker to fail stops the others (their held jobs would keep
	// the work from ever being done) and the watcher.
	mainCtx, stop := context.WithCancelCause(ctx)
	watchDone := make(chan struct{})
	const maxExtensions = 20
	extra, extended := max(cfg.Jobs/4, 10), 0
	go func() {
		defer close(watchDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-mainCtx.Done():
				return
			case <-tick.C:
			}
			if allClosed(srv.Tracker) {
				// A fast machine may close every job before the kill quota
				// and the named points are reached: feed more work then,
				// instead of failing on the machine's speed.
				if short := r.shortfall(); short != "" {
					if extended >= maxExtensions {
						stop(fmt.Errorf("after %d extensions of %d jobs, still %s", extended, extra, short))
						return
					}
					extended++
					inputs = append(inputs, r.extend(extra, len(inputs))...)
					continue
				}
				r.sched.mu.Lock()
				r.sched.done.Store(true)
				fig.mu.Lock()
				fig.Unused = len(r.sched.plans)
				fig.mu.Unlock()
				r.sched.mu.Unlock()
				if err := os.WriteFile(r.doneFile, nil, 0o644); err != nil {
					t.Error(err)
				}
				return
			}
		}
	}()
	errs := make([]error, nWorkers)
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = r.supervise(mainCtx, w); errs[i] != nil {
				stop(errs[i])
			}
		}()
	}
	wg.Wait()
	<-watchDone
	mainElapsed := time.Since(start)
	if err := context.Cause(mainCtx); err != nil {
		stop(nil)
		r.dumpState(workers)
		t.Fatalf("main phase: %v", err)
	}
	stop(nil)

	// Bye phase: every worker once more, killed after journaling its bye and
	// after sending it, then a clean run that settles it.
	for i, w := range workers {
		if !cfg.ByePhase {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.byePhase(ctx, w)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.dumpState(workers)
		t.Fatalf("bye phase: %v", err)
	}
	elapsed := time.Since(start)

	// Invariants.
	var computed []crashtest.Computation
	var journals []string
	var reports []lifeReport
	for _, w := range workers {
		computed = append(computed, decodeLines[crashtest.Computation](t, filepath.Join(w.dir, "computed.jsonl"))...)
		reports = append(reports, decodeLines[lifeReport](t, filepath.Join(w.dir, "reports.jsonl"))...)
		journals = append(journals, w.journal)
	}
	checkTracker(t, srv.Tracker, []string{"a", "b"}, inputs, cfg.Quirks, computed, cfg.PerStage)
	jf := checkJournals(t, journals)
	checkOrphans(t, srv.Tracker, jf.orphans)
	rf := sumReports(reports)
	if rf.Errors > 0 {
		for _, r := range reports {
			if len(r.Report.Errors) > 0 {
				t.Errorf("replay at start %s left errors: %v", r.Life, r.Report.Errors)
			}
		}
	}

	// Figures.
	fig.mu.Lock()
	defer fig.mu.Unlock()
	for _, p := range designPoints {
		if cfg.NamedEach > 0 && fig.PointKills[p] == 0 {
			t.Errorf("no kill at %s, a point docs/DESIGN.md names", p)
		}
	}
	named := 0
	for _, v := range fig.PointKills {
		named += v
	}
	if fig.RandomKills < cfg.MinRandom {
		t.Errorf("%d random kills, want at least %d (%d plans unused, %d extensions of the work): the test's feeding is wrong", fig.RandomKills, cfg.MinRandom, fig.Unused, extended)
	}
	t.Logf("lives=%d kills=%d (random=%d named=%d fallback=%v) points=%v not-reached=%v dropped=%v worker-gone=%d episodes=%d unused-plans=%d journals-verified-after-kill=%d (in %s)",
		fig.Lives, fig.kills(), fig.RandomKills, named, fig.Fallback, sortedMap(fig.PointKills), fig.NotReached, fig.Dropped, fig.WorkerGone, r.episodes.Load(), fig.Unused, r.verified.Load(), time.Duration(r.checkTime.Load()).Round(time.Millisecond))
	t.Logf("replay reports: %s", rf)
	t.Logf("journals: %s", jf)
	chaos := ""
	if cfg.Chaos {
		var fc faultnet.Counts
		for _, w := range workers {
			for _, c := range decodeLines[faultnet.Counts](t, filepath.Join(w.dir, "faults.jsonl")) {
				fc.Requests += c.Requests
				fc.DroppedRequest += c.DroppedRequest
				fc.DroppedAnswer += c.DroppedAnswer
				fc.Status502 += c.Status502
			}
		}
		if fc.DroppedAnswer == 0 || fc.DroppedRequest == 0 || fc.Status502 == 0 {
			t.Errorf("the chaos did not happen: %+v", fc)
		}
		stats := srv.Tracker.Stats()
		t.Logf("tracker answers: completeJob %v, flagInvalidData %v, newJob %v, bye %v",
			stats["completeJob"].Status, stats["flagInvalidData"].Status, stats["newJob"].Status, stats["bye"].Status)
		chaos = fmt.Sprintf(" requests=%d dropped-request=%d dropped-answer=%d 502=%d completeJob-403=%d",
			fc.Requests, fc.DroppedRequest, fc.DroppedAnswer, fc.Status502, stats["completeJob"].Status[403])
	}
	line := fmt.Sprintf("crashtest: %s jobs=%d extra-jobs=%d stages=2 workers=%d kills=%d random=%d named=%d resubmitted=%d applied-earlier=%d orphans=%d orphans-resubmitted=%d episodes=%d%s main=%s elapsed=%s seed=%d",
		cfg.Name, cfg.Jobs, len(inputs)-cfg.Jobs, nWorkers, fig.kills(), fig.RandomKills, named, rf.Resubmitted, max(jf.Completions["applied-earlier"], rf.AppliedEarlier),
		jf.Orphans+jf.resolved(), jf.OrphansResolved["resubmitted"], r.episodes.Load(), chaos,
		mainElapsed.Round(time.Millisecond), elapsed.Round(time.Millisecond), sd)
	printFigures(t, line)
}

// lifeReport is a line of reports.jsonl: the replay report of one start.
type lifeReport struct {
	Life   string        `json:"life"`
	Report replay.Report `json:"report"`
}

type reportFigures struct {
	Starts, Resubmitted, AppliedEarlier, Orphaned, Resumed, Released, Lost, FlagsResent, ByeResent, SessionLost, Reregistered, Errors int
}

func (f reportFigures) String() string {
	return fmt.Sprintf("starts=%d resubmitted=%d applied-earlier=%d orphaned=%d resumed=%d released=%d lost=%d flags-resent=%d bye-resent=%d session-lost=%d reregistered=%d errors=%d",
		f.Starts, f.Resubmitted, f.AppliedEarlier, f.Orphaned, f.Resumed, f.Released, f.Lost, f.FlagsResent, f.ByeResent, f.SessionLost, f.Reregistered, f.Errors)
}

func sumReports(rs []lifeReport) reportFigures {
	var f reportFigures
	for _, r := range rs {
		f.Starts++
		f.Resubmitted += len(r.Report.Resubmitted)
		f.AppliedEarlier += len(r.Report.AppliedEarlier)
		f.Orphaned += len(r.Report.Orphaned)
		f.Resumed += len(r.Report.Resumed)
		f.Released += len(r.Report.Released)
		f.Lost += len(r.Report.Lost)
		f.FlagsResent += len(r.Report.FlagsResent)
		f.Errors += len(r.Report.Errors)
		if r.Report.ByeResent {
			f.ByeResent++
		}
		if r.Report.SessionLost {
			f.SessionLost++
		}
		if r.Report.Reregistered {
			f.Reregistered++
		}
	}
	return f
}

func sortedMap(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// supervise runs worker w's lives until the work is done.
func (r *crashRun) supervise(ctx context.Context, w *workerProc) error {
	gone := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		p := r.sched.next(w.id)
		res, err := r.live(ctx, w, p)
		if err != nil {
			return err
		}
		switch {
		case res.killed:
			if err := r.afterKill(w); err != nil {
				return fmt.Errorf("%s after life %d (%s): %w", w.name, w.life, p, err)
			}
			if r.wantEpisode(p, res) {
				r.idleEpisode()
			}
			if p.Point != "" && res.byTest {
				r.sched.requeue(p)
			}
		case res.exit == 0:
			if p.Point != "" {
				r.fig.mu.Lock()
				r.fig.NotReached[p.Point]++
				r.fig.mu.Unlock()
			}
			if !r.sched.done.Load() {
				return fmt.Errorf("%s life %d (%s) exited before the work was done", w.name, w.life, p)
			}
			return nil
		case res.exit == 75:
			if gone++; gone > 100 {
				return fmt.Errorf("%s: the tracker deleted the worker %d times", w.name, gone)
			}
		default:
			return fmt.Errorf("%s life %d (%s) failed: exit %d:\n%s", w.name, w.life, p, res.exit, res.stderr)
		}
	}
}

// byePhase kills w after journaling its bye, then after sending it, then lets
// it finish cleanly.
func (r *crashRun) byePhase(ctx context.Context, w *workerProc) error {
	for _, p := range []plan{{Point: byePoints[0], N: 1}, {Point: byePoints[1], N: 1}, {}} {
		res, err := r.live(ctx, w, p)
		if err != nil {
			return err
		}
		switch {
		case res.killed:
			if err := r.afterKill(w); err != nil {
				return fmt.Errorf("%s after life %d (%s): %w", w.name, w.life, p, err)
			}
		case res.exit == 0:
			if p.Point != "" {
				r.fig.mu.Lock()
				r.fig.NotReached[p.Point]++
				r.fig.mu.Unlock()
			}
		default:
			return fmt.Errorf("%s life %d (%s) failed: exit %d:\n%s", w.name, w.life, p, res.exit, res.stderr)
		}
	}
	return nil
}

type lifeResult struct {
	killed bool // by SIGKILL
	byTest bool // the test sent it (random or fallback)
	exit   int
	stderr string
	dur    time.Duration
}

// live runs one life of worker w under plan p.
func (r *crashRun) live(ctx context.Context, w *workerProc, p plan) (lifeResult, error) {
	w.life++
	fmt.Fprintf(w.stderr, "--- life %d: %s\n", w.life, p)
	var tail tailBuffer
	cmd := exec.Command(r.bin)
	cmd.Env = append(os.Environ(),
		"CRASH_URL="+r.srv.URL,
		"CRASH_STAGE="+w.stage,
		"CRASH_JOURNAL="+w.journal,
		"CRASH_NAME="+w.name,
		"CRASH_DIR="+w.dir,
		"CRASH_DONE="+r.doneFile,
		fmt.Sprintf("CRASH_LIFE=%d", w.life),
		"CRASH_POINT="+p.Point,
		fmt.Sprintf("CRASH_N=%d", max(p.N, 1)),
		fmt.Sprintf("CRASH_STEPS=%d", r.cfg.Steps),
		"CRASH_STEP_DELAY="+r.cfg.StepDelay.String(),
		fmt.Sprintf("CRASH_FLAG_RATE=%g", r.cfg.FlagRate),
		"CRASH_FLAG_FIRST="+map[bool]string{true: "1", false: "0"}[p.FlagFirst],
		"CRASH_HEARTBEAT="+r.cfg.Heartbeat.String(),
		fmt.Sprintf("CRASH_RETENTION=%d", r.cfg.Retention),
		"CRASH_RELEASE="+map[bool]string{true: "1", false: "0"}[p.Release],
	)
	if r.cfg.Chaos {
		cmd.Env = append(cmd.Env, fmt.Sprintf("CRASH_CHAOS_SEED=%d", r.seed+int64(1000*w.id+w.life)))
	}
	cmd.Stdout = io.MultiWriter(w.stderr, &tail)
	cmd.Stderr = io.MultiWriter(w.stderr, &tail)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return lifeResult{}, err
	}
	var byTest atomic.Bool
	kill := func() {
		byTest.Store(true)
		_ = cmd.Process.Kill()
	}
	var timers []*time.Timer
	if p.Random > 0 {
		timers = append(timers, time.AfterFunc(p.Random, kill))
	}
	if p.Fallback > 0 {
		timers = append(timers, time.AfterFunc(p.Fallback, kill))
	}
	stopWatch := context.AfterFunc(ctx, kill)
	err := cmd.Wait()
	stopWatch()
	for _, tm := range timers {
		tm.Stop()
	}
	res := lifeResult{dur: time.Since(start), stderr: tail.String()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, err
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	r.fig.mu.Lock()
	defer r.fig.mu.Unlock()
	r.fig.Lives++
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		res.killed, res.byTest = true, byTest.Load()
		if ctx.Err() != nil {
			return res, fmt.Errorf("%s: %w", w.name, ctx.Err())
		}
		switch {
		case !res.byTest:
			r.fig.PointKills[p.Point]++
		case p.Point != "":
			r.fig.Fallback[p.Point]++
		default:
			r.fig.RandomKills++
		}
		fmt.Fprintf(w.stderr, "--- life %d: killed (by test %v) after %s\n", w.life, res.byTest, res.dur)
	case ws.Signaled():
		return res, fmt.Errorf("%s life %d: died of %v:\n%s", w.name, w.life, ws.Signal(), res.stderr)
	default:
		res.exit = cmd.ProcessState.ExitCode()
		if res.exit == 75 {
			r.fig.WorkerGone++
		}
	}
	return res, nil
}

// afterKill checks, before a killed worker restarts, that its journal opens
// and verifies (if the worker lived long enough to create it), and that the
// tracker has completed no stage of any job twice.
func (r *crashRun) afterKill(w *workerProc) error {
	start := time.Now()
	defer func() { r.checkTime.Add(int64(time.Since(start))) }()
	if fi, err := os.Stat(w.journal); errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return nil // killed before its journal was created: nothing to check
	}
	db, err := journal.Open(w.journal, &journal.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("journal does not open: %w", err)
	}
	verr := errors.Join(db.Verify()...)
	if err := db.Close(); err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	if verr != nil {
		return fmt.Errorf("journal does not verify: %w", verr)
	}
	r.verified.Add(1)
	for _, j := range r.srv.Tracker.Jobs() {
		for s, n := range j.Completions {
			if n > 1 {
				return fmt.Errorf("job %d completed %d times at stage %s", j.Number, n, s)
			}
		}
	}
	return nil
}

// wantEpisode decides whether a kill is followed by an idle-timeout episode:
// after every other kill at a completion point (the case that orphans
// output; the others are resubmitted by replay), and after a few random
// kills.
func (r *crashRun) wantEpisode(p plan, res lifeResult) bool {
	if r.sched.done.Load() {
		return false
	}
	r.rngMu.Lock()
	defer r.rngMu.Unlock()
	if !res.byTest && strings.HasSuffix(p.Point, ":complete") {
		return r.rng.Intn(2) == 0 // else replay resubmits
	}
	return p.Random > 0 && r.episodes.Load() < int64(r.cfg.Episodes+2*r.cfg.NamedEach) && r.rng.Intn(r.cfg.RandomKills/max(r.cfg.Episodes, 1)+1) == 0
}

// idleEpisode lets the tracker's idle timeout pass for the workers that are
// down, not for those alive: the fake clock moves 0.6 × the timeout twice,
// with a few heartbeats of real time between, and the idle sweep runs.
func (r *crashRun) idleEpisode() {
	r.episode.Lock()
	defer r.episode.Unlock()
	r.episodes.Add(1)
	step := r.idle * 6 / 10
	r.clock.Advance(step)
	time.Sleep(4 * r.cfg.Heartbeat)
	r.clock.Advance(step)
	r.srv.Tracker.CheckIdle()
}

// dumpState logs the tracker's view and the end of each worker's log, for a
// failed run.
func (r *crashRun) dumpState(workers []*workerProc) {
	t := r.t
	n := 0
	for _, j := range r.srv.Tracker.Jobs() {
		if j.State != trackertest.JobClosed && n < 20 {
			n++
			t.Logf("job %d: state %s stage %s holder %q completions %v flags %v", j.Number, j.State, j.Stage, j.Holder, j.Completions, j.Flags)
		}
	}
	for _, w := range r.srv.Tracker.Workers() {
		t.Logf("worker %s stage %s job %d completed %d progress %q", w.DisplayName, w.Stage, w.Job, w.Completed, w.Progress)
	}
	for _, w := range workers {
		b, err := os.ReadFile(filepath.Join(w.dir, "stderr.log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("%s, end of its log:\n\t%s", w.name, strings.Join(lines, "\n\t"))
	}
}

// keepIfFailed copies a failed run's directory (journals, worker logs,
// computed.jsonl, reports.jsonl) out of the test's temporary directory, for a
// post-mortem with dcjournal.
func keepIfFailed(t *testing.T, dir, name string) {
	if !t.Failed() {
		return
	}
	dst := filepath.Join(os.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keeping the run directory: %v", err)
		return
	}
	t.Logf("the run directory is kept in %s", dst)
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > 8<<10 {
		keep := b.buf.Bytes()[b.buf.Len()-4<<10:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// workerBin is the crashworker binary TestMain built, "" if the build failed
// (buildErr says why).
var (
	workerBin string
	buildErr  error
)

// TestMain builds crashworker once for the whole test binary, without -race
// (the lives of a worker process are short and many), and removes it after.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crashworker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	workerBin, buildErr = build(filepath.Join(dir, "crashworker"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(bin string) (string, error) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	out, err := exec.Command(goTool, "build", "-o", bin, "./crashworker").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./crashworker: %v\n%s", err, out)
	}
	return bin, nil
}

// buildWorker returns the crashworker binary.
func buildWorker(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return workerBin
}
