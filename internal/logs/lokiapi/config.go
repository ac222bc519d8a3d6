package lokiapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

// Config is the `logs:` section of the serve config.
type Config struct {
	// Retention drops data older than this. 30d matches the seed's Prometheus
	// retention, so logs and metrics of an incident age out together.
	Retention model.Duration `yaml:"retention"`
	// RetentionSize caps the bytes of all blocks; 0 means no cap. The seed's
	// Loki PVC is 5Gi: set 4GiB there to leave room for the WAL and head.
	RetentionSize units.Bytes   `yaml:"retention_size"`
	WAL           WALConfig     `yaml:"wal"`
	Storage       StorageConfig `yaml:"storage"`
	Limits        Limits        `yaml:"limits"`
	// AuthEnabled is Loki's auth_enabled: every request must name its
	// tenant in X-Scope-OrgID and each tenant's logs are kept and queried
	// apart. Off (the default) every request is tenant "fake". Restart only.
	AuthEnabled bool `yaml:"auth_enabled"`
	// Querier bounds concurrent queries (Loki's querier and query-frontend
	// settings).
	Querier QuerierConfig `yaml:"querier"`
}

// QuerierConfig bounds the read endpoints' concurrency.
type QuerierConfig struct {
	// MaxConcurrent is Loki's querier.max_concurrent (default 4): queries
	// evaluated at once. 0 = no limit.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxOutstandingPerTenant is Loki's query-frontend
	// max_outstanding_per_tenant: queries of one tenant that may wait for
	// a free slot; more are refused with 429 at once.
	MaxOutstandingPerTenant int `yaml:"max_outstanding_per_tenant"`
	// QueueTimeout is how long a query waits for a free slot before it is
	// refused with 429 (ours: Loki's queue has only query_timeout).
	QueueTimeout model.Duration `yaml:"queue_timeout"`
}

func (q QuerierConfig) gateConfig() tenancy.GateConfig {
	return tenancy.GateConfig{MaxConcurrent: q.MaxConcurrent, MaxQueuedPerTenant: q.MaxOutstandingPerTenant, MaxWait: time.Duration(q.QueueTimeout)}
}

// WALConfig controls durability.
type WALConfig struct {
	// Fsync is always, interval or never. Every push is in the WAL before it
	// is acknowledged; the policy decides what a power loss may take.
	Fsync         string         `yaml:"fsync"`
	FsyncInterval model.Duration `yaml:"fsync_interval"`
	SegmentSize   units.Bytes    `yaml:"segment_size"`
}

// StorageConfig tunes the head, chunks and compaction.
type StorageConfig struct {
	ChunkTargetSize units.Bytes    `yaml:"chunk_target_size"`
	HeadMaxBytes    units.Bytes    `yaml:"head_max_bytes"`
	HeadMaxAge      model.Duration `yaml:"head_max_age"`
	MaxBlockSize    units.Bytes    `yaml:"max_block_size"`
	MaxBlockSpan    model.Duration `yaml:"max_block_span"`
	// MinFreeSpace is the free space kept on the store's filesystem: a push
	// that would leave less is refused with 503 (retry later) before the
	// WAL is touched, and accepted again once space returns. 0 = no check.
	MinFreeSpace units.Bytes `yaml:"min_free_space"`
	// ColdCompression compresses the chunks of compacted blocks: zstd
	// (smaller on disk) or s2 (the head's codec: faster brute-force scans of
	// old data, more disk). ADR 0097.
	ColdCompression logstore.Compression `yaml:"cold_compression"`
}

