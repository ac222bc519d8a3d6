package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Signals, as they appear in reports.
const (
	SignalSamples = "samples (remote write)"
	SignalLines   = "lines (loki push)"
	SignalSpans   = "spans (otlp grpc)"
)

// outcome of one attempt to deliver a batch.
type outcome struct {
	ok        bool
	permanent bool   // a refusal a real client would not retry (dropped)
	reason    string // status code, gRPC code or "conn"
	detail    string // body or error text for permanent refusals
}

// Counters of one signal's sender group.
type Counters struct {
	Batches          int            // batches acknowledged
	Items            int            // items (samples, lines, spans) acknowledged
	Attempts         int            // requests sent, retries included
	RefusedRetryable int            // answers a client retries (5xx, 429, Unavailable, …)
	Unanswered       int            // connection refused/reset, timeouts
	Cut              int            // of which cut in flight (may have been stored)
	Resent           int            // acknowledged batches sent again as if the answer was lost
	RefusedPermanent int            // 4xx / InvalidArgument / partial success: data dropped
	Reasons          map[string]int // per status or gRPC code
	PermanentDetails []string       // first few bodies of permanent refusals
	LastAck          time.Time
	LastRefused      time.Time
}

func (c *Counters) record(o outcome, items int, now time.Time) {
	c.Attempts++
	if c.Reasons == nil {
		c.Reasons = map[string]int{}
	}
	switch {
	case o.ok:
		if items > 0 { // not a resend
			c.Batches++
			c.Items += items
		}
		c.LastAck = now
		return
	case o.reason == "conn":
		c.Unanswered++
	case o.reason == "conn-cut":
		c.Unanswered++
		c.Cut++
	case o.permanent:
		c.RefusedPermanent++
		if len(c.PermanentDetails) < 5 {
			c.PermanentDetails = append(c.PermanentDetails, o.reason+": "+o.detail)
		}
		c.LastRefused = now
	default:
		c.RefusedRetryable++
		c.LastRefused = now
	}
	c.Reasons[o.reason]++
}

// Sender is one client of one signal; Run sends batches until ctx ends.
type Sender interface {
	Signal() string
	Run(ctx context.Context)
	Counters() Counters
}

// base holds what every sender shares: the pacing, the retry loop and the
// counters.
type base struct {
	srv      *Server
	id       int
	interval time.Duration
	// resend is the probability that an acknowledged batch is sent once
	// more, as a client does when the answer is lost (a timeout, a proxy
	// reset) after the server stored the batch.
	resend float64
	mu     sync.Mutex
	c      Counters
	paused bool
}

func (b *base) Counters() Counters {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.c
	c.Reasons = make(map[string]int, len(b.c.Reasons))
	for k, v := range b.c.Reasons {
		c.Reasons[k] = v
	}
	c.PermanentDetails = append([]string(nil), b.c.PermanentDetails...)
	return c
}

// deliver sends the same batch until it is acknowledged, refused for good
// or ctx ends; it reports whether the batch was acknowledged. onAck runs
// under the sender's lock, so the ledger and counters agree.
func (b *base) deliver(ctx context.Context, items int, send func(ctx context.Context) outcome, onAck, onResend func()) bool {
	// Decide now and mark the items as resent in the same critical section
	// as their ack, so no snapshot sees them acknowledged but not marked.
	again := b.resend > 0 && rand.Float64() < b.resend
	ok := b.retry(ctx, items, send, func() {
		onAck()
		if again {
			b.c.Resent++
			if onResend != nil {
				onResend()
			}
		}
	})
	if ok && again {
		b.retry(ctx, 0, send, func() {})
	}
	return ok
}

