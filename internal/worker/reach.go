package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// reachability follows whether the tracker answers, from every request the
// engine's clients send (see countingTransport). It says so in one short log line
// per change ("tracker X unreachable: connection refused; retrying in 8s", then
// "tracker X reachable again after 42s") instead of a warning per retried request,
// and /status, the page and /metrics show it.
type reachability struct {
	*statusserver.Reachability
	log *slog.Logger
}

// Reach is the tracker's reachability as /status and the page show it.
type Reach = statusserver.Reach

func newReachability(trackerURL string, log *slog.Logger) *reachability {
	r := &reachability{Reachability: statusserver.NewReachability(trackerURL), log: log}
	r.OnBack = func(host string, after time.Duration) {
		log.Info(fmt.Sprintf("tracker %s reachable again after %s", host, after))
	}
	return r
}

func (r *reachability) observe(began time.Time, resp *http.Response, err error) (failed bool) {
	return r.Observe(began, resp, err)
}

func (r *reachability) snapshot() Reach { return r.Snapshot() }

// retrying is told by the log handler that the client will try a request again
// after wait: the first time in an outage it logs the one line saying so.
func (r *reachability) retrying(wait time.Duration) {
	why, ok := r.Announce()
	if !ok {
		return
	}
	round := time.Second
	if wait < 10*time.Second {
		round = 100 * time.Millisecond
	}
	r.log.Warn(fmt.Sprintf("tracker %s unreachable: %s; retrying in %s (output stays in the journal)", r.Host(), why, wait.Round(round)))
}

// retryQuiet is a log handler for the engine's clients: it turns the session's
// warning per retried request into a debug line, and tells reach, which logs one
// line per outage instead. Everything else passes unchanged.
type retryQuiet struct {
	slog.Handler
	reach *reachability
	disk  *statusserver.DiskState // nil: no journal state to consult
}

// retryMessage is the message of the session package's per-attempt retry warning;
// waitMessage the client's warning each time WaitForJob waits out a failure. While
// the tracker is known to be unreachable, both say nothing the outage line did not.
const (
	retryMessage = "session: retrying"
	waitMessage  = "tracker unavailable; waiting"
	// stopMessage is the journal's error line each time a write fails
	// and stops it; while the engine already reports the journal
	// unwritable (one line per change), each retry that fails again says
	// nothing new.
	stopMessage = "journal stopped after a failed write; writes are refused until it is reopened"
)

func (h retryQuiet) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelWarn && rec.Message == waitMessage && !h.reach.snapshot().Reachable {
		return h.debug(ctx, rec)
	}
	if rec.Message == stopMessage && h.disk != nil && h.disk.Unwritable() {
		return h.debug(ctx, rec)
	}
	if rec.Level != slog.LevelWarn || !strings.HasPrefix(rec.Message, retryMessage) {
		if !h.Handler.Enabled(ctx, rec.Level) {
			return nil // let through by Enabled only for the retry warnings
		}
		return h.Handler.Handle(ctx, rec)
	}
	var wait time.Duration
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "wait" {
			wait = a.Value.Duration()
			return false
		}
		return true
	})
	h.reach.retrying(wait)
	return h.debug(ctx, rec)
}

// debug passes rec on at debug level (shown with -v).
func (h retryQuiet) debug(ctx context.Context, rec slog.Record) error {
	if !h.Handler.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	quiet := slog.NewRecord(rec.Time, slog.LevelDebug, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool { quiet.AddAttrs(a); return true })
	return h.Handler.Handle(ctx, quiet)
}

func (h retryQuiet) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l) || l == slog.LevelWarn
}

// WithAttrs derives the handler lazily (lazyHandler): the session derives a
// logger per request, which most often logs nothing.
func (h retryQuiet) WithAttrs(as []slog.Attr) slog.Handler {
	var l *lazyHandler
	if base, ok := h.Handler.(*lazyHandler); ok {
		l = base.with(as)
	} else {
		l = &lazyHandler{base: h.Handler, attrs: as}
	}
	return retryQuiet{Handler: l, reach: h.reach, disk: h.disk}
}

// lazyHandler is base.WithAttrs(attrs), made when a record first needs it.
// The session derives a logger per request (with its endpoint) and most
// requests log nothing at the levels shown, while deriving the handler
// right away cost work per request that was then thrown away (the text
// handler formats the attributes ahead, the terminal's dedupe copies its
// keys): a tenth of dcworker's logging CPU per job. Enabled asks base:
// attributes do not change which levels a handler shows.
type lazyHandler struct {
	base  slog.Handler
	attrs []slog.Attr // the handler owns them (slog.Handler.WithAttrs)
	once  sync.Once
	h     slog.Handler
}

func (l *lazyHandler) derived() slog.Handler {
	l.once.Do(func() { l.h = l.base.WithAttrs(l.attrs) })
	return l.h
}

func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.base.Enabled(ctx, level)
}

func (l *lazyHandler) Handle(ctx context.Context, rec slog.Record) error {
	return l.derived().Handle(ctx, rec)
}

// WithAttrs adds to the attributes not yet applied: base.WithAttrs(a) then
// WithAttrs(b) is base.WithAttrs(a + b).
func (l *lazyHandler) WithAttrs(as []slog.Attr) slog.Handler { return l.with(as) }

func (l *lazyHandler) with(as []slog.Attr) *lazyHandler {
	return &lazyHandler{base: l.base, attrs: append(slices.Clip(l.attrs), as...)}
}

func (l *lazyHandler) WithGroup(name string) slog.Handler { return l.derived().WithGroup(name) }

func (h retryQuiet) WithGroup(name string) slog.Handler {
	return retryQuiet{Handler: h.Handler.WithGroup(name), reach: h.reach, disk: h.disk}
}
