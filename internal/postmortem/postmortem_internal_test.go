package postmortem

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

func TestJSONPrefixIsSessions(t *testing.T) {
	if jsonPrefix != session.JSONPrefix {
		t.Fatalf("jsonPrefix = %q, session.JSONPrefix = %q", jsonPrefix, session.JSONPrefix)
	}
}

func TestFmtDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{42 * time.Second, "42s"},
		{11*time.Minute + 5*time.Second, "11m05s"},
		{5*time.Hour + 2*time.Minute + 10*time.Second, "5h02m"},
		{-90 * time.Second, "1m30s"},
		{50 * time.Hour, "2d02h"},
	} {
		if got := fmtDuration(tc.d); got != tc.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestReportLine(t *testing.T) {
	for name, tc := range map[string]struct{ raw, want string }{
		"replay report": {`{"slot":"0","resubmitted":[41,42],"released":[7],"session_lost":true,"errors":["x"]}`, "resubmitted 41 42; released 7; session lost; errors x"},
		"empty fields":  {`{"slot":"0","resubmitted":[],"bye_resent":false}`, "nothing to do"},
		"not an object": {`[1,2]`, `[1,2]`},
		"missing":       {``, "empty report"},
	} {
		if got := reportLine(json.RawMessage(tc.raw)); got != tc.want {
			t.Errorf("%s: reportLine(%s) = %q, want %q", name, tc.raw, got, tc.want)
		}
	}
}

func TestLessSlot(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"2", "10", true}, {"10", "2", false}, {"a", "b", true}, {"slot-10", "slot-2", true}, {"0", "0", false},
	} {
		if got := lessSlot(tc.a, tc.b); got != tc.want {
			t.Errorf("lessSlot(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRedaction(t *testing.T) {
	if got := redactURL("https://user:hunter2@tracker.example/", false); got != "https://user:xxxxx@tracker.example/" {
		t.Errorf("redactURL = %q", got)
	}
	if got := redactURL("https://user:hunter2@tracker.example/", true); got != "https://user:hunter2@tracker.example/" {
		t.Errorf("redactURL with show = %q", got)
	}
	if got := redactToken("0f1e2d3c-4b5a-4697-8877-665544332211", false); got != "0f1e2d3c…" {
		t.Errorf("redactToken = %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/vol/journal.db": "/mnt/vol/journal.db",
		"my journal.db":       "'my journal.db'",
		"it's":                `'it'\''s'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLineEscapesControls(t *testing.T) {
	if got := oneLine("a\tb\nc\x1b[31mred\x07"); got != `a\tb\nc\x1b[31mred\a` {
		t.Errorf("oneLine = %q", got)
	}
}
