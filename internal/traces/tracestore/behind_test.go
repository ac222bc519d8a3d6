package tracestore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestBehindAndKick: Behind flips when the head (plus what is being cut)
// reaches MaxHeadBytes, and the kick it sends makes Run cut at once, long
// before its CheckInterval tick (an hour here).
func TestBehindAndKick(t *testing.T) {
	const maxHead = 64 << 10
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.MaxHeadBytes = maxHead
		o.MaxBlockBytes = maxHead
		o.CheckInterval = time.Hour
		o.TraceIdle = time.Hour // nothing is idle: only a full head cuts
		o.MaxTraceLive = 2 * time.Hour
		o.MaxBlockDuration = 2 * time.Hour
	})
	defer db.Close()
	if db.Behind() {
		t.Fatal("empty store is behind")
	}
	g := storetest.NewGen(7, testBase.UnixNano())
	for i := 0; db.head.bytesNow() < maxHead; i++ {
		if i > 10000 {
			t.Fatal("head never filled")
		}
		_, td := g.Trace(20)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	if len(db.kick) != 1 {
		t.Fatal("the append that filled the head did not ask for a cut")
	}
	<-db.kick // Behind must ask on its own too
	if !db.Behind() {
		t.Fatalf("head holds %d bytes >= %d and Behind is false", db.head.bytesNow(), maxHead)
	}
	if len(db.kick) != 1 {
		t.Fatal("Behind on a full head did not ask for a cut")
	}
	for range 3 { // never blocks with a request pending
		db.Behind()
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = db.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n, _ := db.blockStats(); n > 0 && !db.Behind() {
			break
		}
		if time.Now().After(deadline) {
			n, _ := db.blockStats()
			t.Fatalf("no cut without the tick: %d blocks, head %d bytes", n, db.head.bytesNow())
		}
		time.Sleep(5 * time.Millisecond) // poll
	}
	if st := db.headStats(); st.bytes != 0 {
		t.Fatalf("head after the cut holds %d bytes", st.bytes)
	}
}

// TestBehindCountsFlushing: traces being cut still count, and only a full
// head (not a slow cut) asks for another cut.
func TestBehindCountsFlushing(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.MaxHeadBytes = 64 << 10
		o.MaxBlockBytes = 64 << 10
	})
	defer db.Close()
	db.flushingBytes.Store(64 << 10)
	if !db.Behind() {
		t.Fatal("Behind ignores the traces being cut")
	}
	if len(db.kick) != 0 {
		t.Fatal("an empty head asked for a cut")
	}
	db.flushingBytes.Store(64<<10 - 1)
	if db.Behind() {
		t.Fatal("Behind below MaxHeadBytes")
	}
}
