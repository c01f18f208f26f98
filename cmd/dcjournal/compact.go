package main

import (
	"fmt"
)

const compactHelp = `Usage: dcjournal compact JOURNAL [flags]

Rewrites JOURNAL into a new file without its free pages, then renames it over the
old one (bbolt files never shrink by themselves), and prints the sizes before and
after. It needs the journal's lock: stop the worker first.
`

func runCompact(env *cmdEnv, args []string) error {
	fs := newFlags("compact", compactHelp)
	path, err := fs.parseJournal(env, args)
	if err != nil {
		return err
	}
	db, err := fs.open(path, true)
	if err != nil {
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
