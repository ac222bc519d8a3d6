package otlp

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// grpcRefusalCounter counts the refusals gRPC-go makes itself, before our
// handler runs: a message that does not decode (it answers Internal) and
// one over the receive limit (ResourceExhausted). Without it those would
// be the only bad input not in nxwatcher_otlp_refused_requests_total.
type grpcRefusalCounter struct{ r *Receiver }

type methodKey struct{}

func (h grpcRefusalCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (h grpcRefusalCounter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok || end.Error == nil {
		return
	}
	method, _ := ctx.Value(methodKey{}).(string)
	if !strings.HasPrefix(method, otlpServicePrefix) {
		return
	}
	st := status.Convert(end.Error)
	var reason string
	switch {
	case st.Code() == codes.Internal && strings.Contains(st.Message(), "unmarshal"):
		reason = reasonMalformed
	case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max"):
		reason = reasonTooLarge
	default:
		return // ours, already counted
	}
	signal := signalOfMethod(method)
	h.r.metrics.refused.WithLabelValues(signal, transportGRPC, reason).Inc()
	h.r.metrics.requests.WithLabelValues(signal, transportGRPC, "refused").Inc()
}

func (grpcRefusalCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (grpcRefusalCounter) HandleConn(context.Context, stats.ConnStats) {}
