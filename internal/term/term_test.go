package term_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/internal/term"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestColor(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, w := range map[string]any{"file": f, "buffer": &bytes.Buffer{}} {
		if term.Color(w.(interface{ Write([]byte) (int, error) }), env(nil)) {
			t.Errorf("%s: colour allowed on something that is not a terminal", name)
		}
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !term.Color(tty, env(nil)) {
			t.Error("no colour on a terminal")
		}
		if term.Color(tty, env(map[string]string{"NO_COLOR": "1"})) {
			t.Error("colour with NO_COLOR=1")
		}
		if term.Color(tty, env(map[string]string{"TERM": "dumb"})) {
			t.Error("colour with TERM=dumb")
		}
	}
}

func TestHandlerPlainToFile(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(term.Handler(&b, slog.LevelInfo, env(nil)))
	log.With("slot", "0").With("slot", "0").Info("hello", "slot", "0", "job", 7)
	got := b.String()
	if strings.Contains(got, "\x1b[") {
		t.Errorf("ANSI escapes written to a buffer: %q", got)
	}
	if n := strings.Count(got, "slot=0"); n != 1 {
		t.Errorf("slot=0 written %d times: %q", n, got)
	}
	if !strings.Contains(got, "job=7") {
		t.Errorf("lost an attribute: %q", got)
	}
}

func TestErrorLine(t *testing.T) {
	for _, tc := range []struct{ cmd, err, want string }{
		{"dcworker", "client: pool slot slot-0: client: session: newJob: connection refused", "pool slot slot-0: newJob: connection refused"},
		{"dcjournal", "dcjournal inspect: --job wants a number", "inspect: --job wants a number"},
		{"dcworker", "worker: invalid configuration: stage \"z\"", "invalid configuration: stage \"z\""},
		{"dcworker", "line one\nline two", "line one line two"},
	} {
		if got := term.ErrorLine(tc.cmd, errors.New(tc.err)); got != tc.want {
			t.Errorf("ErrorLine(%q, %q) = %q, want %q", tc.cmd, tc.err, got, tc.want)
		}
	}
}
