package postmortem_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
)

// hostile is text a tracker could send to drive an operator's terminal:
// clear the screen, retitle the window, forge a line, reverse the text.
const hostile = "\x1b[2J\x1b]0;owned\x07\r\nERROR forged line\u202e\u009b31m"

// Every view of inspect writes the strings a tracker sent (names, project,
// progress, input, output, reasons) with no control character and no line
// of their own; --json keeps them exact.
func TestInspectEscapesTrackerText(t *testing.T) {
	db, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in, out := "input "+hostile, "output "+hostile
	for _, e := range []journal.Event{
		{Slot: "0", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "0f1e2d3c-4b5a-4697-8877-665544332211",
			DisplayName: "name " + hostile, Nickname: "nick " + hostile, Project: "project " + hostile, StageName: "stage " + hostile},
		{Slot: "0", Kind: journal.KindClaimed, Job: 1, Input: &in},
		{Slot: "0", Kind: journal.KindProgress, Progress: "progress " + hostile},
		{Slot: "0", Kind: journal.KindCompletionPending, Job: 1, Output: &out},
		{Slot: "0", Kind: journal.KindSessionLost, Reason: "reason " + hostile},
		{Slot: "0", Kind: journal.KindRefused, Job: 2, Reason: "refused " + hostile},
	} {
		if _, err := db.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, opts := range []postmortem.InspectOptions{{}, {Timeline: true}, {Job: 1}, {Slot: "0"}} {
		var b bytes.Buffer
		if err := postmortem.Inspect(&b, db, opts); err != nil {
			t.Fatal(err)
		}
		text := b.String()
		if i := strings.IndexFunc(text, func(r rune) bool {
			return (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e'
		}); i >= 0 {
			t.Errorf("%+v: a control character reached the output at byte %d:\n%s", opts, i, text)
		}
		if strings.Contains(text, "\nERROR forged line") {
			t.Errorf("%+v: the forged line stands on a line of its own:\n%s", opts, text)
		}
		if opts.Job == 0 && !strings.Contains(text, `name \x1b[2J`) {
			t.Errorf("%+v: the slot's worker name is not shown escaped:\n%s", opts, text)
		}
		if opts.Job == 0 && !opts.Timeline && !strings.Contains(text, `refused     1 job at claims (--timeline lists them); last: job 2 released at`) {
			t.Errorf("%+v: the refused job is not shown:\n%s", opts, text)
		}
	}
	var b bytes.Buffer
	if err := postmortem.Inspect(&b, db, postmortem.InspectOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Slots []struct {
			Worker string `json:"worker"`
		} `json:"slots"`
	}
	if err := json.Unmarshal(b.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Slots) != 1 || sum.Slots[0].Worker != "name "+hostile {
		t.Errorf("--json changed the worker's name: %+v", sum.Slots)
	}
}
