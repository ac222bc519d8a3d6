// Command otlpload pushes traces over OTLP/HTTP into a real `nxwatcher serve`
// and measures what issue 17's trace rows ask of the whole server, not the
// store alone:
//
//   - the 200k-span row (default): 40k traces of 5 spans across 5 services,
//     pushed by 4 senders as OTLP/HTTP protobuf requests of 100 traces;
//     serve's VmRSS at the end of the push and once the head is cut, its
//     VmHWM (peak), then a TraceQL search through /api/search with
//     limit=1000 (wall and serve CPU, median of -searches runs);
//   - -sustained DURATION: the same requests sent again and again with fresh
//     trace IDs for a window long enough that blocks are cut and compacted;
//     spans accepted per CPU-second of serve;
//   - -grpc: the same requests over OTLP/gRPC (pdata's ptraceotlp client,
//     one connection per sender; -gzip then compresses with gRPC's gzip)
//     instead of OTLP/HTTP protobuf;
//   - -open-store DIR: open a trace store directory (written by
//     bench/traces/tracebench -dir) and report open time and live heap, for
//     the 1G-span projection.
//
// serve runs as a child process (built from ./cmd/nxwatcher into the work
// directory unless -nxwatcher is given) on 127.0.0.1 port 0 with a temporary
// config and storage; its memory and CPU are read from /proc/PID. With
// -inprocess, internal/app runs inside this process instead, so that
// -cpuprofile and -memprofile see serve's code (the senders run under the
// pprof label role=sender; /proc figures then include them).
//
//	go run ./bench/traces/otlpload                                  # the 200k-span row
//	go run ./bench/traces/otlpload -sustained 4m -warmup 30s        # spans per serve CPU-second
//	go run ./bench/traces/otlpload -sustained 3m -warmup 20s -grpc   # the same over OTLP/gRPC
//	go run ./bench/traces/otlpload -inprocess -sustained 3m -cpuprofile cpu.pprof
//	go run ./bench/traces/otlpload -open-store /tmp/tracebench-dir [-compact]
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

