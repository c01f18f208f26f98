// Package termtext makes text that came from elsewhere (a tracker's
// answers, a journal's records) inert before it reaches a terminal: Line
// escapes every character that could drive the terminal or break the line,
// and Handler applies it to a console log handler. Use it for human output
// only; JSON output is exact and escapes by itself.
package termtext

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s with the characters that could drive a terminal or break
// the line escaped, Go style: C0 and C1 control characters and DEL ("\n",
// "\r", "\t", "\x1b", "\u009b"), the Unicode line and paragraph separators
// and the bidirectional controls ("\u202e"), and bytes that are not UTF-8
// ("\xff"). Everything else is kept, so ordinary text reads as written; s
// without such characters is returned as it is. One line stays one line.
func Line(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafe(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafe(r, size):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\u202e', '\n'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafe(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20 || r == 0x7f:
		return true
	case r < 0x80:
		return false
	case unicode.IsControl(r): // C1, U+0080..U+009F: CSI and friends
		return true
	}
	switch r {
	case '\u2028', '\u2029', // line and paragraph separators
		'\u061c', '\u200e', '\u200f', // bidi marks
		'\u202a', '\u202b', '\u202c', '\u202d', '\u202e', // bidi embeddings and overrides
		'\u2066', '\u2067', '\u2068', '\u2069': // bidi isolates
		return true
	}
	return false
}

// Handler returns a slog.Handler that passes every record to h with its
// message, attribute keys, string values, errors and other values
// formatted as text made safe by Line. Wrap console handlers (tint, text)
// with it; a JSON handler escapes by itself.
func Handler(h slog.Handler) slog.Handler { return handler{h} }

type handler struct{ h slog.Handler }

func (s handler) Enabled(ctx context.Context, l slog.Level) bool { return s.h.Enabled(ctx, l) }

func (s handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Line(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return s.h.Handle(ctx, out)
}

func (s handler) WithAttrs(as []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(as))
	for i, a := range as {
		safe[i] = attr(a)
	}
	return handler{s.h.WithAttrs(safe)}
}

func (s handler) WithGroup(name string) slog.Handler { return handler{s.h.WithGroup(Line(name))} }

func attr(a slog.Attr) slog.Attr {
	a.Key = Line(a.Key)
	a.Value = value(a.Value)
	return a
}

func value(v slog.Value) slog.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.StringValue(Line(v.String()))
	case slog.KindGroup:
		as := v.Group()
		safe := make([]slog.Attr, len(as))
		for i, a := range as {
			safe[i] = attr(a)
		}
		return slog.GroupValue(safe...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.StringValue(Line(x.Error()))
		case fmt.Stringer:
			return slog.StringValue(Line(x.String()))
		default:
			return slog.StringValue(Line(fmt.Sprintf("%+v", x)))
		}
	}
	return v // numbers, times, durations, booleans: nothing to escape
}
