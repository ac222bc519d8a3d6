package lokiapi

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// On a filesystem that runs out of space, pushes are refused with 503 and
// Retry-After (every Loki client and OTLP sender retries it), queries keep
// working, and pushes are accepted again as soon as space returns, with
// nothing acknowledged lost.
func TestPushOnFullDisk(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=8388608"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skip("cannot mount a tmpfs here (EPERM: needs root or CAP_SYS_ADMIN)")
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 6<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Storage.MinFreeSpace = 1 << 20
	cfg.Limits.IngestionRateMB = 0
	reg := prometheus.NewRegistry()
	opts := cfg.StoreOptions()
	opts.Now = func() time.Time { return now }
	db, err := logstore.Open(filepath.Join(mnt, "logs"), opts, logstore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	api, err := New(cfg, Deps{Registerer: reg, Store: db, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	e := &env{api: api, db: db, srv: serve(t, api), reg: reg}

	acked := map[string]bool{}
	pushBatch := func(i int) (int, string) {
		var es []push.Entry
		for j := range 100 {
			es = append(es, push.Entry{Timestamp: ts(i % 3000).Add(time.Duration(j) * time.Microsecond), Line: fmt.Sprintf("batch %d line %d %x", i, j, uint64(i*100+j)*0x9e3779b97f4a7c15)})
		}
		code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="disk"}`, Entries: es}})
		if code == http.StatusNoContent {
			for _, en := range es {
				acked[en.Line] = true
			}
		}
		return code, msg
	}
	i := 0
	for ; i < 10_000; i++ {
		code, msg := pushBatch(i)
		if code == http.StatusNoContent {
			continue
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, "not enough free disk space") {
			t.Fatalf("push %d: %d %s", i, code, msg)
		}
		break
	}
	if i == 10_000 || len(acked) == 0 {
		t.Fatalf("disk never filled (%d acknowledged)", len(acked))
	}
	if code, body := e.get(t, "/loki/api/v1/query_range", rangeParams(`count_over_time({app="disk"}[1h])`)); code != 200 {
		t.Fatalf("query on a full disk: %d %s", code, body)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if code, msg := pushBatch(i); code != http.StatusNoContent {
		t.Fatalf("after space returned: %d %s", code, msg)
	}
	// Every acknowledged line, once, after a clean reopen.
	api.Close()
	db.Close()
	db2, err := logstore.Open(filepath.Join(mnt, "logs"), opts, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	q, err := db2.Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	seen := map[string]int{}
	ss := q.Select(t.Context(), logstore.SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "disk"))
	for ss.Next() {
		it := ss.At().Iterator(t.Context())
		for it.Next() {
			seen[strings.Clone(it.At().Line)]++
		}
		it.Close()
	}
	for l := range acked {
		if seen[l] != 1 {
			t.Fatalf("acknowledged %q stored %d times", l, seen[l])
		}
	}
}
