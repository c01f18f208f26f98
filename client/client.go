package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/session"
)

// Client is one worker of a tracker, journaled in one slot of a journal.
//
// Its actions (NewJob, WaitForJob, CompleteJob, FlagInvalidData, Checkpoint,
// Bye) are serialised: the tracker misbehaves on concurrent calls from one
// token. Log, IsAlive, JobCount and the accessors may be called from any
// goroutine at any time. A Client owns a background goroutine (heartbeat and
// progress sender) until Close.
type Client struct {
	db       *journal.DB
	ownDB    bool
	conn     *session.Conn
	slot     string
	stage    string
	nickname string
	o        options
	log      *slog.Logger

	mu sync.Mutex // serialises the slot's actions

	// The slot's session (token, names) and held job (number, input,
	// checkpoint) are read from the journal's state (slotState), the one
	// copy: the journal keeps it in memory. smu guards what is not in the
	// journal: what this process learnt and has not recorded yet, its
	// intent, and its history. They are written with mu held too (except
	// gone and the lost signal, which the heartbeat sets), so an action
	// holding mu may read them without smu.
	smu         sync.RWMutex
	gone        bool   // the tracker no longer knows the token (found, not yet recorded)
	goneWhy     string // why gone was set
	wantSession bool   // false after Bye: the heartbeat does not register afresh
	resumedJob  int    // the job recovery handed back at Init (a fact of this run, not of the slot)
	lostJob     int    // job lost with the worker and not yet claimed past (for the error of the next action)
	payload     jobPayload
	lostCh      chan struct{}
	lostFired   bool
	lostCount   int
	report      replay.Report
	resubmitted []int
	refused     refusals // see refuse.go

	// progress is the last Log text with the generation of the job it was
	// logged for; gen counts the changes of the held job. Text logged for
	// another job than the one held now is never sent (see progressText).
	progress  atomic.Pointer[progressText]
	gen       atomic.Uint64
	kick      chan struct{} // a Log text is due (heartbeat.go)
	prog      progressTimer
	closed    atomic.Bool
	life      context.Context    // ends at Close: bounds the heartbeat and every action
	stop      context.CancelFunc // ends life
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// jobPayload is the held job's input decoded, kept so that Job does not
// decode (and validate) a large input on every call; wire is the input it
// was decoded from, which identifies it.
type jobPayload struct {
	number int
	wire   *string
	p      session.Payload
}

// Init registers a worker with the tracker at url for stage (a to e, either
// case), journaled, and returns its Client. It mirrors the upstream
// init(url, stage, nickname, verbose); see the Option functions for the
// rest.
//
// If the journal's slot holds work of an earlier run (the process crashed,
// was killed or lost its network), Init first recovers it with
// replay.Slot: pending completions, flags and bye are resent, a held job is
// resumed (Resumed and LastCheckpoint tell) or released (WithRelease), and
// the session is kept if the tracker still knows the worker, else a fresh
// one is registered. Report says what recovery did. If that earlier work
// belongs to another tracker URL or stage, it is settled against the
// recorded tracker and its session ended (bye) before the new registration;
// if it cannot be settled, Init fails rather than lose it.
//
// Errors: ErrInvalidStage, ErrStageDisabled, ErrInvalidArgument (a nickname
// over 128 characters, a bad URL or option), journal errors (another process
// holds the journal), and network errors after the retry policy gave up.
func Init(ctx context.Context, url, stage string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if h := hooks.From(ctx); h != nil {
		o.hook = h
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	db, own, err := o.openJournal()
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, db, o.slot, url, stage, o)
	if err != nil {
		if own {
			db.Close()
		}
		return nil, err
	}
	c.ownDB = own
	return c, nil
}

func newClient(ctx context.Context, db *journal.DB, slot, url, stage string, o options) (*Client, error) {
	st, err := session.NormalizeStage(stage)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if n := utf8.RuneCountInString(o.nickname); n > session.MaxNicknameLen {
		return nil, fmt.Errorf("client: %w: nickname of %d characters, over %d", ErrInvalidArgument, n, session.MaxNicknameLen)
	}
	log := o.logger.With(slog.String("slot", slot))
	conn, err := session.New(url, &session.Options{HTTPClient: o.httpClient, Logger: log, Retry: o.retry})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		db: db, conn: conn, slot: slot, stage: st, nickname: o.nickname, o: o, log: log,
		wantSession: true,
		lostCh:      make(chan struct{}),
		kick:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	c.life, c.stop = context.WithCancel(context.Background())
	c.progress.Store(&progressText{})
	if err := c.recover(ctx); err != nil {
		c.stop()
		return nil, err
	}
	if c.token() == "" {
		if err := c.register(ctx); err != nil {
			c.stop()
			return nil, err
		}
		if !c.report.Empty() {
			c.report.Reregistered = true
		}
	}
	go c.run(c.life)
	return c, nil
}

// recover replays the slot's unsettled work and adopts its session if it is
// still good for this tracker and stage.
func (c *Client) recover(ctx context.Context) error {
	st, err := c.db.State(c.slot)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if !replay.NeedsReplay(st) {
		return nil
	}
	same := st.Session != nil && sameURL(st.Session.URL, c.conn.URL()) && st.Session.Stage == c.stage
	ro := replay.Options{Logger: c.log, HTTPClient: c.o.httpClient, Retry: c.o.retry}
	if c.o.release {
		ro.Mode = replay.Release
	}
	if same {
		ro.Conn = c.conn
	} else {
		ro.Bye = true // settle against the recorded tracker, then end that session
	}
	if c.o.hook != nil {
		ro.Hook = func(p, op string) { c.o.hook(hooks.Point(p), op) }
	}
	rep, err := replay.Slot(ctx, c.db, c.slot, ro)
	c.report = rep
	if err != nil {
		if !same {
			return fmt.Errorf("client: slot %q holds unsettled work of another tracker or stage (%s); settle it (dcjournal replay) or use another slot (WithSlot): %w",
				c.slot, st.Session.URL, err)
		}
		return fmt.Errorf("client: recovering slot %q: %w", c.slot, err)
	}
	if st, err = c.db.State(c.slot); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if s := st.Session; s != nil && !same {
		return fmt.Errorf("client: slot %q still holds a session of %s after recovery", c.slot, s.URL)
	}
	if s := st.Session; s != nil {
		if j := st.Job; j != nil {
			c.resumedJob = j.Number
		}
		if st.Progress != "" {
			c.progress.Store(&progressText{gen: c.gen.Load(), text: st.Progress})
		}
		c.log.Info("resumed the journaled session", slog.String("display_name", s.DisplayName), slog.String("token", session.Redact(s.Token)))
	}
	return nil
}

// transient reports whether err is the tracker being unavailable: a
// transport error, a 5xx or 429 after the retry policy gave up.
func transient(err error) bool {
	var se *session.ServerError
	if errors.As(err, &se) {
		return se.Err == nil && (se.Status >= 500 || se.Status == http.StatusTooManyRequests)
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func sameURL(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

func (c *Client) append(e journal.Event) error {
	if e.Slot == "" {
		e.Slot = c.slot
	}
	if _, err := c.db.Append(e); err != nil {
		return notRecorded(err)
	}
	return nil
}

// notRecorded returns a journal write's error for the caller: wrapping
// ErrNotRecorded when the disk refused it (the journal stopped, or full).
func notRecorded(err error) error {
	if errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull) {
		return fmt.Errorf("client: %w: %w", ErrNotRecorded, err)
	}
	return fmt.Errorf("client: %w", err)
}

// ensureJournal reopens the journal if a failed write stopped it (see
// journal.DB.Reopen), so that the client goes on from what the file holds;
// if it cannot, the action fails with ErrNotRecorded and sends nothing.
// The caller holds mu.
func (c *Client) ensureJournal() error {
	cause := c.db.Stopped()
	if cause == nil {
		return nil
	}
	if err := c.db.Reopen(); err != nil {
		return notRecorded(err)
	}
	c.log.Info("journal reopened after a failed write; going on from what it holds",
		slog.String("path", c.db.Path()), slog.Bool("last_write_landed", c.db.Landed()), slog.Any("after", cause))
	return nil
}

// JournalHealth returns why the journal cannot be written now, or nil: the
// failure that stopped it (journal.ErrStopped; the next action reopens it),
// or a full disk or file (journal.ErrFull). The error wraps ErrNotRecorded.
// It writes nothing and is cheap (an open of the file for writing, and a
// statfs unless one was made in the last half second with room to spare:
// about 10 µs at most); a worker asks it before claiming, and to tell when
// the disk is back.
func (c *Client) JournalHealth() error {
	if err := c.db.Writable(); err != nil {
		if errors.Is(err, journal.ErrStopped) {
			// A reopen may bring it back: try it, under the action lock
			// (unless an action holds it: that action reopens).
			if !c.closed.Load() && c.mu.TryLock() {
				rerr := c.ensureJournal()
				c.mu.Unlock()
				if rerr != nil {
					return rerr
				}
				if err = c.db.Writable(); err == nil {
					return nil
				}
			}
		}
		return fmt.Errorf("client: %w: %w", ErrNotRecorded, err)
	}
	return nil
}

// appendDeferred records e with the journal's next commit; see the claim in
// claim for when that is safe.
func (c *Client) appendDeferred(e journal.Event) error {
	if e.Slot == "" {
		e.Slot = c.slot
	}
	if err := c.db.AppendDeferred(e); err != nil {
		return notRecorded(err)
	}
	return nil
}

func (c *Client) hook(p hooks.Point, op string) {
	if c.o.hook != nil {
		c.o.hook(p, op)
	}
}

// register registers a new worker and records it before the token is used.
// The caller holds mu.
func (c *Client) register(ctx context.Context) error {
	reg, err := c.conn.Register(ctx, c.nickname, c.stage)
	c.hook(hooks.AfterSend, "register")
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.append(journal.Event{Kind: journal.KindRegistered, URL: c.conn.URL(), Stage: c.stage, Nickname: c.nickname,
		Token: reg.Token, DisplayName: reg.DisplayName, Project: reg.Project, StageName: reg.StageName}); err != nil {
		return err
	}
	c.hook(hooks.AfterJournal, "register")
	c.smu.Lock()
	c.gone, c.goneWhy, c.wantSession = false, "", true
	if c.lostFired {
		c.lostCh, c.lostFired = make(chan struct{}), false
	}
	c.smu.Unlock()
	c.log.Info("registered with the tracker", slog.String("display_name", reg.DisplayName), slog.String("project", reg.Project),
		slog.String("stage", c.stage), slog.String("stage_name", reg.StageName), slog.String("token", session.Redact(reg.Token)))
	return nil
}

// markGone notes that the tracker no longer knows token and signals
// SessionLost. It records nothing: the next action does (recordLost).
func (c *Client) markGone(token, why string) {
	st := c.slotState()
	if token == "" || st.Session == nil || st.Session.Token != token {
		return // a loss of an older session: already recorded
	}
	c.fireLost(st.Session.DisplayName, why)
}

// fireLost marks the session gone and signals SessionLost, once per
// session.
func (c *Client) fireLost(name, why string) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.gone {
		return
	}
	c.gone, c.goneWhy = true, why
	close(c.lostCh)
	c.lostFired = true
	c.lostCount++
	c.log.Warn("the tracker lost the worker (timed out?)", slog.String("display_name", name), slog.String("reason", why))
}

func (c *Client) isGone() bool {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.gone
}

// recordLost records the loss of the session: the held job is gone and a
// pending completion becomes an orphan. The caller holds mu.
func (c *Client) recordLost(why string) error {
	token := c.token()
	if token == "" {
		return nil
	}
	c.markGone(token, why)
	if c.goneWhy != "" {
		why = c.goneWhy
	}
	lost := c.heldNumber()
	if err := c.append(journal.Event{Kind: journal.KindSessionLost, Reason: why}); err != nil {
		return err
	}
	c.forgetSession(lost)
	return nil
}

// forgetSession clears what memory knew of a session whose loss is now
// recorded; lost is the job held when it was lost (0 if none).
func (c *Client) forgetSession(lost int) {
	c.smu.Lock()
	if lost != 0 {
		c.lostJob = lost
		c.log.Warn("the job was lost with the worker; the tracker re-opened it", slog.Int("job", lost))
	}
	c.gone, c.goneWhy = false, ""
	c.smu.Unlock()
	c.clearProgress()
}

// slotState returns the slot's state as the journal has it: the one copy
// of the session and the held job (journal.DB.State reads it from memory).
// A journal that cannot be read (closed) reads as an empty slot.
func (c *Client) slotState() journal.State {
	st, err := c.db.State(c.slot)
	if err != nil {
		return journal.State{Slot: c.slot}
	}
	return st
}

// token is the session's token, "" when the slot has no open session.
func (c *Client) token() string {
	if s := c.slotState().Session; s != nil {
		return s.Token
	}
	return ""
}

// held is the held job, nil if none.
func (c *Client) held() *journal.Job { return c.slotState().Job }

// heldNumber is the held job's number, 0 if none.
func (c *Client) heldNumber() int {
	if j := c.held(); j != nil {
		return j.Number
	}
	return 0
}

// ensureSession records a detected loss and registers afresh if the slot
// has no session. The caller holds mu.
func (c *Client) ensureSession(ctx context.Context) error {
	if c.isGone() {
		if err := c.recordLost(""); err != nil {
			return err
		}
	}
	if c.token() == "" {
		return c.register(ctx)
	}
	return nil
}

// claimed notes in memory that a new job is held: it was not resumed, and
// no lost job is to be reported any more.
func (c *Client) claimed() {
	c.smu.Lock()
	c.lostJob, c.resumedJob = 0, 0
	c.smu.Unlock()
	c.clearProgress()
}

// progressText is a Log text and the job generation it belongs to.
type progressText struct {
	gen  uint64
	text string
}

// clearProgress marks the last Log text stale: the held job changed (a
// claim, a completion, a flag, a release, a loss), so the dashboard must not
// go on showing it.
func (c *Client) clearProgress() { c.gen.Add(1) }

// progressText returns the text the tracker should show for this worker
// now: the last Log text if it was logged for the job held now, else what
// the worker is doing.
func (c *Client) progressText() string {
	p := c.progress.Load()
	if p.gen == c.gen.Load() && p.text != "" {
		return p.text
	}
	if n := c.heldNumber(); n != 0 {
		return fmt.Sprintf("working on job %d", n)
	}
	return "waiting for a job"
}

// lock takes the action lock, refusing a closed client.
func (c *Client) lock() error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// begin takes the action lock and bounds ctx by the client's life: Close
// cancels an action in flight instead of waiting for its retries to give
// up. Nothing is lost by that: an action's record is durable before its
// request leaves, and whatever was not settled is resent later. end
// releases the lock.
func (c *Client) begin(ctx context.Context) (_ context.Context, end func(), err error) {
	if err := c.lock(); err != nil {
		return nil, nil, err
	}
	if err := c.ensureJournal(); err != nil {
		c.mu.Unlock()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.life, cancel)
	return ctx, func() {
		stop()
		cancel()
		c.mu.Unlock()
	}, nil
}

// noJobError is the error of an action that needs a held job when there is
// none: ErrWorkerGone if the job was lost with the worker.
func (c *Client) noJobError(op string) error {
	if c.lostJob != 0 {
		return fmt.Errorf("client: %s: job %d: %w: the job was lost with the worker and re-opened by the tracker", op, c.lostJob, ErrWorkerGone)
	}
	return fmt.Errorf("client: %s: %w", op, ErrNoJobHeld)
}

// JobCount returns the number of open jobs at the client's stage. It does
// not keep the worker alive.
func (c *Client) JobCount(ctx context.Context) (int, error) {
	n, err := c.conn.JobCount(ctx, c.stage)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return n, nil
}

// NewJob gives the program a job to work on; Job, JobID, HasJob (and
// Resumed, LastCheckpoint) then describe it. It returns an error wrapping
// ErrNoJobs when the stage has no open job (the upstream ZeroJobError).
//
// A job the worker already holds is handed back as it is, without a
// request: the job resumed after a crash (Resumed, LastCheckpoint), or one
// the program did not complete, flag or release. NewJob never releases a
// held job; call Release to give it up. So the loop NewJob (or WaitForJob),
// work, CompleteJob resumes where the program was killed.
//
// Otherwise it claims one. Before claiming it settles a completion or flag
// left unconfirmed by an earlier call (the tracker's newJob would release
// the job they belong to) and fails if it cannot. If the worker was lost,
// NewJob registers afresh and claims with the new worker. If the job
// claimed is one whose output was orphaned (see WithResubmitOrphans), that
// output is submitted and another job claimed.
func (c *Client) NewJob(ctx context.Context) error {
	ctx, end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return c.claim(ctx)
}

func (c *Client) claim(ctx context.Context) error {
	if err := c.settlePending(ctx); err != nil {
		return fmt.Errorf("client: newJob: not claiming while an earlier action is unconfirmed: %w", err)
	}
	if n := c.heldNumber(); n != 0 {
		c.log.Info("handing back the held job", slog.Int("job", n), slog.Bool("resumed", c.Resumed()))
		return nil
	}
	// Take on no job whose completion could not be recorded.
	if err := c.db.Writable(); err != nil {
		return fmt.Errorf("client: newJob: not claiming a job whose completion could not be recorded: %w: %w", ErrNotRecorded, err)
	}
	retried, refusals := false, 0
	for {
		if err := c.ensureSession(ctx); err != nil {
			return err
		}
		token := c.token()
		job, err := c.conn.NewJob(ctx, token)
		c.hook(hooks.AfterSend, "claim")
		if errors.Is(err, ErrWorkerGone) && !retried {
			retried = true
			c.markGone(token, "newJob answered 404: the worker timed out")
			if err := c.recordLost(""); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if handled, err := c.refuse(ctx, job, err, &refusals); handled {
				if err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("client: %w", err)
		}
		wire := job.Data.Wire()
		// The claim is deferred: written with the next commit (this job's
		// checkpoint or completion-pending, or the journal's flusher within
		// its ProgressInterval), so a job cycle costs two commits, not
		// three. Losing it in a crash is safe: the tracker holds the job
		// for this token and the worker's next newJob releases it (the
		// held job is not in the journal, so recovery neither resumes nor
		// completes it; it is done again). Anything recorded about the job
		// (checkpoint, completion-pending, flag) is written in the same
		// commit as the claim or after it, so it always finds the claim.
		// journal.State includes the deferred claim at once.
		if err := c.appendDeferred(journal.Event{Kind: journal.KindClaimed, Job: job.Number, Input: wire}); err != nil {
			return err
		}
		c.claimed()
		c.smu.Lock()
		c.payload = jobPayload{number: job.Number, wire: wire, p: job.Data} // decoded already
		c.smu.Unlock()
		if c.o.resubmit {
			o, ok, err := c.findOrphan(job.Number, wire)
			if err != nil {
				return err
			}
			if ok {
				if err := c.resubmit(ctx, o); err != nil {
					return err
				}
				continue
			}
		}
		c.log.Info("claimed a job", slog.Int("job", job.Number))
		return nil
	}
}

func (c *Client) findOrphan(job int, input *string) (journal.Orphan, bool, error) {
	orphans, err := c.db.Orphans()
	if err != nil {
		return journal.Orphan{}, false, fmt.Errorf("client: %w", err)
	}
	o, ok := replay.MatchOrphan(orphans, c.stage, job, input)
	return o, ok, nil
}

// resubmit completes the held job with an orphan's output. The caller holds
// mu and the held job is the orphan's.
func (c *Client) resubmit(ctx context.Context, o journal.Orphan) error {
	n := c.heldNumber()
	out := o.Output
	if err := c.append(journal.Event{Kind: journal.KindCompletionPending, Job: n, Output: &out}); err != nil {
		return err
	}
	c.clearProgress()
	if err := c.append(journal.Event{Slot: o.Slot, Kind: journal.KindOrphanResolved, OrphanSeq: o.Seq, Outcome: journal.OutcomeResubmitted,
		Reason: fmt.Sprintf("job %d claimed again by slot %s", n, c.slot)}); err != nil {
		return err
	}
	c.hook(hooks.AfterJournal, "complete")
	settled, err := c.sendCompletion(ctx, n, false)
	if err != nil && !settled {
		return err
	}
	if err == nil {
		c.smu.Lock()
		c.resubmitted = append(c.resubmitted, n)
		c.smu.Unlock()
		c.log.Info("submitted the orphaned output of a job claimed again instead of redoing it", slog.Int("job", n), slog.Uint64("orphan_seq", o.Seq))
	}
	return nil
}

// settlePending resends a completion or flag recorded and not confirmed
// (every send here is a resend: an earlier attempt may have been applied).
// It fails if one stays unconfirmed. The caller holds mu.
func (c *Client) settlePending(ctx context.Context) error {
	if c.isGone() {
		if err := c.recordLost(""); err != nil {
			return err
		}
	}
	st, err := c.db.State(c.slot)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if p := st.Completion; p != nil {
		if settled, err := c.sendCompletion(ctx, p.Job.Number, true); !settled {
			return err
		}
	}
	if st.FlagPending && st.Job != nil && st.Session != nil {
		if settled, err := c.sendFlag(ctx, st.Job.Number, true); !settled {
			return err
		}
	}
	if st.ByePending && st.Session != nil {
		return c.sendBye(ctx)
	}
	return nil
}

// CompleteJob marks the held job done, submitting output as the input of
// the next stage's workers. output is a string (sent as is), a
// session.Payload or json.RawMessage, or anything that JSON-encodes to an
// array or object (sent as "<!json!>" + JSON), as in the upstream client.
//
// The output is recorded durably in the journal before it is sent. Errors:
//   - nil: accepted (or applied by an earlier attempt whose answer was lost).
//   - ErrWorkerGone: the worker had timed out and its job was re-opened; the
//     output is kept in the journal as an orphan, submitted if the job is
//     claimed again; the client registers afresh.
//   - ErrNoJobHeld: no job held (nothing recorded).
//   - ErrInvalidArgument: output refused before anything was recorded.
//   - ErrNotRecorded: the disk refused the record (full, read-only,
//     failing): nothing was sent; keep the output and call again later (the
//     client reopens its journal by itself).
//   - another error (network down after the retry policy gave up, ctx
//     done): the completion stays pending in the journal, is resent by the
//     next CompleteJob, NewJob or Bye (or on restart) before any claim.
//     Calling CompleteJob again resends the recorded output (its argument
//     is then ignored).
func (c *Client) CompleteJob(ctx context.Context, output any) error {
	p, perr := toPayload(output)
	ctx, end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	st, err := c.db.State(c.slot)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if pend := st.Completion; pend != nil {
		if c.isGone() {
			return c.orphanPending(pend.Job.Number)
		}
		_, err := c.sendCompletion(ctx, pend.Job.Number, true)
		return err
	}
	if st.FlagPending && st.Job != nil && st.Session != nil {
		// An unconfirmed flag of the held job: settle it first (if it was
		// applied, the job is no longer held).
		if settled, err := c.sendFlag(ctx, st.Job.Number, true); !settled {
			return fmt.Errorf("client: completeJob: a flag of the job is unconfirmed: %w", err)
		}
		st = c.slotState()
	}
	if st.Job == nil {
		return c.noJobError("completeJob")
	}
	if perr != nil {
		return perr
	}
	n := st.Job.Number
	if err := c.append(journal.Event{Kind: journal.KindCompletionPending, Job: n, Output: p.Wire()}); err != nil {
		return err
	}
	c.clearProgress()
	c.hook(hooks.AfterJournal, "complete")
	if c.isGone() {
		return c.orphanPending(n)
	}
	_, err = c.sendCompletion(ctx, n, false)
	return err
}

// orphanPending records the loss of the session found gone before the
// pending completion was sent: its output becomes an orphan.
func (c *Client) orphanPending(n int) error {
	if err := c.recordLost(""); err != nil {
		return err
	}
	return fmt.Errorf("client: completeJob: job %d: %w; %w, submitted if the job is claimed again", n, ErrWorkerGone, ErrOrphaned)
}

// settle sends the slot's pending op through replay.Settle (the one place
// that maps the tracker's answers to outcomes and records them) and brings
// the client's memory in line with what was recorded. resend says an
// earlier attempt may have reached the tracker. The caller holds mu.
func (c *Client) settle(ctx context.Context, op replay.Op, resend bool) (replay.Settled, error) {
	// The display name and the held job, for a loss (DisplayName and
	// heldNumber would read the state twice).
	st := c.slotState()
	name, lost := "", 0
	if st.Session != nil {
		name = st.Session.DisplayName
	}
	if st.Job != nil {
		lost = st.Job.Number
	}
	res, err := replay.Settle(ctx, c.db, c.conn, c.slot, op, resend, func(op string) { c.hook(hooks.AfterSend, op) })
	if err != nil {
		if errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull) {
			// Sent, but the tracker's answer could not be recorded: the
			// action stays pending in the journal and is resent.
			return res, fmt.Errorf("client: %s: %w: the tracker's answer could not be recorded: %w", op, ErrUnconfirmed, err)
		}
		return res, fmt.Errorf("client: %s: %w", op, err)
	}
	switch o := res.Outcome; {
	case o == replay.WorkerGone:
		// Settle recorded the loss; the held job went with the worker.
		c.fireLost(name, res.Err.Error())
		c.forgetSession(lost)
	case op == replay.OpFlag && o != replay.Unsettled && o != replay.Refused,
		op == replay.OpBye && o.Settled():
		c.clearProgress() // the job is no longer held
	}
	return res, nil
}

// sendCompletion settles the recorded pending completion of job n; see
// settle. settled reports whether the completion is no longer pending; err
// is nil only if the output was accepted (now or by an earlier attempt).
// The caller holds mu.
func (c *Client) sendCompletion(ctx context.Context, n int, resend bool) (settled bool, err error) {
	res, err := c.settle(ctx, replay.OpComplete, resend)
	if err != nil {
		return false, err
	}
	switch res.Outcome {
	case replay.Accepted:
		c.log.Info("job completed", slog.Int("job", n))
		return true, nil
	case replay.AppliedEarlier:
		c.log.Info("job completed (by an earlier attempt whose answer was lost)", slog.Int("job", n))
		return true, nil
	case replay.WorkerGone:
		return true, fmt.Errorf("client: completeJob: job %d: %w; %w, submitted if the job is claimed again", n, ErrWorkerGone, ErrOrphaned)
	case replay.Orphaned:
		return true, fmt.Errorf("client: completeJob: job %d: the tracker refused the completion (%w); %w", n, res.Err, ErrOrphaned)
	}
	return false, fmt.Errorf("client: completeJob: job %d: %w before the next claim: %w", n, ErrUnconfirmed, res.Err)
}

// FlagInvalidData reports the held job's input as invalid; the tracker
// re-opens the job (after 5 flags at one stage, at the previous stage).
// The flag is recorded durably before it is sent.
//
// Errors: ErrNoJobHeld; ErrWorkerGone (the job was lost with the worker);
// a *ValidationError when the tracker refused the flag (the upstream
// tracker does so on the 5th flag of a job at stage b): nothing was
// recorded there, the job is still held by this worker, which stays usable
// (complete the job, claim another with NewJob, or Bye); another error (not
// confirmed): the flag stays pending and is resent before the next claim.
func (c *Client) FlagInvalidData(ctx context.Context) error {
	ctx, end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	j := c.held()
	if j == nil {
		return c.noJobError("flagInvalidData")
	}
	n := j.Number
	if c.isGone() {
		if err := c.recordLost(""); err != nil {
			return err
		}
		return c.noJobError("flagInvalidData")
	}
	st, err := c.db.State(c.slot)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	resend := st.FlagPending
	if !resend {
		if err := c.append(journal.Event{Kind: journal.KindFlagPending, Job: n}); err != nil {
			return err
		}
		c.hook(hooks.AfterJournal, "flag")
	}
	_, err = c.sendFlag(ctx, n, resend)
	return err
}

// sendFlag settles the recorded pending flag of job n; see sendCompletion.
// The caller holds mu.
func (c *Client) sendFlag(ctx context.Context, n int, resend bool) (settled bool, err error) {
	res, err := c.settle(ctx, replay.OpFlag, resend)
	if err != nil {
		return false, err
	}
	switch res.Outcome {
	case replay.Accepted:
		c.log.Info("job flagged as invalid", slog.Int("job", n))
		return true, nil
	case replay.AppliedEarlier:
		c.log.Info("job flagged as invalid (by an earlier attempt whose answer was lost)", slog.Int("job", n))
		return true, nil
	case replay.WorkerGone:
		return true, c.noJobError("flagInvalidData")
	case replay.Orphaned:
		return true, fmt.Errorf("client: flagInvalidData: job %d: the tracker says this worker holds no job: %w", n, res.Err)
	case replay.Refused:
		return true, fmt.Errorf("client: flagInvalidData: job %d: the tracker failed to record the flag and still assigns the job to this worker "+
			"(the upstream tracker does this on a job's 5th flag at stage b); complete the job, release it or say bye: %w", n, res.Err)
	}
	return false, fmt.Errorf("client: flagInvalidData: job %d: %w before the next claim: %w", n, ErrUnconfirmed, res.Err)
}

// Release hands the held job back to the tracker, which re-opens it for
// other workers; use it for a job the program will not complete or flag.
// The tracker has no release call, so Release says bye (recorded before it
// is sent, like Bye): the bye re-opens the job and ends the worker, and the
// client registers a fresh worker at once (the heartbeat) or at the next
// action. A pending flag of the job is settled first (if it was applied,
// the job is already released). Errors: ErrNoJobHeld, ErrWorkerGone (the
// job was lost with the worker: the tracker re-opened it already), and
// those of Bye; a release not confirmed is resent on the next start.
func (c *Client) Release(ctx context.Context) error {
	ctx, end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if c.held() == nil {
		return c.noJobError("release")
	}
	if err := c.settlePending(ctx); err != nil {
		return fmt.Errorf("client: release: not released, an earlier action is unconfirmed: %w", err)
	}
	n := c.heldNumber()
	if n == 0 {
		return c.noJobError("release") // a flag applied, or the worker lost
	}
	if err := c.append(journal.Event{Kind: journal.KindByePending}); err != nil {
		return err
	}
	c.hook(hooks.AfterJournal, "bye")
	if err := c.sendBye(ctx); err != nil {
		return fmt.Errorf("client: release: job %d: %w", n, err)
	}
	c.log.Info("job released", slog.Int("job", n))
	return nil
}

// RecordFailure records in the journal that an attempt at the held job
// failed, and why (dcjournal inspect shows it). It sends nothing and changes
// nothing else: the job stays held. Errors: ErrNoJobHeld, journal errors.
func (c *Client) RecordFailure(reason string) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	n := c.heldNumber()
	if n == 0 {
		return c.noJobError("recordFailure")
	}
	return c.append(journal.Event{Kind: journal.KindFailed, Job: n, Reason: reason})
}

// RecordDrain records in the journal that the worker stops claiming on
// purpose, and why (a signal, a cloud preemption notice), so that a
// post-mortem tells a clean stop from a crash. It sends nothing, changes
// nothing else, and may be called while an action runs. Errors: journal
// errors.
func (c *Client) RecordDrain(reason string) error {
	return c.append(journal.Event{Kind: journal.KindDrained, Reason: reason})
}

// Checkpoint records data as the held job's resume data, durably. If the
// process stops before the job is completed, the next Init resumes the job
// and LastCheckpoint returns the last data recorded. Nothing is sent to the
// tracker. Errors: ErrNoJobHeld, ErrWorkerGone (job lost with the worker),
// journal errors.
func (c *Client) Checkpoint(ctx context.Context, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	n := c.heldNumber()
	if n == 0 {
		return c.noJobError("checkpoint")
	}
	if err := c.append(journal.Event{Kind: journal.KindCheckpoint, Job: n, Checkpoint: data}); err != nil {
		return err
	}
	c.hook(hooks.AfterJournal, "checkpoint")
	return nil
}

// Log records progress text, shown on the tracker's dashboard (cut to 255
// characters, the most the tracker accepts). It returns at once whatever the
// network and the disk do: the text goes to the journal's in-memory buffer
// (journal.AppendProgress) and is sent by the background goroutine half a
// second later, latest wins: text that a newer Log, a completion, a flag or
// a release supersedes before then is not sent.
func (c *Client) Log(text string) {
	if utf8.RuneCountInString(text) > session.MaxProgressLen {
		text = cutRunes(text, session.MaxProgressLen)
	}
	c.progress.Store(&progressText{gen: c.gen.Load(), text: text})
	if !c.closed.Load() {
		c.db.AppendProgress(c.slot, text)
	}
	c.logged()
}

func cutRunes(s string, n int) string {
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// IsAlive reports whether the client has a live worker at the tracker
// (validateWorker). It answers false after Bye, and when the tracker lost
// the worker (timed out) while it held a job, until the program's next
// action records the loss. A worker lost while holding no job is replaced
// at once: the client registers afresh (SessionLost fires) and IsAlive
// answers true, so a loop `for c.IsAlive(ctx)` runs until Bye.
func (c *Client) IsAlive(ctx context.Context) (bool, error) {
	st := c.slotState()
	c.smu.RLock()
	gone, want := c.gone, c.wantSession
	c.smu.RUnlock()
	token, hasJob := "", st.Job != nil
	if st.Session != nil {
		token = st.Session.Token
	}
	if token != "" && !gone {
		alive, err := c.conn.IsAlive(ctx, token)
		if err != nil {
			return false, fmt.Errorf("client: %w", err)
		}
		if alive {
			return true, nil
		}
		c.markGone(token, "validateWorker answered False")
	}
	if !want || hasJob || c.closed.Load() {
		return false, nil
	}
	if err := c.lock(); err != nil {
		return false, nil
	}
	defer c.mu.Unlock()
	if c.held() != nil || !c.wantSession {
		return false, nil
	}
	if err := c.ensureSession(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// WaitForJob claims a job, waiting while the stage has none or the tracker
// is unavailable: it claims again after a wait that doubles from
// WithWaitBackoff's min to its max, with jitter. The heartbeat keeps the
// worker alive meanwhile (polling newJob on an empty queue does not). It
// returns nil once a job is held, ctx's error when ctx ends, or NewJob's
// other errors (invalid argument, journal errors, an answer the protocol
// does not foresee).
func (c *Client) WaitForJob(ctx context.Context) error {
	wait := c.o.waitMin
	for {
		err := c.NewJob(ctx)
		noJobs := errors.Is(err, ErrNoJobs)
		retry := noJobs || transient(err)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil && retry && !errors.Is(err, ctx.Err()):
			// The answer came just as ctx ended: the caller asked to
			// stop, so it is told why it stopped, not that the stage
			// was empty at that instant.
			return fmt.Errorf("client: waitForJob: %w", ctx.Err())
		case ctx.Err() != nil || !retry:
			return err
		case !noJobs:
			c.log.Warn("tracker unavailable; waiting", slog.String("err", err.Error()))
		}
		d := wait/2 + rand.N(wait+1)
		if d > c.o.waitMax {
			d = c.o.waitMax
		}
		c.log.Debug("no jobs; waiting", slog.Duration("wait", d))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("client: waitForJob: %w", ctx.Err())
		case <-c.life.Done():
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		wait = min(wait*2, c.o.waitMax)
	}
}

// Bye removes the worker from the tracker, which re-opens the job it held.
// An unconfirmed completion or flag is settled first; if it cannot be, Bye
// fails without saying bye (that would re-open the job of a completion that
// may be pending). The bye is recorded before it is sent; if it is not
// confirmed, it is resent on the next start. After Bye the client has no
// worker and IsAlive answers false; NewJob or WaitForJob would register a
// new one. Close still has to be called.
func (c *Client) Bye(ctx context.Context) error {
	ctx, end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if err := c.settlePending(ctx); err != nil {
		return fmt.Errorf("client: bye: not said, an earlier action is unconfirmed: %w", err)
	}
	c.smu.Lock()
	c.wantSession = false
	c.smu.Unlock()
	if c.isGone() {
		return c.recordLost("")
	}
	if c.token() == "" {
		return nil
	}
	if err := c.append(journal.Event{Kind: journal.KindByePending}); err != nil {
		return err
	}
	c.hook(hooks.AfterJournal, "bye")
	return c.sendBye(ctx)
}

// sendBye settles the recorded pending bye: the session is then closed
// and the held job, if any, re-opened by the tracker. The caller holds mu.
func (c *Client) sendBye(ctx context.Context) error {
	name := c.DisplayName()
	res, err := c.settle(ctx, replay.OpBye, false)
	if err != nil {
		return err
	}
	if !res.Outcome.Settled() {
		return fmt.Errorf("client: bye: %w on the next start: %w", ErrUnconfirmed, res.Err)
	}
	c.log.Info("said bye to the tracker", slog.String("display_name", name))
	return nil
}

// Close stops the client's background goroutine and, unless it was given
// to it open (a test seam) or belongs to a Pool, closes the journal (flushing
// buffered progress). An action in flight is cancelled, not waited for: it
// returns an error wrapping context.Canceled, and what it recorded stays in
// the journal (a completion or flag not confirmed is resent on the next
// start), so Close returns promptly whatever the network does. It does not
// say bye: the session stays in the journal and the next Init resumes it.
// Close is idempotent; later actions return ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.stop != nil {
			c.stop()
			<-c.done
		}
		c.mu.Lock() // wait for the cancelled action to return
		defer c.mu.Unlock()
		if c.ownDB {
			c.closeErr = c.db.Close()
		}
	})
	return c.closeErr
}

