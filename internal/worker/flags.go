package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/bytesize"
	"github.com/distcompute/distcompute-go/internal/preempt"
	"github.com/distcompute/distcompute-go/internal/term"
)

// ErrUsage reports bad command-line arguments (the usage was printed).
var ErrUsage = errors.New("worker: usage")

// RunUsage is the synopsis of `dcworker run`.
const RunUsage = `usage: dcworker run --tracker URL [--stage a] [--nickname N] [--journal PATH] [--slots N] [flags] -- CMD ARGS...

Runs CMD once per job: the job's input on stdin, its output on stdout.
Exit 0 completes the job, --invalid-exit-code flags its input as invalid,
anything else is retried --retries times, then the job is released.
Progress: lines written to fd 3 (or appended to $DC_PROGRESS_FILE).
Checkpoint: whatever is in $DC_CHECKPOINT_FILE, handed back on resume.
SIGTERM/SIGINT drain (grace period, then resumable); a second one stops at once.
A journal that cannot be written (full, read-only or failing disk) stops the
claims; outputs wait in memory until it can, --journal-deadline at most (exit 4).

flags:
`

// ParseRunArgs parses the arguments of `dcworker run` (everything after
// "run") into a Config. -h prints the usage to stdout and returns
// flag.ErrHelp; a usage error prints one line saying what is wrong to stderr
// and returns an error wrapping ErrUsage.
func ParseRunArgs(args []string, stdout, stderr io.Writer) (Config, *RunFlags, error) {
	var cfg Config
	rf := &RunFlags{}
	fs := flag.NewFlagSet("dcworker run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, RunUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fs.StringVar(&cfg.TrackerURL, "tracker", "", "tracker base `URL` (required)")
	fs.StringVar(&cfg.Stage, "stage", "a", "worker `stage`, a..e")
	fs.StringVar(&cfg.Nickname, "nickname", "", "worker nickname shown by the tracker (default \"anonymous\")")
	fs.StringVar(&cfg.Journal, "journal", "", "journal `path` (default $"+client.EnvJournal+", else ~/.local/state/distcompute/journal.db)")
	fs.IntVar(&cfg.Slots, "slots", 1, "jobs run at once, one worker identity each")
	retries := fs.Int("retries", DefaultRetries, "retries of a failed command before the job is released")
	fs.DurationVar(&cfg.RetryDelay, "retry-delay", DefaultRetryDelay, "pause before a retry")
	maxFailed := fs.Int("max-failed-runs", DefaultMaxFailedRuns, "stop the worker (exit 3) after this many failed command runs in a row, across jobs; 0 never stops")
	fs.IntVar(&cfg.InvalidExitCode, "invalid-exit-code", DefaultInvalidExitCode, "exit `code` meaning \"the job's input is invalid\" (65 = EX_DATAERR)")
	maxOut := fs.String("max-output", "16MiB", "stdout size limit (bytes, or with KiB/MiB/GiB); over it the run fails")
	maxJournal := fs.String("journal-max-size", "1GiB", "the journal file's size limit (bytes, or with KiB/MiB/GiB); a write past it is refused like one on a full disk")
	fs.DurationVar(&cfg.Grace, "grace", DefaultGrace, "time given to running commands after SIGTERM/SIGINT or a preemption notice")
	fs.BoolVar(&cfg.ReleaseOnExit, "release-on-exit", false, "on a drain, release unfinished jobs instead of leaving them resumable")
	fs.BoolVar(&cfg.ExitWhenEmpty, "exit-when-empty", false, "exit when the stage has no open job and no slot is busy")
	notice := fs.String("preemption-notice", "", "watch the cloud's preemption notice: aws, gcp or azure")
	fs.StringVar(&cfg.MetadataAddr, "metadata-addr", "", "metadata service address (default "+preempt.DefaultAddr+")")
	fs.DurationVar(&cfg.MetadataInterval, "metadata-interval", preempt.DefaultInterval, "preemption notice poll interval")
	fs.StringVar(&cfg.StatusAddr, "status-addr", "", "serve GET /status and /metrics on this `addr` (e.g. 127.0.0.1:9090; :9090 listens on every interface)")
	fs.BoolVar(&cfg.StatusJournal, "status-journal", false, "also serve GET /journal on --status-addr, for dcjournal inspect --live: the whole journal, WITH the worker tokens and the tracker's password")
	fs.DurationVar(&rf.Heartbeat, "heartbeat", 0, "heartbeat interval (default: the client's, 15m)")
	fs.DurationVar(&rf.IdleTimeout, "idle-timeout", 0, "the tracker's idle timeout (default 7200s)")
	fs.DurationVar(&rf.WaitMax, "wait-max", 0, "longest pause between claims on an empty queue (default: the client's, 30s)")
	fs.DurationVar(&cfg.EmptyPoll, "empty-poll", DefaultEmptyPoll, "with --exit-when-empty, pause between claims on an empty queue")
	fs.DurationVar(&cfg.JournalDeadline, "journal-deadline", DefaultJournalDeadline, "while the journal cannot be written (full, read-only or failing disk) the worker claims nothing and holds outputs in memory; still unwritable after this, it drains and exits 4")
	fs.BoolVar(&cfg.Verbose, "v", false, "verbose (debug) logging")
	fs.BoolVar(&rf.JSONLog, "json-log", false, "log JSON lines instead of text")

	usage := func(format string, a ...any) (Config, *RunFlags, error) {
		fmt.Fprintf(stderr, "dcworker run: "+format+" (see \"dcworker help run\")\n", a...)
		return cfg, rf, fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return cfg, rf, err
		}
		return usage("%v", err)
	}
	cfg.Command = fs.Args()
	if cfg.TrackerURL == "" {
		return usage("--tracker is required")
	}
	if len(cfg.Command) == 0 {
		return usage("no command: give it after --")
	}
	if cfg.Slots < 1 {
		return usage("--slots must be at least 1")
	}
	if *retries < 0 {
		return usage("--retries must be >= 0")
	}
	cfg.Retries = *retries
	if *maxFailed < 0 {
		return usage("--max-failed-runs must be >= 0")
	}
	cfg.MaxFailedRuns = *maxFailed
	if cfg.MaxFailedRuns == 0 {
		cfg.MaxFailedRuns = -1 // Config's zero means the default
	}
	if cfg.Retries == 0 {
		cfg.Retries = -1 // Config's zero means the default
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = -1
	}
	n, err := ParseSize(*maxOut)
	if err != nil {
		return usage("--max-output: %v", err)
	}
	cfg.MaxOutput = n
	if cfg.JournalMaxSize, err = ParseSize(*maxJournal); err != nil || cfg.JournalMaxSize <= 0 {
		return usage("--journal-max-size: want a size above 0, like 1GiB")
	}
	if *notice != "" {
		p, err := preempt.ParseProvider(*notice)
		if err != nil {
			return usage("--preemption-notice: %v", err)
		}
		cfg.PreemptionNotice = p
	}
	if cfg.Grace <= 0 {
		return usage("--grace must be positive")
	}
	if cfg.JournalDeadline <= 0 {
		return usage("--journal-deadline must be positive")
	}
	return cfg, rf, nil
}

