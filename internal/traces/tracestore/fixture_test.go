package tracestore

import (
	"os"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestWriteFixture writes the block fixture TestReadsOlderBlocks opens for
// the current format version: NXWATCHER_WRITE_TRACE_FIXTURE=testdata/v6store
// go test -run TestWriteFixture ./internal/traces/tracestore/ (the directory
// must not exist). Skipped otherwise.
func TestWriteFixture(t *testing.T) {
	dir := os.Getenv("NXWATCHER_WRITE_TRACE_FIXTURE")
	if dir == "" {
		t.Skip("NXWATCHER_WRITE_TRACE_FIXTURE not set")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists", dir)
	}
	base := time.Unix(1764460800, 0)
	db, _ := openTest(t, dir, func(o *Options) { o.Now = func() time.Time { return base.Add(time.Hour) } })
	g := storetest.NewGen(11, base.UnixNano())
	for i := 0; i < 40; i++ {
		_, td := g.Trace(1 + i%7)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
