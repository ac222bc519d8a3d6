package procmem

import (
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile line")
	return 0
}

// Releasing the executable's read-only pages lowers the file-backed
// resident set, and the code keeps running: what it needs faults back in.
func TestReleaseStartupPages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	maps := readOnlyMappingsOf(exe)
	if len(maps) == 0 {
		t.Fatalf("no read-only mappings of %s found in /proc/self/maps", exe)
	}
	before := rssFileKiB(t)
	ReleaseStartupPages(slog.New(slog.DiscardHandler))
	after := rssFileKiB(t)
	if after >= before {
		t.Errorf("RssFile %d KiB before, %d KiB after: nothing released", before, after)
	}
	// Code and constant data not touched since still work.
	b, err := json.Marshal(map[string]any{"k": []int{1, 2, 3}})
	if err != nil || string(b) != `{"k":[1,2,3]}` {
		t.Fatalf("after release: %s %v", b, err)
	}
	if RSSKiB() <= 0 {
		t.Error("RSSKiB = 0")
	}
}