func (b *base) retry(ctx context.Context, items int, send func(ctx context.Context) outcome, onAck func()) bool {
	wait := 50 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return false
		}
		o := send(ctx)
		if ctx.Err() != nil && !o.ok {
			return false // our own shutdown, not the server's answer
		}
		b.mu.Lock()
		b.c.record(o, items, time.Now())
		if o.ok {
			onAck()
		}
		b.mu.Unlock()
		if o.ok || o.permanent {
			return o.ok
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// pace waits for the next send slot.
func (b *base) pace(ctx context.Context, t *time.Ticker) bool {
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// CloseIdle closes the harness's idle HTTP connections (for leak checks).
func CloseIdle() { httpClient.CloseIdleConnections() }

func postHTTP(ctx context.Context, url string, body []byte, hdr map[string]string) outcome {
	if url == "" {
		return outcome{reason: "conn", detail: "server down"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return outcome{permanent: true, reason: "request", detail: err.Error()}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return connOutcome(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	code := resp.StatusCode
	switch {
	case code/100 == 2:
		return outcome{ok: true}
	case code == http.StatusTooManyRequests || code/100 == 5:
		return outcome{reason: strconv.Itoa(code), detail: string(text)}
	default:
		return outcome{permanent: true, reason: strconv.Itoa(code), detail: string(bytes.TrimSpace(text))}
	}
}

// connOutcome tells a request that never reached the server (connection
// refused: nothing can have been stored) from one cut while in flight (the
// server may have stored it; the retry may duplicate it).
func connOutcome(err error) outcome {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return outcome{reason: "conn", detail: err.Error()}
	}
	return outcome{reason: "conn-cut", detail: err.Error()}
}

// ---- Prometheus remote write 1.0 ----

// RWSeries is the number of series each remote-write sender writes.
const RWSeries = 10

// RemoteWrite sends one sample per series per batch to /api/v1/write.
type RemoteWrite struct {
	base
	lastTS int64
	// acked[series][tsMillis] = value
	acked map[string]map[int64]float64
}

// NewRemoteWrite is sender id of the remote-write group.
func NewRemoteWrite(srv *Server, id int, interval time.Duration) *RemoteWrite {
	return &RemoteWrite{base: base{srv: srv, id: id, interval: interval}, acked: map[string]map[int64]float64{}}
}

func (s *RemoteWrite) Signal() string { return SignalSamples }

func rwSeriesKey(sender, series string) string { return sender + "/" + series }

func (s *RemoteWrite) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for seq := 0; s.pace(ctx, t); seq++ {
		ts := max(time.Now().UnixMilli(), s.lastTS+1)
		s.lastTS = ts
		req := &prompb.WriteRequest{}
		sender := strconv.Itoa(s.id)
		for k := 0; k < RWSeries; k++ {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels: []prompb.Label{
					{Name: "__name__", Value: "chaos_rw_sample"},
					{Name: "sender", Value: sender},
					{Name: "series", Value: strconv.Itoa(k)},
				},
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(seq)}},
			})
		}
		raw, err := req.Marshal()
		if err != nil {
			panic(err) // a fixed, valid message
		}
		body := snappy.Encode(nil, raw)
		hdr := map[string]string{
			"Content-Encoding":                  "snappy",
			"Content-Type":                      "application/x-protobuf",
			"X-Prometheus-Remote-Write-Version": "0.1.0",
		}
		ok := s.deliver(ctx, RWSeries, func(ctx context.Context) outcome {
			b := s.srv.Base()
			if b == "" {
				return postHTTP(ctx, "", nil, nil)
			}
			s.srv.InFlight.Add(1)
			defer s.srv.InFlight.Add(-1)
			return postHTTP(ctx, b+"/api/v1/write", body, hdr)
		}, func() {
			for k := 0; k < RWSeries; k++ {
				key := rwSeriesKey(sender, strconv.Itoa(k))
				m := s.acked[key]
				if m == nil {
					m = map[int64]float64{}
					s.acked[key] = m
				}
				m[ts] = float64(seq)
			}
		}, nil)
		if !ok && ctx.Err() != nil {
			return
		}
	}
}

// Snapshot copies the acknowledged samples.
func (s *RemoteWrite) Snapshot() map[string]map[int64]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[int64]float64, len(s.acked))
	for k, m := range s.acked {
		c := make(map[int64]float64, len(m))
		for ts, v := range m {
			c[ts] = v
		}
		out[k] = c
	}
	return out
}

// ---- Loki push ----

// LokiBatch is the number of lines in one push.
const LokiBatch = 20

// LokiPush sends batches of lines of one stream to /loki/api/v1/push.
type LokiPush struct {
	base
	lastTS int64
	acked  map[string]int64 // line -> timestamp (ns)
	resent map[string]bool  // lines of batches sent again after their ack
}

