package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// Signal names, the `signal` label on every metric.
const (
	SignalTraces  = "traces"
	SignalLogs    = "logs"
	SignalMetrics = "metrics"
)

// Deps are the receiver's collaborators. Any consumer may be nil: that
// signal then answers 501 Not Implemented / codes.Unimplemented.
type Deps struct {
	Traces     TracesConsumer
	Logs       LogsConsumer
	Metrics    MetricsConsumer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// TracesTenancy and LogsTenancy require every request of that signal
	// to name its tenant: the X-Scope-OrgID header over HTTP, the
	// x-scope-orgid metadata over gRPC (traces.multitenancy_enabled,
	// logs.auth_enabled). Without it the receiver answers 401 /
	// Unauthenticated "no org id"; an ID outside the tenant ID rules is 400
	// / InvalidArgument. The consumer's context carries the tenant
	// (tenancy.FromContext): the validated ID, or "fake" when the signal's
	// tenancy is off (the header is then ignored, as upstream does).
	TracesTenancy bool
	LogsTenancy   bool
	// TracesFull, when set, reports that the traces consumer cannot take
	// more for now: the trace store's head has grown past its limit
	// because cutting blocks fell behind ingest. Trace requests are then
	// refused before their body is read, with 429 + Retry-After (HTTP) or
	// Unavailable + RetryInfo (gRPC), reason "consumer_full", so senders
	// back off instead of the head growing without bound (ADR 0037). It is
	// called once per request with the request's tenant (tenancy.Default
	// when trace tenancy is off), so one tenant's full store does not
	// refuse another's spans, and must be cheap.
	TracesFull func(tenant string) bool
}

// Receiver serves OTLP over gRPC and HTTP for the three signals. It owns no
// listener; see RegisterGRPC, Routes, RunGRPC and RunHTTP.
type Receiver struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	limiter *memoryLimiter
	metrics *receiverMetrics

	// webConfigFile and grpcAuth are set by UseWebConfig.
	webConfigFile string
	grpcAuth      *grpcWebAuth
}

// New checks cfg and builds a receiver.
func New(cfg Config, deps Deps) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new otlp receiver: %w", err)
	}
	if deps.Logger == nil || deps.Registerer == nil {
		return nil, errors.New("new otlp receiver: deps need a logger and a registerer")
	}
	r := &Receiver{
		cfg:     cfg,
		deps:    deps,
		logger:  deps.Logger.With("component", "otlp"),
		limiter: newMemoryLimiter(int64(cfg.MemoryLimit)),
	}
	m, err := newReceiverMetrics(deps.Registerer, func() float64 { return float64(r.limiter.inUse()) })
	if err != nil {
		return nil, fmt.Errorf("new otlp receiver: %w", err)
	}
	r.metrics = m
	for _, sig := range []string{SignalTraces, SignalLogs, SignalMetrics} {
		for _, tr := range []string{transportGRPC, transportHTTP} {
			r.metrics.acceptedItems.WithLabelValues(sig, tr)
			r.metrics.requestBytes.WithLabelValues(sig, tr)
		}
	}
	for _, tr := range []string{transportGRPC, transportHTTP} {
		r.metrics.rawTraces.WithLabelValues(tr)
	}
	return r, nil
}

// exportError is a refusal with everything both transports need to answer it.
type exportError struct {
	reason     string // metric label
	httpStatus int
	code       codes.Code
	msg        string
	retryable  bool // add Retry-After / RetryInfo
}

func (e *exportError) Error() string { return e.msg }

func (r *Receiver) retryAfterSeconds() string {
	secs := int64(time.Duration(r.cfg.RetryAfter).Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

// grpcStatus turns a refusal into the gRPC status the OTLP spec asks for;
// retryable ones carry RetryInfo so senders back off by RetryAfter.
func (r *Receiver) grpcStatus(e *exportError) error {
	st := status.New(e.code, e.msg)
	if e.retryable {
		if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(r.cfg.RetryAfter))}); err == nil {
			st = withInfo
		}
	}
	return st.Err()
}

func (r *Receiver) refuse(signal, transport string, e *exportError) *exportError {
	r.metrics.refused.WithLabelValues(signal, transport, e.reason).Inc()
	r.metrics.requests.WithLabelValues(signal, transport, "refused").Inc()
	return e
}

func errNotImplemented(signal string) *exportError {
	return &exportError{
		reason:     reasonNotImplemented,
		httpStatus: 501,
		code:       codes.Unimplemented,
		msg:        fmt.Sprintf("otlp %s are not accepted by this server: no %s store is configured", signal, signal),
	}
}

func errMemoryLimit(signal string) *exportError {
	return &exportError{
		reason:     reasonMemoryLimit,
		httpStatus: 429,
		// The OTLP spec asks for Unavailable (with RetryInfo) to signal
		// back-pressure over gRPC; ResourceExhausted is only retried by
		// some clients.
		code:      codes.Unavailable,
		msg:       fmt.Sprintf("otlp %s refused: receiver memory limit reached, retry later", signal),
		retryable: true,
	}
}

