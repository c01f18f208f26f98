package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/internal/preempt"
	"github.com/distcompute/distcompute-go/session"
)

// AckMode says when completeJob and flagInvalidData are answered.
type AckMode string

// The ack modes.
const (
	// AckTracker answers once the tracker's outcome is settled.
	AckTracker AckMode = "tracker"
	// AckJournal answers once the record is durable in the journal; the
	// settle runs in the background, and the worker's next action waits
	// for it.
	AckJournal AckMode = "journal"
)

// Restart policies of the program (Config.Restart).
const (
	RestartOnFailure = "on-failure" // restart after a non-zero exit or a signal
	RestartAlways    = "always"     // restart after every exit
	RestartNever     = "never"
)

// Documented defaults of Config.
const (
	DefaultListen       = "127.0.0.1:8787"
	DefaultDeadAfter    = 10 * time.Minute
	DefaultPoisonAfter  = 3
	DefaultGrace        = 25 * time.Second
	DefaultRestartDelay = time.Second
	// DefaultJournalDeadline is how long the journal may stay unwritable
	// before the proxy drains and stops (ErrJournalUnwritable), as
	// dcworker's --journal-deadline.
	DefaultJournalDeadline = 10 * time.Minute
	// EnvURL is the variable that gives a program the proxy's URL.
	EnvURL = "DISTCOMPUTE_URL"
	// EnvProgram is the 0-based index of the program copy.
	EnvProgram = "DCPROXY_PROGRAM"
	// SlotPrefix starts the journal slot names of local workers ("w-12").
	SlotPrefix = "w-"
)

// Errors returned by Run.
var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("proxy: invalid configuration")
	// ErrStopped reports a stop at once (second signal): programs were
	// killed, unsettled work is left in the journal.
	ErrStopped = errors.New("proxy: stopped")
	// ErrJournalUnwritable reports that the journal stayed unwritable (a
	// full, read-only or failing disk) past Config.JournalDeadline, at the
	// start or while serving: the proxy drained and stopped (dcproxy exits
	// 4). What the programs' waiting calls held was never journaled: their
	// jobs are still held at the tracker by the proxy's workers, and run
	// again after a restart with a writable journal.
	ErrJournalUnwritable = errors.New("proxy: the journal stayed unwritable")
)

// Config configures Run. Zero fields take the documented defaults.
type Config struct {
	TrackerURL string
	// Journal is the journal file; empty means the client's default
	// ($DISTCOMPUTE_JOURNAL, else the XDG state directory). The local
	// tokens' key is kept beside it (Journal + ".key").
	Journal string
	Ack     AckMode // default AckTracker
	// JournalMaxSize bounds the journal file (journal.Options.MaxSize):
	// 0 means the journal's default (1 GiB).
	JournalMaxSize int64
	// JournalDeadline is how long the journal may stay unwritable (at the
	// start, or while the programs' calls wait) before the proxy drains
	// and Run returns ErrJournalUnwritable; 0 means DefaultJournalDeadline.
	JournalDeadline time.Duration

	// Command, if set, is run Procs times (default 1) with EnvURL set to its
	// copy's local URL, and restarted per Restart (default
	// RestartOnFailure) after RestartDelay.
	Command      []string
	Procs        int
	Restart      string
	RestartDelay time.Duration
	// PoisonAfter: a job held by a program that died this many times in a
	// row is released and not handed out again (default 3; Command only).
	PoisonAfter int
	// DeadAfter: without Command, a local worker that sent nothing for this
	// long counts as dead and its job is released (default 10 minutes).
	DeadAfter time.Duration

	// Grace is the time given to programs and settles after a stop signal
	// or a preemption notice. ReleaseOnExit releases held jobs at the end
	// of a drain instead of leaving them in the journal.
	Grace         time.Duration
	ReleaseOnExit bool
	Signals       <-chan os.Signal

	PreemptionNotice preempt.Provider
	MetadataAddr     string
	MetadataInterval time.Duration
	MetadataClient   *http.Client

	// StatusAddr, when set, serves dcworker's status server there (package
	// statusserver): GET /status, /metrics and the live page, one slot per
	// local worker, with the proxy's counters. No token is in any of them;
	// unlike dcworker, no /journal: the journal holds the tracker's tokens.
	StatusAddr      string
	StatusListening func(net.Addr)
	// Listening, if set, is told the local server's address once it serves.
	Listening func(net.Addr)

	Logger     *slog.Logger // nil discards
	Stdout     io.Writer    // the programs' stdout; nil discards
	Stderr     io.Writer    // the programs' stderr; nil discards
	HTTPClient *http.Client // to the tracker; nil means a private one
	// Retry is the tracker requests' retry policy; nil means the client's
	// default with no time limit (the program's call waits, the request's
	// end stops it).
	Retry         *session.RetryPolicy
	ClientOptions []client.Option

	// hook, if set, is called at every hook point of the slots' clients
	// (tests stop an action there; see export_test.go).
	hook hooks.Func
}

// DefaultRetry is the proxy's retry policy for tracker requests: the
// client's default with shorter waits (a program is waiting on the answer:
// first retry after 100 ms, at most 2 s apart) and no time limit (the
// program's request, or the proxy's end, stops it).
func DefaultRetry() *session.RetryPolicy {
	p := session.DefaultRetryPolicy()
	p.InitialInterval = 100 * time.Millisecond
	p.MaxInterval = 2 * time.Second
	p.MaxElapsedTime = 0
	return &p
}

func (c *Config) setDefaults() error {
	if c.TrackerURL == "" {
		return fmt.Errorf("%w: no tracker URL", ErrConfig)
	}
	switch c.Ack {
	case "":
		c.Ack = AckTracker
	case AckTracker, AckJournal:
	default:
		return fmt.Errorf("%w: ack %q is not tracker or journal", ErrConfig, c.Ack)
	}
	switch c.Restart {
	case "":
		c.Restart = RestartOnFailure
	case RestartOnFailure, RestartAlways, RestartNever:
	default:
		return fmt.Errorf("%w: restart %q is not on-failure, always or never", ErrConfig, c.Restart)
	}
	if c.Procs == 0 {
		c.Procs = 1
	}
	if c.Procs < 0 {
		return fmt.Errorf("%w: procs must be >= 1", ErrConfig)
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = DefaultRestartDelay
	}
	if c.PoisonAfter == 0 {
		c.PoisonAfter = DefaultPoisonAfter
	}
	if c.PoisonAfter < 0 {
		return fmt.Errorf("%w: poison-after must be >= 1", ErrConfig)
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = DefaultDeadAfter
	}
	if c.DeadAfter < 0 {
		return fmt.Errorf("%w: dead-after must be positive", ErrConfig)
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.JournalDeadline == 0 {
		c.JournalDeadline = DefaultJournalDeadline
	}
	if c.JournalDeadline < 0 || c.JournalMaxSize < 0 {
		return fmt.Errorf("%w: journal deadline and size limit must be positive", ErrConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.Retry == nil {
		c.Retry = DefaultRetry()
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// One connection to the tracker per local worker busy at once
		// (http's default keeps 2 idle, so more workers would reconnect).
		t.MaxIdleConnsPerHost = 64
		c.HTTPClient = &http.Client{
			Transport:     t,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return nil
}