// Limits carry Loki's limits_config names and defaults where one exists.
// They are re-applied on reload with ApplyConfig.
type Limits struct {
	IngestionRateMB                   float64        `yaml:"ingestion_rate_mb"`
	IngestionBurstSizeMB              float64        `yaml:"ingestion_burst_size_mb"`
	MaxLineSize                       units.Bytes    `yaml:"max_line_size"`
	MaxLineSizeTruncate               bool           `yaml:"max_line_size_truncate"`
	MaxLabelNameLength                int            `yaml:"max_label_name_length"`
	MaxLabelValueLength               int            `yaml:"max_label_value_length"`
	MaxLabelNamesPerSeries            int            `yaml:"max_label_names_per_series"`
	MaxGlobalStreamsPerUser           int            `yaml:"max_global_streams_per_user"`
	RejectOldSamples                  bool           `yaml:"reject_old_samples"`
	RejectOldSamplesMaxAge            model.Duration `yaml:"reject_old_samples_max_age"`
	CreationGracePeriod               model.Duration `yaml:"creation_grace_period"`
	OutOfOrderWindow                  model.Duration `yaml:"out_of_order_window"`
	AllowStructuredMetadata           bool           `yaml:"allow_structured_metadata"`
	MaxStructuredMetadataSize         units.Bytes    `yaml:"max_structured_metadata_size"`
	MaxStructuredMetadataEntriesCount int            `yaml:"max_structured_metadata_entries_count"`
	MaxEntriesLimitPerQuery           int            `yaml:"max_entries_limit_per_query"`
	MaxQuerySeries                    int            `yaml:"max_query_series"`
	// MaxQueryBytesRead caps the bytes of log lines one query reads
	// (Loki's key and default: 0 = unlimited).
	MaxQueryBytesRead units.Bytes `yaml:"max_query_bytes_read"`
	// MaxQueryMemory caps the memory one query may hold (selected streams,
	// series, windows, kept lines; estimated as they are built). Not a Loki
	// setting: Loki spreads a query over queriers, we run it in-process
	// next to every other signal, so a query is refused with 400 before it
	// can take the process down. 0 = unlimited.
	MaxQueryMemory  units.Bytes    `yaml:"max_query_memory"`
	MaxQueryLength  model.Duration `yaml:"max_query_length"`
	QueryTimeout    model.Duration `yaml:"query_timeout"`
	MaxPushBodySize units.Bytes    `yaml:"max_push_body_size"`
	// DiscoverServiceName lists the labels tried, in order, for the
	// service_name index label of a stream that has none (else
	// unknown_service); an empty list turns it off. Loki 3's key and
	// default.
	DiscoverServiceName []string `yaml:"discover_service_name"`
	// DiscoverLogLevels adds the structured metadata detected_level to
	// every entry that has none (Loki 3's key and default: true).
	DiscoverLogLevels bool `yaml:"discover_log_levels"`
}

// DefaultConfig returns the defaults; Loki 3.4's where the setting exists.
func DefaultConfig() Config {
	return Config{
		Retention: model.Duration(30 * 24 * time.Hour),
		WAL: WALConfig{
			Fsync:         string(logstore.FsyncInterval),
			FsyncInterval: model.Duration(time.Second),
			SegmentSize:   64 << 20,
		},
		Storage: StorageConfig{
			ChunkTargetSize: 256 << 10,
			HeadMaxBytes:    16 << 20,
			HeadMaxAge:      model.Duration(30 * time.Minute),
			MaxBlockSize:    1 << 30,
			MaxBlockSpan:    model.Duration(24 * time.Hour),
			MinFreeSpace:    64 << 20,
			ColdCompression: logstore.CompressionZstd,
		},
		Limits: Limits{
			IngestionRateMB:                   4,
			IngestionBurstSizeMB:              6,
			MaxLineSize:                       256 << 10,
			MaxLabelNameLength:                1024,
			MaxLabelValueLength:               2048,
			MaxLabelNamesPerSeries:            15,
			MaxGlobalStreamsPerUser:           5000,
			RejectOldSamples:                  true,
			RejectOldSamplesMaxAge:            model.Duration(7 * 24 * time.Hour),
			CreationGracePeriod:               model.Duration(10 * time.Minute),
			OutOfOrderWindow:                  model.Duration(time.Hour),
			AllowStructuredMetadata:           true,
			MaxStructuredMetadataSize:         64 << 10,
			MaxStructuredMetadataEntriesCount: 128,
			MaxEntriesLimitPerQuery:           5000,
			MaxQuerySeries:                    500,
			MaxQueryMemory:                    256 << 20,
			MaxQueryLength:                    model.Duration(721 * time.Hour),
			QueryTimeout:                      model.Duration(time.Minute),
			MaxPushBodySize:                   100 << 20,
			DiscoverServiceName:               defaultDiscoverServiceName(),
			DiscoverLogLevels:                 true,
		},
		Querier: QuerierConfig{
			MaxConcurrent:           4,
			MaxOutstandingPerTenant: 2048,
			QueueTimeout:            model.Duration(30 * time.Second),
		},
	}
}

