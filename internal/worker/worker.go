package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/internal/preempt"
	"github.com/distcompute/distcompute-go/internal/statusserver"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// Documented defaults of Config.
const (
	DefaultGrace           = 25 * time.Second
	DefaultRetries         = 2
	DefaultInvalidExitCode = 65 // EX_DATAERR from sysexits.h
	DefaultMaxOutput       = 16 << 20
	DefaultPollInterval    = 200 * time.Millisecond
	DefaultRetryDelay      = time.Second
	DefaultEmptyPoll       = 2 * time.Second
	// DefaultMaxFailedRuns is how many command runs in a row may fail, across
	// jobs, before the worker stops (ErrFailing) rather than release job after
	// job: a command that fails everything is broken, not unlucky.
	DefaultMaxFailedRuns = 10
)

// Environment variables set for the command.
const (
	EnvJobNumber      = "DC_JOB_NUMBER"      // the job's number
	EnvStage          = "DC_STAGE"           // the stage letter, a..e
	EnvStageName      = "DC_STAGE_NAME"      // the stage's name, e.g. "CPU"
	EnvProject        = "DC_PROJECT"         // the tracker's project name
	EnvWorker         = "DC_WORKER"          // the worker's display name
	EnvSlot           = "DC_SLOT"            // the slot (0-based) running the job
	EnvCheckpointFile = "DC_CHECKPOINT_FILE" // path of the checkpoint file, pre-filled on resume
	EnvResumed        = "DC_RESUMED"         // "1" when this run resumes an interrupted job, else "0"
	EnvAttempt        = "DC_ATTEMPT"         // 1 for the first run of the job here, 2.. for retries
	EnvProgressFD     = "DC_PROGRESS_FD"     // "3": lines written to this fd become progress
	EnvProgressFile   = "DC_PROGRESS_FILE"   // lines appended to this file become progress too
	EnvDataKind       = "DC_DATA_KIND"       // "string", "json" or "null"
	EnvDataNull       = "DC_DATA_NULL"       // "1" when the job's data is null (stdin is then empty), else "0"
)

// Errors returned by Run.
var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("worker: invalid configuration")
	// ErrStopped reports that Run was stopped at once (second signal, or the
	// end of its context): running commands were killed and their jobs left
	// held in the journal.
	ErrStopped = errors.New("worker: stopped")
	// ErrCommand reports a command that cannot be started (not found, not
	// executable). Run returns it before opening the journal; it wraps
	// ErrConfig.
	ErrCommand = fmt.Errorf("%w: the command cannot start", ErrConfig)
	// ErrFailing reports that Config.MaxFailedRuns command runs in a row
	// failed: the worker drained and stopped instead of churning through jobs.
	ErrFailing = errors.New("worker: the command keeps failing")
)

// Config configures Run. Zero numeric fields take the documented defaults.
type Config struct {
	TrackerURL string
	Stage      string
	Nickname   string
	// Journal is the journal file; empty means the client's default
	// ($DISTCOMPUTE_JOURNAL, else the XDG state directory).
	Journal string
	// Slots is how many jobs run at once, one worker identity each (>= 1).
	Slots int
	// Command is the program and its arguments, run once per job. A name
	// without a path separator is looked up in $PATH once, when Run starts.
	Command []string

	InvalidExitCode int           // default DefaultInvalidExitCode
	Retries         int           // retries after the first failure; default DefaultRetries; -1 means none
	RetryDelay      time.Duration // pause before a retry; default DefaultRetryDelay; -1 means none
	MaxFailedRuns   int           // failed runs in a row (across jobs) that stop the worker; default DefaultMaxFailedRuns; -1 means never
	MaxOutput       int64         // stdout size limit; default DefaultMaxOutput
	Grace           time.Duration // time given to commands after a stop signal; default DefaultGrace
	ReleaseOnExit   bool          // release held jobs on a drain instead of leaving them resumable
	Hook            hooks.Func    // crash-test hook of every slot's client (the quick start's kill)
	ExitWhenEmpty   bool          // return when the stage has no open job and no slot is busy
	EmptyPoll       time.Duration // poll interval for ExitWhenEmpty; default DefaultEmptyPoll
	// JournalDeadline is how long the journal may stay unwritable (a full,
	// read-only or failing disk) before the worker drains and Run returns
	// ErrJournalUnwritable; default DefaultJournalDeadline.
	JournalDeadline time.Duration
	// JournalMaxSize bounds the journal file (journal.Options.MaxSize); 0
	// means journal.DefaultMaxSize.
	JournalMaxSize int64

	// PreemptionNotice, when set, watches that cloud's metadata service and
	// drains on its notice as on SIGTERM.
	PreemptionNotice preempt.Provider
	// MetadataAddr overrides preempt.DefaultAddr (tests serve a fake one).
	MetadataAddr string
	// MetadataClient sends metadata requests; nil means a private client.
	MetadataClient *http.Client
	// MetadataInterval is the notice poll interval; 0 means preempt.DefaultInterval.
	MetadataInterval time.Duration

	// StatusAddr, when set, serves GET /status and /metrics there (and
	// /journal with StatusJournal). They hold no secret; ":PORT" listens on
	// every interface, which is logged as a warning.
	StatusAddr string
	// StatusJournal serves GET /journal on StatusAddr: a snapshot of the
	// whole journal, which holds the worker tokens and the tracker URL with
	// its password. Only for an address that only trusted people reach.
	StatusJournal bool
	// StatusListening, if set, is told the status server's actual address.
	StatusListening func(net.Addr)

	// WorkDir holds the per-job checkpoint and progress files; empty means
	// a fresh directory under os.TempDir(), removed by Run.
	WorkDir string
	// PollInterval is how often the checkpoint and progress files are
	// checked; default DefaultPollInterval.
	PollInterval time.Duration

	// Signals delivers stop signals: the first drains, the second stops at
	// once. nil means none (only ctx stops Run).
	Signals <-chan os.Signal

	Logger     *slog.Logger // nil discards
	Stderr     io.Writer    // receives the commands' stderr, each line prefixed "[slot-N job J] "; nil discards it (its tail is still journaled)
	HTTPClient *http.Client // for the tracker; nil means the client's default
	Verbose    bool

	// ClientOptions are passed to client.OpenPool after the engine's own
	// (tests add WithHeartbeat, WithRetry...).
	ClientOptions []client.Option
}

