package journal

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// deferredEvent is an event given to AppendDeferred and not yet written.
// tx is the bbolt transaction id of the commit that is applying it (0: not
// taken by a commit yet); readers use it to tell whether the state they read
// already includes the event.
type deferredEvent struct {
	ev      Event
	tx      int
	refused bool // refused when written (set by settleDeferred)
}

// AppendDeferred records e to be written at the start of the next commit
// (the next durable Append or Flush, or the background flusher within
// Options.ProgressInterval, or Close), before that commit's own events and
// after events deferred earlier, in order. It never waits for the disk:
// a crash before that commit loses e. Use it only for events whose loss is
// safe, as the caller must argue at the call site (the client defers
// claimed events: a lost claim leaves the job held at the tracker until the
// worker's next claim releases it, and anything recorded about the job
// afterwards is written in the same commit as the claim).
//
// e is validated at once against the slot's state including events
// deferred before it (an error wrapping ErrInvalidEvent, and nothing is
// queued), and again when it is written. If it no longer fits then (another
// goroutine appended to the slot meanwhile), it is dropped, the background
// flusher logs it (Options.Logger) and the refusal is returned by the next
// Append to that slot (whose event is then not written either: the caller's
// view of the slot was wrong) or the next Flush or Close.
//
// Until written, e is included in State and States (with Seq 0: its
// sequence number is assigned when it is written, and LastSeq is that of
// the last written event), not in Events. Its Time is the time of the call.
func (db *DB) AppendDeferred(e Event) error {
	if err := db.acquire("append deferred"); err != nil {
		return err
	}
	defer db.release()
	if db.opts.ReadOnly {
		return db.wrap("append deferred", ErrReadOnly)
	}
	if e.Kind == KindRegistered {
		// The write-ahead rule: the token must be on disk before it is used.
		return db.wrap("append deferred", &InvalidEventError{Slot: e.Slot, Kind: e.Kind, Reason: "a registration cannot be deferred"})
	}
	e.Version, e.Seq, e.Time = 0, 0, db.now().UTC()
	if done, err := db.deferPublished(&e); done {
		return err
	}
	return db.viewDeferred("append deferred", func(tx *bolt.Tx) error {
		w, err := newTxWriter(tx, db, e.Time)
		if err != nil {
			return err
		}
		db.dmu.Lock()
		defer db.dmu.Unlock()
		if checkSlotName(e.Slot) == "" {
			s, err := w.slot(e.Slot)
			if err != nil {
				return err
			}
			s.state = foldDeferred(s.state, db.deferredOf(e.Slot, tx.ID()))
		}
		if err := w.check(&e); err != nil {
			return err
		}
		db.deferred = append(db.deferred, &deferredEvent{ev: e})
		db.deferredN.Add(1)
		return nil
	})
}

// deferPublished is AppendDeferred for a slot whose state this DB has
// published (committedState): e is checked against that state with the
// events deferred before it folded in, and queued, in one critical section
// of dmu, without a read transaction or decoding the stored state (the
// client defers every claim: a read transaction and a JSON decode per claim
// were most of AppendDeferred's cost). It reports false, having done
// nothing, when the read transaction's path must run: the slot is not
// published yet, its name is invalid (the path says why), or the event is
// an orphan-resolved, which is checked against the orphans bucket.
func (db *DB) deferPublished(e *Event) (done bool, err error) {
	if e.Kind == KindOrphanResolved || checkSlotName(e.Slot) != "" {
		return false, nil
	}
	db.dmu.Lock()
	defer db.dmu.Unlock()
	p, ok := db.pub[e.Slot]
	if !ok {
		return false, nil
	}
	st := foldDeferred(p.state, db.deferredOf(e.Slot, p.tx))
	// The checks of txWriter.check, in its order, for an event that is not
	// an orphan-resolved and whose slot name is valid.
	reason := ""
	switch {
	case !KnownKind(e.Kind):
		reason = "unknown kind"
	case len(e.Report) > 0 && !json.Valid(e.Report):
		reason = "report is not valid JSON"
	default:
		reason = checkEvent(st, e)
	}
	if reason != "" {
		return true, db.wrap("append deferred", &InvalidEventError{Slot: e.Slot, Kind: e.Kind, Reason: reason})
	}
	db.deferred = append(db.deferred, &deferredEvent{ev: *e})
	db.deferredN.Add(1)
	return true, nil
}

// viewDeferred runs fn in a read transaction during which deferred events
// written by later commits stay listed (in recent), so that fn can tell
// (deferredOf) which of them its transaction does not see: bbolt read
// transactions are snapshots, and a commit may write and unlist deferred
// events after fn's transaction began. recent is emptied whenever no such
// reader runs.
func (db *DB) viewDeferred(op string, fn func(*bolt.Tx) error) error {
	db.dmu.Lock()
	db.readers++
	db.dmu.Unlock()
	defer func() {
		db.dmu.Lock()
		if db.readers--; db.readers == 0 {
			db.recent = nil
		}
		db.dmu.Unlock()
	}()
	return db.view(op, fn)
}

// deferredOf returns slot's deferred events that a reader of committed
// transaction txid does not see in the stored state: those not written
// yet, and those written by a later commit. The caller holds dmu and runs
// in viewDeferred.
func (db *DB) deferredOf(slot string, txid int) []Event {
	var out []Event
	for _, list := range [][]*deferredEvent{db.recent, db.deferred} {
		for _, d := range list {
			if d.ev.Slot == slot && !d.refused && (d.tx == 0 || d.tx > txid) {
				out = append(out, d.ev)
			}
		}
	}
	return out
}