// UnmarshalYAML starts from the defaults so a partial section keeps them.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultConfig()
	type plain Config
	return unmarshal((*plain)(c))
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, errors.New("logs.retention: must not be negative"))
	}
	if c.RetentionSize < 0 {
		errs = append(errs, errors.New("logs.retention_size: must not be negative"))
	}
	switch logstore.FsyncPolicy(c.WAL.Fsync) {
	case logstore.FsyncAlways, logstore.FsyncInterval, logstore.FsyncNever:
	default:
		errs = append(errs, fmt.Errorf("logs.wal.fsync: %q is not one of always, interval, never", c.WAL.Fsync))
	}
	if c.WAL.Fsync == string(logstore.FsyncInterval) && c.WAL.FsyncInterval <= 0 {
		errs = append(errs, errors.New("logs.wal.fsync_interval: must be positive with fsync: interval"))
	}
	if c.WAL.SegmentSize < 32<<10 {
		errs = append(errs, errors.New("logs.wal.segment_size: must be at least 32KiB"))
	}
	if c.Storage.ChunkTargetSize < 1<<10 {
		errs = append(errs, errors.New("logs.storage.chunk_target_size: must be at least 1KiB"))
	}
	if c.Storage.HeadMaxBytes < c.Storage.ChunkTargetSize {
		errs = append(errs, errors.New("logs.storage.head_max_bytes: must be at least chunk_target_size"))
	}
	if cc := c.Storage.ColdCompression; cc != logstore.CompressionZstd && cc != logstore.CompressionS2 {
		errs = append(errs, fmt.Errorf("logs.storage.cold_compression: %q is neither zstd nor s2", cc))
	}
	if c.Storage.MinFreeSpace < 0 {
		errs = append(errs, errors.New("logs.storage.min_free_space: must not be negative (0 = no check)"))
	}
	if c.Storage.HeadMaxAge <= 0 || c.Storage.MaxBlockSpan <= 0 || c.Storage.MaxBlockSize <= 0 {
		errs = append(errs, errors.New("logs.storage: head_max_age, max_block_span and max_block_size must be positive"))
	}
	l := c.Limits
	if l.IngestionRateMB < 0 || l.IngestionBurstSizeMB < 0 {
		errs = append(errs, errors.New("logs.limits.ingestion_rate_mb and ingestion_burst_size_mb: must not be negative"))
	}
	if l.IngestionRateMB > 0 && l.IngestionBurstSizeMB < l.IngestionRateMB {
		errs = append(errs, errors.New("logs.limits.ingestion_burst_size_mb: must be at least ingestion_rate_mb"))
	}
	for name, v := range map[string]int{
		"max_label_name_length": l.MaxLabelNameLength, "max_label_value_length": l.MaxLabelValueLength,
		"max_label_names_per_series": l.MaxLabelNamesPerSeries, "max_entries_limit_per_query": l.MaxEntriesLimitPerQuery,
	} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("logs.limits.%s: must be positive", name))
		}
	}
	if l.MaxGlobalStreamsPerUser < 0 || l.MaxQuerySeries < 0 || l.MaxStructuredMetadataEntriesCount < 0 {
		errs = append(errs, errors.New("logs.limits: stream, series and metadata counts must not be negative (0 = unlimited)"))
	}
	if l.MaxQueryBytesRead < 0 || l.MaxQueryMemory < 0 {
		errs = append(errs, errors.New("logs.limits: max_query_bytes_read and max_query_memory must not be negative (0 = unlimited)"))
	}
	if l.MaxLineSize < 0 || l.MaxPushBodySize <= 0 {
		errs = append(errs, errors.New("logs.limits: max_line_size must not be negative and max_push_body_size must be positive"))
	}
	for i, n := range l.DiscoverServiceName {
		if !validLabelName(n) {
			errs = append(errs, fmt.Errorf("logs.limits.discover_service_name[%d]: %q is not a valid label name", i, n))
		}
	}
	if l.QueryTimeout <= 0 {
		errs = append(errs, errors.New("logs.limits.query_timeout: must be positive"))
	}
	if q := c.Querier; q.MaxConcurrent < 0 || q.MaxOutstandingPerTenant < 0 || q.QueueTimeout < 0 {
		errs = append(errs, errors.New("logs.querier: max_concurrent, max_outstanding_per_tenant and queue_timeout must not be negative (max_concurrent 0 = no limit)"))
	}
	return errors.Join(errs...)
}

// StoreOptions turns the config into logstore options.
func (c Config) StoreOptions() logstore.Options {
	o := logstore.DefaultOptions()
	o.Retention = time.Duration(c.Retention)
	o.RetentionSize = int64(c.RetentionSize)
	o.Fsync = logstore.FsyncPolicy(c.WAL.Fsync)
	o.FsyncInterval = time.Duration(c.WAL.FsyncInterval)
	o.WALSegmentSize = int(c.WAL.SegmentSize)
	o.ChunkTargetSize = int(c.Storage.ChunkTargetSize)
	o.HeadMaxBytes = int64(c.Storage.HeadMaxBytes)
	o.HeadMaxAge = time.Duration(c.Storage.HeadMaxAge)
	o.MaxBlockSize = int64(c.Storage.MaxBlockSize)
	o.MaxBlockSpan = time.Duration(c.Storage.MaxBlockSpan)
	o.MinFreeBytes = int64(c.Storage.MinFreeSpace)
	o.ColdCompression = c.Storage.ColdCompression
	o.Limits = c.Limits.storeLimits()
	return o
}

func (l Limits) engineOpts() logql.EngineOpts {
	return logql.EngineOpts{MaxSeries: l.MaxQuerySeries, MaxBytesRead: int64(l.MaxQueryBytesRead), MaxMemory: int64(l.MaxQueryMemory)}
}

func (l Limits) storeLimits() logstore.Limits {
	return logstore.Limits{MaxStreams: l.MaxGlobalStreamsPerUser, OutOfOrderWindow: time.Duration(l.OutOfOrderWindow)}
}

func parseModelDuration(s string) (time.Duration, error) {
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}
