package journal_test

import (
	"testing"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// TestDrained: a drain is recorded with its reason, leaves the slot's state as it was
// (the held job stays held, for a resume), and reads back after a reopen.
func TestDrained(t *testing.T) {
	path := t.TempDir() + "/j.db"
	db := journaltest.MustOpenPath(t, path, nil)
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 7, Input: ptr("in")})
	before, err := db.State("s")
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindDrained, Reason: "SIGTERM"})
	after, err := db.State("s")
	if err != nil {
		t.Fatal(err)
	}
	if after.Job == nil || after.Job.Number != 7 || after.Session == nil || after.LastSeq != before.LastSeq+1 {
		t.Fatalf("state after a drain = %+v, want job 7 still held in an open session", after)
	}
	if got := kindsOf(t, db, "s"); got != "registered claimed drained" {
		t.Fatalf("events = %q", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = journaltest.MustOpenPath(t, path, &journal.Options{ReadOnly: true})
	var reason string
	if err := db.Events(journal.Filter{Slot: "s"}, func(e journal.Event) error {
		if e.Kind == journal.KindDrained {
			reason = e.Reason
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if reason != "SIGTERM" {
		t.Fatalf("drained reason after reopen = %q, want SIGTERM", reason)
	}
}
