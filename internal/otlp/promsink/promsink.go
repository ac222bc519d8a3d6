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
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
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

// DefaultMaxAge is the oldest a data point may be when Options.MaxAge is
// zero: the metrics store's default retention (30d), past which a sample
// would be deleted at the next compaction anyway.
const DefaultMaxAge = 30 * 24 * time.Hour

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
	// MaxAge bounds how old a data point may be: points older than Now -
	// MaxAge are refused before translation (counted, and named in the
	// partial success), as points more than 10 minutes ahead are. Besides
	// keeping samples the store would delete at once, it bounds the work of
	// one request: the translator fills target_info every half lookback
	// from a resource's earliest point to its latest, so a point from 1970
	// next to one from today cost millions of appends on a store that
	// accepted them (an empty head). Set it to the metrics retention; zero
	// means DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock the time-window checks read; nil means time.Now.
	// Tests inject theirs so samples and the check agree on any date.
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
	// rejectedPoints counts data points refused in partial successes.
	rejectedPoints prometheus.Counter
	// outOfWindow counts data points refused before translation for a
	// timestamp outside [now - MaxAge, now + 10m], by side.
	outOfWindow *prometheus.CounterVec
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
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("new otlp metrics sink: max age %s is negative", opts.MaxAge)
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
			Help: "OTLP metric batches not stored whole, by reason (invalid: nothing storable, rolled back; partial: stored without the refused data points; storage: rolled back, retryable).",
		}, []string{"reason"}),
		rejectedPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_metrics_rejected_data_points_total",
			Help: "OTLP data points refused (out of order, out of bounds, duplicate, too far ahead, untranslatable) in batches whose other points were stored.",
		}),
		outOfWindow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_metrics_out_of_window_data_points_total",
			Help: "OTLP data points refused before translation because their timestamp is older than the sink's max age (side=past) or more than 10m ahead (side=future), whether or not the rest of their batch was stored.",
		}, []string{"side"}),
	}
	for _, c := range []prometheus.Collector{s.warnings, s.samples, s.failed, s.rejectedPoints, s.outOfWindow} {
		if err := deps.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("new otlp metrics sink: register metrics: %w", err)
		}
	}
	s.failed.WithLabelValues("invalid")
	s.failed.WithLabelValues("storage")
	s.failed.WithLabelValues("partial")
	s.outOfWindow.WithLabelValues("past")
	s.outOfWindow.WithLabelValues("future")
	return s, nil
}

// ConsumeMetrics translates md and appends it in one transaction. Samples
// the storage refuses as out of order, out of bounds, too old, duplicate or
// too far in the future, and metrics the translator cannot take (a delta
// sum when delta ingestion is off, say), are left out while the rest is
// committed: the error then is an *otlp.PartialSuccessError with the exact
// number of refused data points (the receiver answers success with
// partial_success, and the sender does not resend what was stored). When
// nothing could be stored the error wraps otlp.ErrInvalidInput (400, as
// Prometheus answers). Storage failures roll everything back and stay
// retryable.
//
// Data points older than MaxAge or more than 10 minutes ahead are taken out
// of (a copy of) md before translation, so they neither reach the storage
// nor stretch the range the translator fills with target_info samples. md
// itself is never changed.
func (s *Sink) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) (err error) {
	cfg := s.opts.OTLP()
	now := s.opts.Now()
	w := window{min: timestamp.FromTime(now.Add(-s.opts.MaxAge)), max: timestamp.FromTime(now.Add(maxAheadTime))}
	total := md.DataPointCount()
	outside, reasons := 0, []string(nil)
	if past, future := w.count(md); past+future > 0 {
		md = w.keep(md)
		outside = past + future
		if past > 0 {
			s.outOfWindow.WithLabelValues("past").Add(float64(past))
			reasons = append(reasons, fmt.Sprintf("%d data points: %v: timestamp is more than %s in the past", past, storage.ErrOutOfBounds, model.Duration(s.opts.MaxAge)))
		}
		if future > 0 {
			s.outOfWindow.WithLabelValues("future").Add(float64(future))
			reasons = append(reasons, fmt.Sprintf("%d data points: %v: timestamp is more than %s in the future", future, storage.ErrOutOfBounds, maxAheadTime))
		}
	}
	app := &limitedAppender{
		AppenderV2: s.appendable.AppenderV2(ctx),
		maxTime:    w.max,
	}
	settings := s.settings(cfg)
	conv := s.converters.Get().(*translator.PrometheusConverter)
	conv.Reset(app)
	defer func() {
		conv.Reset(nil)
		s.converters.Put(conv)
	}()

	annots, err := conv.FromMetrics(ctx, md, settings)
	for category, n := range translator.CountWarningsByCategory(annots) {
		s.warnings.WithLabelValues(string(category)).Add(float64(n))
	}
	if app.storageErr != nil || ctx.Err() != nil {
		_ = app.Rollback()
		s.failed.WithLabelValues("storage").Inc()
		if app.storageErr != nil {
			return fmt.Errorf("translate otlp metrics: %w", app.storageErr)
		}
		return fmt.Errorf("translate otlp metrics: %w", ctx.Err())
	}
	rejected := outside + len(app.rejected)
	reasons = append(reasons, app.reasons...)
	if errs := translationErrors(err); len(errs) == 0 {
		err = nil
	} else {
		err = errors.Join(errs...)
	}
	if err != nil {
		// The translator skipped whole metrics; find which, one at a time
		// against an appender that keeps nothing (the error path only).
		n, why := s.untranslatable(ctx, md, settings)
		rejected += n
		reasons = append(reasons, why...)
		if n == 0 {
			reasons = append(reasons, err.Error())
		}
	}
	if rejected > 0 && (rejected >= total || app.appended == 0) {
		_ = app.Rollback()
		s.failed.WithLabelValues("invalid").Inc()
		return fmt.Errorf("translate otlp metrics: %w: %s", otlp.ErrInvalidInput, strings.Join(reasons, "; "))
	}
	if rejected == 0 && err != nil {
		// An error no data point can be blamed for: keep the old, safe answer.
		_ = app.Rollback()
		s.failed.WithLabelValues("storage").Inc()
		return fmt.Errorf("translate otlp metrics: %w", err)
	}
	if err := app.Commit(); err != nil {
		s.failed.WithLabelValues("storage").Inc()
		return fmt.Errorf("commit otlp metrics: %w", err)
	}
	s.samples.Add(float64(app.appended))
	if rejected == 0 {
		return nil
	}
	s.failed.WithLabelValues("partial").Inc()
	s.rejectedPoints.Add(float64(rejected))
	return &otlp.PartialSuccessError{
		Rejected: int64(rejected),
		Reason:   fmt.Sprintf("%d of %d data points refused: %s", rejected, total, strings.Join(reasons, "; ")),
	}
}

