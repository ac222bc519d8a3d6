package lokiapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// bigPush is ~1.6 MiB of lines: more than a second's worth at the default
// 4 MB/s only if the bucket starts empty, well inside the 6 MB burst.
func bigPush(at time.Time) []push.Stream {
	var es []push.Entry
	for i := range 8 {
		es = append(es, push.Entry{Timestamp: at.Add(time.Duration(i) * time.Millisecond), Line: strings.Repeat("x", 200<<10)})
	}
	return []push.Stream{{Labels: `{app="burst"}`, Entries: es}}
}

// A real server (wall clock everywhere, no injected clock) accepts a full
// burst in its first second: the limiter starts full.
func TestRateLimiterStartsFullOnWallClock(t *testing.T) {
	cfg := DefaultConfig()
	reg := prometheus.NewRegistry()
	db, err := logstore.Open(t.TempDir(), cfg.StoreOptions(), logstore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	api, err := New(cfg, Deps{Registerer: reg, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	e := &env{api: api, db: db, srv: serve(t, api), reg: reg}
	if code, msg := e.pushProto(t, bigPush(time.Now())); code != http.StatusNoContent {
		t.Fatalf("first push of a fresh server: %d %s", code, msg)
	}
}

// With a clock far from the wall clock (either way) pushes are limited by
// that clock alone: the first burst passes, a second one at the same instant
// is refused, and one a second later is allowed again.
func TestRateLimiterUsesInjectedClock(t *testing.T) {
	for _, off := range []time.Duration{-365 * 24 * time.Hour, 0, 365 * 24 * time.Hour} {
		t.Run(off.String(), func(t *testing.T) {
			clock := testclock.Base().Add(off)
			e := newEnvAt(t, func() time.Time { return clock }, func(c *Config) {
				c.Limits.IngestionRateMB = 2
				c.Limits.IngestionBurstSizeMB = 2
			})
			if code, msg := e.pushProto(t, bigPush(clock)); code != http.StatusNoContent {
				t.Fatalf("first burst: %d %s", code, msg)
			}
			if code, msg := e.pushProto(t, bigPush(clock.Add(time.Second))); code != http.StatusTooManyRequests {
				t.Fatalf("second burst at the same instant: %d %s", code, msg)
			}
			clock = clock.Add(time.Second)
			if code, msg := e.pushProto(t, bigPush(clock.Add(time.Second))); code != http.StatusNoContent {
				t.Fatalf("a second later: %d %s", code, msg)
			}
			// A reload with the same limits keeps the (now empty) bucket;
			// a changed limit starts a new, full one.
			cfg := DefaultConfig()
			cfg.Limits.IngestionRateMB, cfg.Limits.IngestionBurstSizeMB = 2, 2
			if err := e.api.ApplyConfig(cfg); err != nil {
				t.Fatal(err)
			}
			if code, _ := e.pushProto(t, bigPush(clock.Add(2*time.Second))); code != http.StatusTooManyRequests {
				t.Fatalf("same limits after reload refilled the bucket: %d", code)
			}
			cfg.Limits.IngestionBurstSizeMB = 3
			if err := e.api.ApplyConfig(cfg); err != nil {
				t.Fatal(err)
			}
			if code, msg := e.pushProto(t, bigPush(clock.Add(3*time.Second))); code != http.StatusNoContent {
				t.Fatalf("after raising the burst: %d %s", code, msg)
			}
		})
	}
}
