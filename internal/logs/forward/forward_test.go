package forward

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

// lokiSink decodes Loki protobuf pushes and keeps every entry, counting
// duplicates. While down it answers 503; while holding it stores a push and
// then waits, so the sender never sees the answer (a crash after delivery).
type lokiSink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	seen     map[string]int
	pushes   int
	tenant   string
	down     atomic.Bool
	status   atomic.Int32 // answer instead of 204 when set
	hold     atomic.Pointer[chan struct{}]
	holdOnce atomic.Bool
	held     chan struct{}
}

func newLokiSink(t *testing.T) *lokiSink {
	s := &lokiSink{seen: map[string]int{}, held: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if st := s.status.Load(); st != 0 {
			http.Error(w, "refused", int(st))
			return
		}
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req push.PushRequest
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.pushes++
		s.tenant = r.Header.Get("X-Scope-OrgID")
		for _, st := range req.Streams {
			for _, e := range st.Entries {
				s.seen[fmt.Sprintf("%s|%d|%s", st.Labels, e.Timestamp.UnixNano(), e.Line)]++
			}
		}
		s.mu.Unlock()
		if h := s.hold.Load(); h != nil && s.holdOnce.CompareAndSwap(false, true) {
			close(s.held)
			<-*h
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *lokiSink) unique() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *lokiSink) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := 0
	for _, n := range s.seen {
		d += n - 1
	}
	return d
}

func batch(i, n int) []Stream {
	es := make([]logstore.Entry, n)
	base := time.Now().Add(-time.Hour).UnixNano()
	for j := range es {
		es[j] = logstore.Entry{Timestamp: base + int64(i*n+j), Line: fmt.Sprintf("line %d of batch %d", j, i)}
	}
	return []Stream{{Labels: labels.FromStrings("app", "a", "batch", fmt.Sprint(i%3)), Entries: es}}
}

func open(t testing.TB, dir string, cfg EndpointConfig, reg prometheus.Registerer) *Forwarder {
	t.Helper()
	cfg.MinBackoff = model.Duration(10 * time.Millisecond)
	cfg.MaxBackoff = model.Duration(100 * time.Millisecond)
	f, err := Open(dir, []EndpointConfig{cfg}, Deps{Logger: promslog.NewNopLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func start(f *Forwarder) (stop func()) {
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

// TestForwardSurvivesOutageAndCrash: entries appended while the endpoint
// is down arrive once it is back; a crash after a push was delivered but
// before its acknowledgement was saved sends that push again, and nothing
// else twice.
func TestForwardSurvivesOutageAndCrash(t *testing.T) {
	sink := newLokiSink(t)
	dir := t.TempDir()
	cfg := EndpointConfig{URL: sink.srv.URL + "/loki/api/v1/push", TenantID: "team-a", SegmentSize: 4 << 10, MaxBacklog: 1 << 20}
	reg := prometheus.NewRegistry()
	f := open(t, dir, cfg, reg)
	stop := start(f)
	const batches, per = 40, 10
	sink.down.Store(true)
	for i := range batches / 2 {
		if err := f.Append(batch(i, per)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "retries while down", func() bool {
		return testutil.ToFloat64(f.m.failedRequests.WithLabelValues(cfg.name(), "503")) > 0
	})
	sink.down.Store(false)
	waitFor(t, "the backlog to drain", func() bool { return sink.unique() == batches/2*per })

	// The next push is delivered, then the process "dies" before the
	// answer arrives: its position is never saved.
	hold := make(chan struct{})
	sink.hold.Store(&hold)
	if err := f.Append(batch(batches/2, per)); err != nil {
		t.Fatal(err)
	}
	<-sink.held
	stop()
	close(hold)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f2 := open(t, dir, cfg, prometheus.NewRegistry())
	defer f2.Close()
	stop2 := start(f2)
	defer stop2()
	for i := batches/2 + 1; i < batches; i++ {
		if err := f2.Append(batch(i, per)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every entry", func() bool { return sink.unique() == batches*per })
	waitFor(t, "the backlog gauge to empty", func() bool {
		return testutil.ToFloat64(f2.m.backlog.WithLabelValues(cfg.name())) == 0
	})
	if d := sink.duplicates(); d != per {
		t.Errorf("%d duplicate entries, want %d (the one unacknowledged push)", d, per)
	}
	if sink.tenant != "team-a" {
		t.Errorf("X-Scope-OrgID = %q", sink.tenant)
	}
	if got := testutil.ToFloat64(f2.m.sentEntries.WithLabelValues(cfg.name())); got != float64((batches/2)*per) {
		t.Errorf("sent entries after restart = %g, want %d", got, (batches/2)*per)
	}
}

// TestBacklogIsBounded: with the endpoint down, the backlog stays within
// max_backlog (plus the active segment) and counts what it dropped.
func TestBacklogIsBounded(t *testing.T) {
	sink := newLokiSink(t)
	sink.down.Store(true)
	dir := t.TempDir()
	cfg := EndpointConfig{URL: sink.srv.URL, SegmentSize: 4 << 10, MaxBacklog: 16 << 10}
	f := open(t, dir, cfg, prometheus.NewRegistry())
	defer f.Close()
	for i := range 200 {
		if err := f.Append(batch(i, 20)); err != nil {
			t.Fatal(err)
		}
	}
	var size int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, _ error) error {
		if info != nil && !info.IsDir() {
			size += info.Size()
		}
		return nil
	})
	if size > int64(cfg.MaxBacklog+cfg.SegmentSize) {
		t.Errorf("backlog holds %d bytes, bound %d", size, cfg.MaxBacklog+cfg.SegmentSize)
	}
	if d := testutil.ToFloat64(f.m.droppedBytes.WithLabelValues(cfg.name(), "backlog_full")); d == 0 {
		t.Error("nothing counted as dropped")
	}
	// What is left is still sent, oldest first, once the endpoint is back.
	sink.down.Store(false)
	stop := start(f)
	defer stop()
	waitFor(t, "the remaining backlog", func() bool {
		return testutil.ToFloat64(f.m.backlog.WithLabelValues(cfg.name())) == 0 && sink.unique() > 0
	})
}

// TestRefusedPushIsDroppedAndCounted: a 400 is not retried forever.
func TestRefusedPushIsDroppedAndCounted(t *testing.T) {
	sink := newLokiSink(t)
	sink.status.Store(http.StatusBadRequest)
	cfg := EndpointConfig{URL: sink.srv.URL}
	f := open(t, t.TempDir(), cfg, prometheus.NewRegistry())
	defer f.Close()
	stop := start(f)
	defer stop()
	if err := f.Append(batch(0, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drop", func() bool {
		return testutil.ToFloat64(f.m.droppedEntries.WithLabelValues(cfg.name(), "400")) == 5
	})
	sink.status.Store(0)
	if err := f.Append(batch(1, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next push", func() bool { return sink.unique() == 5 })
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  EndpointConfig
		want string
	}{
		{EndpointConfig{}, "url: must be set"},
		{EndpointConfig{URL: "loki:3100/push"}, "scheme must be http or https"},
		{EndpointConfig{URL: "http://x", MaxBacklog: units.Bytes(1 << 20), SegmentSize: units.Bytes(1 << 20)}, "at least two segments"},
	} {
		c := tc.cfg
		c.SetDefaults()
		if err := c.Validate(); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
