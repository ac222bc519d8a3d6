package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// OTLP/HTTP paths, as the specification fixes them.
const (
	PathTraces  = "/v1/traces"
	PathLogs    = "/v1/logs"
	PathMetrics = "/v1/metrics"
)

const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

// Route is one entry of the OTLP/HTTP URL surface.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// Routes lists the OTLP/HTTP endpoints:
//
//	POST /v1/traces   -> (*Receiver).HandleTraces
//	POST /v1/logs     -> (*Receiver).HandleLogs
//	POST /v1/metrics  -> (*Receiver).HandleMetrics
//
// The handlers answer other methods themselves (405), so they may also be
// mounted without a method pattern.
func (r *Receiver) Routes() []Route {
	return []Route{
		{Method: http.MethodPost, Path: PathTraces, Handler: r.HandleTraces},
		{Method: http.MethodPost, Path: PathLogs, Handler: r.HandleLogs},
		{Method: http.MethodPost, Path: PathMetrics, Handler: r.HandleMetrics},
	}
}

// Handler returns a mux with Routes mounted, for a listener of its own
// (the OTLP/HTTP port 4318).
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range r.Routes() {
		mux.HandleFunc(rt.Path, rt.Handler)
	}
	return mux
}

// RunHTTP serves Handler on ln until ctx ends, then shuts down gracefully
// (bounded by 5s).
func (r *Receiver) RunHTTP(ctx context.Context, ln net.Listener) error {
	srv := r.httpServer(ctx)
	errc := make(chan error, 1)
	if path := r.webConfigFile; path != "" {
		go func() { errc <- web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &path}, r.logger) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve otlp http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		_ = srv.Close() // connections that did not drain in time
	}
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("shut down otlp http on %s: %w", ln.Addr(), err)
	}
	return nil
}

// httpServer is the OTLP/HTTP server: a slow client is cut off after 10 s
// of headers, an idle keep-alive connection after 5 minutes, headers are
// capped at 1 MiB (issue 16: timeouts and header caps on every server).
func (r *Receiver) httpServer(ctx context.Context) *http.Server {
	return &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(r.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// HandleTraces serves POST /v1/traces.
func (r *Receiver) HandleTraces(w http.ResponseWriter, req *http.Request) {
	r.serveHTTP(w, req, SignalTraces, r.deps.Traces != nil, func(ctx context.Context, body []byte, asJSON bool) ([]byte, *exportError) {
		if rc, ok := r.deps.Traces.(RawTracesConsumer); ok && !asJSON && rc.TakesRawTraces() {
			raw := rawRequests.Get().(*RawTracesRequest)
			defer putRawRequest(raw)
			if parseRawTraces(body, raw) {
				resp, e := r.exportRawTraces(ctx, rc, raw, int64(len(body)), transportHTTP)
				if e != nil {
					return nil, e
				}
				return marshal(resp, false)
			}
		}
		ereq := ptraceotlp.NewExportRequest()
		if err := unmarshal(ereq, body, asJSON); err != nil {
			return nil, r.refuse(SignalTraces, transportHTTP, errMalformed(SignalTraces, "decode request", err))
		}
		if !asJSON {
			ctx = withRawTraces(ctx, ereq.Traces(), body)
		}
		resp, e := r.exportTraces(ctx, ereq, int64(len(body)), transportHTTP)
		if e != nil {
			return nil, e
		}
		return marshal(resp, asJSON)
	})
}

// HandleLogs serves POST /v1/logs.
func (r *Receiver) HandleLogs(w http.ResponseWriter, req *http.Request) {
	r.serveHTTP(w, req, SignalLogs, r.deps.Logs != nil, func(ctx context.Context, body []byte, asJSON bool) ([]byte, *exportError) {
		ereq := plogotlp.NewExportRequest()
		if err := unmarshal(ereq, body, asJSON); err != nil {
			return nil, r.refuse(SignalLogs, transportHTTP, errMalformed(SignalLogs, "decode request", err))
		}
		resp, e := r.exportLogs(ctx, ereq, int64(len(body)), transportHTTP)
		if e != nil {
			return nil, e
		}
		return marshal(resp, asJSON)
	})
}

// HandleMetrics serves POST /v1/metrics.
func (r *Receiver) HandleMetrics(w http.ResponseWriter, req *http.Request) {
	r.serveHTTP(w, req, SignalMetrics, r.deps.Metrics != nil, func(ctx context.Context, body []byte, asJSON bool) ([]byte, *exportError) {
		ereq := pmetricotlp.NewExportRequest()
		if err := unmarshal(ereq, body, asJSON); err != nil {
			return nil, r.refuse(SignalMetrics, transportHTTP, errMalformed(SignalMetrics, "decode request", err))
		}
		resp, e := r.exportMetrics(ctx, ereq, int64(len(body)), transportHTTP)
		if e != nil {
			return nil, e
		}
		return marshal(resp, asJSON)
	})
}

type wireCodec interface {
	UnmarshalProto([]byte) error
	UnmarshalJSON([]byte) error
}

func unmarshal(req wireCodec, body []byte, asJSON bool) error {
	if asJSON {
		return req.UnmarshalJSON(body)
	}
	return req.UnmarshalProto(body)
}

type wireResponse interface {
	MarshalProto() ([]byte, error)
	MarshalJSON() ([]byte, error)
}

func marshal(resp wireResponse, asJSON bool) ([]byte, *exportError) {
	var out []byte
	var err error
	if asJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		// The data is stored; only the answer failed to encode.
		return nil, &exportError{httpStatus: 500, msg: fmt.Sprintf("encode response: %v", err)}
	}
	return out, nil
}

// serveHTTP does what all three endpoints share: method, media type and
// encoding checks, size and memory limits, reading and decompressing the
// body, and writing the answer in the request's media type.
func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request, signal string, available bool,
	handle func(ctx context.Context, body []byte, asJSON bool) ([]byte, *exportError)) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.writeError(w, false, r.refuse(signal, transportHTTP, &exportError{
			reason: reasonMethod, httpStatus: http.StatusMethodNotAllowed,
			msg: fmt.Sprintf("otlp %s: method %s not allowed, use POST", signal, req.Method),
		}))
		return
	}
	asJSON, ok := parseContentType(req.Header.Get("Content-Type"))
	if !ok {
		r.refuse(signal, transportHTTP, &exportError{reason: reasonMediaType})
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		fmt.Fprintf(w, "otlp %s: unsupported media type %q, supported: [%s, %s]\n",
			signal, req.Header.Get("Content-Type"), contentTypeProtobuf, contentTypeJSON)
		return
	}
	if !available {
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, errNotImplemented(signal)))
		return
	}
	ctx, te := r.withTenant(req.Context(), signal, transportHTTP, req.Header.Get(tenancy.Header), false)
	if te != nil {
		r.writeError(w, asJSON, te)
		return
	}
	gzipped, ok := parseContentEncoding(req.Header.Get("Content-Encoding"))
	if !ok {
		w.Header().Set("Accept-Encoding", "gzip")
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, &exportError{
			reason: reasonEncoding, httpStatus: http.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("otlp %s: unsupported Content-Encoding %q, supported: gzip", signal, req.Header.Get("Content-Encoding")),
		}))
		return
	}
	if r.limiter.full() {
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, errMemoryLimit(signal)))
		return
	}
	if tenant, _ := tenancy.FromContext(ctx); r.consumerFull(signal, tenant) {
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, errConsumerFull(signal)))
		return
	}
	limit := int64(r.cfg.MaxRequestBytes)
	if req.ContentLength > limit {
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, errTooLarge(signal, limit)))
		return
	}

	raw := getBuffer()
	defer putBuffer(raw)
	n, err := raw.ReadFrom(io.LimitReader(req.Body, limit+1))
	r.metrics.requestBytes.WithLabelValues(signal, transportHTTP).Add(float64(n))
	if err != nil {
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, errMalformed(signal, "read body", err)))
		return
	}
	if n > limit {
		r.writeError(w, asJSON, r.refuse(signal, transportHTTP, errTooLarge(signal, limit)))
		return
	}
	body := raw.Bytes()
	if gzipped {
		plain := getBuffer()
		defer putBuffer(plain)
		if e := gunzip(plain, body, limit); e != nil {
			r.writeError(w, asJSON, r.refuse(signal, transportHTTP, e.withSignal(signal, limit)))
			return
		}
		body = plain.Bytes()
	}

	out, e := handle(ctx, body, asJSON)
	if e != nil {
		r.writeError(w, asJSON, e)
		return
	}
	if asJSON {
		w.Header().Set("Content-Type", contentTypeJSON)
	} else {
		w.Header().Set("Content-Type", contentTypeProtobuf)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// writeError answers with the OTLP error body: a google.rpc.Status in the
// request's encoding, and Retry-After when the sender should come back.
func (r *Receiver) writeError(w http.ResponseWriter, asJSON bool, e *exportError) {
	st := &spb.Status{Code: int32(e.code), Message: e.msg}
	var body []byte
	var err error
	if asJSON {
		w.Header().Set("Content-Type", contentTypeJSON)
		body, err = protojson.Marshal(st)
	} else {
		w.Header().Set("Content-Type", contentTypeProtobuf)
		body, err = proto.Marshal(st)
	}
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		body = []byte(e.msg)
	}
	if e.retryable {
		w.Header().Set("Retry-After", r.retryAfterSeconds())
	}
	w.WriteHeader(e.httpStatus)
	_, _ = w.Write(body)
}