// NewLokiPush is sender id of the Loki group.
func NewLokiPush(srv *Server, id int, interval time.Duration) *LokiPush {
	return &LokiPush{base: base{srv: srv, id: id, interval: interval}, acked: map[string]int64{}, resent: map[string]bool{}}
}

func (s *LokiPush) Signal() string { return SignalLines }

// LokiStream is the stream selector of sender id.
func LokiStream(id int) string { return fmt.Sprintf(`{job="chaos", sender="%d"}`, id) }

func (s *LokiPush) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	seq := 0
	for s.pace(ctx, t) {
		st := push.Stream{Labels: LokiStream(s.id)}
		for i := 0; i < LokiBatch; i++ {
			ts := max(time.Now().UnixNano(), s.lastTS+1)
			s.lastTS = ts
			st.Entries = append(st.Entries, push.Entry{
				Timestamp: time.Unix(0, ts),
				Line:      fmt.Sprintf("level=info sender=%d seq=%d msg=\"chaos line\" pad=%016x", s.id, seq, rand.Uint64()),
			})
			seq++
		}
		raw, err := (&push.PushRequest{Streams: []push.Stream{st}}).Marshal()
		if err != nil {
			panic(err) // a fixed, valid message
		}
		body := snappy.Encode(nil, raw)
		hdr := map[string]string{"Content-Type": "application/x-protobuf"}
		ok := s.deliver(ctx, len(st.Entries), func(ctx context.Context) outcome {
			b := s.srv.Base()
			if b == "" {
				return postHTTP(ctx, "", nil, nil)
			}
			s.srv.InFlight.Add(1)
			defer s.srv.InFlight.Add(-1)
			return postHTTP(ctx, b+"/loki/api/v1/push", body, hdr)
		}, func() {
			for _, e := range st.Entries {
				s.acked[e.Line] = e.Timestamp.UnixNano()
			}
		}, func() {
			for _, e := range st.Entries {
				s.resent[e.Line] = true
			}
		})
		if !ok && ctx.Err() != nil {
			return
		}
	}
}

// Snapshot copies the acknowledged lines and those sent again.
func (s *LokiPush) Snapshot() (acked map[string]int64, resent map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acked = make(map[string]int64, len(s.acked))
	for k, v := range s.acked {
		acked[k] = v
	}
	resent = make(map[string]bool, len(s.resent))
	for k := range s.resent {
		resent[k] = true
	}
	return acked, resent
}

// ---- OTLP traces over gRPC ----

// SpansPerTrace is the number of spans in each trace (one trace per batch).
const SpansPerTrace = 4

// AckedTrace is one acknowledged trace.
type AckedTrace struct {
	ID     pcommon.TraceID
	Spans  []pcommon.SpanID
	Sent   time.Time
	Resent bool // sent once more after the ack (a simulated lost answer)
}

// OTLPTraces exports one trace per batch through ptraceotlp's gRPC client.
type OTLPTraces struct {
	base
	rng    *rand.Rand
	acked  []AckedTrace
	resent map[pcommon.TraceID]bool // traces sent again after their ack

	connMu   sync.Mutex
	conn     *grpc.ClientConn
	connAddr string
}

// NewOTLPTraces is sender id of the traces group.
func NewOTLPTraces(srv *Server, id int, interval time.Duration, seed uint64) *OTLPTraces {
	return &OTLPTraces{base: base{srv: srv, id: id, interval: interval}, rng: rand.New(rand.NewPCG(seed, uint64(id))), resent: map[pcommon.TraceID]bool{}}
}

func (s *OTLPTraces) Signal() string { return SignalSpans }

// client returns a connection to the current OTLP/gRPC address. Backoff is
// short so the client finds a restarted server within a second.
func (s *OTLPTraces) client() (ptraceotlp.GRPCClient, error) {
	addr := s.srv.GRPCAddr()
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil && s.connAddr == addr {
		return ptraceotlp.NewGRPCClient(s.conn), nil
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return nil, err
	}
	s.conn, s.connAddr = conn, addr
	return ptraceotlp.NewGRPCClient(conn), nil
}

// Close releases the gRPC connection.
func (s *OTLPTraces) Close() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (s *OTLPTraces) newID(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.BigEndian.PutUint64(b[i:], s.rng.Uint64()|1)
	}
	return b
}

