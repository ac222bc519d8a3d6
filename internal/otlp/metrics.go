package otlp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal reasons, the `reason` label of nxwatcher_otlp_refused_requests_total.
const (
	reasonMalformed        = "malformed"
	reasonTooLarge         = "too_large"
	reasonMediaType        = "unsupported_media_type"
	reasonEncoding         = "unsupported_encoding"
	reasonMethod           = "method_not_allowed"
	reasonNotImplemented   = "not_implemented"
	reasonMemoryLimit      = "memory_limit"
	reasonConsumerFull     = "consumer_full"
	reasonConsumerInvalid  = "consumer_invalid_input"
	reasonConsumerRetrying = "consumer_unavailable"
	reasonTenant           = "tenant"
)

// Transports, the `transport` label.
const (
	transportGRPC = "grpc"
	transportHTTP = "http"
)

type receiverMetrics struct {
	requests      *prometheus.CounterVec // signal, transport, outcome
	refused       *prometheus.CounterVec // signal, transport, reason
	acceptedItems *prometheus.CounterVec // signal, transport
	rejectedItems *prometheus.CounterVec // signal, reason
	requestBytes  *prometheus.CounterVec // signal, transport
	rawTraces     *prometheus.CounterVec // transport
	inflightBytes prometheus.GaugeFunc
}

func newReceiverMetrics(reg prometheus.Registerer, inflight func() float64) (*receiverMetrics, error) {
	m := &receiverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_requests_total",
			Help: "OTLP export requests by signal, transport and outcome (success, partial_success, refused).",
		}, []string{"signal", "transport", "outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_refused_requests_total",
			Help: "OTLP export requests answered with an error, by reason.",
		}, []string{"signal", "transport", "reason"}),
		acceptedItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_accepted_items_total",
			Help: "Spans, log records or metric data points handed to a consumer and accepted by it.",
		}, []string{"signal", "transport"}),
		rejectedItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_rejected_items_total",
			Help: "Items rejected inside accepted requests (OTLP partial success), by reason.",
		}, []string{"signal", "reason"}),
		requestBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_received_bytes_total",
			Help: "Bytes of OTLP requests received: HTTP bodies as sent; gRPC trace messages as received, after decompression; gRPC logs and metrics at their protobuf size.",
		}, []string{"signal", "transport"}),
		rawTraces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_otlp_raw_trace_requests_total",
			Help: "OTLP protobuf trace requests (HTTP and gRPC) handed to the consumers as their own bytes, without a pdata decode (ADRs 0118, 0119).",
		}, []string{"transport"}),
		inflightBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_otlp_inflight_bytes",
			Help: "Estimated bytes held by OTLP requests being processed, checked against otlp.memory_limit.",
		}, inflight),
	}
	for _, c := range []prometheus.Collector{m.requests, m.refused, m.acceptedItems, m.rejectedItems, m.requestBytes, m.rawTraces, m.inflightBytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
