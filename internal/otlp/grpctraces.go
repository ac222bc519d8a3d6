package otlp

import (
	"context"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// The OTLP/gRPC trace service, registered by hand so that Export receives
// the request's bytes instead of pdata (ADR 0119). The logs and metrics
// services keep pdata's generated ones.
const (
	traceServiceName  = "opentelemetry.proto.collector.trace.v1.TraceService"
	traceExportMethod = "/" + traceServiceName + "/Export"
)

// rawTraceExporter is the handler type of traceServiceDesc.
type rawTraceExporter interface {
	export(ctx context.Context, req *grpcTracesRequest) (*encodedMessage, error)
}

var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: traceServiceName,
	HandlerType: (*rawTraceExporter)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: traceExportHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// traceExportHandler decodes as pdata's generated handler did before the
// interceptors run: a request that does not decode is refused with the
// status gRPC gives an undecodable message, before authentication and
// tenancy, as it was.
func traceExportHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) { //nolint:revive // gRPC's handler signature
	s := srv.(*tracesService)
	req := &grpcTracesRequest{}
	if err := dec(req); err != nil {
		return nil, err
	}
	defer req.free()
	if err := s.decode(req); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return s.export(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: traceExportMethod}
	return interceptor(ctx, req, info, func(ctx context.Context, in any) (any, error) {
		return s.export(ctx, in.(*grpcTracesRequest))
	})
}

// grpcTracesRequest is one Export call's message: its bytes, held until the
// handler returns, then walked (raw) or decoded (pdata).
type grpcTracesRequest struct {
	buf  mem.Buffer // the codec's reference to gRPC's buffer, or a copy
	body []byte
	raw  *RawTracesRequest        // the walk accepted body
	pd   ptraceotlp.ExportRequest // otherwise, pdata's decode
}

// free returns the bytes to gRPC's pool and the walk to ours; nothing of
// the request is used after the handler returns.
func (m *grpcTracesRequest) free() {
	if m.raw != nil {
		putRawRequest(m.raw)
		m.raw = nil
	}
	if m.buf != nil {
		m.buf.Free()
		m.buf = nil
	}
	m.body = nil
}

// UnmarshalProto copies b: it is how pdata's "proto" codec hands over a
// message (its otelEncoder), used only by a server built without
// GRPCServerOptions' codec. b is gRPC's and freed when this returns.
func (m *grpcTracesRequest) UnmarshalProto(b []byte) error {
	buf := mem.DefaultBufferPool().Get(len(b))
	copy(*buf, b)
	m.buf = mem.NewBuffer(buf, mem.DefaultBufferPool())
	m.body = m.buf.ReadOnlyData()
	return nil
}

// SizeProto and MarshalProto complete pdata's codec interface; a request
// is never sent.
func (m *grpcTracesRequest) SizeProto() int            { return len(m.body) }
func (m *grpcTracesRequest) MarshalProto(b []byte) int { return copy(b, m.body) }

// take keeps data past the codec's Unmarshal: a reference when it is one
// buffer, else one copy (gRPC frees data when Unmarshal returns).
func (m *grpcTracesRequest) take(data mem.BufferSlice) {
	m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
	m.body = m.buf.ReadOnlyData()
}

// encodedMessage is an already encoded protobuf message (the Export
// response), sent as it is.
type encodedMessage []byte

func (e *encodedMessage) SizeProto() int            { return len(*e) }
func (e *encodedMessage) MarshalProto(b []byte) int { return copy(b, *e) }
func (e *encodedMessage) UnmarshalProto(b []byte) error {
	*e = append((*e)[:0], b...)
	return nil
}

// tracesCodec is the server's codec (grpc.ForceServerCodecV2): it keeps a
// trace Export request's bytes without decoding them and sends an encoded
// response as it is; every other message goes to the "proto" codec the
// server would use otherwise (pdata's, for the logs and metrics services).
type tracesCodec struct{ delegate encoding.CodecV2 }

func newTracesCodec() tracesCodec {
	return tracesCodec{delegate: encoding.GetCodecV2("proto")}
}

func (c tracesCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(*e)}, nil
	}
	return c.delegate.Marshal(v)
}

func (c tracesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*grpcTracesRequest); ok {
		m.take(data)
		return nil
	}
	return c.delegate.Unmarshal(data, v)
}

func (tracesCodec) Name() string { return "proto" }

// errUndecodable is the status gRPC answers for a message its codec cannot
// decode (grpcRefusalCounter counts it as malformed).
func errUndecodable(err error) error {
	return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
}

// decode walks the request when the traces consumer takes raw requests
// (ADR 0118), and decodes it with pdata otherwise or when the walk refuses.
func (s *tracesService) decode(req *grpcTracesRequest) error {
	if rc, ok := s.r.deps.Traces.(RawTracesConsumer); ok && rc.TakesRawTraces() {
		raw := rawRequests.Get().(*RawTracesRequest)
		if parseRawTraces(req.body, raw) {
			req.raw = raw
			return nil
		}
		putRawRequest(raw)
	}
	req.pd = ptraceotlp.NewExportRequest()
	if err := req.pd.UnmarshalProto(req.body); err != nil {
		return errUndecodable(err)
	}
	return nil
}

type tracesService struct{ r *Receiver }

func (s *tracesService) export(ctx context.Context, req *grpcTracesRequest) (*encodedMessage, error) {
	r := s.r
	if r.deps.Traces == nil {
		return nil, r.grpcStatus(r.refuse(SignalTraces, transportGRPC, errNotImplemented(SignalTraces)))
	}
	ctx, te := r.withTenant(ctx, SignalTraces, transportGRPC, "", true)
	if te != nil {
		return nil, r.grpcStatus(te)
	}
	if tenant, _ := tenancy.FromContext(ctx); r.consumerFull(SignalTraces, tenant) { // a server without GRPCServerOptions' tap
		return nil, r.grpcStatus(r.refuse(SignalTraces, transportGRPC, errConsumerFull(SignalTraces)))
	}
	size := int64(len(req.body))
	r.metrics.requestBytes.WithLabelValues(SignalTraces, transportGRPC).Add(float64(size))
	var resp ptraceotlp.ExportResponse
	var e *exportError
	if req.raw != nil {
		resp, e = r.exportRawTraces(ctx, r.deps.Traces.(RawTracesConsumer), req.raw, size, transportGRPC)
	} else {
		resp, e = r.exportTraces(withRawTraces(ctx, req.pd.Traces(), req.body), req.pd, size, transportGRPC)
	}
	if e != nil {
		return nil, r.grpcStatus(e)
	}
	out, err := resp.MarshalProto()
	if err != nil {
		// The spans are stored; only the answer failed to encode.
		return nil, status.Errorf(codes.Internal, "encode response: %v", err)
	}
	msg := encodedMessage(out)
	return &msg, nil
}
