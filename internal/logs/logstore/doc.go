// Package logstore is nx-watcher's log database, shaped like prometheus/tsdb:
//
//	db, err := logstore.Open(dir, opts, logstore.Deps{Logger: l, Registerer: reg})
//	go db.Run(ctx)                // fsync, head flush, compaction, retention
//	app := db.Appender()          // buffer entries, then
//	rejected, err := app.Commit() // WAL write (acknowledge after it), then head
//	q, err := db.Querier(mint, maxt)
//	ss := q.Select(ctx, logstore.SelectHints{...}, matchers...) // streams, each with a pull iterator
//	db.Close()
//
// Streams are keyed by their label set. Entries go to a write-ahead log
// (tsdb/wlog), then to an in-memory head of per-stream columnar chunks; cut
// chunks are compressed (s2), indexed by a 6-gram bloom filter and spilled to
// disk. Heads are flushed to immutable blocks (index with postings, chunks,
// blooms), which are compacted and deleted by age and total size. The on-disk
// format is documented in docs/formats/logstore.md.
package logstore
