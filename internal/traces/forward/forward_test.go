package forward

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// spanSink counts spans by span ID over OTLP/gRPC and OTLP/HTTP. While
// down it answers UNAVAILABLE / 503; with hold set it stores one request
// and then never answers until released (a crash after delivery).
type spanSink struct {
	ptraceotlp.UnimplementedGRPCServer
	mu       sync.Mutex
	seen     map[string]int
	header   string
	down     atomic.Bool
	hold     atomic.Pointer[chan struct{}]
	holdOnce atomic.Bool
	held     chan struct{}
}

func newSpanSink() *spanSink { return &spanSink{seen: map[string]int{}, held: make(chan struct{})} }

func (s *spanSink) take(td ptrace.Traces, hdr string) {
	s.mu.Lock()
	s.header = hdr
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				id := sp.At(k).SpanID()
				s.seen[fmt.Sprintf("%x", id[:])]++
			}
		}
	}
	s.mu.Unlock()
	if h := s.hold.Load(); h != nil && s.holdOnce.CompareAndSwap(false, true) {
		close(s.held)
		<-*h
	}
}

func (s *spanSink) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	if s.down.Load() {
		return ptraceotlp.NewExportResponse(), status.Error(codes.Unavailable, "down")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	hdr := ""
	if v := md.Get("x-scope-orgid"); len(v) > 0 {
		hdr = v[0]
	}
	s.take(req.Traces(), hdr)
	return ptraceotlp.NewExportResponse(), nil
}

func (s *spanSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.take(req.Traces(), r.Header.Get("X-Scope-OrgID"))
	w.WriteHeader(http.StatusOK)
}

func (s *spanSink) unique() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *spanSink) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := 0
	for _, n := range s.seen {
		d += n - 1
	}
	return d
}

func traces(batch, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "shop")
	ss := rs.ScopeSpans().AppendEmpty()
	now := time.Now()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		var tid [16]byte
		var sid [8]byte
		binary.BigEndian.PutUint64(tid[:8], uint64(batch+1))
		binary.BigEndian.PutUint32(sid[:4], uint32(batch))
		binary.BigEndian.PutUint32(sid[4:], uint32(i+1))
		sp.SetTraceID(pcommon.TraceID(tid))
		sp.SetSpanID(pcommon.SpanID(sid))
		sp.SetName("GET /items")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	}
	return td
}

func openFwd(t *testing.T, dir string, cfg EndpointConfig) *Forwarder {
	t.Helper()
	cfg.MinBackoff = model.Duration(10 * time.Millisecond)
	cfg.MaxBackoff = model.Duration(100 * time.Millisecond)
	cfg.SegmentSize = 8 << 10
	cfg.MaxBacklog = 1 << 20
	f, err := Open(dir, []EndpointConfig{cfg}, Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func run(f *Forwarder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestForwardSurvivesOutageAndCrash runs over gRPC and HTTP: spans accepted
// while the endpoint is down arrive once it is back; a crash after an export
// was delivered but not acknowledged exports that request again, and
// nothing else twice.
func TestForwardSurvivesOutageAndCrash(t *testing.T) {
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			sink := newSpanSink()
			var endpoint string
			if proto == "grpc" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer()
				ptraceotlp.RegisterGRPCServer(srv, sink)
				go srv.Serve(ln)
				defer srv.Stop()
				endpoint = ln.Addr().String()
			} else {
				srv := httptest.NewServer(sink)
				defer srv.Close()
				endpoint = srv.URL
			}
			cfg := EndpointConfig{Endpoint: endpoint, Protocol: proto, Insecure: true, Headers: map[string]string{"X-Scope-OrgID": "team-a"}}
			dir := t.TempDir()
			f := openFwd(t, dir, cfg)
			stop := run(f)
			const per = 20
			sink.down.Store(true)
			for i := range 10 {
				if err := f.ConsumeTraces(t.Context(), traces(i, per)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "a failed export", func() bool {
				return testutil.CollectAndCount(f.m.failedRequests) > 0
			})
			sink.down.Store(false)
			waitFor(t, "the outage backlog", func() bool { return sink.unique() == 10*per })

			hold := make(chan struct{})
			sink.hold.Store(&hold)
			if err := f.ConsumeTraces(t.Context(), traces(10, per)); err != nil {
				t.Fatal(err)
			}
			<-sink.held
			stop()
			close(hold)
			f.Close()

			f2 := openFwd(t, dir, cfg)
			defer f2.Close()
			stop2 := run(f2)
			defer stop2()
			for i := 11; i < 20; i++ {
				if err := f2.ConsumeTraces(t.Context(), traces(i, per)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "every span", func() bool { return sink.unique() == 20*per })
			waitFor(t, "an empty backlog", func() bool {
				return testutil.ToFloat64(f2.m.backlog.WithLabelValues(cfg.name())) == 0
			})
			if d := sink.duplicates(); d != per {
				t.Errorf("%d duplicate spans, want %d (the one unacknowledged export)", d, per)
			}
			if sink.header != "team-a" {
				t.Errorf("header = %q", sink.header)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  EndpointConfig
		want string
	}{
		{EndpointConfig{Endpoint: "http://x:4317"}, "want host:port for grpc"},
		{EndpointConfig{Endpoint: "x:4318", Protocol: "http"}, "want an http(s) URL"},
		{EndpointConfig{Endpoint: "x:4317", Protocol: "thrift"}, "neither grpc nor http"},
	} {
		c := tc.cfg
		c.SetDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
