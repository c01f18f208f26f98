package client

import (
	"bytes"
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

	// smu guards the fields below. They are written with mu held too
	// (except gone and the lost signal, which the heartbeat sets), so an
	// action holding mu may read them without smu.
	smu         sync.RWMutex
	token       string // "" = no session
	displayName string
	project     string
	stageName   string
	gone        bool   // the tracker no longer knows token (not yet recorded)
	goneWhy     string // why gone was set
	wantSession bool   // false after Bye: the heartbeat does not register afresh
	job         *heldJob
	lostJob     int // job lost with the worker and not yet claimed past
	lostCh      chan struct{}
	lostFired   bool
	lostCount   int
	report      replay.Report
	resubmitted []int
	refused     refusals // see refuse.go

	progress  atomic.Pointer[string]
	kick      chan struct{}
	closed    atomic.Bool
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type heldJob struct {
	number     int
	data       session.Payload
	checkpoint []byte
	resumed    bool
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
	empty := ""
	c.progress.Store(&empty)
	if err := c.recover(ctx); err != nil {
		return nil, err
	}
	if c.token == "" {
		if err := c.register(ctx); err != nil {
			return nil, err
		}
		if !c.report.Empty() {
			c.report.Reregistered = true
		}
	}
	hctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go c.run(hctx)
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
		ro.Hook = func(p, op string) { c.o.hook(Point(p), op) }
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
	if s := st.Session; s != nil && !st.Closed && same {
		c.token, c.displayName, c.project, c.stageName = s.Token, s.DisplayName, s.Project, s.StageName
		if j := st.Job; j != nil {
			data, err := session.Decode(j.Input)
			if err != nil && j.Input != nil {
				data = session.String(*j.Input)
			}
			c.job = &heldJob{number: j.Number, data: data, checkpoint: bytes.Clone(j.Checkpoint), resumed: true}
		}
		if st.Progress != "" {
			p := st.Progress
			c.progress.Store(&p)
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
		return fmt.Errorf("client: journal: %w", err)
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
		return fmt.Errorf("client: journal: %w", err)
	}
	return nil
}

func (c *Client) hook(p Point, op string) {
	if c.o.hook != nil {
		c.o.hook(p, op)
	}
}

// register registers a new worker and records it before the token is used.
// The caller holds mu.
func (c *Client) register(ctx context.Context) error {
	reg, err := c.conn.Register(ctx, c.nickname, c.stage)
	c.hook(PointAfterSend, "register")
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.append(journal.Event{Kind: journal.KindRegistered, URL: c.conn.URL(), Stage: c.stage, Nickname: c.nickname,
		Token: reg.Token, DisplayName: reg.DisplayName, Project: reg.Project, StageName: reg.StageName}); err != nil {
		return err
	}
	c.hook(PointAfterJournal, "register")
	c.smu.Lock()
	c.token, c.displayName, c.project, c.stageName = reg.Token, reg.DisplayName, reg.Project, reg.StageName
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
	c.smu.Lock()
	defer c.smu.Unlock()
	if token == "" || c.token != token || c.gone {
		return
	}
	c.gone, c.goneWhy = true, why
	close(c.lostCh)
	c.lostFired = true
	c.lostCount++
	c.log.Warn("the tracker lost the worker (timed out?)", slog.String("display_name", c.displayName), slog.String("reason", why))
}

func (c *Client) isGone() bool {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.gone
}

// recordLost records the loss of the session: the held job is gone and a
// pending completion becomes an orphan. The caller holds mu.
func (c *Client) recordLost(why string) error {
	if c.token == "" {
		return nil
	}
	c.markGone(c.token, why)
	if c.goneWhy != "" {
		why = c.goneWhy
	}
	if err := c.append(journal.Event{Kind: journal.KindSessionLost, Reason: why}); err != nil {
		return err
	}
	c.smu.Lock()
	if c.job != nil {
		c.lostJob = c.job.number
		c.log.Warn("the job was lost with the worker; the tracker re-opened it", slog.Int("job", c.job.number))
	}
	c.token, c.gone, c.goneWhy, c.job = "", false, "", nil
	c.smu.Unlock()
	return nil
}

// ensureSession records a detected loss and registers afresh if the slot
// has no session. The caller holds mu.
func (c *Client) ensureSession(ctx context.Context) error {
	if c.isGone() {
		if err := c.recordLost(""); err != nil {
			return err
		}
	}
	if c.token == "" {
		return c.register(ctx)
	}
	return nil
}

func (c *Client) setJob(j *heldJob) {
	c.smu.Lock()
	c.job = j
	if j != nil {
		c.lostJob = 0
	}
	c.smu.Unlock()
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

// NewJob claims a job; Job, JobID and HasJob then describe it. It returns
// an error wrapping ErrNoJobs when the stage has no open job (the upstream
// ZeroJobError).
//
// Before claiming it settles a completion or flag left unconfirmed by an
// earlier call (a claim would release the job they belong to) and fails if
// it cannot. A job held and not completed is released (the tracker's newJob
// releases it anyway; it is recorded). If the worker was lost, NewJob
// registers afresh and claims with the new worker. If the job claimed is one
// whose output was orphaned (see WithResubmitOrphans), that output is
// submitted and another job claimed.
func (c *Client) NewJob(ctx context.Context) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	return c.claim(ctx)
}

func (c *Client) claim(ctx context.Context) error {
	if err := c.settlePending(ctx); err != nil {
		return fmt.Errorf("client: newJob: not claiming while an earlier action is unconfirmed: %w", err)
	}
	retried, refusals := false, 0
	for {
		if err := c.ensureSession(ctx); err != nil {
			return err
		}
		if c.job != nil {
			if err := c.append(journal.Event{Kind: journal.KindReleased, Job: c.job.number, Reason: "newJob releases the held job"}); err != nil {
				return err
			}
			c.log.Info("job released by a new claim", slog.Int("job", c.job.number))
			c.setJob(nil)
		}
		token := c.token
		job, err := c.conn.NewJob(ctx, token)
		c.hook(PointAfterSend, "claim")
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
		held := &heldJob{number: job.Number, data: job.Data}
		if c.o.resubmit {
			o, ok, err := c.findOrphan(job.Number, wire)
			if err != nil {
				return err
			}
			if ok {
				c.setJob(held)
				if err := c.resubmit(ctx, o); err != nil {
					return err
				}
				continue
			}
		}
		c.setJob(held)
		c.log.Info("claimed a job", slog.Int("job", job.Number))
		return nil
	}
}

func (c *Client) findOrphan(job int, input *string) (journal.Orphan, bool, error) {
	orphans, err := c.db.Orphans()
	if err != nil {
		return journal.Orphan{}, false, fmt.Errorf("client: journal: %w", err)
	}
	o, ok := replay.MatchOrphan(orphans, c.stage, job, input)
	return o, ok, nil
}

// resubmit completes the held job with an orphan's output. The caller holds
// mu and the held job is the orphan's.
func (c *Client) resubmit(ctx context.Context, o journal.Orphan) error {
	n := c.job.number
	out := o.Output
	if err := c.append(journal.Event{Kind: journal.KindCompletionPending, Job: n, Output: &out}); err != nil {
		return err
	}
	c.setJob(nil)
	if err := c.append(journal.Event{Slot: o.Slot, Kind: journal.KindOrphanResolved, OrphanSeq: o.Seq, Outcome: journal.OutcomeResubmitted,
		Reason: fmt.Sprintf("job %d claimed again by slot %s", n, c.slot)}); err != nil {
		return err
	}
	c.hook(PointAfterJournal, "complete")
	settled, err := c.sendCompletion(ctx, n, decodeOutput(out), false)
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

func decodeOutput(s string) session.Payload {
	p, err := session.Decode(&s)
	if err != nil {
		return session.String(s)
	}
	return p
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
		return fmt.Errorf("client: journal: %w", err)
	}
	if p := st.Completion; p != nil {
		if settled, err := c.sendCompletion(ctx, p.Job.Number, decodeOutput(p.Output), true); !settled {
			return err
		}
	}
	if st.FlagPending && st.Job != nil && c.token != "" {
		if settled, err := c.sendFlag(ctx, st.Job.Number, true); !settled {
			return err
		}
	}
	if st.ByePending && c.token != "" {
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
//   - another error (network down after the retry policy gave up, ctx
//     done): the completion stays pending in the journal, is resent by the
//     next CompleteJob, NewJob or Bye (or on restart) before any claim.
//     Calling CompleteJob again resends the recorded output (its argument
//     is then ignored).
func (c *Client) CompleteJob(ctx context.Context, output any) error {
	p, perr := toPayload(output)
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	st, err := c.db.State(c.slot)
	if err != nil {
		return fmt.Errorf("client: journal: %w", err)
	}
	if pend := st.Completion; pend != nil {
		if c.isGone() {
			return c.orphanPending(pend.Job.Number)
		}
		_, err := c.sendCompletion(ctx, pend.Job.Number, decodeOutput(pend.Output), true)
		return err
	}
	if st.FlagPending && c.job != nil && c.token != "" {
		// An unconfirmed flag of the held job: settle it first (if it was
		// applied, the job is no longer held).
		if settled, err := c.sendFlag(ctx, c.job.number, true); !settled {
			return fmt.Errorf("client: completeJob: a flag of the job is unconfirmed: %w", err)
		}
	}
	if c.job == nil {
		return c.noJobError("completeJob")
	}
	if perr != nil {
		return perr
	}
	n := c.job.number
	if err := c.append(journal.Event{Kind: journal.KindCompletionPending, Job: n, Output: p.Wire()}); err != nil {
		return err
	}
	c.setJob(nil)
	c.hook(PointAfterJournal, "complete")
	if c.isGone() {
		return c.orphanPending(n)
	}
	_, err = c.sendCompletion(ctx, n, p, false)
	return err
}

// orphanPending records the loss of the session found gone before the
// pending completion was sent: its output becomes an orphan.
func (c *Client) orphanPending(n int) error {
	if err := c.recordLost(""); err != nil {
		return err
	}
	return fmt.Errorf("client: completeJob: job %d: %w; the output is kept in the journal as an orphan and will be submitted if the job is claimed again", n, ErrWorkerGone)
}

// sendCompletion sends the recorded pending completion of job n and records
// the outcome. resend says an earlier attempt may have reached the tracker,
// so that a 403 (no job held) means it was applied. settled reports whether
// the outcome was recorded (the completion is no longer pending); err is nil
// only if the output was accepted. The caller holds mu.
func (c *Client) sendCompletion(ctx context.Context, n int, out session.Payload, resend bool) (settled bool, err error) {
	token := c.token
	err = c.conn.CompleteJob(ctx, token, out)
	c.hook(PointAfterSend, "complete")
	var verr *session.ValidationError
	// Settle records are durable (never AppendDeferred, unlike the claim):
	// if a settle were lost in a crash while a later claim reached the
	// tracker, recovery would resend the completion with the same token,
	// and the tracker, which binds a completion to the token's held job,
	// not to a job number, would apply it to the NEW job: the old job's
	// output recorded as the new job's. The settle must be on disk before
	// the next newJob leaves the machine.
	switch {
	case err == nil:
		if err := c.append(journal.Event{Kind: journal.KindCompletionSettled, Job: n, Outcome: journal.OutcomeAccepted}); err != nil {
			return false, err
		}
		c.log.Info("job completed", slog.Int("job", n))
		return true, nil
	case errors.Is(err, session.ErrAppliedEarlier) || (resend && errors.Is(err, session.ErrNoJobHeld)):
		if err := c.append(journal.Event{Kind: journal.KindCompletionSettled, Job: n, Outcome: journal.OutcomeAppliedEarlier,
			Reason: "the tracker refused a resend: an earlier attempt was applied"}); err != nil {
			return false, err
		}
		c.log.Info("job completed (by an earlier attempt whose answer was lost)", slog.Int("job", n))
		return true, nil
	case errors.Is(err, session.ErrWorkerGone):
		c.markGone(token, "completeJob answered 404: the worker timed out")
		if err := c.recordLost(""); err != nil {
			return false, err
		}
		return true, fmt.Errorf("client: completeJob: job %d: %w; the output is kept in the journal as an orphan and will be submitted if the job is claimed again", n, ErrWorkerGone)
	case errors.Is(err, session.ErrNoJobHeld), errors.As(err, &verr):
		// Not applied, and never will be with this token: keep the output.
		if err := c.append(journal.Event{Kind: journal.KindCompletionSettled, Job: n, Outcome: journal.OutcomeOrphaned, Reason: err.Error()}); err != nil {
			return false, err
		}
		return true, fmt.Errorf("client: completeJob: job %d: the tracker refused the completion; the output is kept in the journal as an orphan: %w", n, err)
	default:
		return false, fmt.Errorf("client: completeJob: job %d: not confirmed, kept in the journal and resent before the next claim: %w", n, err)
	}
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
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if c.job == nil {
		return c.noJobError("flagInvalidData")
	}
	n := c.job.number
	if c.isGone() {
		if err := c.recordLost(""); err != nil {
			return err
		}
		return c.noJobError("flagInvalidData")
	}
	st, err := c.db.State(c.slot)
	if err != nil {
		return fmt.Errorf("client: journal: %w", err)
	}
	resend := st.FlagPending
	if !resend {
		if err := c.append(journal.Event{Kind: journal.KindFlagPending, Job: n}); err != nil {
			return err
		}
		c.hook(PointAfterJournal, "flag")
	}
	_, err = c.sendFlag(ctx, n, resend)
	return err
}

// sendFlag sends the recorded pending flag of job n and records the
// outcome; see sendCompletion. The caller holds mu.
func (c *Client) sendFlag(ctx context.Context, n int, resend bool) (settled bool, err error) {
	token := c.token
	err = c.conn.FlagInvalidData(ctx, token)
	c.hook(PointAfterSend, "flag")
	var verr *session.ValidationError
	switch {
	case err == nil:
		if err := c.append(journal.Event{Kind: journal.KindFlagSettled, Job: n, Outcome: journal.OutcomeAccepted}); err != nil {
			return false, err
		}
		c.setJob(nil)
		c.log.Info("job flagged as invalid", slog.Int("job", n))
		return true, nil
	case errors.Is(err, session.ErrAppliedEarlier) || (resend && errors.Is(err, session.ErrNoJobHeld)):
		if err := c.append(journal.Event{Kind: journal.KindFlagSettled, Job: n, Outcome: journal.OutcomeAppliedEarlier,
			Reason: "the tracker refused a resend: an earlier attempt was applied"}); err != nil {
			return false, err
		}
		c.setJob(nil)
		c.log.Info("job flagged as invalid (by an earlier attempt whose answer was lost)", slog.Int("job", n))
		return true, nil
	case errors.Is(err, session.ErrWorkerGone):
		c.markGone(token, "flagInvalidData answered 404: the worker timed out")
		if err := c.recordLost(""); err != nil {
			return false, err
		}
		return true, c.noJobError("flagInvalidData")
	case errors.Is(err, session.ErrNoJobHeld):
		if err := c.append(journal.Event{Kind: journal.KindFlagSettled, Job: n, Outcome: journal.OutcomeOrphaned, Reason: err.Error()}); err != nil {
			return false, err
		}
		c.setJob(nil)
		return true, fmt.Errorf("client: flagInvalidData: job %d: the tracker says this worker holds no job: %w", n, err)
	case errors.As(err, &verr):
		if err := c.append(journal.Event{Kind: journal.KindFlagSettled, Job: n, Outcome: journal.OutcomeFailed, Reason: verr.Error()}); err != nil {
			return false, err
		}
		return true, fmt.Errorf("client: flagInvalidData: job %d: the tracker failed to record the flag and still assigns the job to this worker "+
			"(the upstream tracker does this on a job's 5th flag at stage b); complete the job, claim another or say bye: %w", n, err)
	default:
		return false, fmt.Errorf("client: flagInvalidData: job %d: not confirmed, kept in the journal and resent before the next claim: %w", n, err)
	}
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
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if c.job == nil {
		return c.noJobError("checkpoint")
	}
	if err := c.append(journal.Event{Kind: journal.KindCheckpoint, Job: c.job.number, Checkpoint: data}); err != nil {
		return err
	}
	c.hook(PointAfterJournal, "checkpoint")
	c.smu.Lock()
	j := *c.job
	j.checkpoint = bytes.Clone(data)
	c.job = &j
	c.smu.Unlock()
	return nil
}

// Log records progress text, shown on the tracker's dashboard (cut to 255
// characters, the most the tracker accepts). It returns at once whatever the
// network and the disk do: the text goes to the journal's in-memory buffer
// (journal.AppendProgress) and is sent by the background goroutine, latest
// wins.
func (c *Client) Log(text string) {
	if utf8.RuneCountInString(text) > session.MaxProgressLen {
		text = cutRunes(text, session.MaxProgressLen)
	}
	c.progress.Store(&text)
	if !c.closed.Load() {
		c.db.AppendProgress(c.slot, text)
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
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
	c.smu.RLock()
	token, gone, want, hasJob := c.token, c.gone, c.wantSession, c.job != nil
	c.smu.RUnlock()
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
	if c.job != nil || !c.wantSession {
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
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.settlePending(ctx); err != nil {
		return fmt.Errorf("client: bye: not said, an earlier action is unconfirmed: %w", err)
	}
	c.smu.Lock()
	c.wantSession = false
	c.smu.Unlock()
	if c.isGone() {
		return c.recordLost("")
	}
	if c.token == "" {
		return nil
	}
	if err := c.append(journal.Event{Kind: journal.KindByePending}); err != nil {
		return err
	}
	c.hook(PointAfterJournal, "bye")
	return c.sendBye(ctx)
}

// sendBye sends the recorded pending bye and records the session closed.
// The caller holds mu.
func (c *Client) sendBye(ctx context.Context) error {
	err := c.conn.Bye(ctx, c.token)
	c.hook(PointAfterSend, "bye")
	if err != nil && !errors.Is(err, session.ErrWorkerGone) && !errors.Is(err, session.ErrAppliedEarlier) {
		return fmt.Errorf("client: bye: not confirmed, resent on the next start: %w", err)
	}
	if c.job != nil {
		if err := c.append(journal.Event{Kind: journal.KindReleased, Job: c.job.number, Reason: "bye"}); err != nil {
			return err
		}
	}
	if err := c.append(journal.Event{Kind: journal.KindClosed}); err != nil {
		return err
	}
	c.smu.Lock()
	c.token, c.job = "", nil
	c.smu.Unlock()
	c.log.Info("said bye to the tracker", slog.String("display_name", c.displayName))
	return nil
}

// Close stops the client's background goroutine and, unless it was given
// with WithJournalDB or belongs to a Pool, closes the journal (flushing
// buffered progress). It waits for an action in progress to finish. It does
// not say bye: the session stays in the journal and the next Init resumes
// it. Close is idempotent; later actions return ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.stop != nil {
			c.stop()
			<-c.done
		}
		c.mu.Lock() // wait for an action in progress
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
	c.smu.RLock()
	defer c.smu.RUnlock()
	if c.job == nil {
		return session.Null()
	}
	return c.job.data
}

// JobID returns the held job's number (0 if none).
func (c *Client) JobID() int {
	c.smu.RLock()
	defer c.smu.RUnlock()
	if c.job == nil {
		return 0
	}
	return c.job.number
}

// HasJob reports whether a job is held.
func (c *Client) HasJob() bool {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.job != nil
}

// Resumed reports whether the held job was handed back by recovery at Init
// (claimed by an earlier run of the program).
func (c *Client) Resumed() bool {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.job != nil && c.job.resumed
}

// LastCheckpoint returns the held job's last checkpoint (nil if none).
func (c *Client) LastCheckpoint() []byte {
	c.smu.RLock()
	defer c.smu.RUnlock()
	if c.job == nil {
		return nil
	}
	return bytes.Clone(c.job.checkpoint)
}

// DisplayName returns the worker's display name on the tracker.
func (c *Client) DisplayName() string {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.displayName
}

// Project returns the tracker's project name.
func (c *Client) Project() string {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.project
}

// StageName returns the name of the worker's stage, such as "CPU".
func (c *Client) StageName() string {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.stageName
}

// Stage returns the worker's stage letter (a to e).
func (c *Client) Stage() string { return c.stage }

// Slot returns the client's journal slot.
func (c *Client) Slot() string { return c.slot }

// Journal returns the client's journal.
func (c *Client) Journal() *journal.DB { return c.db }

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
