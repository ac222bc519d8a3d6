package otlp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// tenantStack is what serve builds with traces.multitenancy_enabled: the
// OTLP receiver in front of per-tenant trace stores, and the Tempo API
// reading them, all on 127.0.0.1:0.
type tenantStack struct {
	grpc     ptraceotlp.GRPCClient
	otlpHTTP string
	tempo    string
	set      *tenancy.Set[*tracestore.DB]
	logsSeen chan string
}

func newTenantStack(t *testing.T) *tenantStack {
	t.Helper()
	reg := prometheus.NewRegistry()
	set := tenancy.NewSet(filepath.Join(t.TempDir(), "traces"), func(tenant, dir string) (*tracestore.DB, error) {
		opts := tracestore.DefaultOptions()
		opts.Now = testclock.Now
		return tracestore.Open(dir, opts, tracestore.Deps{Registerer: tenancy.Registerer(reg, tenant, true)})
	})
	logsSeen := make(chan string, 4)
	r, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{
		Traces: otlp.TracesInvalidOn(otlp.TracesByTenant(func(tenant string) (otlp.TracesConsumer, error) {
			db, err := set.Get(tenant)
			if err != nil {
				return nil, err
			}
			return db, nil
		}), tracestore.ErrInvalidID, tracestore.ErrTraceTooLarge),
		Logs: otlp.LogsConsumerFunc(func(ctx context.Context, _ plog.Logs) error {
			tn, _ := tenancy.FromContext(ctx)
			logsSeen <- tn
			return nil
		}),
		TracesTenancy: true,
		LogsTenancy:   true,
		Logger:        slog.New(slog.DiscardHandler),
		Registerer:    reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	api, err := tempoapi.New(tempoapi.DefaultConfig(), tempoapi.Deps{Tenants: tempoapi.TenantStores(set), MultitenancyEnabled: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, rt := range api.Routes() {
		mux.HandleFunc(rt.Method+" "+rt.Path, rt.Handler)
	}
	lns := make([]net.Listener, 3)
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	tempoSrv := &http.Server{Handler: mux}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); _ = r.RunGRPC(ctx, lns[0]) }()
	go func() { defer wg.Done(); _ = r.RunHTTP(ctx, lns[1]) }()
	go func() { defer wg.Done(); _ = tempoSrv.Serve(lns[2]) }()
	go func() { defer wg.Done(); _ = set.Run(ctx) }()
	conn, err := grpc.NewClient(lns[0].Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		_ = tempoSrv.Close()
		cancel()
		wg.Wait()
		_ = set.Close()
	})
	return &tenantStack{grpc: ptraceotlp.NewGRPCClient(conn), otlpHTTP: "http://" + lns[1].Addr().String(),
		tempo: "http://" + lns[2].Addr().String(), set: set, logsSeen: logsSeen}
}

// oneTrace is a one-span trace of service svc with a span attribute only it has.
func oneTrace(svc string, idByte byte) (ptrace.Traces, string) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	id := pcommon.TraceID{idByte, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	sp.SetTraceID(id)
	sp.SetSpanID(pcommon.SpanID{idByte, 1, 2, 3, 4, 5, 6, 7})
	sp.SetName("op-" + svc)
	start := testclock.Now().Add(-time.Minute)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second)))
	sp.Attributes().PutStr("only."+svc, "yes")
	return td, hex.EncodeToString(id[:])
}