// Job returns the held job's data: a string, JSON (see session.Payload) or
// null (what the upstream tracker serves at stage b and later). Null if no
// job is held.
func (c *Client) Job() session.Payload {
	j := c.held()
	if j == nil {
		return session.Null()
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.payload.number == j.Number && c.payload.wire != nil && j.Input != nil && *c.payload.wire == *j.Input ||
		c.payload.number == j.Number && c.payload.wire == nil && j.Input == nil {
		return c.payload.p
	}
	p, err := session.Decode(j.Input)
	if err != nil {
		p = session.String(*j.Input) // kept as the tracker sent it
	}
	c.payload = jobPayload{number: j.Number, wire: j.Input, p: p}
	return p
}

// JobID returns the held job's number (0 if none).
func (c *Client) JobID() int { return c.heldNumber() }

// HasJob reports whether a job is held.
func (c *Client) HasJob() bool { return c.held() != nil }

// Resumed reports whether the held job was handed back by recovery at Init
// (claimed by an earlier run of the program).
func (c *Client) Resumed() bool {
	n := c.heldNumber()
	c.smu.RLock()
	defer c.smu.RUnlock()
	return n != 0 && n == c.resumedJob
}

// LastCheckpoint returns the held job's last checkpoint (nil if none).
func (c *Client) LastCheckpoint() []byte {
	if j := c.held(); j != nil {
		return j.Checkpoint // a copy: the journal's State shares nothing
	}
	return nil
}

// DisplayName returns the worker's display name on the tracker ("" while
// the client has no worker: after Bye, or a loss not yet replaced).
func (c *Client) DisplayName() string {
	if s := c.slotState().Session; s != nil {
		return s.DisplayName
	}
	return ""
}

// Project returns the tracker's project name.
func (c *Client) Project() string {
	if s := c.slotState().Session; s != nil {
		return s.Project
	}
	return ""
}

// StageName returns the name of the worker's stage, such as "CPU".
func (c *Client) StageName() string {
	if s := c.slotState().Session; s != nil {
		return s.StageName
	}
	return ""
}

// Stage returns the worker's stage letter (a to e).
func (c *Client) Stage() string { return c.stage }

// Slot returns the client's journal slot.
func (c *Client) Slot() string { return c.slot }

// Report returns what recovery did at Init (empty if there was nothing to
// recover).
func (c *Client) Report() replay.Report {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.report
}

// Resubmitted returns the jobs whose orphaned output this client submitted
// when it claimed them again.
func (c *Client) Resubmitted() []int {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return append([]int(nil), c.resubmitted...)
}

// SessionLost returns a channel closed when the client finds that the
// tracker lost its worker (timed out: by the heartbeat's liveness check or
// an answer 404). After the client registers afresh, SessionLost returns a
// new channel for the new worker. Use it to abandon a job early: its
// completion would be refused (ErrWorkerGone).
func (c *Client) SessionLost() <-chan struct{} {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.lostCh
}

// SessionsLost returns how many times the tracker lost this client's worker.
func (c *Client) SessionsLost() int {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.lostCount
}