func (c *Config) setDefaults() error {
	if c.TrackerURL == "" {
		return fmt.Errorf("%w: no tracker URL", ErrConfig)
	}
	if u, err := url.Parse(c.TrackerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: tracker URL %q: want http://HOST[:PORT] or https://...", ErrConfig, redactedURL(c.TrackerURL))
	}
	if len(c.Stage) != 1 || c.Stage[0] < 'a' || c.Stage[0] > 'e' {
		return fmt.Errorf("%w: stage %q: the tracker's stages are a, b, c, d and e", ErrConfig, c.Stage)
	}
	if len(c.Command) == 0 {
		return fmt.Errorf("%w: no command", ErrConfig)
	}
	if _, err := exec.LookPath(c.Command[0]); err != nil {
		return fmt.Errorf("%w: %v", ErrCommand, err)
	}
	if c.Slots == 0 {
		c.Slots = 1
	}
	if c.Slots < 1 {
		return fmt.Errorf("%w: slots must be >= 1", ErrConfig)
	}
	if c.InvalidExitCode == 0 {
		c.InvalidExitCode = DefaultInvalidExitCode
	}
	if c.InvalidExitCode < 1 || c.InvalidExitCode > 255 {
		return fmt.Errorf("%w: invalid-exit-code must be 1..255", ErrConfig)
	}
	switch {
	case c.Retries == 0:
		c.Retries = DefaultRetries
	case c.Retries < 0:
		c.Retries = 0
	}
	switch {
	case c.RetryDelay == 0:
		c.RetryDelay = DefaultRetryDelay
	case c.RetryDelay < 0:
		c.RetryDelay = 0
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	switch {
	case c.MaxFailedRuns == 0:
		c.MaxFailedRuns = DefaultMaxFailedRuns
	case c.MaxFailedRuns < 0:
		c.MaxFailedRuns = 0 // never
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.EmptyPoll <= 0 {
		c.EmptyPoll = DefaultEmptyPoll
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.JournalDeadline <= 0 {
		c.JournalDeadline = DefaultJournalDeadline
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// engine is one Run.
type engine struct {
	cfg     Config
	log     *slog.Logger
	pool    *client.Pool
	db      *journal.DB
	clients []*client.Client
	slots   []*slotState
	m       *metrics
	reach   *reachability
	disk    *statusserver.DiskState
	workDir string
	cmdPath string   // cfg.Command[0] resolved once (exec.LookPath)
	env     []string // the worker's environment, the base of each command's

	runCtx context.Context // ends on a hard stop: commands are killed
	hard   context.CancelFunc

	drainOnce  sync.Once
	drainCtx   context.Context    // ends when draining starts (not when the run ends)
	drainStart context.CancelFunc // ends drainCtx
	drainCh    <-chan struct{}    // drainCtx.Done()
	drainMu    sync.Mutex
	drainSig   syscall.Signal
	drainEnd   time.Time // grace deadline

	stderrMu sync.Mutex // serialises the commands' stderr lines

	snapshots  chan struct{} // GET /journal in progress (at most maxSnapshots)
	failedRuns atomic.Int64  // command runs failed in a row, across slots and jobs
	drainWhy   string        // why the drain started, for the journal (guarded by drainMu)

	mu    sync.Mutex
	busy  int   // slots holding a job
	fatal error // first error that stopped a slot for good
}

// Run runs cfg.Command as a worker until ctx ends, a stop signal arrives on
// cfg.Signals (drain, then return nil), a preemption notice arrives (same), or
// with cfg.ExitWhenEmpty the stage runs dry (return nil). It returns
// ErrStopped after a hard stop, ErrConfig for a bad configuration, and the
// client's error when the pool cannot be opened.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	e := &engine{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Slots)}
	e.initDrain()
	e.reach = newReachability(cfg.TrackerURL, e.log)
	// Per run, os/exec would look the command up and os.Environ copy the
	// environment again; neither changes while the worker runs.
	if p, err := exec.LookPath(cfg.Command[0]); err == nil {
		e.cmdPath = p
	}
	// The variables each run sets are dropped from the inherited ones (a
	// dcworker started by a job's command has them): the command's must be
	// the only ones, as the environment is passed on as it is (on Linux
	// without os/exec, which kept the last of a name given twice).
	e.env = slices.Clip(dropEnv(os.Environ(), runEnv)) // clipped: each run's append copies it
	e.runCtx, e.hard = context.WithCancel(ctx)
	defer e.hard()

	e.workDir = cfg.WorkDir
	if e.workDir == "" {
		d, err := os.MkdirTemp("", "dcworker-")
		if err != nil {
			return err
		}
		e.workDir = d
		defer os.RemoveAll(d)
	}

	// Stop signals: the first drains, the second stops at once.
	sigDone := make(chan struct{})
	defer close(sigDone)
	if cfg.Signals != nil {
		go func() {
			n := 0
			for {
				select {
				case <-sigDone:
					return
				case s := <-cfg.Signals:
					n++
					sig, ok := s.(syscall.Signal)
					if !ok {
						sig = syscall.SIGTERM
					}
					if n == 1 {
						e.log.Info("stop signal: draining", "signal", sig.String(), "grace", cfg.Grace)
						e.drain(sig, signalName(sig))
					} else {
						e.log.Warn("second stop signal: stopping at once", "signal", sig.String())
						e.hard()
					}
				}
			}
		}()
	}

	jpath := cfg.Journal
	if jpath == "" {
		p, err := client.DefaultJournalPath()
		if err != nil {
			return err
		}
		jpath = p
	}
	if err := os.MkdirAll(filepath.Dir(jpath), 0o700); err != nil {
		return fmt.Errorf("worker: journal directory: %w", err)
	}
	e.cfg.Journal = jpath
	e.disk = statusserver.NewDiskState(statusserver.DiskConfig{Path: jpath, Log: e.log, Deadline: e.cfg.JournalDeadline,
		Expired: e.journalExpired, Waits: "no job is claimed until it can"})
	defer e.disk.Stop() // a spell's deadline must not fire after Run returned

	// Watch for a preemption notice from the start: the replay in OpenPool
	// may take a while when the tracker is hard to reach.
	if cfg.PreemptionNotice != "" {
		wctx, cancel := context.WithCancel(e.runCtx)
		defer cancel()
		go e.watchPreemption(wctx)
	}

	// Registration and replay get the grace period too if a stop signal
	// comes meanwhile: what they do is journaled first, so stopping them
	// loses nothing (the next start takes over).
	opts := e.clientOptions()
	openCtx, openCancel := e.netCtx()
	if !unsettled(jpath) {
		// Nothing in the journal waits for the tracker: a stop signal while
		// registering (say, the tracker is unreachable) has nothing to drain
		// and stops at once.
		openCancel()
		openCtx, openCancel = e.claimCtx()
	}
	if cfg.Hook != nil {
		openCtx = hooks.With(openCtx, cfg.Hook)
	}
	pool, err := e.openPool(openCtx, opts)
	openCancel()
	if err != nil {
		switch {
		case e.runCtx.Err() != nil:
			return ErrStopped
		case e.isDraining():
			e.log.Info("stopped while starting", "err", err)
			return nil
		}
		return err
	}
	e.pool = pool
	e.db = pool.Journal() // read only: the status page's snapshot
	e.clients = pool.Clients()
	e.slots = make([]*slotState, len(e.clients))
	for i, c := range e.clients {
		e.slots[i] = &slotState{index: i, state: stateIdle, since: time.Now(), name: c.DisplayName()}
		rep := c.Report()
		e.m.resubmitted.Add(int64(len(rep.Resubmitted)))
		e.m.orphaned.Add(int64(len(rep.Orphaned)))
		if len(rep.Resubmitted)+len(rep.AppliedEarlier)+len(rep.Orphaned)+len(rep.Resumed)+len(rep.Released) > 0 {
			e.log.Info("journal replayed", "slot", c.Slot(), "resubmitted", rep.Resubmitted, "applied_earlier", rep.AppliedEarlier,
				"orphaned", rep.Orphaned, "resumed", rep.Resumed, "released", rep.Released)
		}
	}

	// The drain is recorded by a goroutine that must be done before the
	// pool (and with it the journal) is closed.
	drainRecorded := make(chan struct{})
	stopRecording := make(chan struct{})
	go func() { defer close(drainRecorded); e.recordDrain(stopRecording) }()
	var recordOnce sync.Once
	finishRecording := func() { recordOnce.Do(func() { close(stopRecording); <-drainRecorded }) }
	defer finishRecording()

	if cfg.StatusAddr != "" {
		stop, err := e.serveStatus()
		if err != nil {
			finishRecording()
			pool.Close()
			return err
		}
		defer stop()
	}

	var wg sync.WaitGroup
	for i := range e.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.runSlot(i)
		}()
	}
	wg.Wait()

	if e.isDraining() && cfg.ReleaseOnExit && e.runCtx.Err() == nil {
		e.releaseAll()
	}
	finishRecording()
	closeErr := pool.Close()
	if e.runCtx.Err() != nil {
		return ErrStopped
	}
	if e.fatal != nil {
		return e.fatal
	}
	return closeErr
}

func (e *engine) clientOptions() []client.Option {
	opts := []client.Option{
		client.WithLogger(slog.New(retryQuiet{Handler: e.log.Handler(), reach: e.reach, disk: e.disk})),
		client.WithVerbose(e.cfg.Verbose),
	}
	if e.cfg.Nickname != "" {
		opts = append(opts, client.WithNickname(e.cfg.Nickname))
	}
	opts = append(opts, client.WithJournal(e.cfg.Journal))
	if e.cfg.JournalMaxSize > 0 {
		opts = append(opts, client.WithJournalOptions(&journal.Options{MaxSize: e.cfg.JournalMaxSize}))
	}
	hc := e.cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	counted := *hc
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport.(*http.Transport).Clone()
	}
	counted.Transport = &countingTransport{next: next, m: e.m, reach: e.reach}
	opts = append(opts, client.WithHTTPClient(&counted))
	return append(opts, e.cfg.ClientOptions...)
}

// drain starts draining once: stop claiming, signal the running commands. why
// is recorded in the journal (see recordDrain).
func (e *engine) drain(sig syscall.Signal, why string) {
	e.drainOnce.Do(func() {
		e.drainMu.Lock()
		e.drainSig = sig
		e.drainWhy = why
		e.drainEnd = time.Now().Add(e.cfg.Grace)
		e.drainMu.Unlock()
		e.drainStart()
	})
}

// initDrain makes the drain's context: a context (not only a channel) so that
// the calls that end with the drain are told by context.AfterFunc, without a
// goroutine each waiting for it.
func (e *engine) initDrain() {
	e.drainCtx, e.drainStart = context.WithCancel(context.Background())
	e.drainCh = e.drainCtx.Done()
}

// recordDrain journals a drained event with its reason in every slot once the
// drain starts, so that dcjournal tells a clean stop from a crash. It runs from
// the moment the slots exist until done is closed.
func (e *engine) recordDrain(done <-chan struct{}) {
	select {
	case <-done:
		// The run ends: record a drain that started meanwhile (select
		// picks either when both are ready).
		select {
		case <-e.drainCh:
		default:
			return
		}
	case <-e.drainCh:
	}
	e.drainMu.Lock()
	why := e.drainWhy
	e.drainMu.Unlock()
	for _, c := range e.clients {
		if err := c.RecordDrain(why); err != nil {
			e.log.Error("journaling the drain failed", "slot", c.Slot(), "err", err)
		}
	}
}

// signalName is how a drain's signal is recorded: "SIGTERM", "SIGINT".
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}

