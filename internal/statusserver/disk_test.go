package statusserver_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// lines splits a log into its lines. (The tests' logs are written only by
// the calls they make: the deadline of an hour never fires.)
func lines(b *bytes.Buffer) []string {
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

var errFull = fmt.Errorf("client: not recorded in the journal, so not sent: journal is full: %w", syscall.ENOSPC)

// The journal's state changes make one log line each; attempts that
// change nothing make none; claims wait while something is held.
func TestDiskStateSpell(t *testing.T) {
	var buf bytes.Buffer
	d := statusserver.NewDiskState(statusserver.DiskConfig{Path: "/j.db", Log: slog.New(slog.NewTextHandler(&buf, nil)), Deadline: time.Hour, Expired: func(time.Time, error) { t.Error("deadline passed") }, Waits: "no job is claimed until it can"})
	if claim, _, _ := d.MayClaim(0); !claim {
		t.Fatal("a writable journal refuses a claim")
	}
	woken := d.Failed(0, "the output of job 7 (3 bytes)", errFull, time.Second, time.Now())
	d.Failed(0, "the output of job 7 (3 bytes)", errFull, 2*time.Second, time.Now()) // a retry: no line
	js := d.Snapshot()
	if js.Writable || len(js.Held) != 1 || js.Failures != 2 || js.NextRetry == nil || !strings.Contains(js.Error, "no space left") {
		t.Fatalf("status while full: %+v", js)
	}
	claim, probe, wait := d.MayClaim(1)
	if claim || probe || wait == nil {
		t.Fatalf("slot 1 may claim (%v) or probe (%v) while slot 0 holds an output", claim, probe)
	}
	d.Failed(1, "the output of job 9 (3 bytes)", errFull, time.Second, time.Now()) // one more held: one line
	d.OK(1, time.Now())                                                            // slot 1's got through: slot 0 still waits
	select {
	case <-woken:
	default:
		t.Error("a write that got through did not wake the other holder")
	}
	if d.Snapshot().Writable {
		t.Fatal("writable again while slot 0 still holds its output")
	}
	d.OK(0, time.Now())
	select {
	case <-wait:
	default:
		t.Fatal("the end of the spell did not wake the waiting claim")
	}
	if js := d.Snapshot(); !js.Writable || len(js.Held) != 0 || js.Error != "" {
		t.Fatalf("status after the spell: %+v", js)
	}
	lines := lines(&buf)
	want := []string{"cannot be written: no job is claimed until it can", "still cannot be written: one more thing held in memory",
		"took a record held in memory; others still wait", "writable again"}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to say %q", i+1, lines[i], w)
		}
	}
}

// A write that began before the spell and is reported after it began (it
// reached the disk just before another slot's failed) does not end the
// spell: on a loaded machine that made a second spell at once, with a
// "writable again" line after 0 s between the two. Nor does a failure
// begun before the spell ended start another.
func TestDiskStateSuccessBeforeSpell(t *testing.T) {
	var buf bytes.Buffer
	d := statusserver.NewDiskState(statusserver.DiskConfig{Path: "/j.db", Log: slog.New(slog.NewTextHandler(&buf, nil)), Deadline: time.Hour, Expired: func(time.Time, error) {}, Waits: "no job is claimed until it can"})
	began := time.Now() // slot 1 starts a claim
	d.Failed(0, "", errFull, time.Second, time.Now())
	d.OK(1, began) // slot 1's claim is reported after slot 0's failure
	if js := d.Snapshot(); js.Writable {
		t.Fatalf("a write begun before the spell ended it: %+v\n%s", js, buf.String())
	}
	if claim, _, _ := d.MayClaim(1); claim {
		t.Fatal("slot 1 may claim during the spell")
	}
	began = time.Now()  // slot 1 starts a write
	d.OK(0, time.Now()) // the probe, begun during the spell
	if js := d.Snapshot(); !js.Writable {
		t.Fatalf("a probe begun during the spell did not end it: %+v", js)
	}
	// The other way round: slot 1's write failed before the probe found
	// the journal writable, and is reported after.
	d.Failed(1, "the output of job 9 (3 bytes)", errFull, time.Second, began)
	if js := d.Snapshot(); !js.Writable {
		t.Fatalf("a write begun before the spell ended started a new one: %+v", js)
	}
	d.Failed(1, "the output of job 9 (3 bytes)", errFull, time.Second, time.Now()) // its next attempt
	if js := d.Snapshot(); js.Writable || len(js.Held) != 1 {
		t.Fatalf("a write begun after the spell ended failed, and no new spell: %+v", js)
	}
	lines := lines(&buf)
	want := []string{"cannot be written", "writable again", "cannot be written"}
	if len(lines) != len(want) {
		t.Fatalf("log lines:\n%s", buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to say %q", i+1, lines[i], w)
		}
	}
}

