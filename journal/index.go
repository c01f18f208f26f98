package journal

import (
	"bytes"
	"encoding/binary"
	"math"

	bolt "go.etcd.io/bbolt"
)

// slotMeta is a slot's counters, stored as four big-endian uint64s, then
// the slot's newest events not yet in slotidx (see pendingMax), 9 bytes
// each: the seq (big-endian) and the kind's code (kindCodes).
type slotMeta struct {
	n          uint64 // events of the slot (in slotidx and pending)
	claims     uint64 // claims kept in the claims bucket
	pruneTo    uint64 // events with a lower seq are due for pruning
	sincePrune uint64 // appends since the last pruning pass
	pending    []idxEntry
}

// idxEntry is a slot-index entry: an event's seq and kind.
type idxEntry struct {
	seq  uint64
	kind string
}

// pendingMax is how many of a slot's newest events are listed in its
// slotmeta record before they are moved into slotidx. The slotmeta record
// is rewritten on every append to the slot anyway, and all slots' records
// share few pages, whereas each slot's slotidx entries sit on a leaf page of
// their own: listing the newest events in slotmeta saves a commit carrying
// many slots (group commit) one page per slot, and a lone append the index
// leaf and branch.
const pendingMax = 16

func (m slotMeta) encode() []byte {
	n := 32
	n += 9 * len(m.pending)
	b := make([]byte, 32, n)
	binary.BigEndian.PutUint64(b, m.n)
	binary.BigEndian.PutUint64(b[8:], m.claims)
	binary.BigEndian.PutUint64(b[16:], m.pruneTo)
	binary.BigEndian.PutUint64(b[24:], m.sincePrune)
	for _, p := range m.pending {
		b = binary.BigEndian.AppendUint64(b, p.seq)
		b = append(b, kindCode(p.kind))
	}
	return b
}

func decodeSlotMeta(b []byte) (slotMeta, bool) {
	if len(b) < 32 {
		return slotMeta{}, false
	}
	m := slotMeta{
		n:          binary.BigEndian.Uint64(b),
		claims:     binary.BigEndian.Uint64(b[8:]),
		pruneTo:    binary.BigEndian.Uint64(b[16:]),
		sincePrune: binary.BigEndian.Uint64(b[24:]),
	}
	rest := b[32:]
	if len(rest)%9 != 0 {
		return slotMeta{}, false
	}
	for ; len(rest) > 0; rest = rest[9:] {
		code := int(rest[8])
		if code < 1 || code > len(kindCodes) {
			return slotMeta{}, false
		}
		m.pending = append(m.pending, idxEntry{seq: binary.BigEndian.Uint64(rest), kind: string(kindCodes[code-1])})
	}
	return m, true
}

// kindCodes numbers the kinds (from 1) for slotmeta's pending entries.
// Append only: the numbers are stored.
var kindCodes = []Kind{KindRegistered, KindClaimed, KindProgress, KindCheckpoint,
	KindCompletionPending, KindCompletionSettled, KindFlagPending,
	KindFlagSettled, KindReleased, KindByePending, KindClosed,
	KindSessionLost, KindReplayed, KindOrphanResolved, KindFailed, KindRefused, KindDrained}

func kindCode(k string) byte {
	for i, c := range kindCodes {
		if string(c) == k {
			return byte(i + 1)
		}
	}
	panic("journal: kind without a code: " + k) // Append refuses unknown kinds
}

// pendingOf reads slot's pending index entries from the slotmeta bucket.
func pendingOf(meta *bolt.Bucket, slot string) ([]idxEntry, error) {
	if meta == nil {
		return nil, nil
	}
	v := meta.Get([]byte(slot))
	if v == nil {
		return nil, nil
	}
	m, ok := decodeSlotMeta(v)
	if !ok {
		return nil, corrupt(slot, 0, "bad counters")
	}
	return m.pending, nil
}

// slotEntries returns slot's index entries with seq >= from, in order: those
// in slotidx, then the pending ones.
func slotEntries(idx, meta *bolt.Bucket, slot string, from uint64, fn func(seq uint64, kind string) bool) error {
	pending, err := pendingOf(meta, slot)
	if err != nil {
		return err
	}
	if idx != nil {
		prefix := slotPrefix(slot)
		c := idx.Cursor()
		for k, v := c.Seek(slotKey(slot, from)); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
			if !fn(be(k[len(prefix):]), string(v)) {
				return nil
			}
		}
	}
	for _, p := range pending {
		if p.seq >= from && !fn(p.seq, p.kind) {
			return nil
		}
	}
	return nil
}

// slotPrefix is the key prefix of a slot's entries in slotidx and claims:
// the name and a NUL byte (slot names cannot contain NUL).
func slotPrefix(slot string) []byte {
	b := make([]byte, len(slot)+1)
	copy(b, slot)
	return b
}

// slotKey is slotPrefix(slot) followed by the 8-byte seq.
func slotKey(slot string, seq uint64) []byte {
	b := make([]byte, len(slot)+9)
	copy(b, slot)
	binary.BigEndian.PutUint64(b[len(slot)+1:], seq)
	return b
}

// lastOfSlot positions c on the slot's last slotidx entry.
func lastOfSlot(c *bolt.Cursor, slot string) ([]byte, []byte) {
	k, v := c.Seek(slotKey(slot, math.MaxUint64))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, slotPrefix(slot)) || len(k) != len(slot)+9 {
		return nil, nil
	}
	return k, v
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func be(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func jobKey(job int, seq uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(job))
	binary.BigEndian.PutUint64(b[8:], seq)
	return b
}
