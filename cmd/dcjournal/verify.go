package main

import (
	"errors"
	"fmt"

	"github.com/distcompute/distcompute-go/internal/postmortem"
)

const verifyHelp = `Usage: dcjournal verify JOURNAL [flags]

Checks JOURNAL: bbolt's own consistency check (every page reachable once, no double
frees), then the journal's invariants (every record decodes, indexes and orphans
point at the right events, every slot's state equals the fold of its history).
Opens the journal read-only and leaves it unchanged.

Exit status 0 and one "ok" line when the journal is sound; 1 and the list of
problems otherwise; 3 when the file cannot be opened as a journal at all.
`

func runVerify(env *cmdEnv, args []string) error {
	fs := newFlags("verify", verifyHelp)
	path, err := fs.parseJournal(env, args)
	if err != nil {
		return err
	}
	db, err := fs.open(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	problems, err := postmortem.Verify(env.stdout, db)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return withCode(exitFailed, errors.Join(errSilent, fmt.Errorf("%d problems", len(problems))))
	}
	return nil
}
