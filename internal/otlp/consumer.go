package otlp

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// TracesConsumer takes decoded spans. It returns only when the data is as
// safe as it will ever be (written to a WAL, say): the sender is
// acknowledged after it returns nil. The receiver owns td: a consumer that
// keeps any of it after returning must copy.
type TracesConsumer interface {
	ConsumeTraces(ctx context.Context, td ptrace.Traces) error
}

// LogsConsumer takes decoded log records; see TracesConsumer for the rules.
type LogsConsumer interface {
	ConsumeLogs(ctx context.Context, ld plog.Logs) error
}

// MetricsConsumer takes decoded metrics; see TracesConsumer for the rules.
type MetricsConsumer interface {
	ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error
}

// ErrInvalidInput marks a consumer error as the sender's fault. Consumers
// wrap it (fmt.Errorf("span 3: %w", otlp.ErrInvalidInput)) and the
// receivers answer 400 / InvalidArgument, which senders do not retry. Any
// other consumer error is taken as transient: 503 / Unavailable.
var ErrInvalidInput = errors.New("invalid input")

// PartialSuccessError lets a consumer accept a request while rejecting part
// of it. The receivers answer success with the OTLP partial_success field
// set (rejected_spans, rejected_log_records or rejected_data_points).
type PartialSuccessError struct {
	Rejected int64
	Reason   string
}

func (e *PartialSuccessError) Error() string {
	return fmt.Sprintf("partial success: %d items rejected: %s", e.Rejected, e.Reason)
}

// TracesConsumerFunc adapts a function to TracesConsumer.
type TracesConsumerFunc func(context.Context, ptrace.Traces) error

// ConsumeTraces calls f.
func (f TracesConsumerFunc) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return f(ctx, td)
}

// LogsConsumerFunc adapts a function to LogsConsumer.
type LogsConsumerFunc func(context.Context, plog.Logs) error

// ConsumeLogs calls f.
func (f LogsConsumerFunc) ConsumeLogs(ctx context.Context, ld plog.Logs) error { return f(ctx, ld) }

// MetricsConsumerFunc adapts a function to MetricsConsumer.
type MetricsConsumerFunc func(context.Context, pmetric.Metrics) error

// ConsumeMetrics calls f.
func (f MetricsConsumerFunc) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	return f(ctx, md)
}

// invalidAs wraps err with ErrInvalidInput when it matches one of invalid.
func invalidAs(err error, invalid []error) error {
	if err == nil || errors.Is(err, ErrInvalidInput) {
		return err
	}
	for _, target := range invalid {
		if errors.Is(err, target) {
			return fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
	}
	return err
}

// TracesInvalidOn adapts a consumer whose own sentinel errors mean "the
// sender's fault" (tracestore.ErrInvalidID, tracestore.ErrTraceTooLarge):
// errors matching any of invalid (errors.Is) are answered 400 /
// InvalidArgument instead of a retryable 503 / Unavailable. It takes raw
// requests when c does.
func TracesInvalidOn(c TracesConsumer, invalid ...error) TracesConsumer {
	return tracesInvalidOn{c: c, invalid: invalid}
}

type tracesInvalidOn struct {
	c       TracesConsumer
	invalid []error
}

func (t tracesInvalidOn) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return invalidAs(t.c.ConsumeTraces(ctx, td), t.invalid)
}

func (t tracesInvalidOn) TakesRawTraces() bool { return takesRaw(t.c) }

func (t tracesInvalidOn) ConsumeRawTraces(ctx context.Context, req *RawTracesRequest) error {
	return invalidAs(ConsumeRawOrTraces(ctx, t.c, req), t.invalid)
}

// LogsInvalidOn is TracesInvalidOn for logs.
func LogsInvalidOn(c LogsConsumer, invalid ...error) LogsConsumer {
	return LogsConsumerFunc(func(ctx context.Context, ld plog.Logs) error {
		return invalidAs(c.ConsumeLogs(ctx, ld), invalid)
	})
}

// MetricsInvalidOn is TracesInvalidOn for metrics.
func MetricsInvalidOn(c MetricsConsumer, invalid ...error) MetricsConsumer {
	return MetricsConsumerFunc(func(ctx context.Context, md pmetric.Metrics) error {
		return invalidAs(c.ConsumeMetrics(ctx, md), invalid)
	})
}

// TracesByTenant is a traces consumer that hands each request to its
// tenant's consumer (the tenant the receiver put in ctx; "fake" when none),
// for per-tenant trace stores: the app passes a function over a
// tenancy.Set's Get. A failure to open the tenant's store is retryable.
// It takes raw requests, and hands them on as pdata to a tenant's consumer
// that does not.
func TracesByTenant(get func(tenant string) (TracesConsumer, error)) TracesConsumer {
	return tracesByTenant(get)
}

type tracesByTenant func(tenant string) (TracesConsumer, error)

func (get tracesByTenant) consumer(ctx context.Context) (TracesConsumer, error) {
	tenant, ok := tenancy.FromContext(ctx)
	if !ok {
		tenant = tenancy.Default
	}
	c, err := get(tenant)
	if err != nil {
		return nil, fmt.Errorf("traces of tenant %s: %w", tenant, err)
	}
	return c, nil
}

func (get tracesByTenant) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	c, err := get.consumer(ctx)
	if err != nil {
		return err
	}
	return c.ConsumeTraces(ctx, td)
}

func (get tracesByTenant) TakesRawTraces() bool { return true }

func (get tracesByTenant) ConsumeRawTraces(ctx context.Context, req *RawTracesRequest) error {
	c, err := get.consumer(ctx)
	if err != nil {
		return err
	}
	return ConsumeRawOrTraces(ctx, c, req)
}

// TracesSequence hands each request to every consumer in turn and stops at
// the first error, which is the answer. It takes raw requests when every
// consumer does (the app's forward backlog, then the store).
func TracesSequence(cs ...TracesConsumer) TracesConsumer { return tracesSequence(cs) }

type tracesSequence []TracesConsumer

func (s tracesSequence) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	for _, c := range s {
		if err := c.ConsumeTraces(ctx, td); err != nil {
			return err
		}
	}
	return nil
}

func (s tracesSequence) TakesRawTraces() bool {
	for _, c := range s {
		if !takesRaw(c) {
			return false
		}
	}
	return true
}

func (s tracesSequence) ConsumeRawTraces(ctx context.Context, req *RawTracesRequest) error {
	for _, c := range s {
		if err := ConsumeRawOrTraces(ctx, c, req); err != nil {
			return err
		}
	}
	return nil
}

// TracesWhen is c while active reports true; otherwise it takes nothing and
// costs nothing, raw requests included (the app's forward backlog with no
// endpoint configured, which drops every request anyway).
func TracesWhen(active func() bool, c TracesConsumer) TracesConsumer {
	return tracesWhen{active: active, c: c}
}

type tracesWhen struct {
	active func() bool
	c      TracesConsumer
}

func (t tracesWhen) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return t.c.ConsumeTraces(ctx, td)
}

func (t tracesWhen) TakesRawTraces() bool { return !t.active() || takesRaw(t.c) }

func (t tracesWhen) ConsumeRawTraces(ctx context.Context, req *RawTracesRequest) error {
	if !t.active() {
		return nil
	}
	return ConsumeRawOrTraces(ctx, t.c, req)
}
