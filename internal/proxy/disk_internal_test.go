package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
)

var errFull = fmt.Errorf("client: %w: %w", client.ErrNotRecorded, &journal.FullError{Size: 1 << 20, Limit: 1 << 20, Free: 0})

// The journal's spells make one log line when they begin and one when they
// end, whatever the attempts in between; a spell ends once no waiting call
// holds anything, and a call's attempt begun before a spell began (or
// before the last one ended) does not end it (or begin another).
func TestDiskState(t *testing.T) {
	if !journalRefused(errFull) || journalRefused(client.ErrNoJobs) || journalRefused(syscall.ECONNREFUSED) {
		t.Fatal("journalRefused does not tell the journal's refusals from other errors")
	}
	var buf bytes.Buffer
	d := newDiskState("/j.db", slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, func(time.Time, error) { t.Error("deadline passed") })
	if js := d.snapshot(); !js.Writable || js.Held == nil {
		t.Fatalf("at the start: %+v", js)
	}
	claim, settle := d.nextID.Add(1), d.nextID.Add(1)
	beforeSpell := time.Now()
	d.failed(settle, "the output of job 7 (3 bytes), w-0", errFull, time.Now())
	d.failed(settle, "the output of job 7 (3 bytes), w-0", errFull, time.Now()) // its next attempt: no line
	d.ok(claim, beforeSpell)                                                    // begun before the spell
	js := d.snapshot()
	if js.Writable || js.Failures != 2 || len(js.Held) != 1 || js.Since == nil || !strings.Contains(js.Error, "journal is full") {
		t.Fatalf("during the spell: %+v", js)
	}
	d.ok(claim, time.Now()) // a claim's small record passed; the output still waits
	if d.snapshot().Writable {
		t.Fatal("writable again while a completion still waits")
	}
	beforeEnd := time.Now()
	d.ok(settle, time.Now())
	if js := d.snapshot(); !js.Writable || len(js.Held) != 0 || js.Error != "" || js.Since != nil {
		t.Fatalf("after the spell: %+v", js)
	}
	d.failed(claim, "", errFull, beforeEnd) // failed before the spell ended
	if !d.snapshot().Writable {
		t.Fatal("an attempt begun before the spell ended began another")
	}
	d.failed(claim, "", errFull, time.Now())
	d.done(claim)
	if js := d.snapshot(); js.Writable || js.Failures != 4 {
		t.Fatalf("second spell: %+v", js)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"cannot be written", "writable again", "cannot be written"}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to say %q", i+1, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], `journaled="the output of job 7`) {
		t.Errorf("the end of the spell does not say what was journaled: %s", lines[1])
	}
}

// The deadline fires once the journal stayed unwritable that long, not
// after a spell that ended.
func TestDiskStateDeadline(t *testing.T) {
	fired := make(chan error, 2)
	d := newDiskState("/j.db", slog.New(slog.DiscardHandler), 50*time.Millisecond, func(_ time.Time, err error) { fired <- err })
	d.failed(1, "x", errFull, time.Now())
	d.ok(1, time.Now())
	d.failed(1, "x", errFull, time.Now())
	select {
	case err := <-fired:
		if !errors.Is(err, journal.ErrFull) {
			t.Errorf("deadline with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the deadline never passed")
	}
	time.Sleep(100 * time.Millisecond)
	if got := len(fired); got != 0 {
		t.Errorf("the deadline fired %d more times", got)
	}
}
