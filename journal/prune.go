package journal

import (
	"bytes"
	"math"
)

// Pruning bounds each slot's history.
const (
	// EventsPerJob bounds a slot's history independently of jobs: a slot
	// keeps at most Retention*EventsPerJob events, so that a slot that never
	// claims (or one job that checkpoints forever) stays bounded too.
	EventsPerJob = 50
	// PruneBudget is how many old events of a slot one pruning pass (every
	// 16 appends to the slot, and when its newest events move into its
	// slot index) folds into its base state and deletes;
	// pruning is incremental so that appends stay cheap.
	PruneBudget = 128
)

// pruneEvery is how many appends to a slot pass between its pruning passes:
// pruning in chunks touches the pages at the head of the slot's history
// once per chunk rather than on every append.
const pruneEvery = 16

// prune, every pruneEvery appends to the slot and whenever its listed
// entries move into slotidx (now: the caller moves them next), folds at
// most PruneBudget of its oldest events into its base state and deletes
// them, if they are older than the claim of the Retention-th most recent
// job, or if the slot holds more than Retention*EventsPerJob events. The
// events listed in the slotmeta record are not in slotidx yet: they wait
// for a later pass.
func (w *txWriter) prune(s *slotTx, now bool) error {
	m := &s.meta
	if m.sincePrune++; m.sincePrune < pruneEvery && !now {
		return nil
	}
	m.sincePrune = 0
	retention := uint64(w.db.retention)
	prefix := slotPrefix(s.name)
	if m.claims > retention {
		if err := w.pruneClaims(s, retention); err != nil {
			return err
		}
	}
	maxEvents := retention * EventsPerJob
	idx, err := w.bucket(&w.slotIdx, bucketSlotIdx)
	if err != nil {
		return err
	}
	c := idx.Cursor()
	k, _ := c.Seek(prefix)
	due := func(k []byte) bool {
		return k != nil && bytes.HasPrefix(k, prefix) && (be(k[len(k)-8:]) < m.pruneTo || m.n > maxEvents)
	}
	if !due(k) {
		return nil
	}
	bases, err := w.bucket(&w.bases, bucketBases)
	if err != nil {
		return err
	}
	// The base state as this DB last wrote it, else as stored.
	base, known := s.base, s.baseKnown
	if !known {
		if v := bases.Get([]byte(s.name)); v != nil {
			b, err := DecodeState(v)
			if err != nil {
				return inRecord(err, s.name, "base ")
			}
			base = b
		}
	}
	events, err := w.eventsBucket()
	if err != nil {
		return err
	}
	for pruned := 0; due(k) && pruned < PruneBudget; pruned++ {
		key := k[len(k)-8:]
		// Old events are in the events bucket, unless the slot's whole
		// history is in the tail.
		v, inTail := events.Get(key), false
		if v == nil {
			v, inTail = w.tail.Get(key), true
		}
		if v == nil {
			return corrupt(s.name, 0, "the slot index names missing event %d", be(key))
		}
		e, err := DecodeEvent(v)
		if err != nil {
			return at(err, s.name, be(key))
		}
		base = Fold(base, e)
		if inTail {
			err = w.deleteEvent(key, e.Kind, e.Job)
		} else {
			err = w.deleteIndexed(key, e.Kind, e.Job)
			if err == nil {
				err = events.Delete(key)
			}
		}
		if err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		m.n--
		k, _ = c.Seek(prefix)
	}
	data, err := encodeState(base)
	if err != nil {
		return err
	}
	s.base, s.baseKnown = base, true
	w.space.add(len(data))
	return bases.Put([]byte(s.name), data)
}

// pruneClaims deletes the slot's oldest claims from the claims bucket until
// the counter says retention, and sets the prune point to the oldest claim
// kept. The bucket holds every claim the counter counts except, perhaps,
// those listed in the slotmeta record (see indexClaims), which are the
// newest: the older ones are deleted first, and the listed ones indexed
// only if some of them must go too.
func (w *txWriter) pruneClaims(s *slotTx, retention uint64) error {
	m := &s.meta
	prefix := slotPrefix(s.name)
	first := uint64(math.MaxUint64) // the oldest listed claim
	for _, p := range m.pending {
		if p.kind == string(KindClaimed) {
			first = p.seq
			break
		}
	}
	claims, err := w.bucket(&w.claims, bucketClaims)
	if err != nil {
		return err
	}
	// older reports whether k is a claim of the slot older than the listed
	// ones.
	older := func(k []byte) bool { return k != nil && bytes.HasPrefix(k, prefix) && be(k[len(k)-8:]) < first }
	c := claims.Cursor()
	for k, _ := c.Seek(prefix); older(k) && m.claims > retention; k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
		m.claims--
	}
	if m.claims > retention {
		// Listed claims must go too: the bucket must hold them first.
		if err := w.indexClaims(s); err != nil {
			return err
		}
		first = math.MaxUint64
		c = claims.Cursor()
		for k, _ := c.Seek(prefix); older(k) && m.claims > retention; k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
			m.claims--
		}
	}
	switch k, _ := c.Seek(prefix); {
	case older(k):
		m.pruneTo = be(k[len(k)-8:])
	case first != math.MaxUint64:
		m.pruneTo = first // kept, indexed or not
	}
	return nil
}
