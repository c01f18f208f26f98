// Package term holds what every command (and the client library's default
// logger) decides about a terminal: whether to colour output, how to set up
// the human log handler, and how to print an error on one line with one prefix.
//
// Colour follows https://no-color.org: never when NO_COLOR is set to anything
// non-empty, never when TERM is "dumb", and only when the writer is a terminal
// (a character device), so a file or a pipe gets plain text.
package term

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"

	"github.com/distcompute/distcompute-go/internal/termtext"
)

// IsTerminal reports whether w is an *os.File that is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Color reports whether output to w may be coloured: w is a terminal, NO_COLOR is
// unset or empty, and TERM is not "dumb". getenv is os.Getenv outside tests.
func Color(w io.Writer, getenv func(string) string) bool {
	return IsTerminal(w) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// Handler is the log handler for people: tint's short lines, coloured only
// when Color allows it, with attributes repeated by nested loggers shown once
// (see Dedupe).
func Handler(w io.Writer, level slog.Leveler, getenv func(string) string) slog.Handler {
	// termtext.Handler escapes text from the tracker or the journal.
	return Dedupe(termtext.Handler(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !Color(w, getenv)})))
}

// Dedupe wraps h so that an attribute whose key was already added (by With on an
// outer logger, such as slot=slot-0 by the worker and again by the client) is
// written once: the first value wins.
func Dedupe(h slog.Handler) slog.Handler { return dedupe{h: h, keys: map[string]bool{}} }

type dedupe struct {
	h     slog.Handler
	keys  map[string]bool // keys added with WithAttrs; read-only once built
	group bool            // inside a group: keys are not comparable any more
}

func (d dedupe) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d dedupe) Handle(ctx context.Context, r slog.Record) error {
	if d.group || len(d.keys) == 0 {
		return d.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	seen := map[string]bool{}
	r.Attrs(func(a slog.Attr) bool {
		if !d.keys[a.Key] && !seen[a.Key] {
			out.AddAttrs(a)
			seen[a.Key] = true
		}
		return true
	})
	return d.h.Handle(ctx, out)
}

func (d dedupe) WithAttrs(as []slog.Attr) slog.Handler {
	if d.group {
		return dedupe{h: d.h.WithAttrs(as), keys: d.keys, group: true}
	}
	keys := make(map[string]bool, len(d.keys)+len(as))
	for k := range d.keys {
		keys[k] = true
	}
	var fresh []slog.Attr
	for _, a := range as {
		if !keys[a.Key] {
			keys[a.Key] = true
			fresh = append(fresh, a)
		}
	}
	return dedupe{h: d.h.WithAttrs(fresh), keys: keys}
}

func (d dedupe) WithGroup(name string) slog.Handler {
	return dedupe{h: d.h.WithGroup(name), keys: d.keys, group: true}
}

// prefixes are the package names the library puts before its errors. Wrapped
// errors repeat them ("client: pool slot slot-0: client: session: ..."); a
// command shows its own name once instead.
var prefixes = []string{"client: ", "session: ", "worker: ", "replay: ", "journal: ", "postmortem: "}

// ErrorLine is err as a command prints it after its own name: on one line, with
// the library's package prefixes dropped (the command's name is the one prefix),
// and a prefix equal to the command's name dropped too ("dcjournal inspect: ..."
// becomes "inspect: ..."), control characters escaped (termtext.Line).
func ErrorLine(command string, err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, command+" ")
	msg = strings.TrimPrefix(msg, command+": ")
	for changed := true; changed; {
		changed = false
		for _, p := range prefixes {
			if strings.HasPrefix(msg, p) {
				msg, changed = msg[len(p):], true
			}
			if i := strings.Index(msg, ": "+p); i >= 0 {
				msg, changed = msg[:i+2]+msg[i+2+len(p):], true
			}
		}
	}
	return termtext.Line(msg) // text from elsewhere stays inert
}
