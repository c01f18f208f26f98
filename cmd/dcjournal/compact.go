package main

import (
	"fmt"
)

const compactHelp = `Usage: dcjournal compact JOURNAL [flags]

Rewrites JOURNAL into a new file without its free pages, then renames it over the
old one (bbolt files never shrink by themselves), and prints the sizes before and
after. It needs the journal's lock: stop the worker first.

It first verifies the journal (as "dcjournal verify") and refuses one that does not
verify (exit 3): compacting copies the damaged records into the new file and
replaces the original with it. --force compacts anyway.
`

func runCompact(env *cmdEnv, args []string) error {
	fs := newFlags("compact", compactHelp)
	force := fs.Bool("force", false, "compact a journal that does not verify (the damage is copied, the original replaced: keep a copy)")
	path, err := fs.parseJournal(env, args)
	if err != nil {
		return err
	}
	db, err := fs.open(path, true)
	if err != nil {
		return err
	}
	if err := refuseDamaged(env, db, path, "compact", "copies the damage into the new file and replaces the original: keep a copy first", *force); err != nil {
		db.Close()
		return err
	}
	before, after, err := db.Compact()
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("compacting %s: %v", path, err)
	}
	saved := 0.0
	if before > 0 {
		saved = 100 * float64(before-after) / float64(before)
	}
	_, err = fmt.Fprintf(env.stdout, "compacted %s: %d bytes before, %d after (%.0f%% reclaimed)\n", path, before, after, saved)
	return err
}
