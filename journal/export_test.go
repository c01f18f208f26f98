package journal

// AppendBatch appends events in one transaction, for building large test
// fixtures quickly. Errors of single events are returned joined.
func (db *DB) AppendBatch(events []Event) error {
	if err := db.acquire(); err != nil {
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
