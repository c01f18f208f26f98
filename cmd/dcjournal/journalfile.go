package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
)

// defaultLockWait bounds how long a command waits for a running worker's file lock.
const defaultLockWait = 500 * time.Millisecond

// flagSet is a subcommand's flags and its help text.
type flagSet struct {
	*flag.FlagSet
	help     string
	lockWait *time.Duration // --lock-wait, which every subcommand has
}

// newFlags makes a subcommand's flag set; help is its usage text, printed with the
// flags on --help.
func newFlags(name, help string) *flagSet {
	fs := flag.NewFlagSet("dcjournal "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	lockWait := fs.Duration("lock-wait", defaultLockWait, "how long to wait for a running worker's lock before saying who holds it")
	return &flagSet{FlagSet: fs, help: help, lockWait: lockWait}
}

// parseJournal parses the flags of a subcommand whose one positional argument is
// the journal path, and returns that path.
func (fs *flagSet) parseJournal(env *cmdEnv, args []string) (string, error) {
	pos, err := fs.parse(env, args)
	if err != nil {
		return "", err
	}
	return journalArg(fs, pos)
}

// open opens the journal at path as openJournal does, with the --lock-wait flag.
func (fs *flagSet) open(path string, write bool) (*journal.DB, error) {
	return openJournal(path, write, *fs.lockWait)
}

// parse parses flags placed before, between or after positional arguments
// ("export JOURNAL --orphans --out DIR") and returns the positional ones. On --help it
// prints the command's help to stdout and returns errHelp.
func (fs *flagSet) parse(env *cmdEnv, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(env.stdout)
			return nil, errHelp
		}
		if err != nil {
			return nil, usageErrorf("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag, or after "--" (then all is positional).
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (fs *flagSet) printHelp(w io.Writer) {
	fmt.Fprint(w, fs.help)
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// journalArg checks there is exactly one positional argument, the journal path.
func journalArg(fs *flagSet, pos []string) (string, error) {
	switch len(pos) {
	case 1:
		return pos[0], nil
	case 0:
		return "", usageErrorf("%s: give the journal file, e.g. %s /mnt/volume/journal.db", fs.Name(), fs.Name())
	default:
		return "", usageErrorf("%s: one journal at a time, got %d arguments: %s", fs.Name(), len(pos), strings.Join(pos, " "))
	}
}

// openJournal opens the journal at path, read-only unless write, waiting at most
// lockWait for a running worker's lock. Its errors are one line saying what is wrong
// and what to do, with the exit code for it.
func openJournal(path string, write bool, lockWait time.Duration) (*journal.DB, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, withCode(exitJournal, fmt.Errorf("%s: no such file; give the path of the journal file (a worker keeps it in $DISTCOMPUTE_JOURNAL, by default ~/.local/state/distcompute/journal.db)", path))
	case err != nil:
		return nil, withCode(exitJournal, fmt.Errorf("%s: %v", path, errors.Unwrap(err)))
	case fi.IsDir():
		return nil, withCode(exitJournal, fmt.Errorf("%s is a directory; give the journal file in it (usually journal.db)", path))
	case fi.Size() == 0:
		// A writable journal.Open would make it a new journal: no command
		// here creates one.
		return nil, withCode(exitJournal, fmt.Errorf("%s is not a distcompute journal (the file is empty: a worker that stopped while creating its journal leaves one, holding nothing); check the path", path))
	}
	if lockWait <= 0 {
		lockWait = -1 // a single attempt
	}
	db, err := journal.Open(path, &journal.Options{ReadOnly: !write, Timeout: lockWait, NoAutoCompact: true})
	if err == nil {
		return db, nil
	}
	return nil, openError(path, err)
}

// openError explains an error of journal.Open in one line.
func openError(path string, err error) error {
	var (
		locked     *journal.LockedError
		notJournal *journal.NotJournalError
		format     *journal.FormatError
		damage     *journal.CorruptError
	)
	switch {
	case errors.As(err, &locked):
		return withCode(exitLocked, lockedError(path, locked))
	case errors.Is(err, journal.ErrNewerFormat):
		return withCode(exitJournal, fmt.Errorf("%s was written by a newer version of distcompute-go; use a dcjournal of that version or later (%v)", path, err))
	case errors.As(err, &format) && errors.Is(err, journal.ErrOldFormat):
		return withCode(exitJournal, fmt.Errorf("%s was written by a development version of distcompute-go (journal format %d; this one reads %d to %d); export it with the dcjournal of that version", path, format.Version, journal.OldestFormatVersion, journal.FormatVersion))
	case errors.As(err, &notJournal):
		return withCode(exitJournal, fmt.Errorf("%s is not a distcompute journal (%s); check the path", path, notJournal.Reason))
	case errors.As(err, &damage):
		return withCode(exitJournal, fmt.Errorf("%s is damaged (%s) and cannot be read; keep it for analysis, and look for an intact copy (a snapshot of the volume)", path, damage.Text()))
	case errors.Is(err, fs.ErrPermission):
		return withCode(exitJournal, fmt.Errorf("%s: permission denied; run as the user that owns the journal, or read a copy", path))
	default:
		return withCode(exitJournal, fmt.Errorf("cannot open %s: %s", path, cause(err)))
	}
}

// cause is what went wrong, without the file name and operation a
// *journal.Error puts first (the message says them already).
func cause(err error) error {
	var je *journal.Error
	if errors.As(err, &je) {
		return je.Err
	}
	return err
}

// lockedError says which process holds the journal (best effort) and how to look
// at it while it runs.
func lockedError(path string, locked *journal.LockedError) error {
	holders := postmortem.Holders(path, locked.PIDs)
	who := "another process"
	if len(holders) > 0 {
		names := make([]string, len(holders))
		for i, h := range holders {
			names[i] = h.String()
		}
		who = strings.Join(names, ", ")
	}
	return fmt.Errorf("%s is locked by %s, a worker still running; nothing was read or changed. "+
		"Stop it first, or see it live with: dcjournal inspect --live http://ADDR (ADDR: the worker's --status-addr; it needs --status-journal)", path, who)
}

// readError explains an error met while reading an open journal: a damaged record
// gets the "cannot open" exit code and a pointer to verify.
func readError(path string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, journal.ErrNewerFormat):
		return withCode(exitJournal, fmt.Errorf("%s holds records of a newer version of distcompute-go; use a dcjournal of that version or later (%v)", path, err))
	case errors.Is(err, journal.ErrCorrupt):
		return withCode(exitJournal, fmt.Errorf("%s is damaged (%s); \"dcjournal verify %s\" lists the problems", path, damageText(err), path))
	}
	return err
}

// damageText says what is damaged, for an error wrapping journal.ErrCorrupt.
func damageText(err error) string {
	var damage *journal.CorruptError
	if errors.As(err, &damage) {
		return damage.Text()
	}
	return cause(err).Error()
}

// refuseDamaged runs db.Verify before a command that rewrites the journal or acts
// on what it says (compact, replay), and refuses a journal that does not verify with
// the exit code of a damaged journal, unless force. risk says what --force risks; with
// force the refusal is written to stderr as a warning and the command goes on.
func refuseDamaged(env *cmdEnv, db *journal.DB, path, command, risk string, force bool) error {
	problems := db.Verify()
	if len(problems) == 0 {
		return nil
	}
	more := ""
	if len(problems) > 1 {
		more = fmt.Sprintf(" and %d more problems", len(problems)-1)
	}
	what := fmt.Sprintf("%s is damaged (%s%s)", path, damageText(problems[0]), more)
	if force {
		fmt.Fprintf(env.stderr, "dcjournal: warning: %s; %s anyway (--force): %s\n", what, command, risk)
		return nil
	}
	return withCode(exitJournal, fmt.Errorf("%s; %s refuses it: \"dcjournal verify %s\" lists the problems, \"dcjournal export\" saves what can be read; --force %ss anyway, which %s", what, command, path, command, risk))
}