func (s *tenantStack) postHTTP(t *testing.T, tenant string, td ptrace.Traces) (int, string) {
	t.Helper()
	body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	req, _ := http.NewRequest(http.MethodPost, s.otlpHTTP+otlp.PathTraces, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *tenantStack) query(t *testing.T, tenant, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.tempo+path, nil)
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTraceTenantsAreIsolated(t *testing.T) {
	s := newTenantStack(t)
	// team-a pushes over gRPC (metadata), team-b over HTTP (header).
	tdA, idA := oneTrace("svc-a", 0xa1)
	ctxA := metadata.AppendToOutgoingContext(t.Context(), "x-scope-orgid", "team-a")
	if _, err := s.grpc.Export(ctxA, ptraceotlp.NewExportRequestFromTraces(tdA)); err != nil {
		t.Fatalf("gRPC export as team-a: %v", err)
	}
	tdB, idB := oneTrace("svc-b", 0xb1)
	if code, body := s.postHTTP(t, "team-b", tdB); code != 200 {
		t.Fatalf("HTTP export as team-b: %d %s", code, body)
	}

	rng := fmt.Sprintf("start=%d&end=%d", testclock.Now().Add(-time.Hour).Unix(), testclock.Now().Add(time.Hour).Unix())
	for _, tc := range []struct{ tenant, ownID, otherID, own, other string }{
		{"team-a", idA, idB, "svc-a", "svc-b"},
		{"team-b", idB, idA, "svc-b", "svc-a"},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			for _, v := range []string{"/api/traces/", "/api/v2/traces/"} {
				if code, body := s.query(t, tc.tenant, v+tc.ownID); code != 200 || !strings.Contains(body, tc.own) {
					t.Errorf("own trace %s: %d %s", v, code, body)
				}
				if code, body := s.query(t, tc.tenant, v+tc.otherID); code != 404 {
					t.Errorf("other tenant's trace %s: %d %s, want 404", v, code, body)
				}
			}
			code, body := s.query(t, tc.tenant, "/api/search?q=%7B%7D&"+rng)
			if code != 200 || !strings.Contains(body, tc.own) || strings.Contains(body, tc.other) {
				t.Errorf("search: %d %s", code, body)
			}
			for _, p := range []string{"/api/v2/search/tags?" + rng, "/api/search/tags?" + rng} {
				code, body = s.query(t, tc.tenant, p)
				if code != 200 || !strings.Contains(body, "only."+tc.own) || strings.Contains(body, "only."+tc.other) {
					t.Errorf("%s: %d %s", p, code, body)
				}
			}
			for _, p := range []string{"/api/v2/search/tag/resource.service.name/values?" + rng, "/api/search/tag/service.name/values?" + rng,
				"/api/v2/search/tag/resource.service.name/values?q=%7Bname%3D~%22op.*%22%7D&" + rng} {
				code, body = s.query(t, tc.tenant, p)
				if code != 200 || !strings.Contains(body, tc.own) || strings.Contains(body, tc.other) {
					t.Errorf("%s: %d %s", p, code, body)
				}
			}
			code, body = s.query(t, tc.tenant, "/api/metrics/query_range?q=%7B%7D%20%7C%20count_over_time()%20by%20(resource.service.name)&"+rng)
			if code != 200 || !strings.Contains(body, tc.own) || strings.Contains(body, tc.other) {
				t.Errorf("metrics: %d %s", code, body)
			}
		})
	}
	if got := s.set.Tenants(); strings.Join(got, ",") != "team-a,team-b" {
		t.Fatalf("tenant stores %v", got)
	}
}

func TestTraceTenancyRefusals(t *testing.T) {
	s := newTenantStack(t)
	td, _ := oneTrace("svc", 0xc1)
	_, err := s.grpc.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated || st.Message() != "no org id" {
		t.Fatalf("gRPC without tenant: %v, want Unauthenticated no org id", err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-scope-orgid", "../x")
	_, err = s.grpc.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "tenant ID") {
		t.Fatalf("gRPC with an invalid tenant: %v", err)
	}
	if code, body := s.postHTTP(t, "", td); code != 401 || !strings.Contains(body, "no org id") {
		t.Fatalf("HTTP without tenant: %d %q", code, body)
	}
	if code, body := s.postHTTP(t, "a b", td); code != 400 || !strings.Contains(body, "tenant ID") {
		t.Fatalf("HTTP with an invalid tenant: %d %q", code, body)
	}
	for _, p := range []string{"/api/search", "/api/traces/0123", "/api/v2/search/tags", "/api/search/tag/service.name/values", "/api/metrics/query_range?q=%7B%7D%20%7C%20rate()"} {
		if code, body := s.query(t, "", p); code != 401 || !strings.Contains(body, "no org id") {
			t.Errorf("%s without tenant: %d %q", p, code, body)
		}
		if code, _ := s.query(t, "..", p); code != 400 {
			t.Errorf("%s as ..: %d, want 400", p, code)
		}
	}
	if code, _ := s.query(t, "", "/api/echo"); code != 200 {
		t.Errorf("echo needs no tenant: %d", code)
	}
	if got := s.set.Tenants(); len(got) != 0 {
		t.Fatalf("refused requests opened stores: %v", got)
	}
	// Logs get the tenant in their context too.
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("x")
	body, _ := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	req, _ := http.NewRequest(http.MethodPost, s.otlpHTTP+otlp.PathLogs, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Scope-OrgID", "team-l")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || <-s.logsSeen != "team-l" {
		t.Fatalf("logs as team-l: %d", resp.StatusCode)
	}
}

// TestTenancyOffIsFake: without tenancy the header is ignored and the
// consumer sees tenant fake, as upstream.
func TestTenancyOffIsFake(t *testing.T) {
	seen := make(chan string, 1)
	r, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{
		Traces: otlp.TracesConsumerFunc(func(ctx context.Context, _ ptrace.Traces) error {
			tn, _ := tenancy.FromContext(ctx)
			seen <- tn
			return nil
		}),
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	td, _ := oneTrace("svc", 0xd1)
	body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	req, _ := http.NewRequest(http.MethodPost, otlp.PathTraces, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Scope-OrgID", "not/valid/but/ignored")
	w := &recorder{header: http.Header{}}
	r.HandleTraces(w, req)
	if w.code != 200 || <-seen != tenancy.Default {
		t.Fatalf("tenancy off: %d", w.code)
	}
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }
