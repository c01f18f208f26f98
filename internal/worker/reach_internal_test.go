package worker

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// TestRetryQuietLazyAttrs: a logger derived through retryQuiet (its
// attributes applied only when a record is handled) writes what the
// handler derived at once writes, through further attributes and groups,
// and a derived logger that logs nothing at the levels shown never
// derives the handler.
func TestRetryQuietLazyAttrs(t *testing.T) {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	logAll := func(l *slog.Logger) {
		l = l.With("slot", "slot-0").With("endpoint", "newJob", "slot", "again")
		l.Debug("hidden", "k", 0)
		l.Info("claimed", "job", 1)
		l.WithGroup("g").With("in", "group").Info("grouped", "k", 2)
		l.Warn("session: retrying", "wait", time.Second) // made a debug line: not shown
	}
	var eager, lazy bytes.Buffer
	logAll(slog.New(slog.NewTextHandler(&eager, &slog.HandlerOptions{ReplaceAttr: noTime})))
	r := newReachability("http://127.0.0.1:1", slog.New(slog.DiscardHandler))
	logAll(slog.New(retryQuiet{Handler: slog.NewTextHandler(&lazy, &slog.HandlerOptions{ReplaceAttr: noTime}), reach: r}))
	want := eager.String()
	want = want[:bytes.LastIndex(eager.Bytes(), []byte("level=WARN"))] // the retry warning is quieted
	if lazy.String() != want {
		t.Errorf("through retryQuiet:\n%s\nwant:\n%s", lazy.String(), want)
	}
	h := retryQuiet{Handler: slog.NewTextHandler(&lazy, nil), reach: r}.WithAttrs([]slog.Attr{slog.String("endpoint", "newJob")})
	slog.New(h).Debug("not shown")
	if l := h.(retryQuiet).Handler.(*lazyHandler); l.h != nil {
		t.Errorf("the handler was derived for a record that is not shown")
	}
}
