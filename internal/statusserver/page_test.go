package statusserver_test

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/browsertest"
	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// The live page shows a banner while the journal cannot be written: the
// error, what is held in memory, and when the program gives up; it goes
// away once the journal is writable again. (Moved from internal/worker,
// where the journal's state comes from.)
func TestDiskBannerInBrowser(t *testing.T) {
	tab := browsertest.Start(t, 2*time.Minute)
	since, retry, deadline := time.Now().Add(-time.Minute), time.Now().Add(time.Second), time.Now().Add(10*time.Minute)
	var mu sync.Mutex
	js := statusserver.JournalStatus{Error: "journal /data/journal.db: write: no space left on device", Since: &since, NextRetry: &retry,
		Deadline: &deadline, Held: []string{"slot 0: the output of job 7 (3 bytes)"}, Failures: 1}
	status := func() statusserver.Status {
		mu.Lock()
		defer mu.Unlock()
		j := js
		return statusserver.Status{Tracker: "http://tracker", Stage: "a", Journal: "/data/journal.db", Reach: &statusserver.Reach{Reachable: true}, JournalStatus: &j,
			Slots:    []statusserver.SlotStatus{{Slot: 0, JournalSlot: "slot-0", DisplayName: "w", State: "holding", Since: since, Job: 7}},
			Counters: map[string]int64{}}
	}
	srv := httptest.NewServer(statusserver.Handler(statusserver.Options{Name: "dcworker", Status: status, States: []string{"holding"}, BusyState: "running"}))
	t.Cleanup(srv.Close)
	browsertest.Open(t, tab, srv.URL+"/")
	browsertest.WaitFor(t, tab, `(() => { const b = document.getElementById("disk"); return b.style.display === "block" &&
		b.innerText.includes("no space left on device") && b.innerText.includes("slot 0: the output of job 7 (3 bytes)") &&
		b.innerText.includes("No job is claimed") && b.innerText.includes("exit 4"); })()`)
	browsertest.WaitFor(t, tab, `[...document.querySelectorAll("#slots .pill")].some(p => p.textContent === "holding")`)
	mu.Lock()
	js = statusserver.JournalStatus{Writable: true, Held: []string{}}
	mu.Unlock()
	browsertest.WaitFor(t, tab, `document.getElementById("disk").style.display === "none"`)
}
