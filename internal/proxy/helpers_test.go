package proxy_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/journal"
)

// runningProxy is a proxy.Run in this process.
type runningProxy struct {
	URL     string
	Journal string
	cancel  context.CancelFunc
	done    chan error
}

// startProxy runs the proxy on a loopback port with a journal in a
// temporary directory; mod adjusts the Config. Cleanup stops it and
// verifies the journal.
func startProxy(t testing.TB, trackerURL string, mod func(*proxy.Config)) *runningProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxy.Config{
		TrackerURL: trackerURL,
		Journal:    filepath.Join(t.TempDir(), "proxy.db"),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rp := &runningProxy{URL: "http://" + ln.Addr().String(), Journal: cfg.Journal, cancel: cancel, done: make(chan error, 1)}
	go func() { rp.done <- proxy.Run(ctx, cfg, ln) }()
	t.Cleanup(func() {
		if err := rp.Stop(); err != nil && !errors.Is(err, proxy.ErrStopped) {
			t.Errorf("proxy: %v", err)
		}
		verifyJournal(t, cfg.Journal)
	})
	return rp
}

// Stop ends the proxy (as a cancelled context: no drain) and returns Run's error.
func (rp *runningProxy) Stop() error {
	rp.cancel()
	select {
	case err := <-rp.done:
		rp.done <- err
		return err
	case <-time.After(time.Minute):
		return errors.New("proxy did not stop within a minute")
	}
}

func verifyJournal(t testing.TB, path string) {
	t.Helper()
	db, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Errorf("journal %s: %v", path, err)
		return
	}
	defer db.Close()
	if errs := db.Verify(); len(errs) > 0 {
		t.Errorf("journal %s does not verify: %v", path, errs)
	}
}