// foldDeferred folds events not yet written onto st, keeping LastSeq (they
// have no sequence number yet).
func foldDeferred(st State, events []Event) State {
	if len(events) == 0 {
		return st
	}
	seq := st.LastSeq
	st = FoldAll(st, events)
	st.LastSeq = seq
	return st
}

// withDeferred returns st with the deferred events a reader of transaction
// txid does not see.
func (db *DB) withDeferred(st State, txid int) State {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	if len(db.deferred) == 0 && len(db.recent) == 0 {
		return st
	}
	return foldDeferred(st, db.deferredOf(st.Slot, txid))
}

// hasDeferred reports whether events wait for the next commit.
func (db *DB) hasDeferred() bool {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	return len(db.deferred) > 0
}

// takeDeferred marks the deferred events not yet taken as applied by write
// transaction txid and returns them with the refusals not yet reported.
func (db *DB) takeDeferred(txid int) ([]*deferredEvent, map[string]error) {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	var taken []*deferredEvent
	for _, d := range db.deferred {
		if d.tx == 0 {
			d.tx = txid
			taken = append(taken, d)
		}
	}
	return taken, maps.Clone(db.deferFail)
}

// settleDeferred ends a commit that took deferred events: on success they
// leave the queue (for recent while readers may need them), refused marks
// those the commit refused, and fails (minus what was reported) become the
// refusals still to report; on failure they wait for the next commit.
func (db *DB) settleDeferred(taken []*deferredEvent, ok bool, refused map[*deferredEvent]bool, fails map[string]error, states map[string]State, txid int) {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	if !ok {
		for _, d := range taken {
			d.tx = 0
		}
		return
	}
	// Publish the committed states in the same critical section that drops
	// the events the commit wrote from the queue: a reader (committedState)
	// sees either the old states with those events still queued, or the new
	// states without them.
	for name, st := range states {
		db.publish(name, st, txid)
	}
	if n := len(taken); n > 0 {
		for _, d := range taken {
			d.refused = refused[d]
		}
		// Taken events are a prefix of the queue: events queue at its end,
		// and a failed commit hands every event it took back.
		db.deferred = append(db.deferred[:0:0], db.deferred[n:]...)
		if db.readers > 0 {
			db.recent = append(db.recent, taken...)
		}
	}
	db.deferFail = fails
}

// deferredRefused is the refusal of e, not written because err refused an
// event of its slot given to AppendDeferred earlier.
func deferredRefused(e Event, err error) error {
	return &InvalidEventError{Slot: e.Slot, Kind: e.Kind, Earlier: err,
		Reason: "not written: an event given to AppendDeferred earlier was refused when written"}
}

// joinFails joins the refusals of deferred events, by slot, each an *Error
// of op.
func (db *DB) joinFails(op string, fails map[string]error) error {
	slots := make([]string, 0, len(fails))
	for s := range fails {
		slots = append(slots, s)
	}
	sort.Strings(slots)
	errs := make([]error, 0, len(slots))
	for _, s := range slots {
		errs = append(errs, db.wrap(op, fails[s]))
	}
	return errors.Join(errs...)
}

// Stats are counters of a DB's write activity since Open.
type Stats struct {
	// Commits is the number of write transactions committed (appends,
	// flushes, the creation of a new journal).
	Commits int64
	// SyncedCommits is the number of those that were fsynced (all of them
	// unless Options.NoSync). A bbolt commit costs two fdatasync calls: the
	// new pages, then the meta page that makes them current.
	SyncedCommits int64
	// Appends is the number of events written, of every kind (durable,
	// deferred, buffered progress).
	Appends int64
	// Deferred is the number of events given to AppendDeferred.
	Deferred int64
}

// Stats returns the DB's write counters. It is cheap and safe for
// concurrent use.
func (db *DB) Stats() Stats {
	return Stats{
		Commits:       db.commits.Load(),
		SyncedCommits: db.synced.Load(),
		Appends:       db.appended.Load(),
		Deferred:      db.deferredN.Load(),
	}
}

func (db *DB) logger() *slog.Logger {
	if db.opts.Logger != nil {
		return db.opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// published is a slot's state as of committed transaction tx.
type published struct {
	state State
	tx    int
}

// publish records st as slot's state as of committed transaction tx, unless
// a later one is known. The caller holds dmu.
func (db *DB) publish(slot string, st State, tx int) {
	if db.pub == nil {
		db.pub = make(map[string]published)
	}
	if cur, ok := db.pub[slot]; !ok || cur.tx < tx {
		db.pub[slot] = published{state: st, tx: tx}
	}
}

// committedState returns slot's state from the states this DB published
// (it is the file's only writer: see Open), with the deferred events the
// published state does not include folded in, and false when the slot has
// not been published yet. It decodes nothing, so the client may call State
// on every action and accessor.
func (db *DB) committedState(slot string) (State, bool) {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	p, ok := db.pub[slot]
	if !ok {
		return State{}, false
	}
	st := p.state.clone()
	if len(db.deferred) > 0 {
		st = foldDeferred(st, db.deferredOf(slot, p.tx))
	}
	return st, true
}
