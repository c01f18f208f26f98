package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/browsertest"
	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/trackertest"
)

// liveWorker is a worker with three slots whose command waits for the file goFile
// to exist, serving its status address at base; SIGTERM on sigs drains it.
type liveWorker struct {
	base, goFile string
	sigs         chan os.Signal
	done         <-chan error
}

func startLive(t *testing.T, trackerURL string) *liveWorker {
	t.Helper()
	w := &liveWorker{goFile: filepath.Join(t.TempDir(), "go"), sigs: make(chan os.Signal, 1)}
	cfg := config(t, trackerURL, script(t, `echo "job $DC_JOB_NUMBER: resizing 3/10" >&3; while [ ! -f `+w.goFile+` ]; do sleep 0.02; done; echo ok`))
	cfg.Slots = 3
	cfg.ExitWhenEmpty = false
	cfg.Signals = w.sigs
	cfg.StatusAddr = "127.0.0.1:0"
	addrCh := make(chan net.Addr, 1)
	cfg.StatusListening = func(a net.Addr) { addrCh <- a }
	w.done = start(t, context.Background(), cfg)
	w.base = "http://" + (<-addrCh).String()
	return w
}

// stop lets the commands finish, waits for n completions, then drains the worker.
func (w *liveWorker) stop(t *testing.T, n int) {
	t.Helper()
	os.WriteFile(w.goFile, nil, 0o600)
	waitFor(t, 60*time.Second, "the completions", func() bool {
		return strings.Contains(getBody(t, w.base+"/status"), fmt.Sprintf(`"completed": %d`, n))
	})
	w.sigs <- syscall.SIGTERM
	if err := waitErr(t, w.done, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestLivePage: GET / is the page, GET /page.json what it shows: every slot's state,
// job and progress, the counters and the journal's latest events; and neither holds
// a token beyond its first 8 characters or the tracker's password.
func TestLivePage(t *testing.T) {
	srv := startTracker(t, "one", "two", "three", "four")
	url := strings.Replace(srv.URL, "http://", "http://operator:hunter2@", 1)
	w := startLive(t, url)
	base := w.base
	var st struct {
		Tracker string
		Slots   []struct {
			State, Progress string
			Job             int
			Seconds         float64
		}
		Counters map[string]int64
		Events   []struct{ Kind, Detail string }
		Reach    struct {
			Reachable bool `json:"tracker_reachable"`
		}
	}
	var raw string
	waitFor(t, 60*time.Second, "three running slots with progress", func() bool {
		raw = getBody(t, base+"/page.json")
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range st.Slots {
			if s.State == "running" && s.Job > 0 && strings.Contains(s.Progress, "resizing") {
				n++
			}
		}
		return n == 3
	})
	if !st.Reach.Reachable || len(st.Events) == 0 || st.Counters["command_runs"] != 3 {
		t.Errorf("page state: reachable %v, %d events, command_runs %d; want reachable, events, 3 runs started", st.Reach.Reachable, len(st.Events), st.Counters["command_runs"])
	}
	page := getBody(t, base+"/")
	if !strings.Contains(page, "<title>dcworker</title>") || strings.Contains(page, "src=\"http") {
		t.Errorf("GET / is not the self-contained page")
	}
	for _, tok := range srv.Tracker.Workers() {
		if strings.Contains(raw, tok.Token) || strings.Contains(raw, tok.Token[:9]) {
			t.Errorf("page.json shows more than 8 characters of the token %s…", tok.Token[:8])
		}
	}
	if strings.Contains(raw, "hunter2") {
		t.Errorf("page.json shows the tracker's password:\n%s", raw)
	}
	w.stop(t, 4)
}

// TestLivePageInBrowser opens the live page of a running worker in headless
// Chromium: the slots and counters are drawn from page.json, and the page
// refreshes itself (a slot's state changes on the page without a reload).
func TestLivePageInBrowser(t *testing.T) {
	tab := browsertest.Start(t, 2*time.Minute)
	srv := startTracker(t, "one", "two", "three", "four")
	w := startLive(t, srv.URL)
	browsertest.Open(t, tab, w.base+"/")
	browsertest.WaitFor(t, tab, `document.querySelectorAll("#slots tr.slot").length === 3 && [...document.querySelectorAll("#slots .pill")].filter(p => p.textContent === "running").length === 3`)
	browsertest.WaitFor(t, tab, `document.querySelectorAll("#events tr.event").length > 0 && document.querySelectorAll("#counters .counter").length > 5`)
	// The progress line comes with a later poll of the command's file than
	// the running state: wait for it (WaitFor fails with a timeout).
	browsertest.WaitFor(t, tab, `[...document.querySelectorAll("#slots tr.slot")].filter(r => r.innerText.includes("resizing 3/10")).length === 3`)
	browsertest.Screenshot(t, tab, screenshotDir(), "live-page.png")
	os.WriteFile(w.goFile, nil, 0o600) // the jobs finish: the page must follow without a reload
	browsertest.WaitFor(t, tab, `[...document.querySelectorAll("#counters .counter")].some(c => c.innerText.replace(/\s+/g, "") === "4completed")`)
	w.stop(t, 4)
	// The worker is gone: the page says so instead of showing stale data as live.
	browsertest.WaitFor(t, tab, `document.getElementById("stale").style.display === "block"`)
}

func screenshotDir() string { return os.Getenv("DCTEST_SCREENSHOTS") }

// TestTrackerUnreachableOneLine: while the tracker does not answer, the worker says
// so in one short line (not a warning per retried request), /status and the page
// show the outage, and it says when the tracker is back.
func TestTrackerUnreachableOneLine(t *testing.T) {
	srv := startTracker(t, "one", "two")
	var down atomic.Bool
	srv.Tracker.SetFault(func(r *http.Request, endpoint string) (trackertest.Fault, time.Duration) {
		if down.Load() {
			return trackertest.Fault503, 0
		}
		return trackertest.FaultNone, 0
	})
	var logs syncBuffer
	dir := t.TempDir()
	cfg := config(t, srv.URL, script(t, `while [ ! -f `+dir+`/go ]; do sleep 0.02; done; echo ok`))
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.StatusAddr = "127.0.0.1:0"
	addrCh := make(chan net.Addr, 1)
	cfg.StatusListening = func(a net.Addr) { addrCh <- a }
	done := start(t, context.Background(), cfg)
	base := "http://" + (<-addrCh).String()
	waitFor(t, 60*time.Second, "a running job", func() bool { return strings.Contains(getBody(t, base+"/status"), `"state": "running"`) })
	down.Store(true)
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600) // the completion meets the outage
	waitFor(t, 30*time.Second, "the unreachable line", func() bool { return strings.Contains(logs.String(), "unreachable") })
	st := getBody(t, base+"/status")
	if !strings.Contains(st, `"tracker_reachable": false`) || !strings.Contains(st, `"tracker_error": "answered 503`) {
		t.Errorf("/status during the outage:\n%s", st)
	}
	down.Store(false)
	if err := waitErr(t, done, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	var unreachable, retrying int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "unreachable") {
			unreachable++
			if len(line) > 220 {
				t.Errorf("the outage line is %d characters long: %s", len(line), line)
			}
			if !strings.Contains(line, "retrying in ") {
				t.Errorf("the outage line does not say when it retries: %s", line)
			}
		}
		if strings.Contains(line, "session: retrying") {
			retrying++
		}
	}
	if unreachable != 1 || retrying != 0 || !strings.Contains(logs.String(), "reachable again after") {
		t.Errorf("%d outage lines and %d per-request retry warnings, want 1 and 0, and a line when it is back:\n%s", unreachable, retrying, logs.String())
	}
}

type syncBuffer = worker.SyncBuffer
