package worker

import (
	"testing"

	"github.com/distcompute/distcompute-go/session"
)

func TestOutputPayload(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		kind      session.Kind
		text      string
	}{
		{"one newline trimmed", "hello\n", session.KindString, "hello"},
		{"only one newline trimmed", "hello\n\n", session.KindString, "hello\n"},
		{"no newline", "hello", session.KindString, "hello"},
		{"empty", "", session.KindString, ""},
		{"object", "{\"a\":1}\n", session.KindJSON, `{"a":1}`},
		{"array with spaces", "  [1, 2]  \n", session.KindJSON, `[1, 2]`},
		{"broken json is a string", "[1, 2\n", session.KindString, "[1, 2"},
		{"scalar json is a string", "42\n", session.KindString, "42"},
		{"quoted string stays a string", "\"x\"\n", session.KindString, `"x"`},
		{"CRLF trimmed like LF", "done:shard-1\r\n", session.KindString, "done:shard-1"},
		{"only one CRLF trimmed", "a\r\n\r\n", session.KindString, "a\r\n"},
		{"lone CR kept", "a\r", session.KindString, "a\r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := outputPayload([]byte(tc.out))
			if p.Kind() != tc.kind || p.Text() != tc.text {
				t.Errorf("outputPayload(%q) = %v %q; want %v %q", tc.out, p.Kind(), p.Text(), tc.kind, tc.text)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "64KiB": 64 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30, "2M": 2 << 20, "5 KB": 5 << 10, "7B": 7} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1", "0", "1TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestParseRunArgsDefaults(t *testing.T) {
	cfg, _, err := ParseRunArgs([]string{"--tracker", "http://127.0.0.1:1", "--", "sh", "arg"}, discard{}, discard{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.Grace != DefaultGrace || cfg.Retries != DefaultRetries || cfg.InvalidExitCode != 65 || cfg.MaxOutput != 16<<20 || cfg.Slots != 1 || cfg.Stage != "a" || cfg.MaxFailedRuns != DefaultMaxFailedRuns {
		t.Errorf("defaults: %+v", cfg)
	}
	if len(cfg.Command) != 2 || cfg.Command[0] != "sh" {
		t.Errorf("command %q", cfg.Command)
	}
	cfg, _, err = ParseRunArgs([]string{"--tracker", "http://h", "--retries", "0", "--", "sh"}, discard{}, discard{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.setDefaults(); cfg.Retries != 0 {
		t.Errorf("--retries 0 gave %d retries", cfg.Retries)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
