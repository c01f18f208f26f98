package proxy

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
)

// The journal's refusals are told from the tracker's failures and from
// the answers retrying cannot change (the spell's mechanism itself is
// statusserver.DiskState's, tested there).
func TestJournalRefused(t *testing.T) {
	full := fmt.Errorf("client: %w: %w", client.ErrNotRecorded, &journal.FullError{Size: 1 << 20, Limit: 1 << 20, Free: 0})
	unconfirmed := fmt.Errorf("client: complete: %w: %w", client.ErrUnconfirmed, journal.ErrStopped)
	for _, err := range []error{full, unconfirmed, journal.ErrFull} {
		if !journalRefused(err) {
			t.Errorf("journalRefused(%v) = false", err)
		}
	}
	for _, err := range []error{client.ErrNoJobs, syscall.ECONNREFUSED, fmt.Errorf("client: %w", client.ErrUnconfirmed), nil} {
		if journalRefused(err) {
			t.Errorf("journalRefused(%v) = true", err)
		}
	}
}