func (s *Sink) settings(cfg config.OTLPConfig) translator.Settings {
	return translator.Settings{
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
	}
}

// maxReasons bounds the distinct reasons quoted in a partial-success message.
const maxReasons = 3

// untranslatable counts the data points of the metrics the translator
// refuses, translating each metric alone into an appender that keeps nothing.
func (s *Sink) untranslatable(ctx context.Context, md pmetric.Metrics, settings translator.Settings) (int, []string) {
	n := 0
	var reasons []string
	conv := translator.NewPrometheusConverter(nopAppender{})
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			ms := sm.Metrics()
			for k := 0; k < ms.Len(); k++ {
				one := pmetric.NewMetrics()
				orm := one.ResourceMetrics().AppendEmpty()
				rm.Resource().CopyTo(orm.Resource())
				osm := orm.ScopeMetrics().AppendEmpty()
				sm.Scope().CopyTo(osm.Scope())
				ms.At(k).CopyTo(osm.Metrics().AppendEmpty())
				conv.Reset(nopAppender{})
				if _, err := conv.FromMetrics(ctx, one, settings); len(translationErrors(err)) > 0 {
					n += one.DataPointCount()
					if len(reasons) < maxReasons {
						reasons = append(reasons, fmt.Sprintf("metric %q: %v", ms.At(k).Name(), err))
					}
				}
			}
		}
	}
	return n, reasons
}

// nopAppender takes every sample and keeps none; it refuses target_info at
// once so the trial does not walk the batch's time range.
type nopAppender struct{}

func (nopAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if ls.Get(labels.MetricName) == targetInfo {
		return 0, errTargetInfo
	}
	return 0, nil
}
func (nopAppender) Commit() error   { return nil }
func (nopAppender) Rollback() error { return nil }

func isInvalidSample(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) || errors.Is(err, storage.ErrTooOldSample)
}

// limitedAppender refuses samples too far in the future, hides exemplar-only
// partial errors (the sample itself went in) and counts appends. A sample the
// storage refuses as invalid is skipped (not returned to the translator, which
// would drop the rest of its metric) and its data point recorded; any other
// storage error is kept in storageErr and returned.
type limitedAppender struct {
	storage.AppenderV2
	maxTime    int64
	appended   int
	rejected   map[pointKey]struct{}
	reasons    []string
	storageErr error
	hashBuf    []byte
}

// pointKey names the OTLP data point a sample came from: its metric family,
// its labels without the name and the bucket/quantile label, its timestamp.
type pointKey struct {
	family string
	labels uint64
	t      int64
}

func (a *limitedAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	var err error
	if t > a.maxTime {
		err = fmt.Errorf("series %s: %w: timestamp is more than %s in the future", ls, storage.ErrOutOfBounds, maxAheadTime)
	} else {
		ref, err = a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
		if err != nil {
			var partial *storage.AppendPartialError
			if _, herr := partial.Handle(err); herr == nil {
				err = nil
			}
		}
	}
	switch {
	case err == nil:
		a.appended++
		return ref, nil
	case isInvalidSample(err):
		name := ls.Get(labels.MetricName)
		if name == targetInfo {
			// Synthesized from the resource, not a data point of the request:
			// not counted. It is returned so the translator stops that
			// resource's target_info series, which it fills at every half
			// lookback from the earliest to the latest timestamp of the batch
			// (1970 to now would be millions of samples).
			return 0, fmt.Errorf("%w: %w", errTargetInfo, err)
		}
		family := opts.MetricFamilyName
		if family == "" {
			family = name
		}
		var hash uint64
		hash, a.hashBuf = ls.HashWithoutLabels(a.hashBuf, labels.MetricName, labels.BucketLabel, "quantile")
		if a.rejected == nil {
			a.rejected = map[pointKey]struct{}{}
		}
		a.rejected[pointKey{family, hash, t}] = struct{}{}
		if len(a.reasons) < maxReasons {
			a.reasons = append(a.reasons, err.Error())
		}
		return 0, nil
	default:
		if a.storageErr == nil {
			a.storageErr = err
		}
		return 0, err
	}
}

const targetInfo = "target_info"

// errTargetInfo marks refused target_info samples: they end that series
// early but are neither a data point's refusal nor a translation failure.
var errTargetInfo = errors.New("target_info sample refused")

// translationErrors flattens the translator's joined errors, leaving out the
// target_info refusals.
func translationErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, translationErrors(e)...)
		}
		return out
	}
	if errors.Is(err, errTargetInfo) {
		return nil
	}
	return []error{err}
}