func (e *engine) isDraining() bool {
	select {
	case <-e.drainCh:
		return true
	default:
		return false
	}
}

func (e *engine) drainState() (syscall.Signal, time.Time) {
	e.drainMu.Lock()
	defer e.drainMu.Unlock()
	return e.drainSig, e.drainEnd
}

// netCtx is the context for tracker calls: the run's, ended 2 s after the
// grace period once a drain starts (also when the call began before it).
// What does not reach the tracker in time stays in the journal and is
// resent on restart.
//
// No goroutine waits for the drain (there is one such context per tracker
// call): context.AfterFunc arms a timer when it starts.
func (e *engine) netCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(e.runCtx)
	var (
		mu    sync.Mutex
		timer *time.Timer
		done  bool
	)
	stop := context.AfterFunc(e.drainCtx, func() {
		_, end := e.drainState()
		mu.Lock()
		defer mu.Unlock()
		if !done {
			timer = time.AfterFunc(time.Until(end.Add(2*time.Second)), cancel)
		}
	})
	return ctx, func() {
		stop()
		mu.Lock()
		done = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// claimCtx ends when draining starts or the run stops.
func (e *engine) claimCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(e.runCtx)
	stop := context.AfterFunc(e.drainCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (e *engine) watchPreemption(ctx context.Context) {
	n, err := preempt.Watch(ctx, e.cfg.PreemptionNotice, &preempt.Options{
		Addr: e.cfg.MetadataAddr, HTTPClient: e.cfg.MetadataClient,
		Interval: e.cfg.MetadataInterval, Logger: e.log,
	})
	if err != nil {
		return
	}
	e.log.Warn("preemption notice: draining", "provider", string(n.Provider), "action", n.Action, "time", n.Time, "grace", e.cfg.Grace)
	e.m.preemptions.Add(1)
	e.drain(syscall.SIGTERM, fmt.Sprintf("%s preemption notice (%s)", n.Provider, n.Action))
}

func (e *engine) setBusy(delta int) {
	e.mu.Lock()
	e.busy += delta
	e.mu.Unlock()
}

func (e *engine) busyCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.busy
}

// runSlot claims and runs jobs on slot i until draining, a hard stop, or
// (ExitWhenEmpty) an empty stage.
func (e *engine) runSlot(i int) {
	c := e.clients[i]
	st := e.slots[i]
	defer st.set(e.m, stateStopped, 0)
	defer newJobFiles(e.workDir, i).remove()
	// Only a job handed back by the journal's replay is run without a claim
	// first. A job still held after runJob is one this slot gave up on (a
	// flag the tracker refused, a release or flag not confirmed): it is
	// released before the next claim, never run again here (NewJob would
	// hand it back).
	needClaim := !c.HasJob()
	for e.runCtx.Err() == nil && !e.isDraining() {
		if needClaim {
			if c.HasJob() && !e.giveBack(i) {
				return
			}
			st.set(e.m, stateWaiting, 0)
			if !e.claim(i) {
				return
			}
		}
		needClaim = true
		e.setBusy(1)
		keep := e.runJob(i, c.Resumed())
		e.setBusy(-1)
		if !keep {
			return
		}
	}
}

// giveBack releases the job slot i still holds, trying again with growing
// pauses while the tracker cannot be reached. It returns false when the slot
// should stop (draining, hard stop).
func (e *engine) giveBack(i int) bool {
	c := e.clients[i]
	pause, jpause := time.Second, JournalRetryMin
	for e.runCtx.Err() == nil && !e.isDraining() {
		num := c.JobID()
		e.slots[i].set(e.m, stateReleasing, num)
		began := time.Now()
		ctx, cancel := e.netCtx()
		err := releaseJob(ctx, c)
		cancel()
		if err == nil {
			e.disk.OK(i, began)
			return true
		}
		if journalRefused(err) {
			e.slots[i].set(e.m, stateHolding, num)
			if !e.holdRetry(e.runCtx, i, fmt.Sprintf("the release of job %d (given up)", num), err, &jpause, began) {
				e.disk.Drop(i) // the job stays held: released after a restart
				return false
			}
			continue
		}
		e.log.Warn("releasing a job given up failed; trying again", "slot", c.Slot(), "err", err, "pause", pause)
		ctx, cancel = e.claimCtx()
		ok := sleepCtx(ctx, pause)
		cancel()
		if !ok {
			return false
		}
		pause = min(2*pause, time.Minute)
	}
	e.disk.Drop(i) // a release not journaled: the job is still held, released after a restart
	return false
}

// claim gets slot i a job. It returns false when the slot should stop:
// draining, a hard stop, an empty stage with ExitWhenEmpty, or an error that
// retrying cannot cure (recorded for Run to return). Other errors (the
// tracker unreachable after the client's own retries, a completion still
// unconfirmed) are logged and the claim tried again later: a worker outlives
// a tracker outage.
func (e *engine) claim(i int) bool {
	c := e.clients[i]
	ctx, cancel := e.claimCtx()
	defer cancel()
	pause, jpause := time.Second, JournalRetryMin
	for {
		// No claim while the journal cannot be written (see statusserver.DiskState).
		if !e.waitClaim(ctx, i, &jpause) {
			return false
		}
		var err error
		began := time.Now()
		if e.cfg.ExitWhenEmpty {
			err = c.NewJob(ctx)
		} else {
			err = c.WaitForJob(ctx)
		}
		if err == nil {
			e.disk.OK(i, began)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if journalRefused(err) {
			// The client could not record what it had to before claiming
			// (a registration, a claim, the answer to a completion it
			// resent), or its journal cannot take a job's completion now.
			if !e.holdRetry(ctx, i, "", err, &jpause, began) {
				return false
			}
			continue
		}
		jpause = JournalRetryMin
		wait := e.cfg.EmptyPoll
		switch {
		case permanent(err):
			e.fail(fmt.Errorf("worker: slot %s: %w", c.Slot(), err))
			return false
		case errors.Is(err, client.ErrNoJobs): // ExitWhenEmpty only
			if e.busyCount() == 0 {
				n, err := c.JobCount(ctx)
				if err == nil && n == 0 {
					e.log.Info("no open jobs and no slot busy: stopping", "slot", c.Slot())
					return false
				}
				if refused := e.refusedJobs(); err == nil && n <= refused {
					// Jobs this worker cannot take (refused at a claim:
					// flagged or released) stay open for others.
					e.log.Info("the open jobs are ones this worker refused and no slot is busy: stopping", "slot", c.Slot(), "open", n, "refused", refused)
					return false
				}
			}
		default:
			lvl := slog.LevelWarn
			if !e.reach.snapshot().Reachable {
				lvl = slog.LevelDebug // the outage has its own line
			}
			e.log.Log(ctx, lvl, "claiming a job failed; trying again", "slot", c.Slot(), "err", err, "pause", pause)
			wait = pause
			pause = min(2*pause, time.Minute)
		}
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
}

// permanent reports errors that trying again cannot cure.
func permanent(err error) bool {
	return errors.Is(err, client.ErrInvalidStage) || errors.Is(err, client.ErrStageDisabled) ||
		errors.Is(err, client.ErrInvalidArgument) || errors.Is(err, client.ErrClosed)
}

// fail records the first fatal error, for Run to return.
func (e *engine) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fatal == nil {
		e.fatal = err
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runJob runs the command for the job slot i holds, retrying failures. It
// returns false when the slot should stop (draining, hard stop).
func (e *engine) runJob(i int, resumed bool) bool {
	c := e.clients[i]
	st := e.slots[i]
	job := c.Job()
	num := c.JobID()
	log := e.log.With("slot", c.Slot(), "job", num)
	files := newJobFiles(e.workDir, i)
	cpPath, progPath := files.checkpoint, files.progress
	if err := files.prepare(c.LastCheckpoint()); err != nil {
		log.Error("cannot write the checkpoint file", "err", err)
		return false
	}
	st.mu.Lock()
	st.name = c.DisplayName() // a lost worker is replaced by a new registration
	st.mu.Unlock()
	if resumed {
		log.Info("resuming an interrupted job", "checkpoint_bytes", len(c.LastCheckpoint()))
	}

	for attempt := 1; ; attempt++ {
		if err := files.emptyProgress(); err != nil {
			log.Error("cannot create the progress file", "err", err)
			return false
		}
		st.set(e.m, stateRunning, num)
		res := e.runOnce(i, c, log, job, num, resumed, attempt, cpPath, progPath)
		drained := e.isDraining()
		if e.runCtx.Err() != nil {
			log.Warn("stopped at once: job left in the journal", "outcome", res.describe())
			return false
		}
		ok := res.ok() // scans the output once (UTF-8), up to --max-output
		if ok || (res.err == nil && res.signal == 0 && !res.tooLarge && res.exitCode == e.cfg.InvalidExitCode) {
			e.failedRuns.Store(0) // the command works
		}
		switch {
		case ok:
			out := outputPayload(res.output)
			what := fmt.Sprintf("the output of job %d (%d bytes)", num, len(res.output))
			err := e.record(i, num, stateCompleting, what, func(ctx context.Context) error { return c.CompleteJob(ctx, out) })
			switch {
			case notRecorded(err):
				return false // given up: see record
			case errors.Is(err, client.ErrNoJobHeld):
				// The journal failed before the claim was written: after the
				// client reopened it, the job is not held. The tracker still
				// assigns it to this worker and re-opens it at the next claim.
				log.Warn("the job's claim was lost with the journal write that failed: output dropped, the job is run again", "err", err)
				return !drained
			}
			if errors.Is(err, client.ErrWorkerGone) {
				e.m.orphaned.Add(1)
				log.Warn("the tracker had lost this worker: output kept in the journal as an orphan", "err", err)
				return !drained
			}
			if errors.Is(err, client.ErrUnconfirmed) {
				// The output is in the journal and the client resends it
				// before the next claim (or on restart).
				log.Error("completing the job failed; the output stays in the journal", "err", err)
				return !drained
			}
			if errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull) {
				// The output was recorded (else the error would be
				// ErrNotRecorded) and sent; recording the tracker's answer
				// failed (and stopped the journal, or the disk is full).
				// The client (reopens it and) resends what is still pending
				// before the next claim (the tracker then says it was
				// applied earlier).
				e.disk.Failures.Add(1)
				log.Warn("the tracker's answer to the completion could not be journaled; the output is in the journal and is resent before the next claim", "err", err)
				return !drained
			}
			if err != nil {
				log.Error("completing the job failed", "err", err)
				return !drained
			}
			e.m.completed.Add(1)
			log.Debug("output submitted", "output_bytes", len(res.output), "kind", out.Kind().String())
			return !drained
		case res.err == nil && res.signal == 0 && !res.tooLarge && res.exitCode == e.cfg.InvalidExitCode:
			err := e.record(i, num, stateFlagging, fmt.Sprintf("the invalid-data flag of job %d", num), c.FlagInvalidData)
			if notRecorded(err) {
				return false // given up: see record
			}
			if err != nil {
				// An unconfirmed flag is resent before the job is released;
				// a refused one (the upstream 5th-flag bug) leaves the job
				// held: runSlot releases it before the next claim.
				log.Error("flagging the job's data failed", "err", err)
				return !drained
			}
			e.m.flagged.Add(1)
			log.Debug("command asked to flag the input", "exit_code", res.exitCode)
			return !drained
		case drained:
			log.Info("command ended during the drain: job left resumable", "outcome", res.describe())
			return false
		}
		e.m.commandFailures.Add(1)
		reason := fmt.Sprintf("attempt %d of %d: %s", attempt, e.cfg.Retries+1, res.describe())
		log.Warn("command failed", "attempt", attempt, "outcome", res.describe(), "stderr_tail", lastLine(res.stderrTail))
		failing := false
		if n := e.failedRuns.Add(1); e.cfg.MaxFailedRuns > 0 && n >= int64(e.cfg.MaxFailedRuns) {
			failing = true
			e.fail(fmt.Errorf("%w: %d runs in a row failed, the last: %s; stopping instead of releasing job after job (--max-failed-runs)", ErrFailing, n, res.describe()))
			e.drain(syscall.SIGTERM, fmt.Sprintf("the command failed %d runs in a row", n))
		}
		if attempt <= e.cfg.Retries && !failing {
			resumed = len(c.LastCheckpoint()) > 0 || resumed
			if e.cfg.RetryDelay > 0 {
				ctx, cancel := e.claimCtx()
				ok := sleepCtx(ctx, e.cfg.RetryDelay)
				cancel()
				if !ok {
					return false
				}
			}
			continue
		}
		st.set(e.m, stateReleasing, num)
		e.m.failed.Add(1)
		tail := res.stderrTail
		began := time.Now()
		if err := e.recordFailure(i, reason, tail); err != nil {
			if notRecorded(err) {
				e.disk.Failed(i, "", err, 0, began) // informational: not retried
			}
			log.Error("journaling the failure failed", "err", err)
		}
		ctx, cancel := e.netCtx()
		err := releaseJob(ctx, c)
		cancel()
		if err != nil {
			// runSlot tries again before the next claim.
			log.Error("releasing the failed job failed", "err", err)
			return !drained
		}
		log.Warn("job released after failures", "attempts", attempt)
		return !drained && !failing
	}
}

// runOnce starts the command for one attempt and waits for it, forwarding a
// drain's signal and enforcing the grace period. log is the job's logger
// (runJob's, made once per job).
func (e *engine) runOnce(i int, c *client.Client, log *slog.Logger, job session.Payload, num int, resumed bool, attempt int, cpPath, progPath string) result {
	dataKind := "string"
	switch job.Kind() {
	case session.KindJSON:
		dataKind = "json"
	case session.KindNull:
		dataKind = "null"
	}
	env := append(e.env,
		EnvJobNumber+"="+strconv.Itoa(num),
		EnvStage+"="+c.Stage(),
		EnvStageName+"="+c.StageName(),
		EnvProject+"="+c.Project(),
		EnvWorker+"="+c.DisplayName(),
		EnvSlot+"="+strconv.Itoa(i),
		EnvCheckpointFile+"="+cpPath,
		EnvResumed+"="+boolEnv(resumed),
		EnvAttempt+"="+strconv.Itoa(attempt),
		EnvProgressFD+"=3",
		EnvProgressFile+"="+progPath,
		EnvDataKind+"="+dataKind,
		EnvDataNull+"="+boolEnv(job.IsNull()),
	)
	var stderr *prefixWriter
	if e.cfg.Stderr != nil {
		stderr = &prefixWriter{mu: &e.stderrMu, w: e.cfg.Stderr, prefix: fmt.Sprintf("[%s job %d] ", c.Slot(), num)}
	}
	s := spec{
		argv:           e.cfg.Command,
		path:           e.cmdPath,
		env:            env,
		stdin:          job.Text(),
		checkpointPath: cpPath,
		// runJob emptied the file for a job without a checkpoint, and
		// nothing has written it before the first run.
		checkpointEmpty: attempt == 1 && len(c.LastCheckpoint()) == 0,
		progressPath:    progPath,
		maxOutput:       e.cfg.MaxOutput,
		poll:            e.cfg.PollInterval,
		onProgress: func(line string) {
			e.slots[i].setProgress(line)
			c.Log(line)
		},
		onCheckpoint: func(data []byte) {
			began := time.Now()
			ctx, cancel := e.netCtx()
			defer cancel()
			if err := c.Checkpoint(ctx, data); err != nil {
				if notRecorded(err) {
					// Not held: the command's next checkpoint is tried
					// when it writes one, and its output is held. The
					// journal's state has its own log line.
					e.disk.Failed(i, "", err, 0, began)
					log.Debug("storing a checkpoint failed: the journal cannot be written", "err", err, "bytes", len(data))
					return
				}
				log.Error("storing a checkpoint failed", "err", err, "bytes", len(data))
				return
			}
			e.disk.OK(i, began)
			e.m.checkpoints.Add(1)
		},
		onCheckpointTooBig: func(size int64) {
			log.Error("checkpoint file over the size limit (--max-output): not stored", "bytes", size, "limit", e.cfg.MaxOutput)
		},
	}
	if stderr != nil {
		s.stderr = stderr
		defer stderr.flush() // after wait: the command's stderr is closed
	}
	p, err := start(e.runCtx, s)
	if err != nil {
		return result{exitCode: -1, err: fmt.Errorf("starting %s: %w", e.cfg.Command[0], err)}
	}
	e.m.runs.Add(1) // started: dcworker_command_runs_total counts runs started
	// A drain passes its signal on to the command, then kills it when the
	// grace period is over; both come by callbacks (no goroutine per run)
	// and never after the command has been waited for (whileRunning).
	var kill *time.Timer // set under p.mu, read once the command has ended
	stopDrain := context.AfterFunc(e.drainCtx, func() {
		sig, end := e.drainState()
		// Pipes a descendant still holds after the command's exit are not
		// waited for past the grace period either.
		p.stopWaitingAt(end)
		p.whileRunning(func() {
			e.slots[i].set(e.m, stateDraining, num)
			log.Info("passing the stop signal to the command", "signal", sig.String(), "grace_left", time.Until(end).Round(time.Millisecond))
			p.signal(sig)
			kill = time.AfterFunc(time.Until(end), func() {
				p.whileRunning(func() {
					log.Warn("grace period over: killing the command", "signal", "SIGKILL")
					p.signal(syscall.SIGKILL)
				})
			})
		})
	})
	res := p.wait() // in this goroutine: the command's end wakes it alone
	stopDrain()
	// A callback that set kill did so under p.mu before wait marked the
	// command ended (under p.mu too); one that comes later sets nothing.
	if kill != nil {
		kill.Stop()
	}
	return res
}

func (e *engine) releaseAll() {
	for _, c := range e.clients {
		if !c.HasJob() {
			continue
		}
		ctx, cancel := context.WithTimeout(e.runCtx, 10*time.Second)
		err := c.Bye(ctx) // re-opens the held job; no fresh worker on exit
		cancel()
		if err != nil {
			e.log.Error("releasing the job on exit failed", "slot", c.Slot(), "err", err)
		} else {
			e.log.Info("job released on exit", "slot", c.Slot())
		}
	}
}

// outputPayload turns a command's stdout into the job's output: one trailing
// newline (LF or CRLF) trimmed; a JSON array or object as JSON, anything else as a string.
func outputPayload(out []byte) session.Payload {
	s, lf := strings.CutSuffix(string(out), "\n")
	if lf {
		s = strings.TrimSuffix(s, "\r") // CRLF, as Windows programs end lines
	}
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
		if p, err := session.RawJSON([]byte(t)); err == nil {
			return p
		}
	}
	return session.String(s)
}

// runEnv are the variables runOnce sets for each run of the command.
var runEnv = []string{EnvJobNumber, EnvStage, EnvStageName, EnvProject, EnvWorker, EnvSlot,
	EnvCheckpointFile, EnvResumed, EnvAttempt, EnvProgressFD, EnvProgressFile, EnvDataKind, EnvDataNull}

// dropEnv returns env without the variables named in names.
func dropEnv(env, names []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			out = append(out, kv)
		}
	}
	return out
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func lastLine(b []byte) string {
	s := strings.TrimRight(string(b), "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[len(s)-200:]
	}
	return s
}

// unsettled reports whether the journal holds work that only the tracker can
// settle: a pending completion, flag or bye (a held job can wait for the next
// start). A journal that cannot be read counts as unsettled.
func unsettled(path string) bool {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false // a new journal
	}
	db, err := journal.Open(path, &journal.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return true // OpenPool will say what is wrong
	}
	defer db.Close()
	states, err := db.States()
	if err != nil {
		return true
	}
	for _, st := range states {
		if st.Completion != nil || st.FlagPending || st.ByePending {
			return true
		}
	}
	return false
}
