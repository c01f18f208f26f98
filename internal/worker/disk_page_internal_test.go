package worker

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/browsertest"
)

// The live page shows a banner while the journal cannot be written: the
// error, what is held in memory, and when the worker gives up; it goes
// away once the journal is writable again.
func TestDiskBannerInBrowser(t *testing.T) {
	tab := browsertest.Start(t, 2*time.Minute)
	d := newDiskState("/data/journal.db", slog.New(slog.DiscardHandler), 10*time.Minute, func(time.Time, error) {})
	d.failed(0, "the output of job 7 (3 bytes)", errFull, time.Second)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(pageHTML) })
	mux.HandleFunc("GET /page.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(pageState{Tracker: "http://tracker", Stage: "a", Journal: "/data/journal.db", Now: time.Now().UTC(),
			Reach: Reach{Reachable: true}, Disk: d.snapshot(), Slots: []pageSlot{{Slot: 0, JournalSlot: "slot-0", Worker: "w", State: stateHolding, Job: 7}},
			Counters: map[string]int64{}, Events: []pageEvent{}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	browsertest.Open(t, tab, srv.URL+"/")
	browsertest.WaitFor(t, tab, `(() => { const b = document.getElementById("disk"); return b.style.display === "block" &&
		b.innerText.includes("no space left on device") && b.innerText.includes("slot 0: the output of job 7 (3 bytes)") &&
		b.innerText.includes("No job is claimed") && b.innerText.includes("exit 4"); })()`)
	browsertest.WaitFor(t, tab, `[...document.querySelectorAll("#slots .pill")].some(p => p.textContent === "holding")`)
	d.ok(0) // journaled: the next refresh hides the banner
	browsertest.WaitFor(t, tab, `document.getElementById("disk").style.display === "none"`)
}