func (s *OTLPTraces) Run(ctx context.Context) {
	defer s.Close()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for s.pace(ctx, t) {
		var tid pcommon.TraceID
		copy(tid[:], s.newID(16))
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("chaos-%d", s.id))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("bench/chaos")
		now := time.Now()
		at := AckedTrace{ID: tid, Sent: now}
		var parent pcommon.SpanID
		for i := 0; i < SpansPerTrace; i++ {
			var sid pcommon.SpanID
			copy(sid[:], s.newID(8))
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(sid)
			sp.SetParentSpanID(parent)
			sp.SetName(fmt.Sprintf("op-%d", i))
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i) * time.Millisecond)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i+5) * time.Millisecond)))
			sp.Attributes().PutInt("chaos.seq", int64(i))
			if i == 0 {
				parent = sid
			}
			at.Spans = append(at.Spans, sid)
		}
		req := ptraceotlp.NewExportRequestFromTraces(td)
		ok := s.deliver(ctx, SpansPerTrace, func(ctx context.Context) outcome {
			c, err := s.client()
			if err != nil {
				return outcome{reason: "conn", detail: err.Error()}
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			s.srv.InFlight.Add(1)
			defer s.srv.InFlight.Add(-1)
			resp, err := c.Export(ctx, req)
			if err != nil {
				return grpcOutcome(err)
			}
			if ps := resp.PartialSuccess(); ps.RejectedSpans() > 0 || ps.ErrorMessage() != "" {
				return outcome{permanent: true, reason: "partial_success",
					detail: fmt.Sprintf("rejected_spans=%d %s", ps.RejectedSpans(), ps.ErrorMessage())}
			}
			return outcome{ok: true}
		}, func() { s.acked = append(s.acked, at) }, func() { s.resent[tid] = true })
		if !ok && ctx.Err() != nil {
			return
		}
	}
}

// grpcOutcome classifies an Export error the way the OTLP exporters do.
func grpcOutcome(err error) outcome {
	st, ok := status.FromError(err)
	if !ok {
		return outcome{reason: "conn", detail: err.Error()}
	}
	switch st.Code() {
	case codes.Unavailable:
		// The client library says Unavailable for connection failures too:
		// tell a refused dial and a connection cut mid-call from the
		// server's own answer.
		msg := st.Message()
		switch {
		case strings.Contains(msg, "connection refused"):
			return outcome{reason: "conn", detail: msg}
		case strings.Contains(msg, "EOF"), strings.Contains(msg, "connection reset"), strings.Contains(msg, "transport is closing"):
			return outcome{reason: "conn-cut", detail: msg}
		}
		return outcome{reason: st.Code().String(), detail: msg}
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.DataLoss, codes.ResourceExhausted:
		return outcome{reason: st.Code().String(), detail: st.Message()}
	default:
		return outcome{permanent: true, reason: st.Code().String(), detail: st.Message()}
	}
}

// Snapshot copies the acknowledged traces (Resent set on those sent again).
func (s *OTLPTraces) Snapshot() []AckedTrace {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]AckedTrace(nil), s.acked...)
	for i := range out {
		out[i].Resent = s.resent[out[i].ID]
	}
	return out
}

// SumCounters adds the counters of several senders of one signal.
func SumCounters(ss []Sender) Counters {
	var t Counters
	t.Reasons = map[string]int{}
	for _, s := range ss {
		c := s.Counters()
		t.Batches += c.Batches
		t.Items += c.Items
		t.Attempts += c.Attempts
		t.RefusedRetryable += c.RefusedRetryable
		t.Unanswered += c.Unanswered
		t.Cut += c.Cut
		t.Resent += c.Resent
		t.RefusedPermanent += c.RefusedPermanent
		for k, v := range c.Reasons {
			t.Reasons[k] += v
		}
		t.PermanentDetails = append(t.PermanentDetails, c.PermanentDetails...)
		if c.LastAck.After(t.LastAck) {
			t.LastAck = c.LastAck
		}
		if c.LastRefused.After(t.LastRefused) {
			t.LastRefused = c.LastRefused
		}
	}
	return t
}

// FormatReasons prints a reasons map in a stable order.
func FormatReasons(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
