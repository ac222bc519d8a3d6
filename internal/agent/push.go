package agent

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// PushTargetConfig is a scrape config's loki_push_api block: the job runs
// its own HTTP server that accepts Loki pushes (protobuf+snappy or JSON on
// POST /loki/api/v1/push) and sends what it receives through the job's
// relabel rules and pipeline to the clients — Promtail's push target, for
// chaining agents or for applications that push.
type PushTargetConfig struct {
	Server               PushServerConfig `yaml:"server"`
	Labels               model.LabelSet   `yaml:"labels"`
	UseIncomingTimestamp bool             `yaml:"use_incoming_timestamp"`
}

// PushServerConfig is the push target's server block; the gRPC keys are
// accepted and ignored (the agent receives HTTP only).
type PushServerConfig struct {
	HTTPListenAddress string `yaml:"http_listen_address"`
	HTTPListenPort    int    `yaml:"http_listen_port"`
	GRPCListenAddress string `yaml:"grpc_listen_address"`
	GRPCListenPort    int    `yaml:"grpc_listen_port"`
	// MaxRecvMsgSize bounds a request body (Promtail's
	// grpc_server_max_recv_msg_size, also applied to HTTP; 100 MB).
	MaxRecvMsgSize int `yaml:"grpc_server_max_recv_msg_size"`
	// HTTPTLSConfig serves the push endpoint over TLS.
	HTTPTLSConfig *HTTPTLSConfig `yaml:"http_tls_config,omitempty"`
}

const defaultMaxPushBody = 100 << 20

// pushTarget is one running loki_push_api server.
type pushTarget struct {
	src    *lineSource
	cfg    PushTargetConfig
	ln     net.Listener
	srv    *http.Server
	logger *slog.Logger
	// ctx ends when the agent stops reading: a push blocked on a full
	// client queue is then answered 503.
	ctx context.Context
	tls bool
}

func newPushTarget(src *lineSource, cfg PushTargetConfig, logger *slog.Logger) (*pushTarget, error) {
	addr := net.JoinHostPort(cfg.Server.HTTPListenAddress, strconv.Itoa(cfg.Server.HTTPListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loki_push_api job %q: listen %s: %w", src.job, addr, err)
	}
	t := &pushTarget{src: src, cfg: cfg, ln: ln, logger: logger.With("job", src.job, "source", "loki_push_api")}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /loki/api/v1/push", t.servePush)
	// Newline-delimited plain lines, labelled by the job only.
	mux.HandleFunc("POST /promtail/api/v1/raw", t.serveRaw)
	mux.HandleFunc("POST /loki/api/v1/raw", t.serveRaw)
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	t.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(t.logger.Handler(), slog.LevelWarn),
	}
	if tc := cfg.Server.HTTPTLSConfig; tc != nil {
		tlsCfg, err := web.ConfigToTLSConfig(&web.TLSConfig{TLSCertPath: tc.CertFile, TLSKeyPath: tc.KeyFile, ClientAuth: tc.ClientAuthType, ClientCAs: tc.ClientCAFile})
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("loki_push_api job %q: server.http_tls_config: %w", src.job, err)
		}
		t.srv.TLSConfig = tlsCfg
		t.tls = true
	}
	return t, nil
}

