package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// TestReplayTimeoutBoundsWhole: with the tracker unreachable, replay --timeout T
// gives up after about T in all, not T per slot (the slots are replayed at once),
// and says on stderr what it is doing.
func TestReplayTimeoutBoundsWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	const slots = 4
	err := withJournal(path, func(db *journal.DB) error {
		in := "x"
		for i := range slots {
			s := strconv.Itoa(i)
			for _, e := range []journal.Event{
				{Slot: s, Kind: journal.KindRegistered, URL: "http://127.0.0.1:1", Stage: "a", Token: "token-" + s + "-0123456789", DisplayName: "w" + s},
				{Slot: s, Kind: journal.KindClaimed, Job: i + 1, Input: &in},
			} {
				if _, err := db.Append(e); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	var stdout, stderr bytes.Buffer
	t0 := time.Now()
	err = run(context.Background(), []string{"replay", path, "--tracker", "http://127.0.0.1:1", "--timeout", timeout.String()}, &stdout, &stderr)
	elapsed := time.Since(t0)
	if code := report(context.Background(), err, &stderr); code != exitTracker {
		t.Fatalf("exit %d, want %d:\n%s", code, exitTracker, stderr.String())
	}
	var n int
	if _, err := fmt.Sscanf(stderr.String(), "replaying %d slot(s)", &n); err != nil || n != slots {
		t.Fatalf("stderr does not say it replays %d slots: %v\n%s", slots, err, stderr.String())
	}
	if got := strings.Count(stderr.String(), ": not settled: "); got != n {
		t.Errorf("%d slots reported not settled, want %d:\n%s", got, n, stderr.String())
	}
	// One after another, 4 slots would take about 4 × timeout.
	if limit := 2 * timeout; elapsed >= limit {
		t.Errorf("replay took %v with --timeout %v over %d slots: the timeout does not bound the whole replay", elapsed, timeout, n)
	}
}
