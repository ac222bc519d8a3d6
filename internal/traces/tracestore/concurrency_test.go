package tracestore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestConcurrentIngestCutQuery checks that a trace acknowledged by
// ConsumeTraces is always visible, whole, while cuts and compactions run.
func TestConcurrentIngestCutQuery(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.Now = testclock.Now })
	defer db.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // background maintenance, as Run does, but faster
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if err := db.Flush(); err != nil {
				t.Error(err)
				return
			}
			if i%3 == 2 {
				if err := db.compact(ctx); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	type acked struct {
		id pcommon.TraceID
		td ptrace.Traces
	}
	ackc := make(chan acked, 1000)
	var writers sync.WaitGroup
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func(seed uint64) {
			defer writers.Done()
			g := storetest.NewGen(seed, testclock.Now().UnixNano())
			for i := 0; i < 150; i++ {
				id, td := g.Trace(1 + i%6)
				if err := db.ConsumeTraces(ctx, td); err != nil {
					t.Error(err)
					return
				}
				ackc <- acked{id, td}
			}
		}(uint64(w + 100))
	}
	var checked atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a := range ackc {
			got, found, err := db.TraceByID(t.Context(), a.id)
			if err != nil || !found {
				t.Errorf("acked trace %s: found=%v err=%v", a.id, found, err)
				return
			}
			if d := storetest.Diff(a.td, got); d != "" {
				t.Errorf("acked trace %s differs: %s", a.id, d)
				return
			}
			checked.Add(1)
		}
	}()
	writers.Wait()
	close(ackc)
	<-done
	cancel()
	wg.Wait()
	if got := checked.Load(); got != 300 {
		t.Fatalf("checked %d acknowledged traces, want 300", got)
	}
	if n, _ := db.blockStats(); n == 0 {
		t.Fatal("no blocks were cut during the test")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.CheckInterval = time.Millisecond })
	defer db.Close()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- db.Run(ctx) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
