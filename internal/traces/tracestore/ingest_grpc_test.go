package tracestore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/traces/generator"
)

const traceExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// grpcClient sends request bodies as they are to a receiver's gRPC server
// on loopback, as an OTLP/gRPC exporter would send their encoding.
type grpcClient struct {
	conn *grpc.ClientConn
	srv  *grpc.Server
	opts []grpc.CallOption // e.g. gzip
	sent int
}

func serveGRPC(t testing.TB, recv *otlp.Receiver) *grpcClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := recv.NewGRPCServer()
	go func() { _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(bytesCodec{})))
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	return &grpcClient{conn: conn, srv: srv}
}

func (c *grpcClient) close() {
	_ = c.conn.Close()
	c.srv.Stop()
}

// export sends body (with the tenant's metadata unless tenant is "") and
// returns the status, its details and the response's bytes.
func (c *grpcClient) export(t testing.TB, body []byte, tenant string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tenant)
	}
	c.sent++
	var resp wireBytes
	err := c.conn.Invoke(ctx, traceExportMethod, wireBytes(body), &resp, c.opts...)
	st := status.Convert(err)
	return fmt.Sprintf("%s %q details %s response %q", st.Code(), st.Message(), prototext.Format(st.Proto()), []byte(resp))
}

// settle waits until the receiver has counted every request sent: gRPC
// counts its own refusals (undecodable, too large) after the answer left.
func (c *grpcClient) settle(t testing.TB, reg *prometheus.Registry) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if requestsCounted(t, reg) >= float64(c.sent) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver counted %v trace requests of %d sent", requestsCounted(t, reg), c.sent)
		}
		time.Sleep(time.Millisecond)
	}
}

func requestsCounted(t testing.TB, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "nxwatcher_otlp_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "signal" && l.GetValue() == otlp.SignalTraces {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// wireBytes is a message already encoded; bytesCodec sends and receives it
// as it is.
type wireBytes []byte

type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(wireBytes))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*wireBytes) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }

// rawRequestsByTransport is nxwatcher_otlp_raw_trace_requests_total{transport}.
func rawRequestsByTransport(t testing.TB, reg *prometheus.Registry, transport string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nxwatcher_otlp_raw_trace_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == transport {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// compareGRPCPaths is comparePaths over OTLP/gRPC: the same requests
// through the raw path and pdata's answer the same (status, message,
// details, response) and leave the same state.
func compareGRPCPaths(t *testing.T, gcfg generator.Config, mod func(*Options), bodies ...[]byte) {
	t.Helper()
	compareGRPCPathsWith(t, gcfg, mod, nil, bodies...)
}

// compareGRPCPathsWith is compareGRPCPaths with the client's call options.
func compareGRPCPathsWith(t *testing.T, gcfg generator.Config, mod func(*Options), opts []grpc.CallOption, bodies ...[]byte) {
	t.Helper()
	pd := newPathRig(t, t.TempDir(), false, gcfg, mod)
	rw := newPathRig(t, t.TempDir(), true, gcfg, mod)
	defer pd.db.Close()
	defer rw.db.Close()
	pdc, rwc := serveGRPC(t, pd.recv), serveGRPC(t, rw.recv)
	defer pdc.close()
	defer rwc.close()
	pdc.opts, rwc.opts = opts, opts
	walked := 0
	for i, body := range bodies {
		if _, ok := otlp.ParseRawTraces(body); ok {
			walked++
		}
		want, got := pdc.export(t, body, ""), rwc.export(t, body, "")
		if want != got {
			t.Fatalf("request %d: raw path answers\n%s\npdata path\n%s", i, got, want)
		}
		pdc.settle(t, pd.reg)
		rwc.settle(t, rw.reg)
		if want, got := pd.state(t), rw.state(t); want != got {
			t.Fatalf("request %d: state differs:\n%s", i, lineDiff(want, got))
		}
	}
	// The raw rig took the raw path for what the walk accepts, the pdata
	// rig never.
	if got := rawRequestsByTransport(t, rw.reg, "grpc"); got != float64(walked) {
		t.Errorf("raw rig: %v gRPC requests took the raw path, want %d", got, walked)
	}
	if got := rawRequestsByTransport(t, pd.reg, "grpc"); got != 0 {
		t.Errorf("pdata rig: %v gRPC requests took the raw path, want 0", got)
	}
}

// TestGRPCRawPathMatchesPdata: TestRawPathMatchesPdata over OTLP/gRPC
// (ADR 0119).
func TestGRPCRawPathMatchesPdata(t *testing.T) {
	eachRawPathCase(t, compareGRPCPaths)
	t.Run("gzip", func(t *testing.T) {
		reqs := rawPathRequests(t)
		bodies := append(slices.Clone(reqs["otlpload requests, then their retry"]), reqs["malformed"]...)
		compareGRPCPathsWith(t, wideGenerator(), nil, []grpc.CallOption{grpc.UseCompressor(grpcgzip.Name)}, bodies...)
	})
}

// FuzzRawPathGRPC: any request sent over gRPC answers the same and leaves
// the same state on both paths.
func FuzzRawPathGRPC(f *testing.F) {
	for _, bodies := range rawPathRequests(f) {
		for _, b := range bodies {
			if len(b) < 4<<10 {
				f.Add(b)
			}
		}
	}
	var pd, rw *pathRig
	var pdc, rwc *grpcClient
	base := f.TempDir()
	closeRigs := func() {
		if pd != nil {
			pdc.close()
			rwc.close()
			pd.db.Close()
			rw.db.Close()
		}
	}
	f.Cleanup(closeRigs)
	f.Fuzz(func(t *testing.T, body []byte) {
		if pd == nil || pd.db.head.stats().traces > 100 {
			closeRigs()
			pd, rw = newFuzzRigs(t, base)
			pdc, rwc = serveGRPC(t, pd.recv), serveGRPC(t, rw.recv)
		}
		for range 2 { // and its retry
			want, got := pdc.export(t, body, ""), rwc.export(t, body, "")
			if want != got {
				t.Fatalf("raw path answers\n%s\npdata path\n%s", got, want)
			}
		}
		pdc.settle(t, pd.reg)
		rwc.settle(t, rw.reg)
		if want, got := pd.state(t), rw.state(t); want != got {
			t.Fatalf("state differs:\n%s", lineDiff(want, got))
		}
	})
}

// tenantRig is the receiver with trace tenancy, a store per tenant behind
// otlp.TracesByTenant as the app wires them, and one generator, on the raw
// request path or pdata's.
type tenantRig struct {
	dbs  map[string]*DB
	gen  *generator.Generator
	recv *otlp.Receiver
	reg  *prometheus.Registry
	app  *captureAppendable
}

var rigTenants = []string{"team-a", "team-b"}

func newTenantRig(t testing.TB, raw bool) *tenantRig {
	t.Helper()
	reg := prometheus.NewRegistry()
	rig := &tenantRig{dbs: map[string]*DB{}, reg: reg, app: &captureAppendable{}}
	for _, tenant := range rigTenants {
		db, err := Open(t.TempDir(), DefaultOptions(), Deps{Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenant}, reg)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		rig.dbs[tenant] = db
	}
	logger := slog.New(slog.DiscardHandler)
	gen, err := generator.New(wideGenerator(), generator.Deps{Appendable: rig.app, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rig.gen = gen
	var follower otlp.TracesConsumer = gen
	if !raw {
		follower = otlp.TracesConsumerFunc(gen.ConsumeTraces)
	}
	byTenant := otlp.TracesByTenant(func(tenant string) (otlp.TracesConsumer, error) {
		db, ok := rig.dbs[tenant]
		if !ok {
			return nil, fmt.Errorf("no store for tenant %q", tenant)
		}
		if raw {
			return db, nil
		}
		return otlp.TracesConsumerFunc(db.ConsumeTraces), nil
	})
	fan, err := otlp.NewTracesFanout(logger, reg, otlp.TracesInvalidOn(byTenant, ErrInvalidID, ErrTraceTooLarge), otlp.Follower{Name: "generator", Traces: follower})
	if err != nil {
		t.Fatal(err)
	}
	if raw != fan.TakesRawTraces() {
		t.Fatalf("fan-out takes raw requests: %v, want %v", fan.TakesRawTraces(), raw)
	}
	rig.recv, err = otlp.New(otlp.DefaultConfig(), otlp.Deps{Traces: fan, TracesTenancy: true, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return rig
}

// state is each tenant's head (traces and tags), then the metrics and the
// generator's series once.
func (r *tenantRig) state(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, tenant := range rigTenants {
		p := &pathRig{db: r.dbs[tenant], gen: r.gen, reg: r.reg, app: r.app}
		s := p.state(t)
		if tenant != rigTenants[len(rigTenants)-1] {
			s = s[:strings.Index(s, "# HELP")] // the shared registry and generator once, at the end
		}
		fmt.Fprintf(&b, "tenant %s:\n%s\n", tenant, s)
	}
	return b.String()
}

// TestTenantRawPathMatchesPdata: two tenants' requests, interleaved, over
// OTLP/HTTP and OTLP/gRPC: each tenant's store holds on the raw path what
// it holds on pdata's, and no tenant's spans reach the other's store.
func TestTenantRawPathMatchesPdata(t *testing.T) {
	reqs := rawPathRequests(t)
	type send struct {
		tenant string
		body   []byte
	}
	var sends []send
	for i, name := range []string{
		"otlpload requests, then their retry", "duplicates in a request, then a retry", "SDK-style encoding",
		"typed values and the complex fallback", "mixed: raw, pdata, raw of the same ids", "all-zero IDs take pdata's path",
	} {
		for j, body := range reqs[name] {
			// Interleaved, and the same request to both tenants: each
			// tenant stores its own copy; a retry is a duplicate only
			// within its tenant.
			sends = append(sends, send{rigTenants[(i+j)%2], body}, send{rigTenants[(i+j+1)%2], body})
		}
	}
	sends = append(sends, send{"", reqs["otlpload requests, then their retry"][0]}) // no tenant: refused on both paths
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			pd, rw := newTenantRig(t, false), newTenantRig(t, true)
			post := func(r *tenantRig, body []byte, tenant string) string {
				return (&pathRig{recv: r.recv}).postAs(body, tenant)
			}
			if transport == "grpc" {
				pdc, rwc := serveGRPC(t, pd.recv), serveGRPC(t, rw.recv)
				defer pdc.close()
				defer rwc.close()
				post = func(r *tenantRig, body []byte, tenant string) string {
					c := pdc
					if r == rw {
						c = rwc
					}
					s := c.export(t, body, tenant)
					c.settle(t, r.reg)
					return s
				}
			}
			for i, s := range sends {
				want, got := post(pd, s.body, s.tenant), post(rw, s.body, s.tenant)
				if want != got {
					t.Fatalf("request %d (tenant %q): raw path answers\n%s\npdata path\n%s", i, s.tenant, got, want)
				}
				if want, got := pd.state(t), rw.state(t); want != got {
					t.Fatalf("request %d (tenant %q): state differs:\n%s", i, s.tenant, lineDiff(want, got))
				}
			}
			if got := rawRequestsByTransport(t, rw.reg, transport); got <= 0 {
				t.Errorf("no request took the raw path over %s", transport)
			}
			// Each tenant got what was sent to it: the same requests, so
			// the same traces, in stores of their own.
			a, b := rw.dbs[rigTenants[0]].head.stats().traces, rw.dbs[rigTenants[1]].head.stats().traces
			if a == 0 || a != b {
				t.Errorf("tenants hold %d and %d traces, want the same, more than 0", a, b)
			}
		})
	}
}
