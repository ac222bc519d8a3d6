package logstore

import "github.com/prometheus/client_golang/prometheus"

type queryMetrics struct {
	chunksConsidered prometheus.Counter
	chunksSkipped    prometheus.Counter
	duplicates       prometheus.Counter
	corruptChunks    prometheus.Counter
}

type metrics struct {
	reg                  prometheus.Registerer
	collectors           []prometheus.Collector
	entries              prometheus.Counter
	bytes                prometheus.Counter
	walFailures          prometheus.Counter
	diskFull             prometheus.Counter
	flushes              prometheus.Counter
	flushFailures        prometheus.Counter
	flushDuration        prometheus.Histogram
	compactions          prometheus.Counter
	compactionFailures   prometheus.Counter
	blockBytesFlush      prometheus.Counter
	blockBytesCompaction prometheus.Counter
	blocksDeleted        *prometheus.CounterVec
	duplicates           *prometheus.CounterVec
	query                queryMetrics
}

func newMetrics(reg prometheus.Registerer, db *DB) *metrics {
	ns := "nxwatcher_logstore_"
	m := &metrics{
		reg:                reg,
		entries:            prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "entries_appended_total", Help: "Log entries written to the WAL and head."}),
		bytes:              prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "line_bytes_appended_total", Help: "Bytes of log lines written to the WAL and head."}),
		walFailures:        prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "wal_failures_total", Help: "WAL writes or fsyncs that failed."}),
		diskFull:           prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "disk_full_refusals_total", Help: "Commits refused because the filesystem is (nearly) full, or because a WAL write failed for lack of space."}),
		flushes:            prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "head_flushes_total", Help: "Heads written to blocks."}),
		flushFailures:      prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "head_flush_failures_total", Help: "Head flushes that failed."}),
		flushDuration:      prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "head_flush_duration_seconds", Help: "Time to write a head to a block.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
		compactions:        prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "compactions_total", Help: "Block compactions completed."}),
		compactionFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "compaction_failures_total", Help: "Block compactions that failed."}),
		blocksDeleted:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "blocks_deleted_total", Help: "Blocks deleted, by reason."}, []string{"reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "duplicate_entries_dropped_total",
			Help: "Exact duplicate entries (same stream, timestamp and line) dropped: at ingest against the head (retries, WAL replay) or at query time when merging head and blocks."}, []string{"stage"}),
		query: queryMetrics{
			chunksConsidered: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "query_chunks_considered_total", Help: "Chunks in range of a query's time and streams."}),
			chunksSkipped:    prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "query_chunks_skipped_total", Help: "Chunks skipped because their bloom filter ruled out a line filter."}),
			corruptChunks: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "query_corrupt_chunks_total",
				Help: "Chunks a query could not read: checksum mismatch, a decompressed size other than the index records, or a layout that does not add up. The query fails with the error."}),
		},
	}
	headStreams := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "head_streams", Help: "Streams in the head."}, func() float64 {
		s, _, _ := db.HeadStats()
		return float64(s)
	})
	activeStreams := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "active_streams", Help: "Streams written within the active-stream window (head and recent blocks), counted against the stream limit."}, func() float64 {
		return float64(db.ActiveStreams())
	})
	headBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "head_bytes", Help: "Bytes held by the head (open chunks raw, cut chunks compressed)."}, func() float64 {
		_, _, b := db.HeadStats()
		return float64(b)
	})
	headMem := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "head_memory_bytes", Help: "Bytes the head holds in memory; cut chunks are spilled to disk."}, func() float64 {
		return float64(db.HeadMemory())
	})
	blocks := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "blocks", Help: "Blocks on disk."}, func() float64 {
		return float64(len(db.Blocks()))
	})
	blockSizes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "blocks_size_bytes", Help: "Bytes of all blocks on disk."}, func() float64 {
		var n int64
		for _, b := range db.Blocks() {
			n += b.Stats.SizeBytes
		}
		return float64(n)
	})
	m.query.duplicates = m.duplicates.WithLabelValues("query")
	blockBytes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "block_bytes_written_total",
		Help: "Bytes of blocks written, by head flushes and by compactions: (flush + compaction) / flush is the compaction write amplification."}, []string{"reason"})
	m.blockBytesFlush = blockBytes.WithLabelValues("flush")
	m.blockBytesCompaction = blockBytes.WithLabelValues("compaction")
	m.collectors = []prometheus.Collector{m.entries, m.bytes, m.walFailures, m.diskFull, m.flushes, m.flushFailures, m.flushDuration,
		m.compactions, m.compactionFailures, m.blocksDeleted, m.duplicates, m.query.chunksConsidered, m.query.chunksSkipped, m.query.corruptChunks,
		headStreams, activeStreams, headBytes, headMem, blocks, blockBytes, blockSizes}
	if reg != nil {
		for _, c := range m.collectors {
			reg.MustRegister(c)
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
