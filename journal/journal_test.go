package journal_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
	bolt "go.etcd.io/bbolt"
)

func ptr(s string) *string { return &s }

func register(t *testing.T, db *journal.DB, slot string) journal.Event {
	t.Helper()
	e, err := db.Append(journal.Event{Slot: slot, Kind: journal.KindRegistered, URL: "http://t", Stage: "a",
		Nickname: "n", Token: "0123456789abcdef", DisplayName: "w1", Project: "p", StageName: "CPU"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return e
}

func mustAppend(t *testing.T, db *journal.DB, e journal.Event) journal.Event {
	t.Helper()
	got, err := db.Append(e)
	if err != nil {
		t.Fatalf("Append(%s): %v", e.Kind, err)
	}
	return got
}

func TestJobCycle(t *testing.T) {
	db := journaltest.MustOpen(t, nil)
	r := register(t, db, "s1")
	if r.Seq != 1 || r.Version != journal.FormatVersion || r.Time.IsZero() {
		t.Fatalf("registered = %+v, want seq 1, version, time", r)
	}
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 7, Input: ptr("in")})
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindCheckpoint, Checkpoint: []byte("c1")})
	db.AppendProgress("s1", "half way")
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if st, err := db.State("s1"); err != nil || st.Progress != "half way" {
		t.Fatalf("progress of the held job = %q, %v; want %q", st.Progress, err, "half way")
	}
	// The completion ends the job: its progress text is no longer the
	// worker's (the tracker's dashboard must not show it any more).
	p := mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindCompletionPending, Output: ptr("out")})
	if p.Job != 7 {
		t.Errorf("completion-pending Job = %d, want 7 (filled in)", p.Job)
	}
	st, err := db.State("s1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Job != nil || st.Completion == nil || st.Completion.Job.Number != 7 || string(st.Completion.Job.Checkpoint) != "c1" ||
		st.Completion.Output != "out" || st.Completion.Seq != p.Seq || st.Progress != "" || st.Session.Token != "0123456789abcdef" {
		t.Fatalf("state after completion-pending = %+v", st)
	}
	// A claim while a completion is pending is refused, nothing written.
	if _, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 8}); !errors.Is(err, journal.ErrInvalidEvent) {
		t.Fatalf("claim with pending completion: err = %v, want ErrInvalidEvent", err)
	}
	st2, _ := db.State("s1")
	if st2.LastSeq != st.LastSeq {
		t.Fatalf("refused append wrote something: last seq %d -> %d", st.LastSeq, st2.LastSeq)
	}
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
	var kinds []string
	if err := db.Events(journal.Filter{Job: 7}, func(e journal.Event) error {
		kinds = append(kinds, string(e.Kind))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := "claimed checkpoint progress completion-pending completion-settled"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events of job 7 = %q, want %q", got, want)
	}
	slots, _ := db.Slots()
	if len(slots) != 1 || slots[0] != "s1" {
		t.Errorf("Slots() = %v", slots)
	}
	st, _ = db.State("unknown")
	if st.Slot != "unknown" || st.Session != nil || st.LastSeq != 0 {
		t.Errorf("State(unknown) = %+v, want zero with slot", st)
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name  string
		setup []journal.Event
		e     journal.Event
	}{
		{"no slot", nil, journal.Event{Kind: journal.KindReplayed}},
		{"unknown kind", nil, journal.Event{Slot: "s", Kind: "bogus"}},
		{"claim without session", nil, journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 1}},
		{"register twice", []journal.Event{reg("s")}, reg("s")},
		{"register without token", nil, journal.Event{Slot: "s", Kind: journal.KindRegistered}},
		{"completion without job", []journal.Event{reg("s")}, journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Job: 1, Output: ptr("x")}},
		{"completion of another job", []journal.Event{reg("s"), claim("s", 1)}, journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Job: 2, Output: ptr("x")}},
		{"completion without output", []journal.Event{reg("s"), claim("s", 1)}, journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Job: 1}},
		{"claim while completion pending", []journal.Event{reg("s"), claim("s", 1), complete("s")}, claim("s", 2)},
		{"settle without pending", []journal.Event{reg("s"), claim("s", 1)}, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Job: 1, Outcome: journal.OutcomeAccepted}},
		{"settle bad outcome", []journal.Event{reg("s"), claim("s", 1), complete("s")}, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: "meh"}},
		{"flag settled without pending", []journal.Event{reg("s"), claim("s", 1)}, journal.Event{Slot: "s", Kind: journal.KindFlagSettled, Outcome: journal.OutcomeAccepted}},
		{"bye while completion pending", []journal.Event{reg("s"), claim("s", 1), complete("s")}, journal.Event{Slot: "s", Kind: journal.KindByePending}},
		{"claim after close", []journal.Event{reg("s"), {Slot: "s", Kind: journal.KindClosed}}, claim("s", 1)},
		{"resolve unknown orphan", nil, journal.Event{Slot: "s", Kind: journal.KindOrphanResolved, OrphanSeq: 99, Outcome: journal.OutcomeExported}},
		{"invalid report", nil, journal.Event{Slot: "s", Kind: journal.KindReplayed, Report: []byte("{")}},
		{"claim job 0", []journal.Event{reg("s")}, journal.Event{Slot: "s", Kind: journal.KindClaimed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := journaltest.MustOpen(t, &journal.Options{NoSync: true})
			for _, e := range tc.setup {
				mustAppend(t, db, e)
			}
			_, err := db.Append(tc.e)
			if !errors.Is(err, journal.ErrInvalidEvent) {
				t.Fatalf("err = %v, want ErrInvalidEvent", err)
			}
			if je := checkError(t, err, db.Path()); je != nil && je.Op != "append" {
				t.Errorf("Op = %q, want append", je.Op)
			}
			var ie *journal.InvalidEventError
			if !errors.As(err, &ie) || ie.Slot != tc.e.Slot || ie.Kind != tc.e.Kind || ie.Reason == "" || ie.Earlier != nil {
				t.Errorf("err = %#v, want an *InvalidEventError of slot %q, kind %q, with a reason", ie, tc.e.Slot, tc.e.Kind)
			}
		})
	}
}

