package tracestore

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/units"
)

// Config is the storage part of the serve config's `traces:` section.
// The foundation embeds it inline (yaml ",inline") next to tempoapi.Config.
type Config struct {
	// Retention drops blocks whose newest span ended longer ago than this.
	Retention model.Duration `yaml:"retention"`
	// RetentionSize caps the bytes of all blocks; the oldest go first. 0 = no cap.
	RetentionSize units.Bytes `yaml:"retention_size"`
	// TraceIdle is how long a trace must receive no spans before it may be cut into a block.
	TraceIdle model.Duration `yaml:"trace_idle"`
	// MaxTraceLive cuts a trace that keeps receiving spans for longer than this.
	MaxTraceLive model.Duration `yaml:"max_trace_live"`
	// MaxBlockDuration is the longest the head keeps idle traces before cutting a block.
	MaxBlockDuration model.Duration `yaml:"max_block_duration"`
	// MaxBlockBytes cuts a block as soon as idle traces hold this many bytes.
	MaxBlockBytes units.Bytes `yaml:"max_block_bytes"`
	// MaxHeadBytes is the WAL-backed head size at which every trace is cut, idle or not.
	MaxHeadBytes units.Bytes `yaml:"max_head_bytes"`
	// CompactionWindow is the time span a compacted block may cover.
	CompactionWindow model.Duration `yaml:"compaction_window"`
	// MaxCompactionSpans bounds the spans one compaction writes, and so its
	// memory, which grows with the block it writes (ADR 0122).
	MaxCompactionSpans int64 `yaml:"max_compaction_spans"`
	// MaxTraceBytes rejects a trace growing beyond this size (0 = unlimited).
	MaxTraceBytes units.Bytes `yaml:"max_trace_bytes"`
}

// DefaultConfig returns the defaults: 72h retention as in the design doc.
func DefaultConfig() Config {
	return Config{
		Retention:          model.Duration(72 * time.Hour),
		RetentionSize:      0,
		TraceIdle:          model.Duration(10 * time.Second),
		MaxTraceLive:       model.Duration(5 * time.Minute),
		MaxBlockDuration:   model.Duration(5 * time.Minute),
		MaxBlockBytes:      64 << 20,
		MaxHeadBytes:       256 << 20,
		CompactionWindow:   model.Duration(time.Hour),
		MaxCompactionSpans: 4_000_000,
		MaxTraceBytes:      50 << 20,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, d model.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("traces.%s must be positive, got %s", name, d))
		}
	}
	pos("retention", c.Retention)
	pos("trace_idle", c.TraceIdle)
	pos("max_trace_live", c.MaxTraceLive)
	pos("max_block_duration", c.MaxBlockDuration)
	pos("compaction_window", c.CompactionWindow)
	if c.RetentionSize < 0 {
		errs = append(errs, fmt.Errorf("traces.retention_size must not be negative, got %d", c.RetentionSize))
	}
	if c.MaxBlockBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("traces.max_block_bytes must be at least 1KiB, got %s", c.MaxBlockBytes))
	}
	if c.MaxHeadBytes < c.MaxBlockBytes {
		errs = append(errs, fmt.Errorf("traces.max_head_bytes (%s) must be at least max_block_bytes (%s)", c.MaxHeadBytes, c.MaxBlockBytes))
	}
	if c.MaxCompactionSpans < 2 {
		errs = append(errs, fmt.Errorf("traces.max_compaction_spans must be at least 2, got %d", c.MaxCompactionSpans))
	}
	if c.MaxTraceBytes < 0 {
		errs = append(errs, fmt.Errorf("traces.max_trace_bytes must not be negative, got %d", c.MaxTraceBytes))
	}
	if c.TraceIdle > c.MaxTraceLive {
		errs = append(errs, fmt.Errorf("traces.trace_idle (%s) must not exceed max_trace_live (%s)", c.TraceIdle, c.MaxTraceLive))
	}
	return errors.Join(errs...)
}

