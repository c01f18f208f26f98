package journal

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// cyclePages runs the client's job cycle (deferred claim, one progress
// text, durable completion-pending, durable completion-settled) n times on
// a fresh journal, after a warm-up past the first pruning passes, and
// returns the pages bbolt wrote per commit (TxStats.Write: data pages and
// the meta page) and the commits per cycle.
func cyclePages(t testing.TB, n int) (pagesPerCommit, commitsPerCycle float64) {
	t.Helper()
	// The flusher stays out (an hour's interval): on a slow machine it
	// would write a deferred claim in a commit of its own.
	db, err := Open(filepath.Join(t.TempDir(), "j.db"), &Options{NoSync: true, NoAutoCompact: true, ProgressInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Append(Event{Slot: "s", Kind: KindRegistered, Token: "0123456789abcdef0123456789abcdef", Stage: "a", URL: "http://127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	out := "output"
	cycle := func(job int) {
		in := fmt.Sprintf("%q", fmt.Sprint("job input ", job))
		if err := db.AppendDeferred(Event{Slot: "s", Kind: KindClaimed, Job: job, Input: &in}); err != nil {
			t.Fatal(err)
		}
		db.AppendProgress("s", "step 1 of 1")
		if _, err := db.Append(Event{Slot: "s", Kind: KindCompletionPending, Job: job, Output: &out}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Append(Event{Slot: "s", Kind: KindCompletionSettled, Job: job, Outcome: OutcomeAccepted}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 2*DefaultRetention; i++ {
		cycle(i)
	}
	w0, c0 := pageWrites(db), db.commits.Load()
	for i := 2*DefaultRetention + 1; i <= 2*DefaultRetention+n; i++ {
		cycle(i)
	}
	w1, c1 := pageWrites(db), db.commits.Load()
	return float64(w1-w0) / float64(c1-c0), float64(c1-c0) / float64(n)
}

// The client's job cycle writes two commits; since a claim's index entries
// wait in the slotmeta record (format 4), a commit writes about 3.4 pages
// (meta included; 3.3 while pruning ran every 16 appends only, not also
// when the listed entries move into slotidx) rather than 4.0: the claim's
// commit no longer rewrites the last leaves of the job and claim indexes. The bound leaves room for
// bbolt's page splits; a regression to indexing every claim at once
// measures 4.0.
func TestJobCyclePagesPerCommit(t *testing.T) {
	p, c := cyclePages(t, 320)
	t.Logf("pages per commit %.2f, commits per cycle %.2f", p, c)
	if c != 2 {
		t.Errorf("%.2f commits per cycle, want 2", c)
	}
	if p > 3.6 {
		t.Errorf("%.2f pages written per commit, want at most 3.6", p)
	}
}

// claimIndex returns the seqs in the claims bucket of slot and the job
// index's entries (job -> seqs) of slot.
func claimIndex(t *testing.T, db *DB, slot string) (claims []uint64, jobs map[int][]uint64) {
	t.Helper()
	jobs = make(map[int][]uint64)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		prefix := slotPrefix(slot)
		c := tx.Bucket(bucketClaims).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			claims = append(claims, be(k[len(prefix):]))
		}
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			if string(v) == slot {
				jobs[int(be(k[:8]))] = append(jobs[int(be(k[:8]))], be(k[8:]))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return claims, jobs
}

// A claim's index entries are written when its slot-index entry leaves the
// slotmeta record, or when pruning counts the slot's claims; in between,
// Events finds the job through the slotmeta record. Whatever the retention
// (below, at and above the 16 entries the record lists), the claims bucket
// holds the kept claims and no pruned one, every kept claim's job is found,
// and Verify passes.
func TestClaimIndexWritten(t *testing.T) {
	for _, retention := range []int{1, 2, 5, 100, -1} {
		// Other events per job: failures, kept; or checkpoints, each of
		// which drops the one before, so that a slot's listed entries and
		// its appends since pruning drift apart.
		for _, c := range []struct {
			kind    Kind
			n, kept int
		}{{KindFailed, 0, 0}, {KindFailed, 1, 1}, {KindFailed, 3, 3}, {KindCheckpoint, 3, 1}} {
			perJob := c.kept
			t.Run(fmt.Sprintf("retention=%d/%s=%d", retention, c.kind, c.n), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "j.db")
				opts := &Options{NoSync: true, NoAutoCompact: true, Retention: retention}
				db, err := Open(path, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { db.Close() }()
				if _, err := db.Append(Event{Slot: "s", Kind: KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
					t.Fatal(err)
				}
				claimSeq := make(map[int]uint64)
				for job := 1; job <= 150; job++ {
					e, err := db.Append(Event{Slot: "s", Kind: KindClaimed, Job: job})
					if err != nil {
						t.Fatal(err)
					}
					claimSeq[job] = e.Seq
					if job == 75 {
						// Claims listed before a reopen are indexed from
						// their records, not from memory.
						if err := db.Close(); err != nil {
							t.Fatal(err)
						}
						if db, err = Open(path, opts); err != nil {
							t.Fatal(err)
						}
					}
					for k := 0; k < c.n; k++ {
						if _, err := db.Append(Event{Slot: "s", Kind: c.kind, Reason: strconv.Itoa(k), Checkpoint: []byte("c")}); err != nil {
							t.Fatal(err)
						}
					}
					if job%37 != 0 {
						continue
					}
					if errs := db.Verify(); errs != nil {
						t.Fatalf("job %d: %v", job, errs)
					}
					m := db.slots["s"].meta
					claims, jobs := claimIndex(t, db, "s")
					pendingClaims := 0
					for _, p := range m.pending {
						if p.kind == string(KindClaimed) {
							pendingClaims++
						}
					}
					if n := uint64(len(claims)); n > m.claims || n+uint64(pendingClaims) < m.claims {
						t.Errorf("job %d: %d claims indexed, %d listed in slotmeta, the counter says %d", job, n, pendingClaims, m.claims)
					}
					if retention > 0 && m.claims > uint64(retention)+uint64(pendingClaims)+pruneEvery {
						t.Errorf("job %d: %d claims kept, retention %d", job, m.claims, retention)
					}
					for _, seq := range claims {
						if seq < m.pruneTo {
							t.Errorf("job %d: claim %d indexed below the prune point %d", job, seq, m.pruneTo)
						}
					}
					// Every job whose claim is kept is found by job number.
					kept := map[uint64]bool{}
					if err := db.Events(Filter{Slot: "s"}, func(e Event) error {
						if e.Kind == KindClaimed {
							kept[e.Seq] = true
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					for j := 1; j <= job; j++ {
						if !kept[claimSeq[j]] {
							continue
						}
						var got []uint64
						if err := db.Events(Filter{Job: j}, func(e Event) error {
							got = append(got, e.Seq)
							return nil
						}); err != nil {
							t.Fatal(err)
						}
						if len(got) != 1+perJob || got[0] != claimSeq[j] {
							t.Fatalf("job %d: Events of job %d = %v, want its claim %d and %d more", job, j, got, claimSeq[j], perJob)
						}
						if seqs := jobs[j]; len(seqs) > 1 || (len(seqs) == 1 && seqs[0] != claimSeq[j]) {
							t.Errorf("job %d: job index of job %d = %v", job, j, seqs)
						}
					}
				}
			})
		}
	}
}

// A file of format 3 (every claim indexed at once) opens, reads and
// verifies as one of format 4; Open leaves it unchanged, the first commit
// marks it format 4.
func TestFormat3Upgraded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Append(Event{Slot: "s", Kind: KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Append(Event{Slot: "s", Kind: KindClaimed, Job: 7}); err != nil {
		t.Fatal(err)
	}
	// As format 3 wrote it: the claim indexed, the file marked 3.
	tamper(t, db, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketJobs).Put(jobKey(7, 2), []byte("s")); err != nil {
			return err
		}
		if err := tx.Bucket(bucketClaims).Put(slotKey("s", 2), u64(7)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte("3"))
	})
	format := func() string {
		t.Helper()
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		var f string
		bdb.View(func(tx *bolt.Tx) error { f = string(tx.Bucket(bucketMeta).Get(keyFormat)); return nil })
		return f
	}
	for _, ro := range []bool{true, false} {
		db, err := Open(path, &Options{ReadOnly: ro, NoSync: true})
		if err != nil {
			t.Fatalf("read-only=%v: %v", ro, err)
		}
		if errs := db.Verify(); errs != nil {
			t.Errorf("read-only=%v: %v", ro, errs)
		}
		n := 0
		db.Events(Filter{Job: 7}, func(Event) error { n++; return nil })
		if n != 1 {
			t.Errorf("read-only=%v: %d events of job 7, want 1", ro, n)
		}
		db.Close()
		if got := format(); got != "3" {
			t.Errorf("read-only=%v: format %q after Open and Close, want 3", ro, got)
		}
	}
	db, err = Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Append(Event{Slot: "s", Kind: KindReleased}); err != nil {
		t.Fatal(err)
	}
	if errs := db.Verify(); errs != nil {
		t.Error(errs)
	}
	db.Close()
	if got, want := format(), strconv.Itoa(FormatVersion); got != want {
		t.Errorf("format %q after a commit, want %q", got, want)
	}
}

// BenchmarkJobCycle is the client's job cycle as the journal sees it
// (deferred claim, one progress text, durable completion-pending, durable
// completion-settled: two commits) with NoSync, past the first pruning
// passes: the journal's CPU and allocations per cycle without the disk
// and without HTTP. Compare with scripts/abbench.sh.
func BenchmarkJobCycle(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "j.db"), &Options{NoSync: true, NoAutoCompact: true, ProgressInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Append(Event{Slot: "s", Kind: KindRegistered, Token: "0123456789abcdef0123456789abcdef", Stage: "a", URL: "http://127.0.0.1:8080"}); err != nil {
		b.Fatal(err)
	}
	out := "output"
	cycle := func(job int) {
		in := strconv.Quote("job input " + strconv.Itoa(job))
		if err := db.AppendDeferred(Event{Slot: "s", Kind: KindClaimed, Job: job, Input: &in}); err != nil {
			b.Fatal(err)
		}
		db.AppendProgress("s", "step 1 of 1")
		if _, err := db.Append(Event{Slot: "s", Kind: KindCompletionPending, Job: job, Output: &out}); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Append(Event{Slot: "s", Kind: KindCompletionSettled, Job: job, Outcome: OutcomeAccepted}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 1; i <= 2*DefaultRetention; i++ {
		cycle(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cycle(2*DefaultRetention + 1 + i)
	}
}
