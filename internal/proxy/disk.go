package proxy

import (
	"errors"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
)

// journalRefused reports an error of a call whose journal write was refused
// (a full, read-only or failing disk): nothing was recorded, so nothing was
// sent, and the call can be made again once the journal takes writes. The
// proxy follows the journal's state (Proxy.disk, a statusserver.DiskState,
// as dcworker does) from the outcome of every call it retries.
func journalRefused(err error) bool {
	return errors.Is(err, client.ErrNotRecorded) || errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull)
}
