package lokiapi

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// BenchmarkPushTenancy is the push CPU cost of tenancy, the whole path
// (decode, validation, WAL, head) with 1000-line pushes over 10 streams:
// one store as before tenancy ("single"), a tenancy.Set with tenancy off
// ("set-off", tenant fake), and tenancy on with the pushes spread over
// 1 or 4 tenants ("on-1", "on-4"). cpu-ns/line is the process CPU (user +
// system, GC included) per line.
func BenchmarkPushTenancy(b *testing.B) {
	bodies := make([][]byte, 32)
	base := time.Now().Add(-time.Hour)
	for i := range bodies {
		req := &push.PushRequest{}
		for s := range 10 {
			st := push.Stream{Labels: fmt.Sprintf(`{app="bench", namespace="prod", pod="api-%d"}`, s)}
			for j := range 100 {
				k := (i*10+s)*100 + j
				st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(k) * time.Microsecond),
					Line: fmt.Sprintf(`level=info caller=handler.go:%d method=GET path=/api/v1/items/%d status=200 duration=%d.%dms msg="request served"`, 100+k%400, k*7919%100000, k%200, k%10)})
			}
			req.Streams = append(req.Streams, st)
		}
		pb, _ := proto.Marshal(req)
		bodies[i] = snappy.Encode(nil, pb)
	}
	for _, mode := range []string{"single", "set-off", "on-1", "on-4"} {
		b.Run(mode, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Limits.IngestionRateMB, cfg.Limits.IngestionBurstSizeMB = 0, 0
			cfg.AuthEnabled = mode == "on-1" || mode == "on-4"
			tenants := []string{""}
			switch mode {
			case "on-1":
				tenants = []string{"team-a"}
			case "on-4":
				tenants = []string{"team-a", "team-b", "team-c", "team-d"}
			}
			var api *API
			var closeAll func()
			open := func() {
				reg := prometheus.NewRegistry()
				if mode == "single" {
					db, err := logstore.Open(b.TempDir(), cfg.StoreOptions(), logstore.Deps{Registerer: reg})
					if err != nil {
						b.Fatal(err)
					}
					if api, err = New(cfg, Deps{Registerer: reg, Store: db}); err != nil {
						b.Fatal(err)
					}
					closeAll = func() { api.Close(); db.Close() }
					return
				}
				set := tenancy.NewSet(b.TempDir()+"/logs", func(tenant, dir string) (*logstore.DB, error) {
					return logstore.Open(dir, cfg.StoreOptions(), logstore.Deps{Registerer: tenancy.Registerer(reg, tenant, cfg.AuthEnabled)})
				})
				var err error
				if api, err = New(cfg, Deps{Registerer: reg, Tenants: TenantStores(set)}); err != nil {
					b.Fatal(err)
				}
				closeAll = func() { api.Close(); set.Close() }
			}
			open()
			defer func() { closeAll() }()
			b.ReportAllocs()
			var cpu time.Duration
			round := len(bodies) * len(tenants)
			for i := 0; i < b.N; i++ {
				if i > 0 && i%round == 0 {
					b.StopTimer() // new stores: the bodies' lines would be duplicates
					closeAll()
					open()
					b.StartTimer()
				}
				req := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(bodies[(i/len(tenants))%len(bodies)]))
				req.Header.Set("Content-Type", "application/x-protobuf")
				if tn := tenants[i%len(tenants)]; tn != "" {
					req.Header.Set("X-Scope-OrgID", tn)
				}
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
