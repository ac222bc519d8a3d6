package tracestore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestCompactionDeterministic: the same level-0 blocks compacted twice, in
// two stores, give the same data, columns and index files byte for byte,
// also when a key is complete in each source but over maxPostingValues
// once merged (which values it keeps followed Go's map order before).
func TestCompactionDeterministic(t *testing.T) {
	const perCut = maxPostingValues*3/4 + 1
	g := storetest.NewGen(61, testBase.UnixNano())
	var cuts []ptrace.Traces
	for c := range 2 {
		td := ptrace.NewTraces()
		for i := range perCut {
			g.AppendTrace(td, g.TraceID(), 1+i%3, pcommon.SpanID{})
			rs := td.ResourceSpans().At(td.ResourceSpans().Len() - 1)
			rs.ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("order.id", fmt.Sprintf("o-%d-%05d", 1-c, i)) // the second cut's values sort first
		}
		cuts = append(cuts, td)
	}
	compactOnce := func() map[string][]byte {
		db, err := Open(t.TempDir(), DefaultOptions(), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, td := range cuts {
			if err := db.ConsumeTraces(context.Background(), td); err != nil {
				t.Fatal(err)
			}
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(db.blocks) != 1 {
			t.Fatalf("%d blocks after compaction", len(db.blocks))
		}
		b := db.blocks[0]
		kp, err := b.keyPostings("span.order.id")
		if err != nil || kp == nil || kp.complete {
			t.Fatalf("span.order.id after compaction: %v, %v (want an incomplete key)", kp, err)
		}
		files := map[string][]byte{}
		for _, name := range []string{dataFile, columnsFile, indexFile} {
			f, err := os.ReadFile(filepath.Join(b.dir, name))
			if err != nil {
				t.Fatal(err)
			}
			files[name] = f
		}
		return files
	}
	first := compactOnce()
	for range 3 {
		again := compactOnce()
		for name, f := range first {
			if !bytes.Equal(f, again[name]) {
				t.Fatalf("%s differs between two compactions of the same blocks", name)
			}
		}
	}
}