// checkError checks that err is a *journal.Error naming path, whose message
// has one "journal: PATH: " prefix, and returns it (nil after reporting if
// not).
func checkError(t *testing.T, err error, path string) *journal.Error {
	t.Helper()
	var je *journal.Error
	if !errors.As(err, &je) {
		t.Errorf("err = %v (%T), want a *journal.Error", err, err)
		return nil
	}
	if je.Path != path {
		t.Errorf("err.Path = %q, want %q", je.Path, path)
	}
	prefix := "journal: " + path + ": "
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || strings.Count(msg, "journal: "+path) != 1 {
		t.Errorf("error %q: want one prefix %q", msg, prefix)
	}
	return je
}

func reg(slot string) journal.Event {
	return journal.Event{Slot: slot, Kind: journal.KindRegistered, Token: "tok-123456789", Stage: "a"}
}
func claim(slot string, job int) journal.Event {
	return journal.Event{Slot: slot, Kind: journal.KindClaimed, Job: job, Input: ptr("in")}
}
func complete(slot string) journal.Event {
	return journal.Event{Slot: slot, Kind: journal.KindCompletionPending, Output: ptr("out")}
}

func TestOrphans(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{NoSync: true})
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, claim("s", 3))
	p := mustAppend(t, db, complete("s"))
	mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindSessionLost, Reason: "validateWorker: False"})
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, claim("s", 4))
	p2 := mustAppend(t, db, complete("s"))
	mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeOrphaned, Reason: "404"})
	orphans, err := db.Orphans()
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 2 || orphans[0].Seq != p.Seq || orphans[0].Job != 3 || orphans[0].Output != "out" ||
		*orphans[0].Input != "in" || orphans[1].Seq != p2.Seq || orphans[1].Job != 4 {
		t.Fatalf("orphans = %+v", orphans)
	}
	r := mustAppend(t, db, journal.Event{Kind: journal.KindOrphanResolved, OrphanSeq: p.Seq, Outcome: journal.OutcomeResubmitted})
	if r.Slot != "s" || r.Job != 3 {
		t.Errorf("orphan-resolved filled slot %q job %d, want s 3", r.Slot, r.Job)
	}
	orphans, _ = db.Orphans()
	if len(orphans) != 1 || orphans[0].Seq != p2.Seq {
		t.Fatalf("after resolve: %+v", orphans)
	}
	if _, err := db.Append(journal.Event{Kind: journal.KindOrphanResolved, OrphanSeq: p.Seq, Outcome: journal.OutcomeExported}); !errors.Is(err, journal.ErrInvalidEvent) {
		t.Fatalf("resolving twice: %v", err)
	}
}

