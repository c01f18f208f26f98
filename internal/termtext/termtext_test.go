package termtext_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/termtext"
	"github.com/lmittmann/tint"
)

func TestLine(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "blue-fox-17 é 日本", "blue-fox-17 é 日本"},
		{"escape sequences", "\x1b[2J\x1b]0;pwned\x07name", `\x1b[2J\x1b]0;pwned\aname`},
		{"forged line", "ok\r\n2026-01-01 ERROR forged", `ok\r\n2026-01-01 ERROR forged`},
		{"tab", "a\tb", `a\tb`},
		{"C1 CSI", "a\u009b2Jb", `a\u009b2Jb`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"bidi override", "abc\u202edcb", `abc\u202edcb`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"not UTF-8", "a\xff\xfeb", `a\xff\xfeb`},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := termtext.Line(tt.in); got != tt.want {
				t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzLine checks that Line's output never holds a control character, a
// bidi control or invalid UTF-8, and keeps safe text as it is.
func FuzzLine(f *testing.F) {
	f.Add("\x1b[31mred\r\n")
	f.Add("\u202e\u2066x\xc3")
	f.Fuzz(func(t *testing.T, s string) {
		got := termtext.Line(s)
		if strings.ContainsFunc(got, func(r rune) bool {
			return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e' || r == '\u2028'
		}) {
			t.Fatalf("Line(%q) = %q holds a control character", s, got)
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f }) && got != s {
			t.Fatalf("Line(%q) = %q changed printable ASCII", s, got)
		}
		if termtext.Line(got) != got {
			t.Fatalf("Line is not idempotent on %q", s)
		}
	})
}

type stringer struct{}

func (stringer) String() string { return "str\x1b[0m" }

// The console handler writes one line per record, with no escape
// character, whatever the record's message, keys and values hold.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(termtext.Handler(tint.NewHandler(&buf, &tint.Options{NoColor: true, TimeFormat: time.TimeOnly})))
	log = log.With(slog.String("display_name", "evil\x1b]0;title\x07"))
	log.WithGroup("g\n").Info("claimed\r\nFAKE LINE", slog.String("k\x1b", "v\x1b[2J"), slog.Any("err", errors.New("bad\nline")),
		slog.Any("s", stringer{}), slog.Group("grp", slog.String("p", "\u202ex")), slog.Int("job", 7))
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want one line, got %q", out)
	}
	if strings.ContainsAny(out, "\x1b\r\x07\u202e") {
		t.Fatalf("an escape reached the output: %q", out)
	}
	for _, want := range []string{`claimed\r\nFAKE LINE`, `job=7`, `x1b[2J`} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}
