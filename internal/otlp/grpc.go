package otlp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP senders (the collector's exporter among them) compress with gzip by default.
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// RegisterGRPC registers the OTLP trace, logs and metrics services on s.
// All three are registered even without a consumer, so a sender gets a
// clear Unimplemented message rather than "unknown service". Build s with
// GRPCServerOptions (or use NewGRPCServer) so size and memory limits apply
// before a request is decoded.
func (r *Receiver) RegisterGRPC(s *grpc.Server) {
	s.RegisterService(&traceServiceDesc, &tracesService{r: r})
	plogotlp.RegisterGRPCServer(s, &logsService{r: r})
	pmetricotlp.RegisterGRPCServer(s, &metricsService{r: r})
}

// GRPCServerOptions caps the receive size at max_request_bytes (after
// decompression, as gRPC does), refuses new OTLP calls while the memory
// limit is reached, before their messages are read, counts the refusals
// gRPC makes itself (undecodable or oversized messages), and sets the codec
// that hands a trace Export request over as its bytes (ADR 0119; without
// it the trace service copies the bytes once more).
//
// A connection without calls for grpcMaxConnectionIdle is closed (GOAWAY;
// clients reconnect on their next export), the gRPC counterpart of the
// HTTP servers' idle timeout.
func (r *Receiver) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: grpcMaxConnectionIdle}),
		grpc.MaxRecvMsgSize(int(r.cfg.MaxRequestBytes)),
		grpc.InTapHandle(r.tapMemoryLimit),
		grpc.StatsHandler(grpcRefusalCounter{r: r}),
		grpc.ForceServerCodecV2(newTracesCodec()),
	}
}

// NewGRPCServer returns a gRPC server with GRPCServerOptions, extra, and
// the OTLP services registered.
func (r *Receiver) NewGRPCServer(extra ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append(r.GRPCServerOptions(), extra...)...)
	r.RegisterGRPC(s)
	return s
}

// RunGRPC serves OTLP/gRPC on ln until ctx ends, then stops gracefully
// (in-flight exports finish, bounded by 5s).
func (r *Receiver) RunGRPC(ctx context.Context, ln net.Listener) error {
	var secure []grpc.ServerOption
	if r.grpcAuth != nil {
		secure = r.grpcAuth.serverOptions()
	}
	s := r.NewGRPCServer(secure...)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve otlp grpc on %s: %w", ln.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.Stop()
		<-stopped
	}
	<-errc
	return nil
}

// grpcMaxConnectionIdle closes idle OTLP/gRPC connections; a variable for tests.
var grpcMaxConnectionIdle = 5 * time.Minute

const otlpServicePrefix = "/opentelemetry.proto.collector."

// tapMemoryLimit refuses a call before its message is read when the
// receiver's memory is full or the signal's consumer asked for a pause.
func (r *Receiver) tapMemoryLimit(ctx context.Context, info *tap.Info) (context.Context, error) {
	if !strings.HasPrefix(info.FullMethodName, otlpServicePrefix) {
		return ctx, nil
	}
	signal := signalOfMethod(info.FullMethodName)
	switch {
	case r.limiter.full():
		return ctx, r.grpcStatus(r.refuse(signal, transportGRPC, errMemoryLimit(signal)))
	case r.consumerFull(signal, r.tapTenant(signal, info)):
		return ctx, r.grpcStatus(r.refuse(signal, transportGRPC, errConsumerFull(signal)))
	}
	return ctx, nil
}

// tapTenant is the tenant a call names in its metadata, as withTenant will
// resolve it; "" when it names none or an invalid one (the call is then
// refused by Export with the tenant error, not here).
func (r *Receiver) tapTenant(signal string, info *tap.Info) string {
	var v string
	if vs := info.Header.Get(tenancy.MetadataKey); len(vs) > 0 {
		v = vs[0]
	}
	tenant, err := tenancy.Resolve(r.tenancyFor(signal), v)
	if err != nil {
		return ""
	}
	return tenant
}

// signalOfMethod reads "traces" from
// "/opentelemetry.proto.collector.trace.v1.TraceService/Export".
func signalOfMethod(method string) string {
	switch {
	case strings.HasPrefix(method, otlpServicePrefix+"trace."):
		return SignalTraces
	case strings.HasPrefix(method, otlpServicePrefix+"logs."):
		return SignalLogs
	default:
		return SignalMetrics
	}
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	r *Receiver
}

func (s *logsService) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	r := s.r
	if r.deps.Logs == nil {
		return plogotlp.NewExportResponse(), r.grpcStatus(r.refuse(SignalLogs, transportGRPC, errNotImplemented(SignalLogs)))
	}
	ctx, te := r.withTenant(ctx, SignalLogs, transportGRPC, "", true)
	if te != nil {
		return plogotlp.NewExportResponse(), r.grpcStatus(te)
	}
	size := logsSize(req.Logs())
	r.metrics.requestBytes.WithLabelValues(SignalLogs, transportGRPC).Add(float64(size))
	resp, e := r.exportLogs(ctx, req, size, transportGRPC)
	if e != nil {
		return resp, r.grpcStatus(e)
	}
	return resp, nil
}

type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	r *Receiver
}

func (s *metricsService) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	r := s.r
	if r.deps.Metrics == nil {
		return pmetricotlp.NewExportResponse(), r.grpcStatus(r.refuse(SignalMetrics, transportGRPC, errNotImplemented(SignalMetrics)))
	}
	ctx, te := r.withTenant(ctx, SignalMetrics, transportGRPC, "", true)
	if te != nil {
		return pmetricotlp.NewExportResponse(), r.grpcStatus(te)
	}
	size := metricsSize(req.Metrics())
	r.metrics.requestBytes.WithLabelValues(SignalMetrics, transportGRPC).Add(float64(size))
	resp, e := r.exportMetrics(ctx, req, size, transportGRPC)
	if e != nil {
		return resp, r.grpcStatus(e)
	}
	return resp, nil
}
