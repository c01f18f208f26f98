package journal

import (
	"path/filepath"
	"testing"
	"time"
)

// A free-space measure is reused only while it is young and leaves far
// more than asked; otherwise the file system is measured again.
func TestFreeCache(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "j.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	real, _, err := diskFree(db.path)
	if err != nil {
		t.Skipf("statfs: %v", err)
	}
	fake := real + 1<<40 // no file system has this much more room: tells a cached answer
	set := func(age time.Duration, free int64) {
		db.freeC.mu.Lock()
		db.freeC.at, db.freeC.free, db.freeC.size = time.Now().Add(-age), free, db.size.Load()
		db.freeC.mu.Unlock()
	}
	cached := func(want int64) bool {
		t.Helper()
		got, _, err := db.diskFree(want)
		if err != nil {
			t.Fatal(err)
		}
		return got == fake
	}
	// A young measure is stamped a minute ahead, so that no stall of a
	// busy machine between set and the call can age it past the TTL.
	const young = -time.Minute
	set(young, fake)
	if !cached(1 << 20) {
		t.Error("a young measure with room to spare was not reused")
	}
	set(young, fake)
	if cached(fake - freeCacheMargin + 1) {
		t.Error("a measure within freeCacheMargin of what is asked was reused")
	}
	set(2*freeCacheTTL, fake)
	if cached(1 << 20) {
		t.Error("a measure older than freeCacheTTL was reused")
	}
	set(young, fake)
	db.forgetFree()
	if cached(1 << 20) {
		t.Error("a forgotten measure was reused")
	}
	// A commit far from full leaves a measure behind; one near the limit
	// does not use it.
	db.forgetFree()
	if _, err := db.Append(Event{Slot: "s", Kind: KindRegistered, Token: "0123456789abcdef", Stage: "a"}); err != nil {
		t.Fatal(err)
	}
	db.freeC.mu.Lock()
	at := db.freeC.at
	db.freeC.mu.Unlock()
	if at.IsZero() && real > 2*freeCacheMargin {
		t.Error("a commit's free-space check left no measure")
	}
}