type options struct {
	bin                   string
	inprocess             bool
	traces, spansPerTrace int
	senders, batch        int
	gzip                  bool
	grpc                  bool
	query                 string
	limit, searches       int
	settle                time.Duration
	sustained, warmup     time.Duration
	sample                time.Duration
	cpuprofile, memprof   string
	out                   string
	keep                  bool
	openStore             string
	compact               bool
	gogc, gomemlimit      string
	configExtra           string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "nxwatcher", "", "nxwatcher binary; empty builds ./cmd/nxwatcher into the work directory (CGO_ENABLED=0, -trimpath -s -w, as the image)")
	flag.BoolVar(&o.inprocess, "inprocess", false, "run serve (internal/app) in this process, for -cpuprofile/-memprofile; /proc figures then include the senders")
	flag.IntVar(&o.traces, "traces", 40000, "traces to push (the 200k-span row: 40k traces of 5 spans)")
	flag.IntVar(&o.spansPerTrace, "spans-per-trace", 5, "spans per trace")
	flag.IntVar(&o.senders, "senders", 4, "concurrent senders")
	flag.IntVar(&o.batch, "batch", 100, "traces per OTLP request")
	flag.BoolVar(&o.gzip, "gzip", false, "gzip request bodies (Content-Encoding: gzip; with -grpc the gRPC gzip compressor)")
	flag.BoolVar(&o.grpc, "grpc", false, "push over OTLP/gRPC (ptraceotlp client, a connection per sender) instead of OTLP/HTTP protobuf")
	flag.StringVar(&o.query, "q", `{ resource.service.name = "payment" && span.http.status_code = 500 }`, "TraceQL search to time")
	flag.IntVar(&o.limit, "limit", 1000, "limit= of the search")
	flag.IntVar(&o.searches, "searches", 5, "times the search is run (the median is reported)")
	flag.DurationVar(&o.settle, "settle", 2*time.Minute, "after the push, wait at most this long for the head to be cut into a block (traces go idle after traces.trace_idle, 10s) before the searches; 0 = search at once")
	flag.DurationVar(&o.sustained, "sustained", 0, "push without pause for this long (after -warmup) and report spans per serve CPU-second; 0 = the 200k-span row")
	flag.DurationVar(&o.warmup, "warmup", 30*time.Second, "sustained: push this long before the measured window")
	flag.DurationVar(&o.sample, "every", 250*time.Millisecond, "RSS sample interval during the push")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "with -inprocess: CPU profile of the measured window (the push, or the sustained window)")
	flag.StringVar(&o.memprof, "memprofile", "", "with -inprocess: heap profile (live objects after GC) at the end of the push or of the sustained window")
	flag.StringVar(&o.out, "out", "", "work directory (binary, config, data, serve log); empty: a temporary one, removed unless -keep")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.openStore, "open-store", "", "only open this trace store directory and report open time and live heap")
	flag.BoolVar(&o.compact, "compact", false, "with -open-store: then compact it (writes to the directory) and open it again")
	flag.StringVar(&o.gogc, "gogc", "", "GOGC of the serve child (empty: inherit)")
	flag.StringVar(&o.gomemlimit, "gomemlimit", "", "GOMEMLIMIT of the serve child (empty: inherit)")
	flag.StringVar(&o.configExtra, "config-extra", "", "YAML appended to serve's config, e.g. 'traces: {max_head_bytes: 64MiB}'")
	flag.Parse()
	if (o.cpuprofile != "" || o.memprof != "") && !o.inprocess {
		fmt.Fprintln(os.Stderr, "otlpload: -cpuprofile and -memprofile need -inprocess (serve serves no /debug/pprof)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.openStore != "" {
		err = openStore(ctx, o.openStore, o.compact)
	} else {
		err = run(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlpload:", err)
		os.Exit(1)
	}
}

// target is the serve under test, in a child process or in this one.
type target struct {
	web, otlp string // http://host:port of the main and the OTLP/HTTP listeners
	grpc      string // host:port of the OTLP/gRPC listener
	pid       int
	alive     func() error
	stop      func()
	log       string
}

// serveConfig is the embedded default (metrics scraping itself, logs,
// traces with the metrics-generator, alerting) with every listener on a
// loopback port 0.
func serveConfig(root, dir, extra string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "internal/config/default.yml"))
	if err != nil {
		return "", err
	}
	cfg := string(b) + "otlp: {grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\n"
	if extra != "" {
		cfg += extra + "\n"
	}
	p := filepath.Join(dir, "nxwatcher.yml")
	return p, os.WriteFile(p, []byte(cfg), 0o644)
}

var (
	webRE      = regexp.MustCompile(`msg=Listening component=web address=(127\.0\.0\.1:\d+)`)
	otlpRE     = regexp.MustCompile(`msg=Listening component=otlp protocol=http address=(127\.0\.0\.1:\d+)`)
	otlpGRPCRE = regexp.MustCompile(`msg=Listening component=otlp protocol=grpc address=(127\.0\.0\.1:\d+)`)
)

