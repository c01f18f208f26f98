package worker_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/journal"
)

type syncBuf = worker.SyncBuffer

// TestStatusAddressHoldsNoSecret: with a tracker URL that carries a
// password, no page of the status address holds the password or a token;
// /journal is off by default (404 that says why); the address actually
// listened on is logged; and /journal, once switched on, streams a
// snapshot that opens, leaving no file behind.
func TestStatusAddressHoldsNoSecret(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	srv := startTracker(t, "one")
	const password = "S3cretPass"
	trackerURL := strings.Replace(srv.URL, "http://", "http://alice:"+password+"@", 1)
	dir := t.TempDir()
	for _, serveJournal := range []bool{false, true} {
		srv.Tracker.AddJobs("job")
		logs := &syncBuf{}
		cfg := config(t, trackerURL, script(t, `touch `+dir+`/running; while [ ! -f `+dir+`/go ]; do sleep 0.02; done; echo ok`))
		cfg.Slots = 1
		cfg.WorkDir = filepath.Join(dir, "work")
		cfg.StatusAddr = "127.0.0.1:0"
		cfg.StatusJournal = serveJournal
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter(t)), nil))
		addrCh := make(chan net.Addr, 1)
		cfg.StatusListening = func(a net.Addr) { addrCh <- a }
		os.Remove(filepath.Join(dir, "go"))
		os.Remove(filepath.Join(dir, "running"))
		done := start(t, context.Background(), cfg)
		addr := (<-addrCh).String()
		base := "http://" + addr
		waitFor(t, 10*time.Second, "the job to run", func() bool {
			_, err := os.Stat(filepath.Join(dir, "running"))
			return err == nil
		})
		if !strings.Contains(logs.String(), "addr="+addr) {
			t.Errorf("the log does not say the address listened on (%s):\n%s", addr, logs.String())
		}
		var tokens []string
		for _, w := range srv.Tracker.Workers() {
			tokens = append(tokens, w.Token)
		}
		if len(tokens) == 0 {
			t.Fatal("no worker registered")
		}
		get := func(path string) (int, []byte) {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			return resp.StatusCode, b
		}
		for _, path := range []string{"/status", "/metrics", "/"} {
			_, body := get(path)
			if bytes.Contains(body, []byte(password)) {
				t.Errorf("GET %s holds the tracker's password:\n%s", path, body)
			}
			for _, tok := range tokens {
				if bytes.Contains(body, []byte(tok)) || bytes.Contains(body, []byte(tok[:9])) {
					t.Errorf("GET %s holds a token (or more than its 8-character prefix):\n%s", path, body)
				}
			}
		}
		if _, st := get("/status"); !bytes.Contains(st, []byte("alice:xxxxx@")) {
			t.Errorf("/status does not show the tracker URL redacted:\n%s", st)
		}
		code, body := get("/journal")
		switch {
		case !serveJournal && (code != http.StatusNotFound || !bytes.Contains(body, []byte("--status-journal"))):
			t.Errorf("/journal without --status-journal: %d %s, want 404 naming the flag", code, body)
		case serveJournal && code != http.StatusOK:
			t.Errorf("/journal with --status-journal: %d %s", code, body)
		case serveJournal:
			snap := filepath.Join(dir, "snapshot.db")
			if err := os.WriteFile(snap, body, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := journal.Open(snap, &journal.Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("the snapshot does not open: %v", err)
			}
			if errs := db.Verify(); len(errs) > 0 {
				t.Errorf("snapshot verify: %v", errs)
			}
			db.Close()
		}
		os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
		if err := waitErr(t, done, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{tmp, cfg.WorkDir} {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if e.Name() != "slot-0" {
					t.Errorf("%s left in %s", e.Name(), d)
				}
			}
		}
	}
}