// parseContentType tells protobuf from JSON, ignoring parameters such as
// charset.
func parseContentType(header string) (asJSON bool, ok bool) {
	mediaType, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false, false
	}
	switch mediaType {
	case contentTypeProtobuf:
		return false, true
	case contentTypeJSON:
		return true, true
	}
	return false, false
}

func parseContentEncoding(header string) (gzipped bool, ok bool) {
	switch strings.ToLower(strings.TrimSpace(header)) {
	case "", "identity":
		return false, true
	case "gzip", "x-gzip":
		return true, true
	}
	return false, false
}

// gunzipError says whether decompression failed on a bad stream or on the
// size cap, which need different answers (400 and 413).
type gunzipError struct {
	tooLarge bool
	err      error
}

func (g *gunzipError) withSignal(signal string, limit int64) *exportError {
	if g.tooLarge {
		return errTooLarge(signal, limit)
	}
	return errMalformed(signal, "gunzip body", g.err)
}

var gzipReaders sync.Pool

// gunzip decompresses src into dst, refusing to write more than limit
// bytes so a small bomb cannot take the memory a large body would.
func gunzip(dst *bytes.Buffer, src []byte, limit int64) *gunzipError {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(src))
	} else {
		err = zr.Reset(bytes.NewReader(src))
	}
	if err != nil {
		return &gunzipError{err: err}
	}
	defer gzipReaders.Put(zr)
	n, err := dst.ReadFrom(io.LimitReader(zr, limit+1))
	if err != nil {
		return &gunzipError{err: err}
	}
	if n > limit {
		return &gunzipError{tooLarge: true}
	}
	return nil
}

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufferPool.Get().(*bytes.Buffer) }

// putBuffer keeps buffers up to 4 MiB for reuse; bigger ones go to the GC so
// one large request does not pin its memory forever.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 4<<20 {
		return
	}
	b.Reset()
	bufferPool.Put(b)
}
