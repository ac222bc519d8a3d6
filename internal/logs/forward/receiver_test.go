package forward

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
)

// TestForwardToNXWatcherPushExactlyOnce forwards to a second nxwatcher's
// Loki push endpoint (lokiapi over a logstore): after an outage and a crash
// between delivery and acknowledgement, the receiver stores every line
// exactly once (it drops the redelivered push as exact duplicates).
func TestForwardToNXWatcherPushExactlyOnce(t *testing.T) {
	store, err := logstore.Open(t.TempDir(), logstore.Options{}, logstore.Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	api, err := lokiapi.New(lokiapi.DefaultConfig(), lokiapi.Deps{Store: store, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	var crashNext atomic.Bool
	crashed := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rec := httptest.NewRecorder()
		api.Push(rec, r)
		if crashNext.CompareAndSwap(true, false) {
			// Stored, but the forwarder dies before it hears so.
			close(crashed)
			<-release
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()

	dir := t.TempDir()
	cfg := EndpointConfig{URL: srv.URL + "/loki/api/v1/push", SegmentSize: 8 << 10, MaxBacklog: 1 << 20}
	f := open(t, dir, cfg, prometheus.NewRegistry())
	stop := start(f)
	const per = 25
	down.Store(true)
	for i := range 10 {
		if err := f.Append(batch(i, per)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failed push", func() bool {
		return testutil.ToFloat64(f.m.failedRequests.WithLabelValues(cfg.name(), "503")) > 0
	})
	down.Store(false)
	entries := func() int64 { _, n, _ := store.HeadStats(); return n }
	waitFor(t, "the outage backlog", func() bool { return entries() == 10*per })

	crashNext.Store(true)
	if err := f.Append(batch(10, per)); err != nil {
		t.Fatal(err)
	}
	<-crashed
	stop()
	close(release)
	f.Close()

	f2 := open(t, dir, cfg, prometheus.NewRegistry())
	defer f2.Close()
	stop2 := start(f2)
	defer stop2()
	for i := 11; i < 20; i++ {
		if err := f2.Append(batch(i, per)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every line", func() bool { return entries() >= 20*per && f2.backlogPending() == 0 })
	if n := entries(); n != 20*per {
		t.Fatalf("receiver stores %d entries, want exactly %d", n, 20*per)
	}
}

// backlogPending is the unacknowledged bytes of every endpoint.
func (f *Forwarder) backlogPending() int64 {
	var n int64
	for _, p := range f.set.Pending() {
		n += p
	}
	return n
}
