package postmortem

import (
	"fmt"
	"io"

	"github.com/distcompute/distcompute-go/journal"
)

// Verify runs the journal's checks (bbolt's page check, then the journal's invariants:
// records decode, indexes and orphans point at the right events, every slot's state
// is the fold of its history) and writes the verdict to w: one "ok" line, or the
// problems one per line. It returns the problems found; err is only a failure to
// write to w. It only reads db.
func Verify(w io.Writer, db *journal.DB) (problems []error, err error) {
	problems = db.Verify()
	if len(problems) == 0 {
		var events, slots int
		_ = db.Events(journal.Filter{}, func(journal.Event) error { events++; return nil })
		if s, err := db.Slots(); err == nil {
			slots = len(s)
		}
		_, err = fmt.Fprintf(w, "ok: %s is sound (bbolt check and journal invariants): %d events, %d slot%s\n", db.Path(), events, slots, plural(slots))
		return nil, err
	}
	if _, err := fmt.Fprintf(w, "%s has %d problem%s:\n", db.Path(), len(problems), plural(len(problems))); err != nil {
		return problems, err
	}
	for _, p := range problems {
		if _, err := fmt.Fprintf(w, "  - %s\n", oneLine(problemText(p))); err != nil {
			return problems, err
		}
	}
	return problems, nil
}

// problemText is what a problem says is damaged, without the file name, operation
// and "journal is corrupt" every problem starts with. Problems never quote records,
// so they hold no token.
func problemText(err error) string {
	return oneLine(errText(err))
}
