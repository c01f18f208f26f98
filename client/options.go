package client

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/internal/termtext"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/lmittmann/tint"
)

// Defaults of the options.
const (
	// DefaultNickname is the nickname of a worker when WithNickname is not
	// given, as in the upstream client.
	DefaultNickname = "anonymous"
	// DefaultSlot is the journal slot of a Client when WithSlot is not given.
	DefaultSlot = "default"
	// DefaultIdleTimeout is the upstream tracker's idle timeout: a worker not
	// refreshed for this long is deleted.
	DefaultIdleTimeout = 7200 * time.Second
	// HeartbeatDivisor: the default heartbeat interval is the idle timeout
	// divided by this, so seven heartbeats in a row can be lost before the
	// tracker deletes the worker.
	HeartbeatDivisor = 8
	// DefaultWaitMin and DefaultWaitMax bound the wait between two claims
	// of WaitForJob on an empty queue (doubling, with jitter).
	DefaultWaitMin = time.Second
	DefaultWaitMax = 30 * time.Second
	// EnvJournal names the environment variable that overrides the default
	// journal path (WithJournal overrides both).
	EnvJournal = "DISTCOMPUTE_JOURNAL"
)

// Option configures Init and OpenPool.
type Option func(*options)

type options struct {
	nickname    string
	verbose     bool
	logger      *slog.Logger
	httpClient  *http.Client
	journalPath string
	journalOpts *journal.Options
	db          *journal.DB
	retry       *session.RetryPolicy
	heartbeat   time.Duration
	idleTimeout time.Duration
	release     bool
	slot        string
	slotSet     bool
	resubmit    bool
	hook        hooks.Func // from the context given to Init or OpenPool (internal/hooks)
	waitMin     time.Duration
	waitMax     time.Duration
	aliveEvery  int
	// progressDelay: how long a Log text waits before it is sent
	// (heartbeat.go); 0 means progressDelay. Tests set it (export_test.go).
	progressDelay time.Duration
}

func defaultOptions() options {
	return options{
		nickname:    DefaultNickname,
		verbose:     true,
		idleTimeout: DefaultIdleTimeout,
		slot:        DefaultSlot,
		resubmit:    true,
		waitMin:     DefaultWaitMin,
		waitMax:     DefaultWaitMax,
		aliveEvery:  1,
	}
}

// WithNickname sets the worker's nickname (default "anonymous"), at most
// 128 characters: a machine, user or company identifier shown on the
// tracker's leaderboard.
func WithNickname(name string) Option { return func(o *options) { o.nickname = name } }

// WithVerbose turns console messages on or off. On by default, as in the
// upstream client: messages go to stderr through a tint handler at level
// Info. WithLogger takes precedence.
func WithVerbose(on bool) Option { return func(o *options) { o.verbose = on } }

// WithLogger sends the client's messages to l instead of the console. Tokens
// are only ever logged redacted.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHTTPClient sends requests with c (redirects are never followed).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithJournal sets the journal file's path, overriding $DISTCOMPUTE_JOURNAL
// and the default (see DefaultJournalPath). Journaling is always on.
func WithJournal(path string) Option { return func(o *options) { o.journalPath = path } }

// WithJournalOptions sets the options the journal is opened with.
func WithJournalOptions(jo *journal.Options) Option { return func(o *options) { o.journalOpts = jo } }

// WithJournalDB makes the client use a journal the caller opened, for a
// program that runs a changing number of workers in one journal (one slot
// each: see WithSlot), such as a proxy that gives each local program its
// own worker. The journal stays the caller's: Close leaves it open. For a
// fixed number of workers, use OpenPool.
func WithJournalDB(db *journal.DB) Option { return func(o *options) { o.db = db } }

// WithRetry sets the retry policy of requests (default
// session.DefaultRetryPolicy: it gives up after 10 minutes).
func WithRetry(p session.RetryPolicy) Option { return func(o *options) { o.retry = &p } }

// WithHeartbeat sets the heartbeat interval: how often the last progress
// text is sent to keep the worker alive and the worker's liveness checked.
// Default: the idle timeout divided by HeartbeatDivisor (15 minutes).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithIdleTimeout tells the client the tracker's idle timeout (default
// 7200 s), from which the default heartbeat interval is derived.
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idleTimeout = d } }

