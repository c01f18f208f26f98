package journal

import bolt "go.etcd.io/bbolt"

// The tail bucket holds the journal's newest events,
// as long as they fit in bbolt's inline-bucket limit (a quarter page). An
// inline bucket lives inside its parent's page, the root page, which every
// commit rewrites anyway, as it does the inline states and slotmeta buckets
// of a journal with one or two slots. So a lone append whose event goes to
// the tail writes one data page (plus bbolt's meta page) instead of three
// (the last leaf of events, the events branch above it, the root): one
// disk write fewer per fdatasync and less CPU. When the next event does not
// fit, the commit moves the tail's events into the events bucket, and the
// rest of the commit's events go there directly: every seq in the tail is
// higher than every seq in events, so reading events then the tail reads
// in seq order. The tail's sequence counter assigns seqs.

// tailBudget is the most record bytes the tail holds: bbolt keeps a bucket
// inline while its single leaf, 16 bytes of page header plus 16 bytes of
// element header, key and value per record, is at most a quarter page.
func tailBudget(pageSize int) int { return pageSize/4 - 16 }

// tailElem is the size of a tail record besides its value: the element
// header and the 8-byte key.
const tailElem = 16 + 8

// eventStore reads events from the events and tail buckets of a
// transaction. tail may be nil (a damaged file that lost it: Verify reports
// it, and the next write transaction recreates it, see createTail).
type eventStore struct{ events, tail *bolt.Bucket }

func storeOf(tx *bolt.Tx) eventStore {
	return eventStore{events: tx.Bucket(bucketEvents), tail: tx.Bucket(bucketTail)}
}

// get returns the record of the event at key, nil if there is none.
func (s eventStore) get(key []byte) []byte {
	if s.tail != nil {
		if v := s.tail.Get(key); v != nil {
			return v
		}
	}
	if s.events == nil {
		return nil
	}
	return s.events.Get(key)
}

// each calls fn for every event record with seq >= from, in seq order,
// until fn returns false or an error.
func (s eventStore) each(from uint64, fn func(k, v []byte) (bool, error)) error {
	for _, b := range []*bolt.Bucket{s.events, s.tail} {
		if b == nil {
			continue
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
			if more, err := fn(k, v); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// counter is the journal's sequence counter: the last seq assigned. It is
// the tail's; the events bucket's counter (0 unless the tail was lost and
// recreated) is taken into account so that a seq is never assigned twice.
func (s eventStore) counter() uint64 {
	var n uint64
	if s.events != nil {
		n = s.events.Sequence()
	}
	if s.tail != nil {
		n = max(n, s.tail.Sequence())
	}
	return n
}

// nextSeq assigns the next sequence number. The events bucket's counter is
// read once per DB (see DB.tailAhead): once the tail's is found at least
// as high, it stays so, since only the tail's counter moves.
func (w *txWriter) nextSeq() (uint64, error) {
	if !w.db.tailAhead {
		events, err := w.eventsBucket()
		if err != nil {
			return 0, err
		}
		if events.Sequence() <= w.tail.Sequence() {
			w.db.tailAhead = true
		}
	}
	seq := w.store().counter() + 1
	return seq, w.tail.SetSequence(seq)
}

// store is the transaction's event store; the events bucket is left out
// while it is not open (see eventsBucket), so callers that read events
// open it first.
func (w *txWriter) store() eventStore { return eventStore{events: w.events, tail: w.tail} }

// putEvent stores an event record: in the tail if it fits and this commit
// has not moved the tail yet (see bulk), else in events, after moving the
// tail's records there.
func (w *txWriter) putEvent(key, data []byte) error {
	if !w.tailMoved {
		if w.tailBytes < 0 {
			w.tailBytes = 0
			if err := w.tail.ForEach(func(_, v []byte) error {
				w.tailBytes += tailElem + len(v)
				return nil
			}); err != nil {
				return err
			}
		}
		w.space.add(len(data))
		if size := tailElem + len(data); !w.bulk && w.tailBytes+size <= w.tailBudget {
			w.tailBytes += size
			return w.tail.Put(key, data)
		}
		if err := w.moveTail(); err != nil {
			return err
		}
	}
	events, err := w.eventsBucket()
	if err != nil {
		return err
	}
	return events.Put(key, data)
}

// moveTail moves the tail's records into events, oldest first; the rest of
// the transaction's events go to events directly.
func (w *txWriter) moveTail() error {
	events, err := w.eventsBucket()
	if err != nil {
		return err
	}
	// The records' bytes stay valid for the transaction's life (bbolt
	// copies what a remap would move): no copies needed to move them.
	var keys, vals [][]byte
	if err := w.tail.ForEach(func(k, v []byte) error {
		keys, vals = append(keys, k), append(vals, v)
		return nil
	}); err != nil {
		return err
	}
	for i, k := range keys {
		if err := events.Put(k, vals[i]); err != nil {
			return err
		}
		if err := w.tail.Delete(k); err != nil {
			return err
		}
	}
	w.tailMoved, w.tailBytes = true, 0
	return nil
}

// getEvent returns the stored record at key, nil if there is none.
func (w *txWriter) getEvent(key []byte) []byte {
	if v := w.tail.Get(key); v != nil {
		return v
	}
	events, err := w.eventsBucket()
	if err != nil {
		return nil
	}
	return events.Get(key)
}

// removeEvent deletes the record at key from whichever bucket holds it.
func (w *txWriter) removeEvent(key []byte) error {
	if v := w.tail.Get(key); v != nil {
		if w.tailBytes >= 0 {
			w.tailBytes -= tailElem + len(v)
		}
		return w.tail.Delete(key)
	}
	events, err := w.eventsBucket()
	if err != nil {
		return err
	}
	return events.Delete(key)
}

// createTail creates the tail bucket of a new file, or of a damaged one
// that lost it, its sequence counter starting from the last seq stored in
// events (or the events bucket's counter, if higher), so that no seq is
// assigned twice.
func createTail(tx *bolt.Tx) error {
	if tx.Bucket(bucketTail) != nil {
		return nil
	}
	tail, err := tx.CreateBucket(bucketTail)
	if err != nil {
		return err
	}
	events := tx.Bucket(bucketEvents)
	if events == nil {
		return nil
	}
	seq := events.Sequence()
	if k, _ := events.Cursor().Last(); k != nil {
		seq = max(seq, be(k))
	}
	return tail.SetSequence(seq)
}
