package metrics

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	alecunits "github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"
)

// defaultMaxExemplars is Prometheus's default exemplar buffer size.
const defaultMaxExemplars = 100_000

// Deps are what the metrics role takes from the composition root.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// TSDB is Prometheus's TSDB with the stats the status API reads.
type TSDB struct {
	*tsdb.DB
	Stats *tsdb.DBStats
}

// OpenTSDB opens the Prometheus TSDB under dir with the section's retention.
// The WAL is replayed before it returns, so the DB is ready to query.
func OpenTSDB(dir string, cfg Config, deps Deps) (*TSDB, error) {
	opts := tsdb.DefaultOptions()
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
	}
	stats := tsdb.NewDBStats()
	db, err := tsdb.Open(dir, deps.Logger.With("component", "tsdb"), deps.Registerer, opts, stats)
	if err != nil {
		return nil, fmt.Errorf("open tsdb %s: %w", dir, err)
	}
	return &TSDB{DB: db, Stats: stats}, nil
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
