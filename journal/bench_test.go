package journal_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/journal"
	bolt "go.etcd.io/bbolt"
)

// benchEvent is the durable event the append benchmarks write: a
// checkpoint of about 200 bytes of JSON (always valid while a job is held).
func benchEvent(slot string) journal.Event {
	return journal.Event{Slot: slot, Kind: journal.KindCheckpoint, Checkpoint: []byte(strings.Repeat("c", 64))}
}

func openBench(b *testing.B, opts *journal.Options, slots int) *journal.DB {
	b.Helper()
	db, err := journal.Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	for i := 0; i < slots; i++ {
		s := fmt.Sprintf("s%02d", i)
		if _, err := db.Append(journal.Event{Slot: s, Kind: journal.KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Append(journal.Event{Slot: s, Kind: journal.KindClaimed, Job: i + 1}); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

// BenchmarkAppendDurable: one slot, one durable Append (fsynced) per op.
// Compare with BenchmarkRawWriteFdatasync in the same run.
func BenchmarkAppendDurable(b *testing.B) {
	db := openBench(b, nil, 1)
	e := benchEvent("s00")
	got, _ := db.Append(e)
	rec, _ := json.Marshal(got)
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := db.Append(e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkRawWriteFdatasync: the floor for a durable append: write a
// record of the same size as BenchmarkAppendDurable's to the end of a file
// in the same folder, then fdatasync.
func BenchmarkRawWriteFdatasync(b *testing.B) {
	got, _ := json.Marshal(journal.Event{Version: 1, Seq: 12345, Time: time.Now().UTC(), Slot: "s00", Kind: journal.KindCheckpoint,
		Job: 1, Checkpoint: []byte(strings.Repeat("c", 64))})
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(got)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(got); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendProgress: buffered progress; reports the median latency
// (median-ns). It never syncs: the flusher writes in the background.
func BenchmarkAppendProgress(b *testing.B) {
	db := openBench(b, nil, 1)
	texts := make([]string, 16)
	for i := range texts {
		texts[i] = fmt.Sprintf("processing shard %d: %d%% done", i, i*6)
	}
	const maxSamples = 1 << 20
	samples := make([]time.Duration, 0, min(b.N, maxSamples))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		db.AppendProgress("s00", texts[i&15])
		if len(samples) < maxSamples {
			samples = append(samples, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "median-ns")
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkAppendSlots: N slots appending durably at once (group commit);
// appends/s is the aggregate. Compare slots=32 with slots=1.
// JOURNAL_BENCH_NOSYNC=1 runs it without fsync, to see the CPU ceiling.
func BenchmarkAppendSlots(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("slots=%d", n), func(b *testing.B) {
			db := openBench(b, &journal.Options{NoSync: os.Getenv("JOURNAL_BENCH_NOSYNC") != ""}, n)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := 0; g < n; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := benchEvent(fmt.Sprintf("s%02d", g))
					for next.Add(1) <= int64(b.N) {
						if _, err := db.Append(e); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			c, r := db.CommitStats()
			b.ReportMetric(float64(r)/float64(c), "appends/commit")
		})
	}
}

var (
	fixtureOnce sync.Once
	fixturePath string
	fixtureErr  error
)

// fixture1M returns a journal holding 1,000,000 events in 32 slots, built
// once (NoSync, 2,000 events per transaction) and cached in the system's
// temp folder across runs (JOURNAL_BENCH_FIXTURE overrides the path).
func fixture1M(b *testing.B) string {
	fixtureOnce.Do(func() {
		fixturePath = os.Getenv("JOURNAL_BENCH_FIXTURE")
		if fixturePath == "" {
			fixturePath = filepath.Join(os.TempDir(), fmt.Sprintf("distcompute-journal-bench-1M-v%d.db", journal.FormatVersion))
		}
		if db, err := journal.Open(fixturePath, &journal.Options{ReadOnly: true}); err == nil {
			st, err := db.State("s31")
			db.Close()
			if err == nil && st.LastSeq >= 1_000_000 {
				return
			}
		}
		os.Remove(fixturePath)
		start := time.Now()
		db, err := journal.Open(fixturePath, &journal.Options{NoSync: true, Retention: -1, NoAutoCompact: true})
		if err != nil {
			fixtureErr = err
			return
		}
		defer db.Close()
		const slots = 32
		var batch []journal.Event
		n := 0
		add := func(e journal.Event) {
			batch = append(batch, e)
			n++
		}
		for s := 0; s < slots; s++ {
			add(journal.Event{Slot: fmt.Sprintf("s%02d", s), Kind: journal.KindRegistered, Token: "0123456789abcdef", Stage: "a", URL: "http://tracker"})
		}
		out := "<!json!>{\"result\":\"" + strings.Repeat("r", 40) + "\"}"
		in := "https://example.com/input/shard-000123.tar"
		for job := 1; n < 1_000_000; job++ {
			for s := 0; s < slots && n < 1_000_000; s++ {
				slot := fmt.Sprintf("s%02d", s)
				add(journal.Event{Slot: slot, Kind: journal.KindClaimed, Job: job*slots + s, Input: &in})
				add(journal.Event{Slot: slot, Kind: journal.KindCompletionPending, Output: &out})
				add(journal.Event{Slot: slot, Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
			}
			if len(batch) >= 2000 {
				if fixtureErr = db.AppendBatch(batch); fixtureErr != nil {
					return
				}
				batch = batch[:0]
			}
		}
		// End every slot idle but with a held job, so there is state to read.
		for s := 0; s < slots; s++ {
			add(journal.Event{Slot: fmt.Sprintf("s%02d", s), Kind: journal.KindClaimed, Job: 1 << 30, Input: &in})
		}
		fixtureErr = db.AppendBatch(batch)
		fmt.Fprintf(os.Stderr, "built %s (%d events) in %v\n", fixturePath, n, time.Since(start).Round(time.Millisecond))
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixturePath
}

// BenchmarkOpenStates1M: the start-up cost of recovery: Open (writable, as
// recovery does) plus reading every slot's state, on a journal holding
// 1,000,000 events.
func BenchmarkOpenStates1M(b *testing.B) {
	path := fixture1M(b)
	fi, _ := os.Stat(path)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db, err := journal.Open(path, &journal.Options{Retention: -1, NoAutoCompact: true})
		if err != nil {
			b.Fatal(err)
		}
		states, err := db.States()
		if err != nil || len(states) != 32 || states[0].Job == nil {
			b.Fatalf("states: %v, %d", err, len(states))
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(fi.Size()), "file-bytes")
}

// BenchmarkFileSize100kCycles: the file size after 100,000 job cycles
// (claim, progress, completion-pending, completion-settled) of one slot
// with default retention; run with -benchtime=1x. NoSync (sizes do not
// depend on it) to keep it short.
func BenchmarkFileSize100kCycles(b *testing.B) {
	cycles := 100_000
	if testing.Short() {
		cycles = 10_000
	}
	for i := 0; i < b.N; i++ {
		path := filepath.Join(b.TempDir(), "size.db")
		db, err := journal.Open(path, &journal.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Append(journal.Event{Slot: "s", Kind: journal.KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
			b.Fatal(err)
		}
		in := "https://example.com/input/shard-000123.tar"
		out := "<!json!>{\"result\":\"" + strings.Repeat("r", 200) + "\"}"
		for j := 1; j <= cycles; j++ {
			steps := []journal.Event{
				{Slot: "s", Kind: journal.KindClaimed, Job: j, Input: &in},
				{Slot: "s", Kind: journal.KindCompletionPending, Output: &out},
				{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted},
			}
			for k, e := range steps {
				if k == 1 {
					db.AppendProgress("s", fmt.Sprintf("job %d: 100%%", j))
				}
				if _, err := db.Append(e); err != nil {
					b.Fatal(err)
				}
			}
		}
		fi, _ := os.Stat(path)
		events := 0
		db.Events(journal.Filter{}, func(journal.Event) error { events++; return nil })
		if errs := db.Verify(); errs != nil {
			b.Fatal(errs)
		}
		db.Close()
		b.ReportMetric(float64(fi.Size()), "file-bytes")
		b.ReportMetric(float64(events), "events-kept")
	}
}

// BenchmarkBoltBatch measures the alternative to the journal's own group
// commit: bbolt's DB.Batch, writing a plain 200-byte value per call, with
// one and with 32 writers (compare with BenchmarkAppendSlots). A lone
// writer waits MaxBatchDelay (10 ms) for a batch that never fills.
func BenchmarkBoltBatch(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "batch.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
			v := make([]byte, 200)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := 0; g < n; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if err := db.Batch(func(tx *bolt.Tx) error {
							bk := tx.Bucket([]byte("b"))
							seq, _ := bk.NextSequence()
							return bk.Put(u64key(seq), v)
						}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

func u64key(v uint64) []byte {
	k := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		k[i] = byte(v)
		v >>= 8
	}
	return k
}

// BenchmarkDurableVsRaw runs BenchmarkAppendDurable's append and
// BenchmarkRawWriteFdatasync's write+fdatasync alternately, one of each
// per op, so that both see the same disk (its latency on a shared VM drifts
// by 2-3x within minutes, which makes separate runs hard to compare). It
// reports each one's median latency and their ratio (durable/raw, median
// over median; the target is at most 2.0), and the ratio of the means
// (mean/mean: the appends that move the tail or an index write more pages).
func BenchmarkDurableVsRaw(b *testing.B) {
	dir := b.TempDir()
	db, err := journal.Open(filepath.Join(dir, "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Append(journal.Event{Slot: "s00", Kind: journal.KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Append(journal.Event{Slot: "s00", Kind: journal.KindClaimed, Job: 1}); err != nil {
		b.Fatal(err)
	}
	e := benchEvent("s00")
	got, err := db.Append(e)
	if err != nil {
		b.Fatal(err)
	}
	rec, _ := json.Marshal(got)
	f, err := os.OpenFile(filepath.Join(dir, "raw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	durable := make([]time.Duration, 0, b.N)
	raw := make([]time.Duration, 0, b.N)
	var sumDurable, sumRaw time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := db.Append(e); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		durable = append(durable, t1.Sub(t0))
		raw = append(raw, t2.Sub(t1))
		sumDurable += t1.Sub(t0)
		sumRaw += t2.Sub(t1)
	}
	b.StopTimer()
	slices.Sort(durable)
	slices.Sort(raw)
	d, r := durable[len(durable)/2], raw[len(raw)/2]
	b.ReportMetric(float64(d.Microseconds()), "durable-µs")
	b.ReportMetric(float64(r.Microseconds()), "raw-µs")
	b.ReportMetric(float64(d)/float64(r), "durable/raw")
	b.ReportMetric(float64(sumDurable)/float64(sumRaw), "mean/mean")
	b.ReportMetric(0, "ns/op") // an op is one of each: ns/op says nothing
}

// BenchmarkSlots32Vs1 alternates, in the same run and folder, a journal of
// one slot appended to by one goroutine (phases of 128 appends) and a
// journal of 32 slots appended to by 32 goroutines at once (phases of
// 32 x 64 appends), until b.N appends are done, and reports each one's
// aggregate appends per second and their ratio (the target is at least 8).
// Alternating in short phases makes both see the same disk.
func BenchmarkSlots32Vs1(b *testing.B) {
	const (
		slots   = 32
		phase1  = 128
		perSlot = 64
	)
	one := openBench(b, nil, 1)
	many := openBench(b, nil, slots)
	e1 := benchEvent("s00")
	start := make([]chan struct{}, slots)
	var wg sync.WaitGroup
	for g := range start {
		start[g] = make(chan struct{})
		e := benchEvent(fmt.Sprintf("s%02d", g))
		go func() {
			for range start[g] {
				for j := 0; j < perSlot; j++ {
					if _, err := many.Append(e); err != nil {
						b.Error(err)
					}
				}
				wg.Done()
			}
		}()
	}
	defer func() {
		for _, c := range start {
			close(c)
		}
	}()
	var t1, t32 time.Duration
	var n1, n32 int
	b.ResetTimer()
	for done := 0; done < b.N; {
		t := time.Now()
		for j := 0; j < phase1; j++ {
			if _, err := one.Append(e1); err != nil {
				b.Fatal(err)
			}
		}
		t1 += time.Since(t)
		n1 += phase1
		t = time.Now()
		wg.Add(slots)
		for _, c := range start {
			c <- struct{}{}
		}
		wg.Wait()
		t32 += time.Since(t)
		n32 += slots * perSlot
		done += phase1 + slots*perSlot
	}
	b.StopTimer()
	r1 := float64(n1) / t1.Seconds()
	r32 := float64(n32) / t32.Seconds()
	b.ReportMetric(r1, "slots=1-appends/s")
	b.ReportMetric(r32, "slots=32-appends/s")
	b.ReportMetric(r32/r1, "ratio")
	c, r := many.CommitStats()
	b.ReportMetric(float64(r)/float64(c), "appends/commit(32)")
	b.ReportMetric(0, "ns/op")
}
