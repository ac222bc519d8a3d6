package forward

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// lines builds a push-sized batch: 10 streams × 100 lines of ~150 bytes.
func lines(i int) []Stream {
	base := time.Now().Add(-time.Hour).UnixNano()
	out := make([]Stream, 10)
	for s := range out {
		es := make([]logstore.Entry, 100)
		for j := range es {
			es[j] = logstore.Entry{Timestamp: base + int64(i*1000+j), Line: fmt.Sprintf(
				`ts=2026-11-30T10:00:00Z level=info caller=handler.go:%d msg="request served" method=GET path=/api/v1/items/%d status=200 duration=%dms`, j, i*1000+j, j%97)}
		}
		out[s] = Stream{Labels: labels.FromStrings("app", "shop", "pod", fmt.Sprintf("shop-%d", s), "namespace", "prod"), Entries: es}
	}
	return out
}

// BenchmarkForward appends push-sized batches (1,000 lines) and waits until
// a sink acknowledged them all; it reports process CPU seconds per 100k
// lines (backlog write + read + HTTP push, sink included: it only reads the
// body).
func BenchmarkForward(b *testing.B) {
	b.ReportAllocs()
	var got atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	f := open(b, b.TempDir(), EndpointConfig{URL: sink.URL}, prometheus.NewRegistry())
	defer f.Close()
	stop := start(f)
	defer stop()
	batches := make([][]Stream, 8)
	for i := range batches {
		batches[i] = lines(i)
	}
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.Append(batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cpu := cpuSeconds() - cpu0
	b.ReportMetric(cpu/float64(b.N*1000)*100_000, "cpu-s/100k-lines")
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "lines/s")
	sent := 0.0
	for name := range f.set.Pending() {
		sent += testutilCounter(f.m.sentBytes.WithLabelValues(name))
	}
	b.ReportMetric(sent/float64(b.N*1000), "backlog-bytes/line")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func testutilCounter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
