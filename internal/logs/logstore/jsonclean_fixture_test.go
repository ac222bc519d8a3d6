package logstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// v2Want is what testdata/v2 holds: two blocks written by format version 2
// (before the json-clean chunk flag, ADR 0109), 160 entries over two
// streams: JSON lines, and in pod p1 a few invalid and logfmt ones.
func v2Want() map[string][]Entry {
	want := map[string][]Entry{}
	for k := range 160 {
		ls, e := v2Entry(k)
		want[ls.String()] = append(want[ls.String()], e)
	}
	return want
}

func v2Entry(k int) (labels.Labels, Entry) {
	base := time.Unix(1_700_000_000, 0).UnixNano()
	{
		ls := labels.FromStrings("app", "v2", "pod", fmt.Sprint("p", k%2))
		line := fmt.Sprintf(`{"level":"info","i":%d,"status":%d,"http":{"method":"GET"}}`, k, 200+k%7)
		switch k % 40 { // pod p1 only
		case 3:
			line = fmt.Sprintf(`{"level":"info","i":%d,"status":`, k) // cut short
		case 7:
			line = fmt.Sprintf("level=info i=%d status=%d", k, 200+k%7)
		}
		return ls, Entry{Timestamp: base + int64(k)*int64(250*time.Millisecond), Line: line}
	}
}

// TestWriteFormatV2Fixture wrote testdata/v2 with the code of format
// version 2 (run with NXWATCHER_LOGSTORE_V2_FIXTURE=<dir> in a tree of
// that version); it is skipped otherwise.
func TestWriteFormatV2Fixture(t *testing.T) {
	out := os.Getenv("NXWATCHER_LOGSTORE_V2_FIXTURE")
	if out == "" {
		t.Skip("writes a fixture only when asked to")
	}
	dir := t.TempDir()
	db := openTest(t, dir, func(o *Options) { o.ChunkTargetSize = 600 })
	for half := range 2 {
		app := db.Appender()
		for k := half * 80; k < half*80+80; k++ {
			app.Append(v2Entry(k))
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.FlushHead(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(dir, "blocks"), filepath.Join(out, "blocks"))
}

// TestReadsFormatV2 opens blocks written by format version 2, whose chunks
// claim nothing, reads them, and compacts them into a version 3 block
// whose chunks claim JSONObjects exactly where every line is a clean JSON
// object; the flags survive a reopen.
func TestReadsFormatV2(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/v2", dir)
	db := openTest(t, dir, func(o *Options) { o.ChunkTargetSize = 600 })
	defer db.Close()
	metas := db.Blocks()
	if len(metas) != 2 || metas[0].Version != 2 || metas[1].Version != 2 {
		t.Fatalf("blocks %+v, want two of version 2", metas)
	}
	all := labels.MustNewMatcher(labels.MatchEqual, "app", "v2")
	checkEntries(t, readAll(t, db, SelectHints{}, all), v2Want())
	if got := chunkFlags(t, db); got[true] != 0 || got[false] == 0 {
		t.Fatalf("version 2 chunks claim JSONObjects: %v", got)
	}

	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	metas = db.Blocks()
	if len(metas) != 1 || metas[0].Version != blockFormatVersion || blockFormatVersion != 3 {
		t.Fatalf("after compaction: %+v", metas)
	}
	checkEntries(t, readAll(t, db, SelectHints{}, all), v2Want())
	want := checkChunkFlags(t, db)
	if want[true] == 0 || want[false] == 0 {
		t.Fatalf("compacted chunks claiming JSONObjects: %v; the fixture has both kinds", want)
	}
	db.Close()
	db = openTest(t, dir, nil)
	defer db.Close()
	checkEntries(t, readAll(t, db, SelectHints{}, all), v2Want())
	if got := checkChunkFlags(t, db); got[true] != want[true] || got[false] != want[false] {
		t.Fatalf("after reopen: %v, want %v", got, want)
	}
}

// chunkFlags counts the chunks of every block by JSONObjects.
func chunkFlags(t *testing.T, db *DB) map[bool]int {
	t.Helper()
	n := map[bool]int{}
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, b := range db.blocks {
		for _, st := range b.streams {
			for _, c := range st.chunks {
				n[c.meta.JSONObjects]++
			}
		}
	}
	return n
}

// checkChunkFlags wants each block chunk's JSONObjects to say whether
// every one of its lines is a JSONObjectLine, and counts them.
func checkChunkFlags(t *testing.T, db *DB) map[bool]int {
	t.Helper()
	db.mu.RLock()
	defer db.mu.RUnlock()
	n := map[bool]int{}
	for _, b := range db.blocks {
		for _, st := range b.streams {
			for i := range st.chunks {
				h := blockChunkHandle{b: b, c: &st.chunks[i]}
				v, release, err := h.view(false, nil)
				if err != nil {
					t.Fatal(err)
				}
				clean := true
				for j := range v.len() {
					clean = clean && JSONObjectLine(string(v.line(j)))
				}
				release()
				if clean != h.c.meta.JSONObjects {
					t.Fatalf("chunk %d of %s: JSONObjects %v, lines clean %v", i, st.lbls, h.c.meta.JSONObjects, clean)
				}
				n[clean]++
			}
		}
	}
	return n
}

// TestJSONObjectsFlagOnCut: head chunks are flagged when cut, flushed
// blocks keep the flag, and one invalid line makes its chunk claim
// nothing.
func TestJSONObjectsFlagOnCut(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) { o.ChunkTargetSize = 1 << 10 })
	defer db.Close()
	app := db.Appender()
	clean := labels.FromStrings("app", "j", "s", "clean")
	mixed := labels.FromStrings("app", "j", "s", "mixed")
	for k := range 400 {
		l := fmt.Sprintf(`{"level":"info","i":%d,"msg":"x \"y\"","http":{"status":%d}}`, k, 200+k%5)
		app.Append(clean, Entry{Timestamp: base + int64(k), Line: l})
		if k == 200 {
			l = `{"level":"info","i":200,"i":201}` // a member twice
		}
		app.Append(mixed, Entry{Timestamp: base + int64(k), Line: l})
	}
	if _, err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	count := func() map[string][2]int {
		q, err := db.Querier(minTime, maxTime)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		out := map[string][2]int{}
		ss := q.Select(t.Context(), SelectHints{Start: minTime, End: maxTime}, labels.MustNewMatcher(labels.MatchEqual, "app", "j"))
		for ss.Next() {
			var c [2]int
			for _, m := range ss.At().ChunkMetas() {
				if m.JSONObjects {
					c[1]++
				} else {
					c[0]++
				}
			}
			out[ss.At().Labels.Get("s")] = c
		}
		return out
	}
	head := count()
	// The open chunk claims nothing; in the mixed stream, the chunk with
	// line 200 claims nothing either.
	if c := head["clean"]; c[0] != 1 || c[1] < 5 {
		t.Fatalf("clean stream in the head: %d chunks claim nothing, %d claim", c[0], c[1])
	}
	if c := head["mixed"]; c[0] != 2 || c[1] != head["clean"][1]-1 {
		t.Fatalf("mixed stream in the head: %d chunks claim nothing, %d claim (clean: %v)", c[0], c[1], head["clean"])
	}
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	checkChunkFlags(t, db)
	if c := count()["mixed"]; c[0] != 1 && c[0] != 2 {
		t.Fatalf("mixed stream in a block: %v", c)
	}
}