func TestRetentionKeepsOrphansAndBoundsHistory(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{NoSync: true, Retention: 3})
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, claim("s", 1))
	orphan := mustAppend(t, db, complete("s"))
	mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeOrphaned})
	for j := 2; j < 200; j++ {
		mustAppend(t, db, claim("s", j))
		db.AppendProgress("s", "p")
		mustAppend(t, db, complete("s"))
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
	}
	n := 0
	jobs := map[int]bool{}
	db.Events(journal.Filter{Slot: "s"}, func(e journal.Event) error { n++; jobs[e.Job] = true; return nil })
	if n > 40 || len(jobs) > 10 || !jobs[199] { // pruning runs every 16 appends
		t.Errorf("after 199 jobs with retention 3: %d events of jobs %v kept", n, jobs)
	}
	orphans, _ := db.Orphans()
	if len(orphans) != 1 || orphans[0].Seq != orphan.Seq {
		t.Errorf("orphans = %+v, want the one of job 1", orphans)
	}
}

func TestProgressIsBufferedAndFlushed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := journal.Open(path, &journal.Options{ProgressInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	for i := 0; i < 100; i++ {
		db.AppendProgress("s", "p"+string(rune('0'+i%10)))
	}
	// The flusher writes it within 20ms; a minute only bounds a broken one.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for st, _ := db.State("s"); st.Progress != "p9"; st, _ = db.State("s") {
		select {
		case <-tick.C:
		case <-timeout.C:
			t.Fatalf("progress not flushed: %+v", st.Redacted())
		}
	}
	n := 0
	db.Events(journal.Filter{Slot: "s"}, func(e journal.Event) error { n++; return nil })
	if n != 2 {
		t.Errorf("%d events, want registered + one progress (latest wins)", n)
	}
	db.AppendProgress("s", "last words")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if st, _ := db.State("s"); st.Progress != "last words" {
		t.Errorf("Close did not flush progress: %q", st.Progress)
	}
}

func TestModesAndLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "folder")
	path := filepath.Join(dir, "j.db")
	db, err := journal.Open(path, &journal.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v, want 0700", fi.Mode().Perm())
	}
	start := time.Now()
	_, err = journal.Open(path, &journal.Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if je := checkError(t, err, path); je != nil && je.Op != "open" {
		t.Errorf("Op = %q, want open", je.Op)
	}
	var locked *journal.LockedError
	if !errors.As(err, &locked) || locked.Waited != 200*time.Millisecond {
		t.Fatalf("second Open: %#v, want a *LockedError that waited 200ms", locked)
	}
	// The holder is this process (db above); /proc/locks lists it on Linux.
	if runtime.GOOS == "linux" && !slices.Contains(locked.PIDs, os.Getpid()) {
		t.Errorf("LockedError.PIDs = %v, want this process's pid %d among them", locked.PIDs, os.Getpid())
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("second Open failed after %v, want about the 200ms timeout", d)
	}
}

func TestClosedAndReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := journal.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	db.Close()
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Append(reg("t")); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	} else {
		checkError(t, err, path)
	}
	if _, err := db.State("s"); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("State after Close: %v", err)
	}
	db.AppendProgress("s", "ignored") // must not panic

	ro, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Append(claim("s", 1)); !errors.Is(err, journal.ErrReadOnly) {
		t.Errorf("Append on read-only: %v", err)
	}
	if _, _, err := ro.Compact(); !errors.Is(err, journal.ErrReadOnly) {
		t.Errorf("Compact on read-only: %v", err)
	}
	ro.AppendProgress("s", "ignored")
	// Two readers at once are fine.
	ro2, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("second read-only Open: %v", err)
	}
	ro2.Close()
	if _, err := journal.Open(filepath.Join(t.TempDir(), "missing.db"), &journal.Options{ReadOnly: true}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only Open of a missing file: %v", err)
	}
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestReadOnlyLeavesBytesUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := journal.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, claim("s", 1))
	db.AppendProgress("s", "x")
	db.Close()
	fi0, _ := os.Stat(path)
	before := hashFile(t, path)
	ro, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.States()
	ro.Events(journal.Filter{}, func(journal.Event) error { return nil })
	ro.Orphans()
	if errs := ro.Verify(); errs != nil {
		t.Fatal(errs)
	}
	var buf bytes.Buffer
	if _, err := ro.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	fi1, _ := os.Stat(path)
	if hashFile(t, path) != before || fi0.ModTime() != fi1.ModTime() {
		t.Fatal("read-only use changed the file")
	}
}

func TestSnapshotAndCompact(t *testing.T) {
	dir := t.TempDir()
	db := journaltest.MustOpen(t, &journal.Options{NoSync: true, Retention: 2, NoAutoCompact: true})
	mustAppend(t, db, reg("s"))
	big := strings.Repeat("x", 16<<10)
	for j := 1; j <= 120; j++ {
		mustAppend(t, db, claim("s", j))
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Output: &big})
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
		if j == 60 {
			// Hold a read transaction's worth of growth: write a snapshot mid-way.
			f, _ := os.Create(filepath.Join(dir, "snap.db"))
			if _, err := db.WriteSnapshot(f); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	want, _ := db.State("s")
	before, after, err := db.Compact()
	if err != nil {
		t.Fatal(err)
	}
	// 118 of 120 outputs of 16 KiB were pruned: the copy holds far less.
	if after >= before || after > 1<<20 {
		t.Errorf("compact: %d -> %d bytes, want a smaller file of at most 1 MiB", before, after)
	}
	got, err := db.State("s")
	if err != nil || !got.Equal(want) {
		t.Fatalf("state after compact = %+v, %v; want %+v", got, err, want)
	}
	mustAppend(t, db, claim("s", 1000)) // still writable
	snap, err := journal.Open(filepath.Join(dir, "snap.db"), &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("snapshot does not open: %v", err)
	}
	defer snap.Close()
	if errs := snap.Verify(); errs != nil {
		t.Fatal(errs)
	}
	if st, _ := snap.State("s"); st.LastSeq == 0 {
		t.Error("snapshot is empty")
	}
}

func TestRedacted(t *testing.T) {
	e := journal.Event{Token: "0123456789abcdef"}
	if got := e.Redacted().Token; got != "01234567…" {
		t.Errorf("Redacted token = %q", got)
	}
	if e.Token != "0123456789abcdef" {
		t.Error("Redacted changed the original")
	}
	if s := e.String(); strings.Contains(s, "89abcdef") {
		t.Errorf("String() leaks the token: %s", s)
	}
	st := journal.State{Session: &journal.Session{Token: "0123456789abcdef"}}
	if st.Redacted().Session.Token != "01234567…" || st.Session.Token != "0123456789abcdef" {
		t.Error("State.Redacted")
	}
}

