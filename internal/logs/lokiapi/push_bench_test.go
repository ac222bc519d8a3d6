package lokiapi

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// BenchmarkPushDiscovery is the cost of Loki 3's discovered labels on the
// whole push path (decode, validation, WAL, head, chunk cuts), the same
// binary and data with discovery off and on: 1000-line pushes over 10
// streams of bench-like logfmt lines. cpu-ns/line is the process CPU
// (user+system, GC included) per line, which holds on a busy machine.
func BenchmarkPushDiscovery(b *testing.B) {
	bodies := make([][]byte, 64)
	base := time.Now().Add(-time.Hour)
	for i := range bodies {
		req := &push.PushRequest{}
		for s := range 10 {
			st := push.Stream{Labels: fmt.Sprintf(`{app="bench", namespace="prod", pod="api-%d"}`, s)}
			for j := range 100 {
				k := (i*10+s)*100 + j
				st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(k) * time.Microsecond),
					Line: fmt.Sprintf(`level=info caller=handler.go:%d method=GET path=/api/v1/items/%d status=200 duration=%d.%dms trace_id=%032x msg="request served"`, 100+k%400, k*7919%100000, k%200, k%10, uint64(k)*0x9E3779B97F4A7C15)})
			}
			req.Streams = append(req.Streams, st)
		}
		pb, _ := proto.Marshal(req)
		bodies[i] = snappy.Encode(nil, pb)
	}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("discovery=%v", on), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Limits.IngestionRateMB, cfg.Limits.IngestionBurstSizeMB = 0, 0
			if !on {
				cfg.Limits.DiscoverServiceName, cfg.Limits.DiscoverLogLevels = nil, false
			}
			db, err := logstore.Open(b.TempDir(), cfg.StoreOptions(), logstore.Deps{Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			api, err := New(cfg, Deps{Registerer: prometheus.NewRegistry(), Store: db})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { api.Close(); db.Close() }() // the last ones opened
			b.ReportAllocs()
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				if i > 0 && i%len(bodies) == 0 {
					b.StopTimer() // a new store: the bodies' lines would be duplicates
					api.Close()
					db.Close()
					if db, err = logstore.Open(b.TempDir(), cfg.StoreOptions(), logstore.Deps{Registerer: prometheus.NewRegistry()}); err != nil {
						b.Fatal(err)
					}
					if api, err = New(cfg, Deps{Registerer: prometheus.NewRegistry(), Store: db}); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				req := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(bodies[i%len(bodies)]))
				req.Header.Set("Content-Type", "application/x-protobuf")
				w := httptest.NewRecorder()
				c0 := processCPU()
				api.Push(w, req)
				cpu += processCPU() - c0
				if w.Code != http.StatusNoContent {
					b.Fatalf("push: %d %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*1000), "cpu-ns/line")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
