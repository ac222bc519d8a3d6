package tracestore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	spansIngested    prometheus.Counter
	bytesIngested    prometheus.Counter
	spansRejected    *prometheus.CounterVec
	headTraces       prometheus.GaugeFunc
	headBytes        prometheus.GaugeFunc
	blocks           prometheus.GaugeFunc
	blockBytes       prometheus.GaugeFunc
	unreferenced     prometheus.GaugeFunc
	blocksCut        prometheus.Counter
	cutFailures      prometheus.Counter
	compactions      prometheus.Counter
	compactFailures  prometheus.Counter
	retentionDrops   *prometheus.CounterVec
	walReplayed      prometheus.Counter
	walCorruptions   prometheus.Counter
	lookups          prometheus.Counter
	lookupSeconds    prometheus.Histogram
	searchTraces     prometheus.Counter
	duplicateSpans   *prometheus.CounterVec
	searchSkipped    prometheus.Counter
	walWriteFailures prometheus.Counter
	walRecoveries    prometheus.Counter
	// reencodedRequests counts requests whose own bytes were not kept
	// (ADR 0115).
	reencodedRequests prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, db *DB) (*metrics, error) {
	m := &metrics{
		spansIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_ingested_spans_total", Help: "Spans written to the WAL and acknowledged.",
		}),
		bytesIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_ingested_bytes_total", Help: "Protobuf bytes of acknowledged spans.",
		}),
		spansRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_rejected_spans_total", Help: "Spans refused, by reason.",
		}, []string{"reason"}),
		headTraces: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_tracestore_head_traces", Help: "Traces held in the head.",
		}, func() float64 { return float64(db.headStats().traces) }),
		headBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_tracestore_head_bytes", Help: "Protobuf bytes held in the head.",
		}, func() float64 { return float64(db.headStats().bytes) }),
		blocks: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_tracestore_blocks", Help: "Blocks on disk.",
		}, func() float64 { n, _ := db.blockStats(); return float64(n) }),
		blockBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_tracestore_block_bytes", Help: "Bytes of all blocks on disk.",
		}, func() float64 { _, b := db.blockStats(); return float64(b) }),
		unreferenced: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_tracestore_unreferenced_bytes",
			Help: "Uncompressed bytes of trace pieces left in pages compaction kept, which no index entry points at any more (ADR 0125).",
		}, func() float64 { return float64(db.unreferencedBytes()) }),
		blocksCut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_blocks_cut_total", Help: "Blocks written from the head.",
		}),
		cutFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_block_cut_failures_total", Help: "Failed attempts to write a block from the head.",
		}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_compactions_total", Help: "Blocks produced by compaction.",
		}),
		compactFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_compaction_failures_total", Help: "Failed compactions.",
		}),
		retentionDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_retention_deleted_blocks_total", Help: "Blocks deleted by retention, by reason (time, size).",
		}, []string{"reason"}),
		walReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_wal_replayed_records_total", Help: "WAL and checkpoint records replayed at open.",
		}),
		walCorruptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_wal_corruptions_total", Help: "Torn or corrupt WAL tails repaired at open.",
		}),
		reencodedRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_reencoded_requests_total", Help: "OTLP/HTTP protobuf requests stored as pdata's encoding instead of their own bytes, which the block cut could not read.",
		}),
		lookups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_lookups_total", Help: "Trace-by-ID lookups.",
		}),
		lookupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nxwatcher_tracestore_lookup_duration_seconds", Help: "Trace-by-ID lookup latency.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		searchTraces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_search_inspected_traces_total", Help: "Traces decoded by searches.",
		}),
		duplicateSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_tracestore_duplicate_spans_dropped_total",
			Help: "Spans dropped because the store already held their trace ID and span ID (a sender's retry), by stage: ingest (against the head) or compaction (across blocks).",
		}, []string{"stage"}),
	}
	m.searchSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nxwatcher_tracestore_search_skipped_traces_total", Help: "Traces searches skipped undecoded for being larger than the search's max_trace_bytes.",
	})
	m.walWriteFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nxwatcher_tracestore_wal_write_failures_total", Help: "WAL writes that failed (a full disk, say); writes are refused until the WAL is recovered.",
	})
	m.walRecoveries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nxwatcher_tracestore_wal_recoveries_total", Help: "Times the WAL was made writable again after a failed write (new segment plus a checkpoint of the head).",
	})
	m.duplicateSpans.WithLabelValues("ingest")
	m.duplicateSpans.WithLabelValues("compaction")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.spansIngested, m.bytesIngested, m.spansRejected, m.headTraces, m.headBytes,
			m.blocks, m.blockBytes, m.unreferenced, m.blocksCut, m.cutFailures, m.compactions, m.compactFailures,
			m.retentionDrops, m.walReplayed, m.walCorruptions, m.lookups, m.lookupSeconds, m.searchTraces, m.duplicateSpans, m.searchSkipped, m.walWriteFailures, m.walRecoveries,
			m.reencodedRequests} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}