// WithRelease makes recovery release a job the slot held when the process
// stopped (hand it back to the tracker with bye, then register afresh)
// instead of resuming it.
func WithRelease() Option { return func(o *options) { o.release = true } }

// WithSlot names the journal slot (default "default"). Two processes, or two
// Clients, must not use the same slot of one journal. For OpenPool it is the
// prefix of the slots' names ("slot" by default: slot-0, slot-1, ...).
func WithSlot(name string) Option {
	return func(o *options) { o.slot = name; o.slotSet = true }
}

// WithResubmitOrphans turns on (the default) or off the resubmission of
// orphaned output: when a claim returns the job (same stage, number and
// input) whose completion was orphaned because the worker had been lost,
// the recorded output is submitted instead of handing the job to the
// program again.
func WithResubmitOrphans(on bool) Option { return func(o *options) { o.resubmit = on } }

// WithWaitBackoff bounds the wait of WaitForJob between two claims on an
// empty queue (default 1 s doubling up to 30 s, with jitter).
func WithWaitBackoff(min, max time.Duration) Option {
	return func(o *options) { o.waitMin, o.waitMax = min, max }
}

// WithAliveCheckEvery checks the worker's liveness (validateWorker) on one
// heartbeat in n (default 1: every heartbeat).
func WithAliveCheckEvery(n int) Option { return func(o *options) { o.aliveEvery = n } }

func (o *options) check() error {
	if o.heartbeat < 0 || o.idleTimeout < 0 || o.waitMin < 0 || o.waitMax < 0 {
		return fmt.Errorf("client: %w: negative duration", ErrInvalidArgument)
	}
	if o.idleTimeout == 0 {
		o.idleTimeout = DefaultIdleTimeout
	}
	if o.heartbeat == 0 {
		o.heartbeat = o.idleTimeout / HeartbeatDivisor
	}
	if o.waitMin == 0 {
		o.waitMin = DefaultWaitMin
	}
	if o.waitMax < o.waitMin {
		o.waitMax = o.waitMin
	}
	if o.aliveEvery < 1 {
		o.aliveEvery = 1
	}
	if o.slot == "" {
		return fmt.Errorf("client: %w: empty slot name", ErrInvalidArgument)
	}
	if o.logger == nil {
		if o.verbose {
			// Colour only on a terminal and without NO_COLOR: a log file gets plain text.
			o.logger = slog.New(termtext.Handler(tint.NewHandler(os.Stderr, &tint.Options{Level: slog.LevelInfo, TimeFormat: time.TimeOnly, NoColor: !term.Color(os.Stderr, os.Getenv)})))
		} else {
			o.logger = slog.New(slog.DiscardHandler)
		}
	}
	return nil
}

// DefaultJournalPath returns where the journal lives when WithJournal is not
// given: $DISTCOMPUTE_JOURNAL if set, else distcompute/journal.db in the
// folder where the system keeps a user's application state:
//   - Linux and other Unix: $XDG_STATE_HOME if set to an absolute path, else
//     ~/.local/state;
//   - macOS: $XDG_STATE_HOME likewise, else ~/Library/Application Support;
//   - Windows: %LocalAppData% (the profile's ACL makes it readable by the
//     user only, and it does not roam to other machines).
func DefaultJournalPath() (string, error) {
	if p := os.Getenv(EnvJournal); p != "" {
		return p, nil
	}
	dir, err := stateDir()
	if err != nil {
		return "", fmt.Errorf("client: no journal path: set %s or use WithJournal: %w", EnvJournal, err)
	}
	return filepath.Join(dir, "distcompute", "journal.db"), nil
}

// openJournal opens the journal the options name, creating its directory.
func (o *options) openJournal() (*journal.DB, bool, error) {
	if o.db != nil {
		return o.db, false, nil
	}
	path := o.journalPath
	if path == "" {
		var err error
		if path, err = DefaultJournalPath(); err != nil {
			return nil, false, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("client: journal directory: %w", err)
	}
	jo := journal.Options{Logger: o.logger} // the journal logs deferred claims it refuses
	if o.journalOpts != nil {
		jo = *o.journalOpts
		if jo.Logger == nil {
			jo.Logger = o.logger
		}
	}
	db, err := journal.Open(path, &jo)
	if err != nil {
		return nil, false, fmt.Errorf("client: %w", err)
	}
	return db, true, nil
}
