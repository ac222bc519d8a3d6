package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape a run.
type Options struct {
	Bin         string        // the nxwatcher binary
	Dir         string        // config, logs
	StoragePath string        // --storage.path
	Kills       int           // kill -9 count
	MinUp       time.Duration // the server runs between MinUp and MaxUp before each kill
	MaxUp       time.Duration
	Senders     int // senders per signal
	// Resend is the probability that a sender sends an acknowledged batch
	// once more, as if the answer had been lost after the server stored it.
	Resend float64
	Seed   uint64
	// FullCheckEvery reads everything back on every n-th restart; the
	// others look at what was acknowledged since shortly before the
	// previous check. The last check is always full. 1 = always full.
	FullCheckEvery int
	Logf           func(format string, args ...any)
}

// Harness is a server, its scrape target and the senders of every signal.
type Harness struct {
	Opts   Options
	Server *Server

	target      *httptest.Server
	scrapes     atomic.Int64
	RW          []*RemoteWrite
	Loki        []*LokiPush
	Traces      []*OTLPTraces
	cancelLoad  context.CancelFunc
	loadDone    sync.WaitGroup
	Start       time.Time
	lastChecked time.Time
}

// NewHarness starts the scrape target and picks the OTLP ports; Close
// releases them.
func NewHarness(o Options) (*Harness, error) {
	if o.Senders <= 0 {
		o.Senders = 2
	}
	if o.FullCheckEvery <= 0 {
		o.FullCheckEvery = 1
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	h := &Harness{Opts: o, Start: time.Now()}
	h.lastChecked = h.Start.Add(-time.Minute)
	// The scrape target: one counter that counts scrapes.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h.target = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := h.scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, fmt.Sprintf("# TYPE chaos_scrape_requests_total counter\nchaos_scrape_requests_total %d\n", n))
	})}}
	h.target.Start()
	g, e1 := FreePort()
	ht, e2 := FreePort()
	if err := errors.Join(e1, e2); err != nil {
		h.target.Close()
		return nil, err
	}
	h.Server = &Server{Bin: o.Bin, Dir: o.Dir, StoragePath: o.StoragePath, Config: ServerConfig{
		ScrapeTarget: h.target.Listener.Addr().String(), GRPCAddr: g, HTTPAddr: ht,
	}}
	return h, nil
}

// StartLoad starts every sender; StopLoad stops them and waits.
func (h *Harness) StartLoad() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancelLoad = cancel
	for i := 0; i < h.Opts.Senders; i++ {
		rw := NewRemoteWrite(h.Server, i, 50*time.Millisecond)
		lp := NewLokiPush(h.Server, i, 50*time.Millisecond)
		tr := NewOTLPTraces(h.Server, i, 100*time.Millisecond, h.Opts.Seed)
		rw.resend, lp.resend, tr.resend = h.Opts.Resend, h.Opts.Resend, h.Opts.Resend
		h.RW, h.Loki, h.Traces = append(h.RW, rw), append(h.Loki, lp), append(h.Traces, tr)
		for _, s := range []Sender{rw, lp, tr} {
			h.loadDone.Add(1)
			go func() { defer h.loadDone.Done(); s.Run(ctx) }()
		}
	}
}

// StopLoad stops the senders and waits for them.
func (h *Harness) StopLoad() {
	if h.cancelLoad != nil {
		h.cancelLoad()
		h.loadDone.Wait()
		h.cancelLoad = nil
	}
}

// Close stops the senders, the server and the scrape target.
func (h *Harness) Close() {
	h.StopLoad()
	if h.Server != nil {
		h.Server.Kill()
	}
	h.target.Close()
	CloseIdle()
}

// Senders of each signal, as the Sender interface.
func (h *Harness) senders() map[string][]Sender {
	m := map[string][]Sender{}
	for _, s := range h.RW {
		m[SignalSamples] = append(m[SignalSamples], s)
	}
	for _, s := range h.Loki {
		m[SignalLines] = append(m[SignalLines], s)
	}
	for _, s := range h.Traces {
		m[SignalSpans] = append(m[SignalSpans], s)
	}
	return m
}

// Counters per signal.
func (h *Harness) Counters() map[string]Counters {
	out := map[string]Counters{}
	for sig, ss := range h.senders() {
		out[sig] = SumCounters(ss)
	}
	return out
}