// addresses waits until the log names the three listeners.
func addresses(ctx context.Context, log string, alive func() error) (web, otlp, otlpGRPC string, err error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(log)
		w, o, g := webRE.FindSubmatch(b), otlpRE.FindSubmatch(b), otlpGRPCRE.FindSubmatch(b)
		if w != nil && o != nil && g != nil {
			return "http://" + string(w[1]), "http://" + string(o[1]), string(g[1]), nil
		}
		if err := alive(); err != nil {
			return "", "", "", err
		}
		select {
		case <-ctx.Done():
			return "", "", "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", "", "", fmt.Errorf("no Listening lines for web, otlp http and grpc in %s after 2m:\n%s", log, benchproc.Tail(log))
}

func waitReady(ctx context.Context, base string, alive func() error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/-/ready not 200 after 2m", base)
}

func startChild(ctx context.Context, o options, root, dir, cfg string) (*target, error) {
	if o.bin == "" {
		o.bin = filepath.Join(dir, "nxwatcher")
		benchproc.Logf("building %s", o.bin)
		b := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", o.bin, "./cmd/nxwatcher")
		b.Dir, b.Stdout, b.Stderr = root, os.Stderr, os.Stderr
		b.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := b.Run(); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	t := &target{log: filepath.Join(dir, "serve.log")}
	f, err := os.Create(t.log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.bin, "serve", "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = os.Environ()
	if o.gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+o.gogc)
	}
	if o.gomemlimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+o.gomemlimit)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	t.pid = cmd.Process.Pid
	t.alive = func() error {
		select {
		case <-exited:
			return fmt.Errorf("serve exited; log tail:\n%s", benchproc.Tail(t.log))
		default:
			return nil
		}
	}
	t.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	if t.web, t.otlp, t.grpc, err = addresses(ctx, t.log, t.alive); err != nil {
		t.stop()
		return nil, err
	}
	if err := waitReady(ctx, t.web, t.alive); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func startInProcess(ctx context.Context, dir, cfg string) (*target, error) {
	t := &target{log: filepath.Join(dir, "serve.log"), pid: os.Getpid()}
	f, err := os.Create(t.log)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	data := filepath.Join(dir, "data")
	a, err := app.New(app.Options{ConfigFile: cfg, StoragePath: data, ListenAddress: "127.0.0.1:0",
		Flags: map[string]string{"config.file": cfg, "storage.path": data}}, app.Deps{Logger: logger})
	if err != nil {
		f.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	var once sync.Once
	var runErr error
	finished := func() bool {
		select {
		case runErr = <-done:
			return true
		default:
			return false
		}
	}
	t.alive = func() error {
		if finished() {
			return fmt.Errorf("serve (in process) stopped: %v", runErr)
		}
		return nil
	}
	t.stop = func() {
		once.Do(func() {
			cancel()
			if runErr == nil {
				runErr = <-done
			}
			_ = a.Close()
			f.Close()
		})
	}
	if t.web, t.otlp, t.grpc, err = addresses(ctx, t.log, t.alive); err != nil {
		t.stop()
		return nil, err
	}
	if err := waitReady(ctx, t.web, t.alive); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func run(ctx context.Context, o options) (err error) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		return err
	}
	dir, cleanup, err := benchproc.WorkDir(o.out, "otlpload-", o.keep)
	if err != nil {
		return err
	}
	defer cleanup()
	cfg, err := serveConfig(root, dir, o.configExtra)
	if err != nil {
		return err
	}

	// The requests first, before serve starts: the generator's memory is
	// ours, not serve's, and the push measures only sending.
	benchproc.Logf("generating %d traces of %d spans in requests of %d traces", o.traces, o.spansPerTrace, o.batch)
	base := time.Now().Add(-time.Minute).UnixNano()
	reqs, err := buildRequests(storetest.NewGen(42, base), o.traces, o.spansPerTrace, o.batch, o.gzip && !o.grpc)
	if err != nil {
		return err
	}
	var wire int
	for _, r := range reqs {
		wire += len(r.body)
	}
	benchproc.Logf("%d requests, %.1f MiB on the wire (%.0f bytes/span)", len(reqs), benchproc.MiB(int64(wire)), float64(wire)/float64(o.traces*o.spansPerTrace))

	var t *target
	if o.inprocess {
		t, err = startInProcess(ctx, dir, cfg)
	} else {
		t, err = startChild(ctx, o, root, dir, cfg)
	}
	if err != nil {
		return err
	}
	defer t.stop()
	benchproc.Logf("serve (pid %d, in process %v) ready: web %s, otlp/http %s; work dir %s", t.pid, o.inprocess, t.web, t.otlp, dir)

	fmt.Printf("# bench/traces/otlpload traces=%d spans/trace=%d senders=%d batch=%d gzip=%v grpc=%v inprocess=%v gogc=%q gomemlimit=%q config-extra=%q load=%s\n",
		o.traces, o.spansPerTrace, o.senders, o.batch, o.gzip, o.grpc, o.inprocess, o.gogc, o.gomemlimit, o.configExtra, benchproc.LoadAvg())
	rss0, hwm0, _ := benchproc.ProcMem(t.pid)
	fmt.Printf("serve ready: RSS %.1f MiB, peak %.1f MiB\n", benchproc.MiB(rss0), benchproc.MiB(hwm0))

	if o.sustained > 0 {
		return sustained(ctx, o, t, reqs)
	}
	return row(ctx, o, t, reqs)
}

// request is one encoded OTLP export request and where its trace IDs sit
// in the body, so a sender can give every copy fresh IDs.
type request struct {
	body    []byte
	spans   int
	offsets []int // of each span's trace_id (16 bytes); only for uncompressed bodies
}

func buildRequests(g *storetest.Gen, traces, spansPerTrace, batch int, gz bool) ([]request, error) {
	var out []request
	for done := 0; done < traces; {
		td := ptrace.NewTraces()
		var ids []pcommon.TraceID
		for i := 0; i < batch && done < traces; i++ {
			id := g.TraceID()
			g.AppendTrace(td, id, spansPerTrace, pcommon.SpanID{})
			ids = append(ids, id)
			done++
		}
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			return nil, err
		}
		r := request{body: body, spans: td.SpanCount()}
		if !gz {
			r.offsets = traceIDOffsets(body, ids)
		} else {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(body)
			if err := zw.Close(); err != nil {
				return nil, err
			}
			r.body = b.Bytes()
		}
		out = append(out, r)
	}
	return out, nil
}

