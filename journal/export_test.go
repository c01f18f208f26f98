package journal

// AppendBatch appends events in one transaction, for building large test
// fixtures quickly. Errors of single events are returned joined.
func (db *DB) AppendBatch(events []Event) error {
	if err := db.acquire("append"); err != nil {
		return err
	}
	defer db.release()
	reqs := make([]*request, len(events))
	for i := range events {
		reqs[i] = &request{ev: &events[i]}
	}
	db.commitMu.Lock()
	db.commitBatch(reqs)
	db.commitMu.Unlock()
	for _, r := range reqs {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// CommitStats returns how many transactions commitBatch committed and how
// many requests they carried.
func (db *DB) CommitStats() (commits, requests int64) {
	return db.commits.Load(), db.appended.Load()
}

// DeferUnchecked queues e as AppendDeferred does but without validating it,
// to test what happens to a deferred event that no longer fits when it is
// written (in real use: another goroutine's append committed in between).
func (db *DB) DeferUnchecked(e Event) {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	e.Time = db.now().UTC()
	db.deferred = append(db.deferred, &deferredEvent{ev: e})
}

// EncodeEvent and EncodeState are the record encoders, for comparing them
// with json.Marshal.
var (
	EncodeEvent = encodeEvent
	EncodeState = encodeState
)

// Precheck is Open's structural check of the file at path, alone.
func Precheck(path string) error { return precheck(path, true) }

// SetFault makes the DB's commits call fn before (after false) and after
// (true) bbolt commits them; an error fails the commit as a failed write or
// fsync would, the one after it with the commit on disk (a failed fdatasync
// of the meta page whose write reached the kernel).
func (db *DB) SetFault(fn func(after bool) error) {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	db.fault = fn
}
