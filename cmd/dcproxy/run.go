package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/bytesize"
	"github.com/distcompute/distcompute-go/internal/preempt"
	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/lmittmann/tint"
)

// errUsage reports bad arguments (the usage was printed).
var errUsage = errors.New("dcproxy: usage")

const usage = `usage: dcproxy --tracker URL [--listen 127.0.0.1:8787] [--journal PATH] [--status-addr ADDR]
               [--ack tracker|journal] [--preemption-notice aws|gcp|azure] [flags] [-- CMD ARGS...]

Serves the tracker's protocol on --listen for worker programs written for the
tracker (the upstream Python client, unchanged), and forwards their work to
--tracker through a journal: completions are answered once settled (or, with
--ack journal, once durable), nothing is lost when the tracker, the network,
the program or dcproxy fails. With -- CMD, dcproxy runs the program itself
(DISTCOMPUTE_URL is its local URL) and restarts it when it fails.
SIGTERM/SIGINT drain (grace period); a second one stops at once.

flags:
`

// run parses args and runs the proxy.
func run(ctx context.Context, sigs <-chan os.Signal, args []string, stdout, stderr io.Writer) error {
	var cfg proxy.Config
	fs := flag.NewFlagSet("dcproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.TrackerURL, "tracker", "", "tracker base `URL` (required)")
	listen := fs.String("listen", proxy.DefaultListen, "local `address` the programs talk to")
	fs.StringVar(&cfg.Journal, "journal", "", "journal `path` (default $"+client.EnvJournal+", else ~/.local/state/distcompute/journal.db)")
	maxJournal := fs.String("journal-max-size", "1GiB", "the journal file's size limit (bytes, or with KiB/MiB/GiB); a write past it is refused like one on a full disk")
	fs.DurationVar(&cfg.JournalDeadline, "journal-deadline", proxy.DefaultJournalDeadline, "while the journal cannot be written (full, read-only or failing disk) the programs' calls wait; still unwritable after this, dcproxy drains and exits 4")
	fs.StringVar(&cfg.StatusAddr, "status-addr", "", "serve GET /status, /metrics and the live page (as dcworker) on this `addr` (e.g. 127.0.0.1:9090)")
	ack := fs.String("ack", string(proxy.AckTracker), "answer completeJob/flagInvalidData once settled at the `tracker`, or once durable in the `journal`")
	notice := fs.String("preemption-notice", "", "watch the cloud's preemption notice: aws, gcp or azure")
	fs.StringVar(&cfg.MetadataAddr, "metadata-addr", "", "metadata service address (default "+preempt.DefaultAddr+")")
	fs.DurationVar(&cfg.MetadataInterval, "metadata-interval", preempt.DefaultInterval, "preemption notice poll interval")
	fs.StringVar(&cfg.Restart, "restart", proxy.RestartOnFailure, "restart the program: on-failure, always or never")
	fs.DurationVar(&cfg.RestartDelay, "restart-delay", proxy.DefaultRestartDelay, "pause before restarting the program")
	fs.IntVar(&cfg.Procs, "procs", 1, "copies of the program to run")
	fs.IntVar(&cfg.PoisonAfter, "poison-after", proxy.DefaultPoisonAfter, "a job whose program died this many times in a row is released and not handed out again")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", proxy.DefaultDeadAfter, "without CMD: a worker silent this long counts as dead and its job is released")
	fs.DurationVar(&cfg.Grace, "grace", proxy.DefaultGrace, "time given to programs and pending completions after SIGTERM/SIGINT or a preemption notice")
	fs.BoolVar(&cfg.ReleaseOnExit, "release-on-exit", false, "on a drain, release held jobs instead of keeping them for the next start")
	heartbeat := fs.Duration("heartbeat", 0, "heartbeat interval keeping workers alive (default: the client's, 15m)")
	idle := fs.Duration("idle-timeout", 0, "the tracker's idle timeout (default 7200s)")
	verbose := fs.Bool("v", false, "verbose (debug) logging")
	jsonLog := fs.Bool("json-log", false, "log JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.Command = fs.Args()
	bad := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "dcproxy: "+format+"\n", a...)
		fs.Usage()
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	if cfg.TrackerURL == "" {
		return bad("--tracker is required")
	}
	switch proxy.AckMode(*ack) {
	case proxy.AckTracker, proxy.AckJournal:
		cfg.Ack = proxy.AckMode(*ack)
	default:
		return bad("--ack must be tracker or journal, not %q", *ack)
	}
	if *notice != "" {
		p, err := preempt.ParseProvider(*notice)
		if err != nil {
			return bad("--preemption-notice: %v", err)
		}
		cfg.PreemptionNotice = p
	}
	switch cfg.Restart {
	case proxy.RestartOnFailure, proxy.RestartAlways, proxy.RestartNever:
	default:
		return bad("--restart must be on-failure, always or never")
	}
	if cfg.Procs < 1 || cfg.PoisonAfter < 1 || cfg.DeadAfter <= 0 || cfg.Grace <= 0 || cfg.JournalDeadline <= 0 {
		return bad("--procs and --poison-after must be at least 1, --dead-after, --grace and --journal-deadline positive")
	}
	var err error
	if cfg.JournalMaxSize, err = bytesize.Parse(*maxJournal); err != nil {
		return bad("--journal-max-size: want a size above 0, like 1GiB")
	}
	if *heartbeat > 0 {
		cfg.ClientOptions = append(cfg.ClientOptions, client.WithHeartbeat(*heartbeat))
	}
	if *idle > 0 {
		cfg.ClientOptions = append(cfg.ClientOptions, client.WithIdleTimeout(*idle))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	if *jsonLog {
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	} else {
		cfg.Logger = slog.New(tint.NewHandler(stderr, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}))
	}
	cfg.Stdout, cfg.Stderr, cfg.Signals = stdout, stderr, sigs
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("dcproxy: listen: %w", err)
	}
	defer ln.Close()
	return proxy.Run(ctx, cfg, ln)
}

// exitCode maps run's error to the process exit status: 0 done, 1 error or
// stopped at once, 2 usage, 4 the journal stayed unwritable past
// --journal-deadline (as dcworker).
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, proxy.ErrConfig):
		fmt.Fprintln(stderr, "dcproxy:", err)
		return 2
	case errors.Is(err, proxy.ErrJournalUnwritable):
		fmt.Fprintln(stderr, "dcproxy:", err)
		return 4
	}
	fmt.Fprintln(stderr, "dcproxy:", err)
	return 1
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
