package otlp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// serveStore runs the OTLP receiver in front of db as app wires it, on
// 127.0.0.1:0 (gRPC and HTTP), until the test ends.
func serveStore(t *testing.T, db *tracestore.DB) (ptraceotlp.GRPCClient, string) {
	t.Helper()
	r, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{
		Traces:     otlp.TracesInvalidOn(db, tracestore.ErrInvalidID, tracestore.ErrTraceTooLarge),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = r.RunGRPC(ctx, grpcLn) }()
	go func() { defer wg.Done(); _ = r.RunHTTP(ctx, httpLn) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	conn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ptraceotlp.NewGRPCClient(conn), "http://" + httpLn.Addr().String() + otlp.PathTraces
}

func openStore(t *testing.T, dir string, mod func(*tracestore.Options)) *tracestore.DB {
	t.Helper()
	opts := tracestore.DefaultOptions()
	opts.Now = testclock.Now
	if mod != nil {
		mod(&opts)
	}
	db, err := tracestore.Open(dir, opts, tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestStorePartialSuccessAndRetries drives the real trace store through the
// gRPC receiver: a request with one oversized trace is answered OK with
// partial_success counting exactly that trace's spans, and a retried
// request is answered OK without storing anything twice.
func TestStorePartialSuccessAndRetries(t *testing.T) {
	db := openStore(t, t.TempDir(), func(o *tracestore.Options) { o.MaxTraceBytes = 8 << 10 })
	defer db.Close()
	client, _ := serveStore(t, db)

	g := storetest.NewGen(5, testclock.Now().Add(-10e9).UnixNano())
	smallID, td := g.Trace(4)
	bigID, big := g.Trace(150)
	big.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	resp, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	if err != nil {
		t.Fatalf("export with one oversized trace: %v, want OK with partial success", err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() != 150 || ps.ErrorMessage() == "" {
		t.Fatalf("partial success = %d %q, want 150 and a reason", ps.RejectedSpans(), ps.ErrorMessage())
	}
	if _, found, _ := db.TraceByID(t.Context(), smallID); !found {
		t.Fatal("small trace not stored")
	}
	if _, found, _ := db.TraceByID(t.Context(), bigID); found {
		t.Fatal("oversized trace stored")
	}

	// A retried request: OK, no partial success, nothing stored twice.
	_, retry := g.Trace(6)
	for i := 0; i < 3; i++ {
		cp := ptrace.NewTraces()
		retry.CopyTo(cp)
		resp, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(cp))
		if err != nil || resp.PartialSuccess().RejectedSpans() != 0 {
			t.Fatalf("retry %d: %v, rejected %d", i, err, resp.PartialSuccess().RejectedSpans())
		}
	}
	id := retry.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	got, found, err := db.TraceByID(t.Context(), id)
	if err != nil || !found || got.SpanCount() != 6 {
		t.Fatalf("retried trace: found=%v err=%v spans=%d, want 6", found, err, got.SpanCount())
	}
}

// TestDiskFullIsRetryable runs the receiver and store on a small tmpfs that
// fills up: gRPC answers Unavailable with RetryInfo and HTTP 503 with
// Retry-After (senders keep the data and retry), stored traces stay
// readable, and exports succeed again once space returns, with no restart.
func TestDiskFullIsRetryable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		if msg := strings.ToLower(string(out)); os.Geteuid() != 0 || strings.Contains(msg, "permission denied") || strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "only root") {
			t.Skipf("cannot mount a tmpfs here (%v: %s): needs root or CAP_SYS_ADMIN", err, out)
		}
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	db := openStore(t, filepath.Join(dir, "db"), func(o *tracestore.Options) { o.WALSegmentSize = 128 << 10 })
	defer db.Close()
	client, url := serveStore(t, db)
	g := storetest.NewGen(6, testclock.Now().Add(-10e9).UnixNano())
	export := func() (tracestore.TraceID, error) {
		id, td := g.Trace(40)
		_, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
		return id, err
	}
	stored, err := export()
	if err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 4096); ; {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	_ = f.Close()

	var refusal error
	for i := 0; i < 1000 && refusal == nil; i++ {
		_, refusal = export()
	}
	st := status.Convert(refusal)
	if st.Code() != codes.Unavailable {
		t.Fatalf("grpc on a full disk: %v, want Unavailable", refusal)
	}
	hasRetryInfo := false
	for _, d := range st.Details() {
		_, ok := d.(*errdetails.RetryInfo)
		hasRetryInfo = hasRetryInfo || ok
	}
	if !hasRetryInfo {
		t.Errorf("Unavailable without RetryInfo: %v", st.Details())
	}
	_, td := g.Trace(40)
	body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	hresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = hresp.Body.Close()
	if hresp.StatusCode != http.StatusServiceUnavailable || hresp.Header.Get("Retry-After") == "" {
		t.Fatalf("http on a full disk: %d Retry-After=%q, want 503 with Retry-After", hresp.StatusCode, hresp.Header.Get("Retry-After"))
	}
	if _, found, err := db.TraceByID(t.Context(), stored); err != nil || !found {
		t.Fatalf("a stored trace is unreadable while the disk is full: found=%v err=%v", found, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	id, err := export()
	if err != nil {
		t.Fatalf("export after space returned: %v", err)
	}
	if _, found, _ := db.TraceByID(t.Context(), id); !found {
		t.Fatal("trace exported after space returned is missing")
	}
}
