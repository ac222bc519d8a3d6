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
// streams: JSON lines, some invalid, some logfmt.
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
		switch k % 11 {
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