// Snapshot is every acknowledged item at one moment.
type Snapshot struct {
	Samples map[string]map[int64]float64
	Lines   map[string]int64
	Resent  map[string]bool // lines sent again after their ack
	Traces  []AckedTrace
	At      time.Time
}

// Snapshot copies every sender's acknowledged items.
func (h *Harness) Snapshot() Snapshot {
	s := Snapshot{Samples: map[string]map[int64]float64{}, Lines: map[string]int64{}, Resent: map[string]bool{}, At: time.Now()}
	for _, rw := range h.RW {
		for k, v := range rw.Snapshot() {
			s.Samples[k] = v
		}
	}
	for _, lp := range h.Loki {
		acked, resent := lp.Snapshot()
		for k, v := range acked {
			s.Lines[k] = v
		}
		for k := range resent {
			s.Resent[k] = true
		}
	}
	for _, tr := range h.Traces {
		s.Traces = append(s.Traces, tr.Snapshot()...)
	}
	return s
}

// Verify reads back what was acknowledged since from (the zero time: all)
// and returns one result per signal.
func (h *Harness) Verify(ctx context.Context, snap Snapshot, from time.Time, rng *rand.Rand) ([]Result, error) {
	base := h.Server.Base()
	if base == "" {
		return nil, errors.New("server is down")
	}
	if from.IsZero() {
		from = h.Start.Add(-time.Minute)
	}
	var errs []error
	var out []Result
	r, err := VerifySamples(ctx, base, snap.Samples, from)
	out, errs = append(out, r), append(errs, err)
	ids := make([]int, len(h.Loki))
	for i := range ids {
		ids[i] = i
	}
	r, err = VerifyLines(ctx, base, ids, snap.Lines, snap.Resent, from)
	out, errs = append(out, r), append(errs, err)
	traces := snap.Traces
	if !from.Before(h.Start) {
		// Incremental: what was sent since from, plus a sample of older ones.
		var recent, old []AckedTrace
		for _, t := range traces {
			if t.Sent.Before(from) {
				old = append(old, t)
			} else {
				recent = append(recent, t)
			}
		}
		rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
		traces = append(recent, old[:min(len(old), 100)]...)
	}
	r, err = VerifySpans(ctx, base, traces)
	out, errs = append(out, r), append(errs, err)
	return out, errors.Join(errs...)
}

// Totals accumulate the worst read-back per signal over a run.
type Totals struct {
	Kills int
	Aimed int // kills timed to a request on the wire
	// StartKills are extra kills of a start 0-300 ms after exec (during
	// WAL replay), on every 5th restart; not counted in Kills.
	StartKills int
	Restarts   []time.Duration // kill -9 to ready
	Checks     int
	Lost       map[string]int // max lost seen in any check (lost items stay lost)
	Dup        map[string]int // max duplicates seen in any check
	DupRes     map[string]int // of which copies of batches the harness resent (max over checks)
	Examples   []string
	Final      []Result
	Counters   map[string]Counters
	Scrape     []string // problems with the scraped series
}

func (t *Totals) add(rs []Result) {
	if t.Lost == nil {
		t.Lost, t.Dup, t.DupRes = map[string]int{}, map[string]int{}, map[string]int{}
	}
	t.Checks++
	for _, r := range rs {
		t.Lost[r.Signal] = max(t.Lost[r.Signal], r.Lost)
		t.Dup[r.Signal] = max(t.Dup[r.Signal], r.Duplicated)
		t.DupRes[r.Signal] = max(t.DupRes[r.Signal], r.DupResent)
		for _, e := range r.Examples {
			if len(t.Examples) < 20 {
				t.Examples = append(t.Examples, fmt.Sprintf("check %d: %s", t.Checks, e))
			}
		}
	}
}

