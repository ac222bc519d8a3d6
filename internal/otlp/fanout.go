package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Follower is a best-effort traces consumer behind a TracesFanout, such as
// the metrics-generator.
type Follower struct {
	Name   string
	Traces TracesConsumer
}

// TracesFanout sends spans to one primary consumer (the trace store), whose
// answer is the sender's answer, and then to followers. Followers run only
// after the primary accepted the data, so a request the primary refused and
// the sender retries is not counted twice by them. A primary that drops spans
// it already holds (the trace store does, for a retry of a request it had
// stored) removes them from td, so followers see each span once too. Their
// errors are counted and logged, never returned, since the data is already
// acknowledged-safe in the primary.
type TracesFanout struct {
	primary   TracesConsumer
	followers []Follower
	logger    *slog.Logger
	failures  *prometheus.CounterVec
}

// NewTracesFanout builds the fan-out. logger and reg must not be nil.
func NewTracesFanout(logger *slog.Logger, reg prometheus.Registerer, primary TracesConsumer, followers ...Follower) (*TracesFanout, error) {
	if primary == nil {
		return nil, errors.New("new traces fanout: primary consumer is nil")
	}
	for i, f := range followers {
		if f.Traces == nil || f.Name == "" {
			return nil, fmt.Errorf("new traces fanout: follower %d: needs a name and a consumer", i)
		}
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nxwatcher_otlp_fanout_follower_failures_total",
		Help: "Batches of spans a best-effort follower consumer (such as the metrics-generator) failed to take.",
	}, []string{"follower"})
	if err := reg.Register(failures); err != nil {
		return nil, fmt.Errorf("new traces fanout: register metrics: %w", err)
	}
	for _, f := range followers {
		failures.WithLabelValues(f.Name)
	}
	return &TracesFanout{primary: primary, followers: followers, logger: logger, failures: failures}, nil
}

// ConsumeTraces implements TracesConsumer.
func (t *TracesFanout) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	err := t.primary.ConsumeTraces(ctx, td)
	var partial *PartialSuccessError
	if err != nil && !errors.As(err, &partial) {
		return err
	}
	for _, f := range t.followers {
		if ferr := f.Traces.ConsumeTraces(ctx, td); ferr != nil {
			t.failures.WithLabelValues(f.Name).Inc()
			t.logger.Debug("follower consumer failed", "follower", f.Name, "err", ferr)
		}
	}
	return err
}

// TakesRawTraces reports whether the primary and every follower take raw
// requests (ADR 0118).
func (t *TracesFanout) TakesRawTraces() bool {
	if !takesRaw(t.primary) {
		return false
	}
	for _, f := range t.followers {
		if !takesRaw(f.Traces) {
			return false
		}
	}
	return true
}

// ConsumeRawTraces is ConsumeTraces for a raw request: each consumer takes
// it raw unless one before it decoded it (ConsumeRawOrTraces).
func (t *TracesFanout) ConsumeRawTraces(ctx context.Context, req *RawTracesRequest) error {
	err := ConsumeRawOrTraces(ctx, t.primary, req)
	var partial *PartialSuccessError
	if err != nil && !errors.As(err, &partial) {
		return err
	}
	for _, f := range t.followers {
		if ferr := ConsumeRawOrTraces(ctx, f.Traces, req); ferr != nil {
			t.failures.WithLabelValues(f.Name).Inc()
			t.logger.Debug("follower consumer failed", "follower", f.Name, "err", ferr)
		}
	}
	return err
}
