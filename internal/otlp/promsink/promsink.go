// Package promsink writes OTLP metrics into Prometheus storage the way
// Prometheus's own OTLP receiver (/api/v1/otlp/v1/metrics) does: it runs
// Prometheus's translator (storage/remote/otlptranslator/prometheusremotewrite)
// with the settings of the `otlp:` block of a prometheus.yml, so metric and
// label names, target_info, suffixes and histograms come out identical.
//
// A *Sink is an otlp.MetricsConsumer; a *tsdb.DB is a valid Appendable.
package promsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	translator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// maxAheadTime is how far in the future a sample may be, as in Prometheus's
// remote-write and OTLP handlers.
const maxAheadTime = 10 * time.Minute

// Options tune the translation.
type Options struct {
	// OTLP returns the `otlp:` block of the current Prometheus config
	// (translation_strategy, promote_resource_attributes, ...). It is called
	// per request so a reload applies at once. Nil means Prometheus's
	// defaults (config.DefaultOTLPConfig).
	OTLP func() config.OTLPConfig
	// LookbackDelta is the PromQL lookback; target_info samples are spaced
	// by it. Zero means 5m, Prometheus's default.
	LookbackDelta time.Duration
	// AllowDeltaTemporality stores delta sums and histograms as they come
	// (Prometheus's native-delta-ingestion feature); otherwise they are
	// rejected by the translator as Prometheus does by default.
	AllowDeltaTemporality bool
	// EnableTypeAndUnitLabels adds __type__ and __unit__ labels.
	EnableTypeAndUnitLabels bool
	// Now is the clock the "too far in the future" check reads; nil means
	// time.Now. Tests inject theirs so samples and the check agree on any date.
	Now func() time.Time
}

// Deps are the sink's collaborators; all are required.
type Deps struct {
	Appendable storage.AppendableV2
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Sink is an otlp.MetricsConsumer writing to Prometheus storage.
type Sink struct {
	opts       Options
	appendable storage.AppendableV2
	logger     *slog.Logger
	converters sync.Pool

	warnings *prometheus.CounterVec
	samples  prometheus.Counter
	failed   *prometheus.CounterVec
}

// New builds a sink.
func New(opts Options, deps Deps) (*Sink, error) {
	if deps.Appendable == nil || deps.Logger == nil || deps.Registerer == nil {
		return nil, errors.New("new otlp metrics sink: deps need an appendable, a logger and a registerer")
	}
	if opts.OTLP == nil {
		opts.OTLP = func() config.OTLPConfig { return config.DefaultOTLPConfig }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LookbackDelta == 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	s := &Sink{
		opts:       opts,
		appendable: deps.Appendable,
		logger:     deps.Logger.With("component", "otlp_metrics"),
		converters: sync.Pool{New: func() any { return translator.NewPrometheusConverter(nil) }},
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_metrics_translation_warnings_total",
			Help: "Warnings from translating OTLP metrics to the Prometheus model, by category.",
		}, []string{"category"}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_metrics_appended_samples_total",
			Help: "Samples appended to the metrics storage from OTLP metrics.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_metrics_failed_batches_total",
			Help: "OTLP metric batches rolled back, by reason (invalid: out of order, out of bounds, duplicate; storage: anything else).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{s.warnings, s.samples, s.failed} {
		if err := deps.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("new otlp metrics sink: register metrics: %w", err)
		}
	}
	s.failed.WithLabelValues("invalid")
	s.failed.WithLabelValues("storage")
	return s, nil
}

// ConsumeMetrics translates md and appends it in one transaction: all of it
// is committed or none. Samples the storage refuses as out of order, out of
// bounds or duplicate make the error wrap otlp.ErrInvalidInput (a retry
// would fail the same way, so the sender is told 400, as Prometheus does);
// other failures are left retryable.
func (s *Sink) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) (err error) {
	cfg := s.opts.OTLP()
	app := &limitedAppender{
		AppenderV2: s.appendable.AppenderV2(ctx),
		maxTime:    timestamp.FromTime(s.opts.Now().Add(maxAheadTime)),
	}
	conv := s.converters.Get().(*translator.PrometheusConverter)
	conv.Reset(app)
	defer func() {
		conv.Reset(nil)
		s.converters.Put(conv)
	}()

	annots, err := conv.FromMetrics(ctx, md, translator.Settings{
		AddMetricSuffixes:                    cfg.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !cfg.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            translator.NewPromoteResourceAttributes(cfg),
		KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
		AllowDeltaTemporality:                s.opts.AllowDeltaTemporality,
		LookbackDelta:                        s.opts.LookbackDelta,
		EnableTypeAndUnitLabels:              s.opts.EnableTypeAndUnitLabels,
		LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
	})
	for category, n := range translator.CountWarningsByCategory(annots) {
		s.warnings.WithLabelValues(string(category)).Add(float64(n))
	}
	if err != nil {
		_ = app.Rollback()
		if isInvalidSample(err) {
			s.failed.WithLabelValues("invalid").Inc()
			return fmt.Errorf("translate otlp metrics: %w: %w", otlp.ErrInvalidInput, err)
		}
		s.failed.WithLabelValues("storage").Inc()
		return fmt.Errorf("translate otlp metrics: %w", err)
	}
	if err := app.Commit(); err != nil {
		s.failed.WithLabelValues("storage").Inc()
		return fmt.Errorf("commit otlp metrics: %w", err)
	}
	s.samples.Add(float64(app.appended))
	return nil
}

func isInvalidSample(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) || errors.Is(err, storage.ErrTooOldSample)
}

// limitedAppender refuses samples too far in the future, hides exemplar-only
// partial errors (the sample itself went in) and counts appends.
type limitedAppender struct {
	storage.AppenderV2
	maxTime  int64
	appended int
}

func (a *limitedAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if t > a.maxTime {
		return 0, fmt.Errorf("series %s: %w: timestamp is more than %s in the future", ls, storage.ErrOutOfBounds, maxAheadTime)
	}
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err != nil {
		var partial *storage.AppendPartialError
		if _, herr := partial.Handle(err); herr != nil {
			return 0, err
		}
	}
	a.appended++
	return ref, nil
}
