package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	alecunits "github.com/alecthomas/units"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
)

// defaultMaxExemplars is Prometheus's default exemplar buffer size.
const defaultMaxExemplars = 100_000

// Deps are what the metrics role takes from the composition root.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// TSDB is Prometheus's TSDB with the stats the status API reads, composed
// with remote read and write as Prometheus's main composes them: the local
// TSDB is the primary of a fanout storage whose secondary is
// storage/remote's Storage. Appenders and queriers go through the fanout
// (remote_read endpoints answer queries; the remote side tracks the highest
// appended timestamp); remote_write queue managers tail the TSDB's WAL, so a
// sample is sent only once it is durable locally and a receiver outage is
// bridged from the WAL. Everything else (Head, Blocks, exemplars, admin) is
// the local *tsdb.DB.
type TSDB struct {
	*tsdb.DB
	Stats *tsdb.DBStats

	remote  *remote.Storage
	fanout  storage.Storage
	scrapes *scrapeManagerRef
}

// OpenTSDB opens the Prometheus TSDB under dir with the section's retention,
// and the remote storage whose queues tail dir/wal. The WAL is replayed
// before it returns, so the DB is ready to query. Remote endpoints start
// with the first ApplyConfig.
func OpenTSDB(dir string, cfg Config, deps Deps) (*TSDB, error) {
	opts := tsdbOptions(cfg)
	stats := tsdb.NewDBStats()
	db, err := tsdb.Open(dir, deps.Logger.With("component", "tsdb"), deps.Registerer, opts, stats)
	if err != nil {
		return nil, fmt.Errorf("open tsdb %s: %w", dir, err)
	}
	t := &TSDB{DB: db, Stats: stats, scrapes: &scrapeManagerRef{}}
	t.remote = remote.NewStorage(deps.Logger.With("component", "remote"), deps.Registerer, db.StartTime,
		dir, flushDeadline(cfg), t.scrapes, false)
	db.SetWriteNotified(t.remote)
	t.fanout = storage.NewFanout(deps.Logger, db, t.remote)
	return t, nil
}

// tsdbOptions are Prometheus's TSDB defaults with the section's retention,
// exemplar buffer, out-of-order window and head stripe size.
func tsdbOptions(cfg Config) *tsdb.Options {
	opts := tsdb.DefaultOptions()
	opts.StripeSize = cfg.HeadStripeSize
	if opts.StripeSize <= 0 {
		opts.StripeSize = DefaultHeadStripeSize
	}
	opts.RetentionDuration = time.Duration(cfg.Retention).Milliseconds()
	opts.MaxBytes = int64(cfg.RetentionSize)
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = defaultMaxExemplars
	if pc := cfg.Parsed; pc != nil {
		if ex := pc.StorageConfig.ExemplarsConfig; ex != nil {
			opts.MaxExemplars = ex.MaxExemplars
		}
		if tc := pc.StorageConfig.TSDBConfig; tc != nil {
			opts.OutOfOrderTimeWindow = tc.OutOfOrderTimeWindow
		}
		// Remote write 2.0 sends metric metadata (type, help, unit) only
		// from metadata records in the WAL (Prometheus's
		// metadata-wal-records feature); write them when a 2.0 queue is
		// configured at start-up.
		opts.EnableMetadataWALRecords = usesRemoteWrite2(pc)
	}
	return opts
}

func flushDeadline(cfg Config) time.Duration {
	if cfg.RemoteFlushDeadline > 0 {
		return time.Duration(cfg.RemoteFlushDeadline)
	}
	return time.Minute
}

// ApplyConfig applies the storage settings of a Prometheus config (TSDB
// out-of-order window and retention, remote_write and remote_read), in
// Prometheus's order: local storage, then remote storage. Remote write
// queues whose config and external labels are unchanged keep running (and
// keep their place in the WAL); changed or removed ones flush for up to
// remote_flush_deadline and stop; new ones start at the WAL's head.
func (t *TSDB) ApplyConfig(pc *promconfig.Config) error {
	if err := t.DB.ApplyConfig(pc); err != nil {
		return fmt.Errorf("apply tsdb config: %w", err)
	}
	if err := t.remote.ApplyConfig(pc); err != nil {
		return fmt.Errorf("apply remote storage config: %w", err)
	}
	return nil
}

