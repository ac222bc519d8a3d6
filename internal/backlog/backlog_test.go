package backlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestTornRecordIsCutAtOpen: garbage after the last whole record (a crash
// mid-write) is cut off; the records before it are sent.
func TestTornRecordIsCutAtOpen(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Append([]byte(fmt.Sprintf("record %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	seg := filepath.Join(dir, "00000001.seg")
	fh, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	fh.Write([]byte{0, 0, 0, 50, 1, 2, 3, 4, 'x'})
	fh.Close()
	b, err = Open(dir, 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Append([]byte("record 3")); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		p, seg, off, ok, err := b.Next()
		if err != nil || !ok || string(p) != fmt.Sprintf("record %d", i) {
			t.Fatalf("record %d: %q ok=%v err=%v", i, p, ok, err)
		}
		if err := b.Ack(seg, off); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, ok, _ := b.Next(); ok {
		t.Fatal("a record after the last one")
	}
}