// traceIDOffsets finds every occurrence of the given trace IDs in body
// (spans' trace_id fields; a 16-byte random ID does not occur by chance).
func traceIDOffsets(body []byte, ids []pcommon.TraceID) []int {
	var offs []int
	for _, id := range ids {
		for from := 0; ; {
			i := bytes.Index(body[from:], id[:])
			if i < 0 {
				break
			}
			offs = append(offs, from+i)
			from += i + len(id)
		}
	}
	slices.Sort(offs)
	return offs
}

// withRound copies r's body into dst with every trace ID's second half
// XORed with round, so each round sends new traces (round 0: unchanged).
func withRound(dst []byte, r request, round uint64) []byte {
	dst = append(dst[:0], r.body...)
	if round == 0 {
		return dst
	}
	for _, off := range r.offsets {
		v := binary.LittleEndian.Uint64(dst[off+8:]) ^ round
		binary.LittleEndian.PutUint64(dst[off+8:], v)
	}
	return dst
}

// sender counters.
type sendStats struct {
	requests, spans, retries atomic.Int64
}

// sender sends one request body until serve accepts it.
type sender interface {
	send(ctx context.Context, body []byte, st *sendStats) error
	close()
}

// newSender is an OTLP/HTTP client shared by the senders, or one OTLP/gRPC
// connection for one sender.
func newSender(o options, t *target, shared *http.Client) (sender, error) {
	if !o.grpc {
		return httpSender{c: shared, url: t.otlp + "/v1/traces", gz: o.gzip}, nil
	}
	conn, err := grpc.NewClient(t.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	g := &grpcSender{conn: conn, client: ptraceotlp.NewGRPCClient(conn)}
	if o.gzip {
		g.opts = append(g.opts, grpc.UseCompressor(grpcgzip.Name))
	}
	return g, nil
}

type httpSender struct {
	c   *http.Client
	url string
	gz  bool
}

func (h httpSender) send(ctx context.Context, body []byte, st *sendStats) error {
	return send(ctx, h.c, h.url, body, h.gz, st)
}

func (httpSender) close() {}

type grpcSender struct {
	conn   *grpc.ClientConn
	client ptraceotlp.GRPCClient
	opts   []grpc.CallOption
}

func (g *grpcSender) close() { _ = g.conn.Close() }

// send exports body (decoded here, in the bench process, and encoded again
// by the client as any pdata-based sender would) and retries Unavailable
// and ResourceExhausted as send retries 429 and 503.
func (g *grpcSender) send(ctx context.Context, body []byte, st *sendStats) error {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		resp, err := g.client.Export(ctx, req, g.opts...)
		code := status.Code(err)
		switch {
		case err == nil:
			if n := resp.PartialSuccess().RejectedSpans(); n > 0 {
				return fmt.Errorf("partial success: %d spans rejected: %s", n, resp.PartialSuccess().ErrorMessage())
			}
			st.requests.Add(1)
			return nil
		case (code == codes.Unavailable || code == codes.ResourceExhausted) && attempt < 2400 && ctx.Err() == nil:
			st.retries.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return fmt.Errorf("push over grpc: %w", err)
		}
	}
}

func newClient(senders int) *http.Client {
	return &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders, DisableCompression: true},
	}
}

// send posts one body until serve accepts it; 429 and 503 are retried
// after a short pause, as an OTLP exporter would (sooner than one).
func send(ctx context.Context, c *http.Client, u string, body []byte, gz bool, st *sendStats) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			var r ptraceotlp.ExportResponse = ptraceotlp.NewExportResponse()
			if err := r.UnmarshalProto(msg); err == nil && r.PartialSuccess().RejectedSpans() > 0 {
				return fmt.Errorf("partial success: %d spans rejected: %s", r.PartialSuccess().RejectedSpans(), r.PartialSuccess().ErrorMessage())
			}
			st.requests.Add(1)
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 2400:
			// Retried every 50 ms for up to 2 minutes (an exporter would
			// wait Retry-After, 1 s, and back off; this keeps the store
			// as busy as it lets itself be).
			st.retries.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return fmt.Errorf("push: %s: %.200s", resp.Status, msg)
		}
	}
}