// Querier reads the local TSDB merged with every remote_read endpoint that
// applies (best effort: a failing remote endpoint is a warning).
func (t *TSDB) Querier(mint, maxt int64) (storage.Querier, error) {
	return t.fanout.Querier(mint, maxt)
}

// ChunkQuerier is Querier for chunks.
func (t *TSDB) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return t.fanout.ChunkQuerier(mint, maxt)
}

// Appender appends to the TSDB; remote write picks samples up from its WAL.
func (t *TSDB) Appender(ctx context.Context) storage.Appender { return t.fanout.Appender(ctx) }

// AppenderV2 is Appender in storage's V2 interface, which scrape uses.
func (t *TSDB) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return t.fanout.AppenderV2(ctx)
}

// StartTime is the oldest timestamp of the local TSDB.
func (t *TSDB) StartTime() (int64, error) { return t.DB.StartTime() }

// SetScrapeManager gives remote write's metadata watcher the scrape manager
// whose target metadata it sends (metadata_config); NewScraper calls it.
func (t *TSDB) SetScrapeManager(m *scrape.Manager) { t.scrapes.set(m) }

// Close flushes remote write for up to remote_flush_deadline after closing
// the TSDB (Prometheus's order), then stops every queue.
func (t *TSDB) Close() error {
	return t.fanout.Close()
}

// scrapeManagerRef is remote.ReadyScrapeManager for a scrape manager built
// after the storage.
type scrapeManagerRef struct {
	m atomic.Pointer[scrape.Manager]
}

func (r *scrapeManagerRef) set(m *scrape.Manager) { r.m.Store(m) }

func (r *scrapeManagerRef) Get() (*scrape.Manager, error) {
	if m := r.m.Load(); m != nil {
		return m, nil
	}
	return nil, errors.New("scrape manager not ready")
}

// TSDBConfig is the Prometheus config that the TSDB should apply: the
// section's retention, unless the prometheus section sets its own.
func TSDBConfig(cfg Config) *promconfig.Config {
	c := *cfg.Parsed
	tc := promconfig.TSDBConfig{}
	if c.StorageConfig.TSDBConfig != nil {
		tc = *c.StorageConfig.TSDBConfig
	}
	r := promconfig.TSDBRetentionConfig{Time: cfg.Retention}
	r.Size = alecunits.Base2Bytes(cfg.RetentionSize)
	if tc.Retention != nil {
		if tc.Retention.Time > 0 {
			r.Time = tc.Retention.Time
		}
		if tc.Retention.Size > 0 {
			r.Size = tc.Retention.Size
		}
		r.Percentage = tc.Retention.Percentage
	}
	tc.Retention = &r
	c.StorageConfig.TSDBConfig = &tc
	if c.StorageConfig.ExemplarsConfig == nil {
		// Exemplar storage is always on here; Prometheus sets this default
		// when its exemplar feature flag is given.
		ex := promconfig.DefaultExemplarsConfig
		c.StorageConfig.ExemplarsConfig = &ex
	}
	return &c
}

// RetentionString is the retention TSDBConfig puts in force, as Prometheus
// prints it in runtimeinfo's storageRetention: "30d", "8GiB" or "30d or 8GiB".
func RetentionString(cfg Config) string {
	r := TSDBConfig(cfg).StorageConfig.TSDBConfig.Retention
	var parts []string
	if r.Time > 0 {
		parts = append(parts, r.Time.String())
	}
	if r.Size > 0 {
		parts = append(parts, r.Size.String())
	}
	return strings.Join(parts, " or ")
}

func usesRemoteWrite2(pc *promconfig.Config) bool {
	for _, rw := range pc.RemoteWriteConfigs {
		if rw.ProtobufMessage == remoteapi.WriteV2MessageType {
			return true
		}
	}
	return false
}