// With nothing held, one slot at a time probes the journal; the others
// wait for the end of the spell.
func TestDiskStateProbe(t *testing.T) {
	d := statusserver.NewDiskState(statusserver.DiskConfig{Path: "/j.db", Log: slog.New(slog.DiscardHandler), Deadline: time.Hour, Expired: func(time.Time, error) {}, Waits: "no job is claimed until it can"})
	d.Failed(0, "", errFull, time.Second, time.Now()) // a refused claim: nothing held
	if _, probe, _ := d.MayClaim(0); !probe {
		t.Fatal("slot 0 may not probe with nothing held")
	}
	claim, probe, wait := d.MayClaim(1)
	if claim || probe || wait == nil {
		t.Fatal("a second slot probes too")
	}
	d.Drop(0) // the prober went away (dcproxy: its program hung up)
	select {
	case <-wait:
	default:
		t.Fatal("the prober went away and the waiting slot was not woken: it would wait for a probe nobody makes")
	}
	if _, probe, _ := d.MayClaim(1); !probe {
		t.Fatal("the prober's role is not handed on")
	}
}

// The deadline fires once the journal stayed unwritable that long, not
// after a spell that ended.
func TestDiskStateDeadline(t *testing.T) {
	fired := make(chan error, 1)
	d := statusserver.NewDiskState(statusserver.DiskConfig{Path: "/j.db", Log: slog.New(slog.DiscardHandler), Deadline: 50 * time.Millisecond, Expired: func(_ time.Time, err error) { fired <- err }, Waits: "no job is claimed until it can"})
	d.Failed(0, "x", errFull, time.Second, time.Now())
	d.OK(0, time.Now())
	d.Failed(0, "x", errFull, time.Second, time.Now())
	select {
	case err := <-fired:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("deadline with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the deadline never passed")
	}
	if got := len(fired); got != 0 {
		t.Errorf("the deadline fired %d more times", got)
	}
}

// Once the program has stopped (Stop), a spell's deadline does not fire:
// it would drain a program that has returned, and log after it (dcproxy's
// Run returned in a test during a spell; ten minutes later the deadline
// logged into the finished test, which panicked).
func TestDiskStateStop(t *testing.T) {
	fired := make(chan error, 2)
	d := statusserver.NewDiskState(statusserver.DiskConfig{Path: "/j.db", Log: slog.New(slog.DiscardHandler), Deadline: 20 * time.Millisecond,
		Expired: func(_ time.Time, err error) { fired <- err }, Waits: "no job is claimed until it can"})
	d.Failed(0, "x", errFull, time.Second, time.Now())
	d.Stop()
	d.Failed(1, "y", errFull, time.Second, time.Now()) // still a spell: no new deadline
	select {
	case err := <-fired:
		t.Fatalf("the deadline fired after Stop: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	d.OK(0, time.Now()) // no deadline armed: nothing to stop, no panic
	d.OK(1, time.Now())
}