// Bad files: each is refused with a clear error naming the file, never a
// panic.
func TestBadFiles(t *testing.T) {
	good := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "good.db")
		db, err := journal.Open(path, &journal.Options{NoSync: true, Retention: -1})
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, db, reg("s"))
		big := strings.Repeat("y", 16<<10)
		for j := 1; j < 12; j++ {
			mustAppend(t, db, claim("s", j))
			mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Output: &big})
			mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
		}
		db.Close()
		return path
	}
	cases := []struct {
		name string
		make func(t *testing.T) string
		want error
	}{
		{"truncated", func(t *testing.T) string {
			p := good(t)
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			return p
		}, journal.ErrCorrupt},
		{"truncated-to-one-page", func(t *testing.T) string {
			p := good(t)
			os.Truncate(p, 4096)
			return p
		}, journal.ErrCorrupt},
		{"garbage", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "garbage.db")
			os.WriteFile(p, bytes.Repeat([]byte("not a database, just text. "), 1000), 0o600)
			return p
		}, journal.ErrNotJournal},
		{"garbage-testdata", func(t *testing.T) string { return copyFixture(t, "testdata/garbage/journal.db") }, journal.ErrNotJournal},
		{"foreign-bbolt", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "other.db")
			b, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error {
				bk, _ := tx.CreateBucket([]byte("widgets"))
				return bk.Put([]byte("k"), []byte("v"))
			})
			b.Close()
			return p
		}, journal.ErrNotJournal},
		{"newer-format", func(t *testing.T) string {
			p := good(t)
			b, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("99")) })
			b.Close()
			return p
		}, journal.ErrNewerFormat},
		{"damaged-meta-pages", func(t *testing.T) string {
			p := good(t)
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt(bytes.Repeat([]byte{0xAB}, 32), 16+16)   // meta 0 body
			f.WriteAt(bytes.Repeat([]byte{0xAB}, 32), 4096+32) // meta 1 body
			f.Close()
			return p
		}, journal.ErrCorrupt},
	}
	for _, tc := range cases {
		for _, ro := range []bool{false, true} {
			name := tc.name
			if ro {
				name += "/read-only"
			}
			t.Run(name, func(t *testing.T) {
				p := tc.make(t)
				db, err := journal.Open(p, &journal.Options{ReadOnly: ro, Timeout: 100 * time.Millisecond})
				if err == nil {
					db.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
				checkError(t, err, p)
				// The lock was released: a fresh file at the same path is usable.
				os.Remove(p)
				db, err = journal.Open(p, &journal.Options{Timeout: 100 * time.Millisecond})
				if err != nil {
					t.Fatalf("Open of a new file at the same path: %v", err)
				}
				db.Close()
			})
		}
	}
}

// TestDamagedPages corrupts, one at a time, every page in use (branch or
// leaf) of a journal: Open, reads and Verify must return errors, not panic,
// and Verify must find each one. Free pages are not damaged: which pages
// are free depends on commit timing, and damage there is harmless.
func TestDamagedPages(t *testing.T) {
	src := filepath.Join(t.TempDir(), "j.db")
	db, err := journal.Open(src, &journal.Options{NoSync: true, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	for j := 1; j < 50; j++ {
		mustAppend(t, db, claim("s", j))
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindReleased})
	}
	db.Close()
	pages, pageSize := usedPages(t, src)
	if len(pages) < 4 {
		t.Fatalf("only %d pages in use: %v", len(pages), pages)
	}
	t.Logf("%d pages in use: %v", len(pages), pages)
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, pg := range pages {
		path := filepath.Join(t.TempDir(), "j.db")
		b := bytes.Clone(orig)
		copy(b[pg.ID*pageSize:(pg.ID+1)*pageSize], bytes.Repeat([]byte{0xFF, 0x13, 0x77}, pageSize/3))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		func() {
			db, err := journal.Open(path, &journal.Options{ReadOnly: true})
			if err != nil {
				checkError(t, err, path)
				return
			}
			defer db.Close()
			db.States()
			db.Orphans()
			db.Events(journal.Filter{}, func(journal.Event) error { return nil })
			if errs := db.Verify(); errs == nil {
				t.Errorf("%s page %d damaged: Verify found nothing", pg.Type, pg.ID)
			}
		}()
	}
}