// RunFlags are the flags of `dcworker run` that become client options.
type RunFlags struct {
	Heartbeat, IdleTimeout, WaitMax time.Duration
	JSONLog                         bool
}

// ClientOptions turns the flags into client options.
func (rf *RunFlags) ClientOptions() []client.Option {
	var opts []client.Option
	if rf.Heartbeat > 0 {
		opts = append(opts, client.WithHeartbeat(rf.Heartbeat))
	}
	if rf.IdleTimeout > 0 {
		opts = append(opts, client.WithIdleTimeout(rf.IdleTimeout))
	}
	if rf.WaitMax > 0 {
		opts = append(opts, client.WithWaitBackoff(min(client.DefaultWaitMin, rf.WaitMax), rf.WaitMax))
	}
	return opts
}

// ParseSize parses a byte size: "1048576", "64KiB", "16MiB", "1GiB" (also
// K, M, G, KB, MB, GB as powers of 1024). See package bytesize.
func ParseSize(s string) (int64, error) { return bytesize.Parse(s) }

// Command is `dcworker run ARGS`: it parses args, sets up logging on stderr,
// and runs the engine. sigs delivers stop signals (see Config.Signals). mod,
// if not nil, adjusts the Config before the run (the quick start adds a
// crash hook). Errors: ErrUsage (or flag.ErrHelp), then those of Run.
func Command(ctx context.Context, args []string, sigs <-chan os.Signal, stdout, stderr io.Writer, mod func(*Config)) error {
	cfg, rf, err := ParseRunArgs(args, stdout, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	if rf.JSONLog {
		cfg.Logger = slog.New(term.Dedupe(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})))
	} else {
		cfg.Logger = slog.New(term.Handler(stderr, level, os.Getenv))
	}
	cfg.Stderr = stderr
	cfg.Signals = sigs
	cfg.ClientOptions = append(cfg.ClientOptions, rf.ClientOptions()...)
	if mod != nil {
		mod(&cfg)
	}
	return Run(ctx, cfg)
}