func errConsumerFull(signal string) *exportError {
	return &exportError{
		reason:     reasonConsumerFull,
		httpStatus: http.StatusTooManyRequests,
		code:       codes.Unavailable,
		msg:        fmt.Sprintf("otlp %s refused: the store is behind (its head is over its limit while blocks are cut), retry later", signal),
		retryable:  true,
	}
}

// consumerFull reports whether signal's consumer asked for a pause for
// tenant (Deps.TracesFull).
func (r *Receiver) consumerFull(signal, tenant string) bool {
	return signal == SignalTraces && r.deps.TracesFull != nil && r.deps.TracesFull(tenant)
}

func errTenant(signal string, err error) *exportError {
	e := &exportError{reason: reasonTenant, httpStatus: http.StatusBadRequest, code: codes.InvalidArgument,
		msg: fmt.Sprintf("otlp %s: %v", signal, err)}
	if tenancy.Status(err) == http.StatusUnauthorized {
		e.httpStatus, e.code, e.msg = http.StatusUnauthorized, codes.Unauthenticated, err.Error()
	}
	return e
}

// tenancyFor reports whether signal's requests must name a tenant.
func (r *Receiver) tenancyFor(signal string) bool {
	switch signal {
	case SignalTraces:
		return r.deps.TracesTenancy
	case SignalLogs:
		return r.deps.LogsTenancy
	}
	return false
}

// withTenant puts the tenant of a request into ctx, or refuses it.
func (r *Receiver) withTenant(ctx context.Context, signal, transport, header string, fromGRPC bool) (context.Context, *exportError) {
	var tenant string
	var err error
	if fromGRPC {
		tenant, err = tenancy.FromGRPC(ctx, r.tenancyFor(signal))
	} else {
		tenant, err = tenancy.Resolve(r.tenancyFor(signal), header)
	}
	if err != nil {
		return ctx, r.refuse(signal, transport, errTenant(signal, err))
	}
	return tenancy.NewContext(ctx, tenant), nil
}

func errMalformed(signal, what string, err error) *exportError {
	return &exportError{
		reason:     reasonMalformed,
		httpStatus: 400,
		code:       codes.InvalidArgument,
		msg:        fmt.Sprintf("otlp %s: %s: %v", signal, what, err),
	}
}

func errTooLarge(signal string, limit int64) *exportError {
	return &exportError{
		reason:     reasonTooLarge,
		httpStatus: 413,
		code:       codes.ResourceExhausted,
		msg:        fmt.Sprintf("otlp %s: request larger than max_request_bytes (%d bytes)", signal, limit),
	}
}

// export runs one decoded request of items items through admission control
// and its consumer. estimate is the bytes the request holds in memory. It
// returns how many items the consumer rejected in a partial success (at most
// items: a consumer's over-count is clamped), and why.
func (r *Receiver) export(ctx context.Context, signal, transport string, items, estimate int64, consume func(context.Context) error) (int64, string, *exportError) {
	if !r.limiter.acquire(estimate) {
		return 0, "", r.refuse(signal, transport, errMemoryLimit(signal))
	}
	err := consume(ctx)
	r.limiter.release(estimate)

	var partial *PartialSuccessError
	switch {
	case err == nil:
		return 0, "", nil
	case errors.As(err, &partial):
		n := min(max(partial.Rejected, 0), items)
		r.metrics.rejectedItems.WithLabelValues(signal, "consumer").Add(float64(n))
		return n, partial.Reason, nil
	case errors.Is(err, ErrInvalidInput):
		return 0, "", r.refuse(signal, transport, &exportError{
			reason: reasonConsumerInvalid, httpStatus: 400, code: codes.InvalidArgument,
			msg: fmt.Sprintf("otlp %s rejected: %v", signal, err),
		})
	default:
		// Anything else may pass: the sender keeps the data and retries.
		r.logger.Debug("consumer failed, asking sender to retry", "signal", signal, "err", err)
		return 0, "", r.refuse(signal, transport, &exportError{
			reason: reasonConsumerRetrying, httpStatus: 503, code: codes.Unavailable,
			msg: fmt.Sprintf("otlp %s not stored, retry later: %v", signal, err), retryable: true,
		})
	}
}

// succeed counts an answered request: items sent to the consumer, and how
// many of all the request's items were rejected (partial success).
func (r *Receiver) succeed(signal, transport string, accepted, rejected int64) {
	r.metrics.acceptedItems.WithLabelValues(signal, transport).Add(float64(accepted))
	outcome := "success"
	if rejected > 0 {
		outcome = "partial_success"
	}
	r.metrics.requests.WithLabelValues(signal, transport, outcome).Inc()
}