type usedPage struct {
	ID   int
	Type string
}

// usedPages lists the branch and leaf pages of a closed bbolt file.
func usedPages(t *testing.T, path string) ([]usedPage, int) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var pages []usedPage
	err = b.View(func(tx *bolt.Tx) error {
		for id := 2; ; {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == "branch" || info.Type == "leaf" {
				pages = append(pages, usedPage{id, info.Type})
			}
			id += 1 + info.OverflowCount
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages, b.Info().PageSize
}

func copyFixture(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompactWhileAnotherWaits: a process waiting for the lock while the
// holder compacts (replacing the file) must end up with the new file.
func TestCompactWhileAnotherWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	a, err := journal.Open(path, &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, a, reg("s"))
	type result struct {
		db  *journal.DB
		err error
	}
	done := make(chan result)
	go func() {
		b, err := journal.Open(path, &journal.Options{Timeout: 10 * time.Second})
		done <- result{b, err}
	}()
	waitForLockWaiter(t, path)
	if _, _, err := a.Compact(); err != nil {
		t.Fatal(err)
	}
	last := mustAppend(t, a, claim("s", 1))
	a.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.db.Close()
	st, err := r.db.State("s")
	if err != nil || st.LastSeq != last.Seq {
		t.Fatalf("waiter sees last seq %d (%v), want %d: it opened the replaced file", st.LastSeq, err, last.Seq)
	}
}

// waitForLockWaiter returns once another Open of path in this process
// waits for the file lock: it holds the file open (a second descriptor)
// across more than one of bbolt's lock attempts, 50ms apart. Elsewhere than
// Linux, which lists descriptors in /proc/self/fd, it gives it 200ms.
func waitForLockWaiter(t *testing.T, path string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		time.Sleep(200 * time.Millisecond)
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	opens := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, fd := range fds {
			if ofi, err := os.Stat(filepath.Join("/proc/self/fd", fd.Name())); err == nil && os.SameFile(fi, ofi) {
				n++
			}
		}
		return n
	}
	tick := time.NewTicker(60 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for seen := 0; seen < 2; {
		if opens() >= 2 {
			seen++
		} else {
			seen = 0
		}
		select {
		case <-tick.C:
		case <-timeout.C:
			t.Fatal("the second Open never waited for the lock")
		}
	}
}

// TestAutoCompact: once pruning freed most of a file larger than
// CompactMinSize, the background flusher compacts it.
func TestAutoCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	// Grow the file past CompactMinSize (needsCompact passes over smaller
	// files) with big outputs, keeping all history so that pruning does not
	// free pages for the next ones.
	db, err := journal.Open(path, &journal.Options{NoSync: true, Retention: -1, NoAutoCompact: true})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	big := strings.Repeat("z", 512<<10)
	var peak int64
	for j := 1; peak <= journal.CompactMinSize; j++ {
		if j > 100 {
			t.Fatalf("the file is still %d bytes after %d outputs of %d bytes", peak, j-1, len(big))
		}
		mustAppend(t, db, claim("s", j))
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Output: &big})
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
		peak = fileSize(t, path)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// With a retention of one job, small appends prune the big outputs
	// (every 16 appends), and the flusher compacts the file.
	db = journaltest.MustOpenPath(t, path, &journal.Options{NoSync: true, Retention: 1, ProgressInterval: 5 * time.Millisecond})
	for j := 1000; j < 1040; j++ {
		mustAppend(t, db, claim("s", j))
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindReleased})
	}
	// The flusher checks every 10 ticks of 5ms; a minute only bounds a
	// broken one.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for size := fileSize(t, db.Path()); size >= peak/2; size = fileSize(t, db.Path()) {
		select {
		case <-tick.C:
		case <-timeout.C:
			t.Fatalf("the file is still %d bytes (peak %d): not compacted", size, peak)
		}
	}
	mustAppend(t, db, claim("s", 2000)) // still writable
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
