package logstore

import "github.com/prometheus/prometheus/model/labels"

// AddHeadStreamsForTest puts n streams of one entry each straight into the
// head, without the WAL: a cheap way for tests (package logstore_test) to
// build a store with a million streams. The data does not survive a reopen.
func AddHeadStreamsForTest(db *DB, n int, stream func(i int) (labels.Labels, Entry)) {
	db.walMu.Lock()
	defer db.walMu.Unlock()
	db.mu.RLock()
	h := db.head
	db.mu.RUnlock()
	for i := range n {
		ls, e := stream(i)
		s := h.create(db.nextRef.Add(1), ls)
		h.appendEntries(s, []Entry{e}, db.opts.ChunkTargetSize)
	}
}