// RunCrashLoop starts the server and the load, kills the server Kills
// times at random moments, restarts it on the same storage and reads
// everything back after each restart, then stops the load and reads back
// once more.
func (h *Harness) RunCrashLoop(ctx context.Context) (*Totals, error) {
	o := h.Opts
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	tot := &Totals{}
	if err := h.Server.Start(ctx); err != nil {
		return tot, err
	}
	h.StartLoad()
	for i := 1; i <= o.Kills; i++ {
		up := o.MinUp + time.Duration(rng.Int64N(int64(o.MaxUp-o.MinUp)+1))
		select {
		case <-ctx.Done():
			return tot, ctx.Err()
		case <-time.After(up):
		}
		if !h.Server.Alive() {
			return tot, fmt.Errorf("kill %d: server died by itself; log tail:\n%s", i, Tail(h.Server.LogPath(), 30))
		}
		if i%2 == 0 {
			// Every other kill waits (briefly) for a request on the wire,
			// so some kills cut a write between the WAL and the answer.
			deadline := time.Now().Add(time.Second)
			for h.Server.InFlight.Load() == 0 && time.Now().Before(deadline) {
				runtime.Gosched()
			}
			tot.Aimed++
		}
		killed := time.Now()
		h.Server.Kill()
		tot.Kills++
		if i%5 == 3 {
			// Now and then kill the next start too, during WAL replay.
			d := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
			if err := h.Server.KillDuringStart(d); err != nil {
				return tot, fmt.Errorf("kill %d: start: %w", i, err)
			}
			tot.StartKills++
		}
		if err := h.Server.Start(ctx); err != nil {
			return tot, fmt.Errorf("restart %d: %w", i, err)
		}
		ready := time.Now()
		tot.Restarts = append(tot.Restarts, ready.Sub(killed))
		if _, err := ScrapeSampleAfter(ctx, h.Server.Base(), ready, 15*time.Second); err != nil {
			tot.Scrape = append(tot.Scrape, fmt.Sprintf("restart %d: %v", i, err))
		}
		snap := h.Snapshot()
		from := h.lastChecked.Add(-30 * time.Second)
		if i%o.FullCheckEvery == 0 || o.FullCheckEvery == 1 {
			from = time.Time{}
		}
		rs, err := h.Verify(ctx, snap, from, rng)
		if err != nil {
			return tot, fmt.Errorf("read back after restart %d: %w", i, err)
		}
		h.lastChecked = snap.At
		tot.add(rs)
		o.Logf("kill %d/%d after %s up: restart %s; %s", i, o.Kills, up.Round(time.Millisecond),
			ready.Sub(killed).Round(time.Millisecond), formatResults(rs))
	}
	h.StopLoad()
	snap := h.Snapshot()
	rs, err := h.Verify(ctx, snap, time.Time{}, rng)
	if err != nil {
		return tot, fmt.Errorf("final read back: %w", err)
	}
	tot.add(rs)
	tot.Final = rs
	tot.Counters = h.Counters()
	o.Logf("final: %s", formatResults(rs))
	return tot, nil
}

func formatResults(rs []Result) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s checked=%d lost=%d dup=%d (of resent %d)", r.Signal, r.Checked, r.Lost, r.Duplicated, r.DupResent))
	}
	return strings.Join(parts, "; ")
}

// Report is a plain-text table of a run.
func (t *Totals) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kills: %d (%d timed to a request in flight) + %d during start-up, read-backs: %d", t.Kills, t.Aimed, t.StartKills, t.Checks)
	if len(t.Restarts) > 0 {
		rs := slices.Clone(t.Restarts)
		slices.Sort(rs)
		fmt.Fprintf(&b, ", kill-to-ready median %s max %s", rs[len(rs)/2].Round(time.Millisecond), rs[len(rs)-1].Round(time.Millisecond))
	}
	b.WriteString("\n| signal | acknowledged | lost | duplicated (of resent batches) | requests | retryable refusals | unanswered (cut in flight) | resent after ack | permanent refusals | reasons |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sig := range []string{SignalSamples, SignalLines, SignalSpans} {
		c := t.Counters[sig]
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d) | %d | %d | %d (%d) | %d | %d | %s |\n", sig, c.Items, t.Lost[sig], t.Dup[sig], t.DupRes[sig],
			c.Attempts, c.RefusedRetryable, c.Unanswered, c.Cut, c.Resent, c.RefusedPermanent, FormatReasons(c.Reasons))
	}
	for _, e := range t.Examples {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	for _, s := range t.Scrape {
		fmt.Fprintf(&b, "  scrape: %s\n", s)
	}
	for sig, c := range t.Counters {
		for _, d := range c.PermanentDetails {
			fmt.Fprintf(&b, "  permanent refusal (%s): %s\n", sig, d)
		}
	}
	return b.String()
}