// Options turns the YAML config into Open's options.
func (c Config) Options() Options {
	o := DefaultOptions()
	o.Retention = time.Duration(c.Retention)
	o.RetentionSize = int64(c.RetentionSize)
	o.TraceIdle = time.Duration(c.TraceIdle)
	o.MaxTraceLive = time.Duration(c.MaxTraceLive)
	o.MaxBlockDuration = time.Duration(c.MaxBlockDuration)
	o.MaxBlockBytes = int64(c.MaxBlockBytes)
	o.MaxHeadBytes = int64(c.MaxHeadBytes)
	o.CompactionWindow = time.Duration(c.CompactionWindow)
	o.MaxCompactionSpans = c.MaxCompactionSpans
	o.MaxTraceBytes = int64(c.MaxTraceBytes)
	return o
}

// Options tune one open store. Zero fields take DefaultOptions' values.
type Options struct {
	Retention        time.Duration
	RetentionSize    int64
	TraceIdle        time.Duration
	MaxTraceLive     time.Duration
	MaxBlockDuration time.Duration
	MaxBlockBytes    int64
	MaxHeadBytes     int64
	CompactionWindow time.Duration
	// MaxCompactionSpans: a compaction takes sources while their spans sum
	// to at most this; blocks this big are not compacted again.
	MaxCompactionSpans int64
	MaxTraceBytes      int64
	// WALSegmentSize is the size of one WAL segment file (multiple of 32KiB).
	WALSegmentSize int
	// PageSize is the uncompressed size at which a data page is closed.
	PageSize int
	// CheckInterval is how often Run looks for blocks to cut, compact or delete.
	CheckInterval time.Duration
	// SearchWorkers is the number of goroutines one search decodes block
	// traces on: 0 means min(GOMAXPROCS, 8), 1 the caller's goroutine
	// only (ADR 0090).
	SearchWorkers int
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// DefaultOptions mirrors DefaultConfig plus the internal knobs.
func DefaultOptions() Options {
	c := DefaultConfig()
	return Options{
		Retention:          time.Duration(c.Retention),
		RetentionSize:      int64(c.RetentionSize),
		TraceIdle:          time.Duration(c.TraceIdle),
		MaxTraceLive:       time.Duration(c.MaxTraceLive),
		MaxBlockDuration:   time.Duration(c.MaxBlockDuration),
		MaxBlockBytes:      int64(c.MaxBlockBytes),
		MaxHeadBytes:       int64(c.MaxHeadBytes),
		CompactionWindow:   time.Duration(c.CompactionWindow),
		MaxCompactionSpans: c.MaxCompactionSpans,
		MaxTraceBytes:      int64(c.MaxTraceBytes),
		WALSegmentSize:     32 << 20,
		PageSize:           1 << 20,
		CheckInterval:      5 * time.Second,
		Now:                time.Now,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Retention <= 0 {
		o.Retention = d.Retention
	}
	if o.TraceIdle <= 0 {
		o.TraceIdle = d.TraceIdle
	}
	if o.MaxTraceLive <= 0 {
		o.MaxTraceLive = d.MaxTraceLive
	}
	if o.MaxBlockDuration <= 0 {
		o.MaxBlockDuration = d.MaxBlockDuration
	}
	if o.MaxBlockBytes <= 0 {
		o.MaxBlockBytes = d.MaxBlockBytes
	}
	if o.MaxHeadBytes <= 0 {
		o.MaxHeadBytes = d.MaxHeadBytes
	}
	if o.CompactionWindow <= 0 {
		o.CompactionWindow = d.CompactionWindow
	}
	if o.MaxCompactionSpans <= 0 {
		o.MaxCompactionSpans = d.MaxCompactionSpans
	}
	if o.WALSegmentSize <= 0 {
		o.WALSegmentSize = d.WALSegmentSize
	}
	if o.PageSize <= 0 {
		o.PageSize = d.PageSize
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = d.CheckInterval
	}
	if o.Now == nil {
		o.Now = d.Now
	}
	return o
}
