package journal

import (
	"bytes"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Filter selects events for DB.Events. Zero fields do not filter.
type Filter struct {
	Slot    string // only this slot's events
	Job     int    // only events about this job number
	FromSeq uint64 // only events with Seq >= FromSeq
}

// eventsPage is how many events Events reads per read transaction; fn is
// called between transactions, so it may use the DB (even append).
const eventsPage = 512

// Slots returns the names of the journal's slots, sorted.
func (db *DB) Slots() ([]string, error) {
	if err := db.acquire("slots"); err != nil {
		return nil, err
	}
	defer db.release()
	var names []string
	err := db.view("slots", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStates)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	return names, err
}

// State returns slot's current state: the zero State with Slot set for a
// slot the journal does not know. Events given to AppendDeferred and not yet
// written are included (see AppendDeferred); buffered progress
// (AppendProgress) not yet written is not.
func (db *DB) State(slot string) (State, error) {
	if err := db.acquire("state"); err != nil {
		return State{}, err
	}
	defer db.release()
	if !db.opts.ReadOnly {
		if st, ok := db.committedState(slot); ok {
			return st, nil
		}
	}
	return db.stateTx(slot)
}

// stateTx reads slot's stored state and folds the deferred events that the
// read transaction does not see: those queued and those being written by a
// commit later than the transaction's (deferredEvent.tx).
func (db *DB) stateTx(slot string) (State, error) {
	st := State{Slot: slot}
	err := db.viewDeferred("state", func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketStates); b != nil {
			if v := b.Get([]byte(slot)); v != nil {
				s, err := DecodeState(v)
				if err != nil {
					return at(err, slot, 0)
				}
				st = s
			}
		}
		if !db.opts.ReadOnly {
			// The next State of this slot need not decode it again.
			db.dmu.Lock()
			db.publish(slot, st.clone(), tx.ID())
			db.dmu.Unlock()
		}
		st = db.withDeferred(st, tx.ID())
		return nil
	})
	return st, err
}

// States returns the current state of every slot, in slot-name order.
func (db *DB) States() ([]State, error) {
	if err := db.acquire("states"); err != nil {
		return nil, err
	}
	defer db.release()
	var states []State
	err := db.viewDeferred("states", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStates)
		if b == nil {
			return nil
		}
		err := b.ForEach(func(k, v []byte) error {
			s, err := DecodeState(v)
			if err != nil {
				return at(err, string(k), 0)
			}
			states = append(states, s)
			return nil
		})
		if err != nil {
			return err
		}
		// Deferred events (see State); their slots have stored states, as
		// every event but registered needs a session.
		for i := range states {
			states[i] = db.withDeferred(states[i], tx.ID())
		}
		return nil
	})
	return states, err
}

// Events calls fn for each stored event that f selects, in sequence order,
// and stops at fn's first error, which it returns. A job's events are found
// through its claim: once pruning removed the claim, the job's remaining
// events are found by slot only. Pruned history is gone
// (its effect lives on in the slot's state). Events are read a page at a
// time in short read transactions, so fn may call other DB methods; events
// appended meanwhile may or may not be seen.
func (db *DB) Events(f Filter, fn func(Event) error) error {
	from := f.FromSeq
	if from == 0 {
		from = 1
	}
	for {
		page, next, err := db.eventsPage(f, from)
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		from = next
	}
}

