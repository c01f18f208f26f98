package journal

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeSlotMeta: the slotmeta decoder never panics, and what it
// accepts encodes back to the same bytes (the encoding is canonical).
func FuzzDecodeSlotMeta(f *testing.F) {
	f.Add(slotMeta{}.encode())
	f.Add(slotMeta{n: 40, claims: 3, pruneTo: 17, sincePrune: 5,
		pending: []idxEntry{{seq: 38, kind: string(KindClaimed)}, {seq: 41, kind: string(KindFailed)}}}.encode())
	f.Add(make([]byte, 31))
	f.Add(append(make([]byte, 32), 0, 0, 0, 0, 0, 0, 0, 1, 99))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := decodeSlotMeta(data)
		if !ok {
			return
		}
		if again := m.encode(); !bytes.Equal(again, data) {
			t.Fatalf("round trip changed the record:\n%x\n%x", data, again)
		}
	})
}

// FuzzDecodeOrphan: the orphan decoder never panics, refuses with
// ErrCorrupt, and what it accepts round-trips.
func FuzzDecodeOrphan(f *testing.F) {
	in := "<!json!>{\"a\":1}"
	o, _ := encodeOrphan(Orphan{Seq: 9, Slot: "s", Stage: "a", Job: 7, Input: &in, Output: "out",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Reason: "completion settled as orphaned"})
	f.Add(o)
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":1} x`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := decodeOrphan(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := encodeOrphan(o)
		if err != nil {
			t.Fatalf("accepted orphan does not re-encode: %v", err)
		}
		o2, err := decodeOrphan(again)
		if err != nil {
			t.Fatalf("re-encoded orphan does not decode: %v\n%s", err, again)
		}
		third, _ := encodeOrphan(o2)
		if !bytes.Equal(again, third) {
			t.Fatalf("round trip changed the orphan:\n%s\n%s", again, third)
		}
	})
}