// sampler records serve's RSS every interval until stopped.
type sampler struct {
	pid     int
	stopc   chan struct{}
	done    chan struct{}
	maxRSS  int64
	samples int
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			if rss, _, err := benchproc.ProcMem(pid); err == nil {
				s.maxRSS = max(s.maxRSS, rss)
				s.samples++
			}
			select {
			case <-s.stopc:
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() { close(s.stopc); <-s.done }

// push sends reqs once with o.senders senders.
func push(ctx context.Context, o options, t *target, reqs []request, st *sendStats) error {
	c := newClient(o.senders)
	defer c.CloseIdleConnections()
	next := make(chan int)
	errc := make(chan error, o.senders)
	var wg sync.WaitGroup
	for range o.senders {
		s, err := newSender(o, t, c)
		if err != nil {
			close(next)
			wg.Wait()
			return err
		}
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("role", "sender"), func(ctx context.Context) {
			defer wg.Done()
			defer s.close()
			for i := range next {
				if err := s.send(ctx, reqs[i].body, st); err != nil {
					errc <- err
					return
				}
				st.spans.Add(int64(reqs[i].spans))
			}
		})
	}
	var err error
loop:
	for i := range reqs {
		select {
		case next <- i:
		case err = <-errc:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

var metricNames = []string{
	"nxwatcher_otlp_accepted_items_total", "nxwatcher_tracestore_ingested_spans_total",
	"nxwatcher_tracestore_blocks_cut_total", "nxwatcher_tracestore_compactions_total",
	"nxwatcher_tracestore_blocks", "nxwatcher_tracestore_head_bytes", "nxwatcher_tracestore_head_traces",
	"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes",
}

func metrics(t *target) map[string]float64 {
	s := &benchproc.Server{Name: "serve", Base: t.web}
	m, _ := s.Metric(metricNames...)
	return m
}

func mib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }

func printMetrics(when string, m map[string]float64) {
	fmt.Printf("%s: head %.0f traces / %s MiB, %.0f blocks (%.0f cut, %.0f compacted), go heap in use %s MiB, go sys %s MiB\n", when,
		m["nxwatcher_tracestore_head_traces"], mib(m["nxwatcher_tracestore_head_bytes"]), m["nxwatcher_tracestore_blocks"],
		m["nxwatcher_tracestore_blocks_cut_total"], m["nxwatcher_tracestore_compactions_total"],
		mib(m["go_memstats_heap_inuse_bytes"]), mib(m["go_memstats_sys_bytes"]))
}

// row is the 200k-span row: one push, memory, then the search.
func row(ctx context.Context, o options, t *target, reqs []request) error {
	var stopProfile func()
	if o.cpuprofile != "" {
		var err error
		if stopProfile, err = startCPUProfile(o.cpuprofile); err != nil {
			return err
		}
	}
	smp := startSampler(t.pid, o.sample)
	cpu0, _ := benchproc.ProcCPU(t.pid)
	self0 := selfCPU()
	start := time.Now()
	var st sendStats
	err := push(ctx, o, t, reqs, &st)
	wall := time.Since(start)
	cpu1, _ := benchproc.ProcCPU(t.pid)
	self1 := selfCPU()
	smp.stop()
	if stopProfile != nil {
		stopProfile()
	}
	if err != nil {
		return err
	}
	rss, hwm, _ := benchproc.ProcMem(t.pid)
	spans := st.spans.Load()
	fmt.Printf("push: %d spans in %d requests (%d retried) in %s wall: %.0f spans/s; serve %.2f CPU-s = %.0f spans per serve CPU-second; bench %.2f CPU-s\n",
		spans, st.requests.Load(), st.retries.Load(), wall.Round(time.Millisecond), float64(spans)/wall.Seconds(),
		cpu1-cpu0, float64(spans)/(cpu1-cpu0), self1-self0)
	fmt.Printf("serve at the end of the push: RSS %.1f MiB, peak (VmHWM) %.1f MiB, highest sampled RSS %.1f MiB (%d samples); load %s\n",
		benchproc.MiB(rss), benchproc.MiB(hwm), benchproc.MiB(smp.maxRSS), smp.samples, benchproc.LoadAvg())
	printMetrics("store at the end of the push", metrics(t))
	if o.memprof != "" {
		if err := writeHeapProfile(o.memprof); err != nil {
			return err
		}
	}

	if o.settle > 0 {
		// Wait until the pushed traces have gone idle and been cut into a
		// block (the head is empty and nothing is being flushed: blocks > 0),
		// sampling RSS meanwhile, so the search reads a block as it would
		// a minute after ingest.
		smp = startSampler(t.pid, o.sample)
		settled := time.Now()
		var m map[string]float64
		for {
			m = metrics(t)
			if m["nxwatcher_tracestore_head_traces"] == 0 && m["nxwatcher_tracestore_blocks"] > 0 {
				break
			}
			if time.Since(settled) > o.settle {
				smp.stop()
				return fmt.Errorf("the head was not cut within -settle %s", o.settle)
			}
			if err := t.alive(); err != nil {
				smp.stop()
				return err
			}
			select {
			case <-ctx.Done():
				smp.stop()
				return ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
		smp.stop()
		rss, hwm, _ = benchproc.ProcMem(t.pid)
		fmt.Printf("serve once the head was cut (%s after the push): RSS %.1f MiB, peak (VmHWM) %.1f MiB, highest sampled RSS %.1f MiB\n",
			time.Since(settled).Round(100*time.Millisecond), benchproc.MiB(rss), benchproc.MiB(hwm), benchproc.MiB(smp.maxRSS))
		printMetrics("store once the head was cut", m)
	}
	if err := t.alive(); err != nil {
		return err
	}
	return search(ctx, o, t)
}

// search runs the TraceQL search o.searches times and reports each and the
// median: wall time, serve CPU, traces returned.
func search(ctx context.Context, o options, t *target) error {
	now := time.Now()
	q := url.Values{}
	q.Set("q", o.query)
	q.Set("limit", strconv.Itoa(o.limit))
	q.Set("start", strconv.FormatInt(now.Add(-2*time.Hour).Unix(), 10))
	q.Set("end", strconv.FormatInt(now.Add(time.Minute).Unix(), 10))
	u := t.web + "/api/search?" + q.Encode()
	var walls, cpus []float64
	for i := range o.searches {
		cpu0, _ := benchproc.ProcCPU(t.pid)
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		wall := time.Since(start)
		cpu1, _ := benchproc.ProcCPU(t.pid)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("search: %s: %.300s", resp.Status, body)
		}
		var ans struct {
			Traces  []json.RawMessage `json:"traces"`
			Metrics struct {
				InspectedTraces int    `json:"inspectedTraces"`
				InspectedBytes  string `json:"inspectedBytes"`
			} `json:"metrics"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			return fmt.Errorf("search answer: %w", err)
		}
		fmt.Printf("search %d: %d traces, %d bytes of JSON, inspected %d traces / %s bytes, %s wall, %.2f serve CPU-s\n", i+1,
			len(ans.Traces), len(body), ans.Metrics.InspectedTraces, ans.Metrics.InspectedBytes, wall.Round(100*time.Microsecond), cpu1-cpu0)
		if len(ans.Traces) < o.limit {
			fmt.Printf("  (fewer than limit=%d traces matched)\n", o.limit)
		}
		walls = append(walls, wall.Seconds())
		cpus = append(cpus, cpu1-cpu0)
	}
	rss, hwm, _ := benchproc.ProcMem(t.pid)
	fmt.Printf("search %s limit=%d: median %.1f ms wall, %.0f ms serve CPU (CPU read from /proc in 10 ms ticks; sum over %d runs %.2f CPU-s); serve RSS after %.1f MiB, peak %.1f MiB; load %s\n",
		o.query, o.limit, median(walls)*1000, median(cpus)*1000, len(cpus), sum(cpus), benchproc.MiB(rss), benchproc.MiB(hwm), benchproc.LoadAvg())
	return nil
}

// sustained pushes fresh copies of reqs for warmup+sustained and reports
// the measured window.
func sustained(ctx context.Context, o options, t *target, reqs []request) error {
	if o.gzip && !o.grpc {
		return errors.New("-sustained needs uncompressed bodies (trace IDs are rewritten in place); over -grpc the client compresses")
	}
	c := newClient(o.senders)
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var st sendStats
	var seq atomic.Uint64
	errc := make(chan error, o.senders)
	var wg sync.WaitGroup
	for range o.senders {
		s, err := newSender(o, t, c)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("role", "sender"), func(ctx context.Context) {
			defer wg.Done()
			defer s.close()
			var buf []byte
			for ctx.Err() == nil {
				n := seq.Add(1) - 1
				r := reqs[n%uint64(len(reqs))]
				buf = withRound(buf, r, n/uint64(len(reqs)))
				if err := s.send(ctx, buf, &st); err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				st.spans.Add(int64(r.spans))
			}
		})
	}
	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case <-time.After(d):
			return t.alive()
		}
	}
	finish := func(err error) error {
		cancel()
		wg.Wait()
		return err
	}
	benchproc.Logf("warm-up %s", o.warmup)
	if err := wait(o.warmup); err != nil {
		return finish(err)
	}
	var stopProfile func()
	if o.cpuprofile != "" {
		var err error
		if stopProfile, err = startCPUProfile(o.cpuprofile); err != nil {
			return finish(err)
		}
	}
	m0 := metrics(t)
	cpu0, _ := benchproc.ProcCPU(t.pid)
	self0 := selfCPU()
	sent0, start := st.spans.Load(), time.Now()
	printMetrics("window start", m0)
	benchproc.Logf("measuring %s", o.sustained)
	var maxRSS int64
	var err error
	for end := start.Add(o.sustained); time.Now().Before(end); {
		if err = wait(min(10*time.Second, time.Until(end))); err != nil {
			break
		}
		rss, _, _ := benchproc.ProcMem(t.pid)
		maxRSS = max(maxRSS, rss)
		benchproc.Logf("%.0fs: %d spans sent, serve RSS %.0f MiB", time.Since(start).Seconds(), st.spans.Load()-sent0, benchproc.MiB(rss))
	}
	wall := time.Since(start)
	m1 := metrics(t)
	cpu1, _ := benchproc.ProcCPU(t.pid)
	self1 := selfCPU()
	if stopProfile != nil {
		stopProfile()
	}
	if o.memprof != "" && err == nil {
		err = writeHeapProfile(o.memprof)
	}
	if err := finish(err); err != nil {
		return err
	}
	ingested := m1["nxwatcher_tracestore_ingested_spans_total"] - m0["nxwatcher_tracestore_ingested_spans_total"]
	rss, hwm, _ := benchproc.ProcMem(t.pid)
	fmt.Printf("sustained window %s: %.0f spans stored (%.0f/s wall), %d requests retried in all; serve %.1f CPU-s = %.3f cores: %.0f spans per serve CPU-second (%.2f µs/span); bench process %.1f CPU-s\n",
		wall.Round(time.Second), ingested, ingested/wall.Seconds(), st.retries.Load(), cpu1-cpu0, (cpu1-cpu0)/wall.Seconds(),
		ingested/(cpu1-cpu0), (cpu1-cpu0)/ingested*1e6, self1-self0)
	fmt.Printf("in the window: %.0f blocks cut, %.0f compactions; serve RSS %.1f MiB at the end, highest sampled %.1f MiB, peak (VmHWM) %.1f MiB; load %s\n",
		m1["nxwatcher_tracestore_blocks_cut_total"]-m0["nxwatcher_tracestore_blocks_cut_total"],
		m1["nxwatcher_tracestore_compactions_total"]-m0["nxwatcher_tracestore_compactions_total"],
		benchproc.MiB(rss), benchproc.MiB(maxRSS), benchproc.MiB(hwm), benchproc.LoadAvg())
	printMetrics("window end", m1)
	if o.inprocess && self1-self0 > 0 {
		fmt.Println("(in process: serve CPU-s above includes the senders; split them with the profile's role=sender label)")
	}
	return nil
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("in-process heap after GC: alloc %.1f MiB, in use %.1f MiB, sys %.1f MiB (includes the bench's pre-built requests)\n",
		benchproc.MiB(int64(ms.HeapAlloc)), benchproc.MiB(int64(ms.HeapInuse)), benchproc.MiB(int64(ms.Sys)))
	return pprof.WriteHeapProfile(f)
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func sum(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t
}