// eventsPage reads up to eventsPage events from seq from; next is the seq to
// continue from, 0 at the end.
func (db *DB) eventsPage(f Filter, from uint64) (page []Event, next uint64, err error) {
	if err := db.acquire("events"); err != nil {
		return nil, 0, err
	}
	defer db.release()
	err = db.view("events", func(tx *bolt.Tx) error {
		store := storeOf(tx)
		if store.events == nil {
			return nil
		}
		get := func(seq uint64) (Event, bool, error) {
			v := store.get(u64(seq))
			if v == nil {
				return Event{}, false, nil
			}
			e, err := DecodeEvent(v)
			if err != nil {
				return Event{}, false, at(err, "", seq)
			}
			return e, true, nil
		}
		add := func(e Event) bool {
			page = append(page, e)
			if len(page) == eventsPage {
				next = e.Seq + 1
				return false
			}
			return true
		}
		switch {
		case f.Job != 0:
			// The job index holds claims (and orphan resolutions) only: a
			// job's other events follow its claim in the slot's history,
			// up to the slot's next claim.
			jobs, idx, meta := tx.Bucket(bucketJobs), tx.Bucket(bucketSlotIdx), tx.Bucket(bucketSlotMeta)
			if jobs == nil || idx == nil {
				return nil
			}
			seen := make(map[uint64]bool)
			var seqs []uint64
			starts, err := jobStarts(jobs, meta, f, get)
			if err != nil {
				return err
			}
			for _, st := range starts {
				slot, start := st.slot, st.seq
				var ferr error
				err := slotEntries(idx, meta, slot, start, func(seq uint64, kind string) bool {
					if seq != start && kind == string(KindClaimed) {
						return false
					}
					if seq != start && kind == string(KindOrphanResolved) {
						return true // indexed on its own
					}
					e, ok, err := get(seq)
					if err != nil {
						ferr = err
						return false
					}
					if ok && e.Job == f.Job && !seen[seq] {
						seen[seq] = true
						seqs = append(seqs, seq)
					}
					return kind != string(KindOrphanResolved)
				})
				if err == nil {
					err = ferr
				}
				if err != nil {
					return err
				}
			}
			slices.Sort(seqs)
			for _, seq := range seqs {
				if seq < from {
					continue
				}
				e, ok, err := get(seq)
				if err != nil {
					return err
				}
				if ok && !add(e) {
					return nil
				}
			}
		case f.Slot != "":
			var ferr error
			err := slotEntries(tx.Bucket(bucketSlotIdx), tx.Bucket(bucketSlotMeta), f.Slot, from, func(seq uint64, _ string) bool {
				e, ok, err := get(seq)
				if err != nil {
					ferr = err
					return false
				}
				return !ok || add(e)
			})
			if err == nil {
				err = ferr
			}
			return err
		default:
			return store.each(from, func(k, v []byte) (bool, error) {
				e, err := DecodeEvent(v)
				if err != nil {
					return false, at(err, "", be(k))
				}
				return add(e), nil
			})
		}
		return nil
	})
	return page, next, err
}

// Orphans returns every unresolved orphaned output, oldest first.
func (db *DB) Orphans() ([]Orphan, error) {
	if err := db.acquire("orphans"); err != nil {
		return nil, err
	}
	defer db.release()
	var out []Orphan
	err := db.view("orphans", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOrphans)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			o, err := decodeOrphan(v)
			if err != nil {
				return at(err, "", be(k))
			}
			out = append(out, o)
			return nil
		})
	})
	return out, err
}

// jobStart is where a job's events start in a slot's history: its claim
// (or an orphan resolution naming it).
type jobStart struct {
	slot string
	seq  uint64
}

// jobStarts lists the starts of f.Job (in f.Slot, if set): the job index's
// entries, then the claims still listed in the slotmeta records, which the
// job index does not hold yet (see txWriter.indexClaims).
func jobStarts(jobs, meta *bolt.Bucket, f Filter, get func(uint64) (Event, bool, error)) ([]jobStart, error) {
	var starts []jobStart
	prefix := jobKey(f.Job, 0)[:8]
	jc := jobs.Cursor()
	for k, v := jc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = jc.Next() {
		if f.Slot == "" || string(v) == f.Slot {
			starts = append(starts, jobStart{slot: string(v), seq: be(k[8:])})
		}
	}
	if meta == nil {
		return starts, nil
	}
	mc := meta.Cursor()
	for k, v := mc.First(); k != nil; k, v = mc.Next() {
		if f.Slot != "" && string(k) != f.Slot {
			continue
		}
		m, ok := decodeSlotMeta(v)
		if !ok {
			return nil, corrupt(string(k), 0, "bad counters")
		}
		for _, p := range m.pending {
			if p.kind != string(KindClaimed) {
				continue
			}
			e, ok, err := get(p.seq)
			if err != nil {
				return nil, err
			}
			if ok && e.Job == f.Job {
				starts = append(starts, jobStart{slot: string(k), seq: p.seq})
			}
		}
	}
	return starts, nil
}
