package journal_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/journal"
	bolt "go.etcd.io/bbolt"
)

// writeCycles writes a journal of one slot and n job cycles (claim,
// completion, settle) at path, outputs of outBytes bytes.
func writeCycles(tb testing.TB, path string, n, outBytes int) {
	tb.Helper()
	db, err := journal.Open(path, &journal.Options{NoSync: true, NoAutoCompact: true, Retention: -1})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Append(journal.Event{Slot: "s", Kind: journal.KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
		tb.Fatal(err)
	}
	in := "input"
	out := strings.Repeat("o", outBytes)
	for j := 1; j <= n; j++ {
		for _, e := range []journal.Event{
			{Slot: "s", Kind: journal.KindClaimed, Job: j, Input: &in},
			{Slot: "s", Kind: journal.KindCompletionPending, Output: &out},
			{Slot: "s", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted},
		} {
			if _, err := db.Append(e); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// withFreelist rewrites the journal at path with one bbolt commit that writes
// its freelist page, as a journal over FreelistSyncSize has one.
func withFreelist(tb testing.TB, path string) {
	tb.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket([]byte("meta"))
		return m.Put([]byte("format"), append([]byte(nil), m.Get([]byte("format"))...))
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// TestOpenRefusesDamagedStructure: damage bbolt would walk into (and, in a
// writable Open, panic on in a goroutine of its own) is refused by Open,
// read-only and writable, with a one-line *CorruptError.
func TestOpenRefusesDamagedStructure(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeCycles(t, good, 60, 3000)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	le := binary.LittleEndian
	root := le.Uint64(data[16+16:]) // meta 0's root; both metas name the same root after Close
	if t1 := le.Uint64(data[ps+16+48:]); t1 > le.Uint64(data[16+48:]) {
		root = le.Uint64(data[ps+16+16:])
	}
	cases := map[string]func(d []byte){
		"root overflow 0x7F000000": func(d []byte) { le.PutUint32(d[int(root)*ps+12:], 0x7F000000) },
		"root flags":               func(d []byte) { le.PutUint16(d[int(root)*ps+8:], 0x10) },
		"root names another page":  func(d []byte) { le.PutUint64(d[int(root)*ps:], root+1) },
		"meta 1 header zeroed":     func(d []byte) { clear(d[ps : ps+16]) },
		"first key after the last": func(d []byte) {
			// The root is a leaf of bucket entries: make its first key sort last.
			e := int(root)*ps + 16
			pos := int(le.Uint32(d[e+4:]))
			d[e+pos] = 0xFF
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			d := append([]byte(nil), data...)
			damage(d)
			path := filepath.Join(t.TempDir(), "j.db")
			if err := os.WriteFile(path, d, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{true, false} {
				db, err := journal.Open(path, &journal.Options{ReadOnly: ro, NoSync: true})
				if err == nil {
					db.Close()
					t.Fatalf("read-only %v: Open accepted the damaged file", ro)
				}
				var ce *journal.CorruptError
				if !errors.As(err, &ce) || !errors.Is(err, journal.ErrCorrupt) {
					t.Fatalf("read-only %v: got %v, want a *CorruptError", ro, err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error of more than one line: %q", err)
				}
			}
		})
	}
	// The intact file passes, read-only and writable, and verifies.
	db, err := journal.Open(good, &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if errs := db.Verify(); errs != nil {
		t.Fatal(errs)
	}
	db.Close()
}

// TestVerifyChecksStructureAgain: a journal damaged after Open (here: a huge
// overflow field on a leaf of the tree, which made bbolt's check allocate
// for minutes) is reported by Verify, which checks the page structure again
// with plain reads before bbolt walks the tree.
func TestVerifyChecksStructureAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	writeCycles(t, path, 60, 3000)
	withFreelist(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A leaf page of the tree, not the root: the highest page that is a
	// leaf and not on the freelist (freed pages keep their headers).
	const ps = 4096
	le := binary.LittleEndian
	meta := data[16:]
	if le.Uint64(data[ps+16+48:]) > le.Uint64(meta[48:]) {
		meta = data[ps+16:]
	}
	root, fl := int(le.Uint64(meta[16:])), int(le.Uint64(meta[32:]))
	free := map[int]bool{}
	n := int(le.Uint16(data[fl*ps+10:]))
	for i := 0; i < n; i++ {
		free[int(le.Uint64(data[fl*ps+16+8*i:]))] = true
	}
	leaf := -1
	for id := len(data)/ps - 1; id >= 2; id-- {
		if id != root && !free[id] && int(le.Uint64(data[id*ps:])) == id && le.Uint16(data[id*ps+8:]) == 0x02 {
			leaf = id
			break
		}
	}
	if leaf < 0 {
		t.Fatal("no leaf page found")
	}
	db, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ov [4]byte
	le.PutUint32(ov[:], 0x7F000000)
	if _, err := f.WriteAt(ov[:], int64(leaf*ps+12)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	errs := db.Verify()
	if len(errs) == 0 || !errors.Is(errs[0], journal.ErrCorrupt) || !strings.Contains(errs[0].Error(), "overflow") {
		t.Fatalf("Verify: got %v, want the overflow field reported", errs)
	}
	// And a new Open refuses the file.
	if db2, err := journal.Open(path, &journal.Options{ReadOnly: true}); err == nil {
		db2.Close()
		t.Fatal("Open accepted the damaged file")
	} else if !errors.Is(err, journal.ErrCorrupt) {
		t.Fatalf("Open: got %v, want ErrCorrupt", err)
	}
}

// FuzzOpen: Open on any file bytes never panics (in any goroutine: bbolt's
// would kill the fuzzing process), read-only or writable, and what it
// refuses it refuses with one of the documented errors, on one line; what it
// opens, Verify and a read of the events handle.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	for i, fl := range []bool{false, true} {
		path := filepath.Join(dir, fmt.Sprintf("seed%d.db", i))
		writeCycles(f, path, 3, 5000)
		if fl {
			withFreelist(f, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("not a journal"))
	// The fuzzing engine reports executions late (when a worker returns); to
	// count them, FUZZ_OPEN_EXECS names a file that gets one byte per input.
	count := os.Getenv("FUZZ_OPEN_EXECS")
	f.Fuzz(func(t *testing.T, data []byte) {
		if count != "" {
			if c, err := os.OpenFile(count, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
				c.Write([]byte{1})
				c.Close()
			}
		}
		path := filepath.Join(t.TempDir(), "j.db")
		for _, ro := range []bool{true, false} {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := journal.Open(path, &journal.Options{ReadOnly: ro, NoSync: true, NoAutoCompact: true, Timeout: -1})
			if err != nil {
				switch {
				case errors.Is(err, journal.ErrCorrupt), errors.Is(err, journal.ErrNotJournal),
					errors.Is(err, journal.ErrNewerFormat), errors.Is(err, journal.ErrOldFormat):
				default:
					t.Fatalf("read-only %v: undocumented error %v", ro, err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error of more than one line: %q", err)
				}
				continue
			}
			_ = db.Verify()
			_ = db.Events(journal.Filter{}, func(journal.Event) error { return nil })
			_, _ = db.States()
			db.Close()
		}
	})
}

// BenchmarkPrecheck: the cost of Open's structural check on journals of
// 1, 16 and 48 MiB (MB/s is MB of journal checked per second), alone
// and within a read-only and a writable Open (under FreelistSyncSize a
// writable Open also has bbolt walk every page to rebuild its freelist).
func BenchmarkPrecheck(b *testing.B) {
	// 50, 800 and 3200 cycles make files of 1, 16 and 48 MiB (an output
	// over two pages per cycle, and the pages bbolt frees as it rewrites).
	for _, cycles := range []int{50, 800, 3200} {
		b.Run(fmt.Sprintf("%dcycles", cycles), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "j.db")
			writeCycles(b, path, cycles, 9000)
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%d bytes", fi.Size())
			b.Run("check", func(b *testing.B) {
				b.SetBytes(fi.Size())
				for i := 0; i < b.N; i++ {
					if err := journal.Precheck(path); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("open-readonly", func(b *testing.B) {
				b.SetBytes(fi.Size())
				for i := 0; i < b.N; i++ {
					db, err := journal.Open(path, &journal.Options{ReadOnly: true})
					if err != nil {
						b.Fatal(err)
					}
					db.Close()
				}
			})
			b.Run("open-writable", func(b *testing.B) {
				b.SetBytes(fi.Size())
				for i := 0; i < b.N; i++ {
					db, err := journal.Open(path, &journal.Options{NoSync: true, NoAutoCompact: true})
					if err != nil {
						b.Fatal(err)
					}
					db.Close()
				}
			})
		})
	}
}