// serveRaw takes a body of newline-delimited lines; each becomes an entry
// with the job's labels and the time it arrived.
func (t *pushTarget) serveRaw(w http.ResponseWriter, r *http.Request) {
	limit := int64(t.cfg.Server.MaxRecvMsgSize)
	if limit <= 0 {
		limit = defaultMaxPushBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil || int64(len(body)) > limit {
		t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "bad_request").Inc()
		http.Error(w, "body unreadable or too large", http.StatusBadRequest)
		return
	}
	ctx := t.ctx
	if ctx == nil {
		ctx = r.Context()
	}
	in := model.LabelSet{}
	if tenant := r.Header.Get("X-Scope-OrgID"); tenant != "" {
		in[tenantLabel] = model.LabelValue(tenant)
	}
	now := time.Now()
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		t.src.handle(ctx, in, Entry{Time: now, Line: line})
		if ctx.Err() != nil {
			http.Error(w, "agent stopping", http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (t *pushTarget) run(ctx context.Context) {
	t.ctx = ctx
	t.logger.Info("Receiving Loki pushes", "addr", t.ln.Addr().String(), "tls", t.tls)
	serve := func() error { return t.srv.Serve(t.ln) }
	if t.tls {
		serve = func() error { return t.srv.ServeTLS(t.ln, "", "") }
	}
	if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.logger.Error("push server stopped", "err", err)
	}
}

// stop closes the listener and waits for running pushes (bounded).
func (t *pushTarget) stop() {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.srv.Shutdown(sctx); err != nil {
		_ = t.srv.Close()
	}
}

func (t *pushTarget) servePush(w http.ResponseWriter, r *http.Request) {
	limit := int64(t.cfg.Server.MaxRecvMsgSize)
	if limit <= 0 {
		limit = defaultMaxPushBody
	}
	streams, err := decodePush(r, limit)
	if err != nil {
		t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "bad_request").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tenant := r.Header.Get("X-Scope-OrgID")
	now := time.Now()
	ctx := t.ctx
	if ctx == nil {
		ctx = r.Context()
	}
	for _, s := range streams {
		in := s.labels
		if tenant != "" {
			in = in.Clone()
			in[tenantLabel] = model.LabelValue(tenant)
		}
		for _, e := range s.entries {
			if !t.cfg.UseIncomingTimestamp {
				e.Time = now
			}
			t.src.handle(ctx, in, e)
			if ctx.Err() != nil {
				http.Error(w, "agent stopping", http.StatusServiceUnavailable)
				return
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

type pushStream struct {
	labels  model.LabelSet
	entries []Entry
}

// decodePush reads a Loki push body: protobuf+snappy (the default content
// type, as Loki) or JSON, either optionally gzip-encoded.
func decodePush(r *http.Request, limit int64) ([]pushStream, error) {
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer gz.Close()
		body = gz
	}
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("body larger than %d bytes", limit)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		return decodePushJSON(raw)
	}
	return decodePushProto(raw)
}

func decodePushProto(raw []byte) ([]pushStream, error) {
	data, err := snappy.Decode(nil, raw)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var req push.PushRequest
	if err := req.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	out := make([]pushStream, 0, len(req.Streams))
	for _, s := range req.Streams {
		ls, err := parseStreamLabels(s.Labels)
		if err != nil {
			return nil, err
		}
		ps := pushStream{labels: ls, entries: make([]Entry, 0, len(s.Entries))}
		for _, e := range s.Entries {
			en := Entry{Time: e.Timestamp, Line: e.Line}
			if len(e.StructuredMetadata) > 0 {
				en.Metadata = make(model.LabelSet, len(e.StructuredMetadata))
				for _, m := range e.StructuredMetadata {
					en.Metadata[model.LabelName(m.Name)] = model.LabelValue(m.Value)
				}
			}
			ps.entries = append(ps.entries, en)
		}
		out = append(out, ps)
	}
	return out, nil
}

// metricParser is safe for concurrent use (it keeps no parse state).
var metricParser = parser.NewParser(parser.Options{})

func parseStreamLabels(s string) (model.LabelSet, error) {
	ls, err := metricParser.ParseMetric(s)
	if err != nil {
		return nil, fmt.Errorf("stream labels %q: %w", s, err)
	}
	out := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) { out[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return out, nil
}

// jsonPush is Loki's JSON push body.
type jsonPush struct {
	Streams []struct {
		Stream map[string]string   `json:"stream"`
		Values [][]json.RawMessage `json:"values"`
	} `json:"streams"`
}

func decodePushJSON(raw []byte) ([]pushStream, error) {
	var req jsonPush
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	out := make([]pushStream, 0, len(req.Streams))
	for i, s := range req.Streams {
		ls := make(model.LabelSet, len(s.Stream))
		for k, v := range s.Stream {
			if !model.LegacyValidation.IsValidLabelName(k) {
				return nil, fmt.Errorf("streams[%d].stream: invalid label name %q", i, k)
			}
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
		ps := pushStream{labels: ls, entries: make([]Entry, 0, len(s.Values))}
		for j, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return nil, fmt.Errorf("streams[%d].values[%d]: want [ts, line] or [ts, line, metadata]", i, j)
			}
			var tsStr, line string
			if err := json.Unmarshal(v[0], &tsStr); err != nil {
				return nil, fmt.Errorf("streams[%d].values[%d]: timestamp must be a string of nanoseconds", i, j)
			}
			ns, err := strconv.ParseInt(tsStr, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("streams[%d].values[%d]: timestamp %q: %w", i, j, tsStr, err)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, fmt.Errorf("streams[%d].values[%d]: line must be a string", i, j)
			}
			en := Entry{Time: time.Unix(0, ns), Line: line}
			if len(v) == 3 {
				var md map[string]string
				if err := json.Unmarshal(v[2], &md); err != nil {
					return nil, fmt.Errorf("streams[%d].values[%d]: structured metadata must be an object of strings", i, j)
				}
				if len(md) > 0 {
					en.Metadata = make(model.LabelSet, len(md))
					for k, val := range md {
						en.Metadata[model.LabelName(k)] = model.LabelValue(val)
					}
				}
			}
			ps.entries = append(ps.entries, en)
		}
		out = append(out, ps)
	}
	return out, nil
}
