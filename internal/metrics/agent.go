package metrics

import (
	"context"
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/agent"
	"github.com/prometheus/prometheus/util/compression"

	promconfig "github.com/prometheus/prometheus/config"
)

// Agent is the metrics storage of `metrics.mode: agent`, as
// `prometheus --agent`: Prometheus's tsdb/agent WAL, which keeps only what
// remote_write has not sent yet (series and samples, no blocks, no index)
// and answers no queries. Scrapes append through a fanout whose secondary
// is storage/remote, as in server mode, and the remote_write queues tail
// the agent's WAL. The WAL is truncated to the lowest timestamp every
// queue has sent, but never keeps more than agent.DefaultMaxWALTime (4h).
type Agent struct {
	*agent.DB

	remote  *remote.Storage
	fanout  storage.Storage
	scrapes *scrapeManagerRef
}

// OpenAgent opens (and replays) the agent WAL under dir. Remote endpoints
// start with the first ApplyConfig.
func OpenAgent(dir string, cfg Config, deps Deps) (*Agent, error) {
	opts := agent.DefaultOptions()
	// Prometheus's --storage.agent.wal-compression defaults to snappy.
	opts.WALCompression = compression.Snappy
	opts.StripeSize = cfg.HeadStripeSize
	if opts.StripeSize <= 0 {
		opts.StripeSize = DefaultHeadStripeSize
	}
	if pc := cfg.Parsed; pc != nil {
		if tc := pc.StorageConfig.TSDBConfig; tc != nil {
			opts.OutOfOrderTimeWindow = tc.OutOfOrderTimeWindow
		}
	}
	a := &Agent{scrapes: &scrapeManagerRef{}}
	a.remote = remote.NewStorage(deps.Logger.With("component", "remote"), deps.Registerer,
		// Remote read is refused in agent mode; nothing asks for this.
		func() (int64, error) { return int64(model.Latest), nil },
		dir, flushDeadline(cfg), a.scrapes, false)
	db, err := agent.Open(deps.Logger.With("component", "agent"), deps.Registerer, a.remote, dir, opts)
	if err != nil {
		a.remote.Close()
		return nil, fmt.Errorf("open agent wal %s: %w", dir, err)
	}
	db.SetWriteNotified(a.remote)
	a.DB = db
	a.fanout = storage.NewFanout(deps.Logger, db, a.remote)
	return a, nil
}

// ApplyConfig applies remote_write (the only storage setting an agent
// has); queues behave on reload as in server mode.
func (a *Agent) ApplyConfig(pc *promconfig.Config) error {
	if err := a.remote.ApplyConfig(pc); err != nil {
		return fmt.Errorf("apply remote storage config: %w", err)
	}
	return nil
}

// Appender appends to the agent WAL.
func (a *Agent) Appender(ctx context.Context) storage.Appender { return a.fanout.Appender(ctx) }

// AppenderV2 is Appender in storage's V2 interface, which scrape uses.
func (a *Agent) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return a.fanout.AppenderV2(ctx)
}

// SetScrapeManager gives remote write's metadata watcher the scrape manager.
func (a *Agent) SetScrapeManager(m *scrape.Manager) { a.scrapes.set(m) }

// Close closes the WAL, then flushes the queues for up to
// remote_flush_deadline.
func (a *Agent) Close() error { return a.fanout.Close() }
