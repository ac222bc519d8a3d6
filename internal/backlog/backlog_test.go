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

// TestPositionPastTheSegmentsIsClamped: after a power loss the position
// file can name an offset (or segment) the segments no longer reach;
// records appended after the restart must still be sent (found by
// FuzzOpenAndDrain).
func TestPositionPastTheSegmentsIsClamped(t *testing.T) {
	for _, pos := range []string{"1 99999\n", "7 0\n", "1 -5\n"} {
		t.Run(pos[:len(pos)-1], func(t *testing.T) {
			dir := t.TempDir()
			b, err := Open(dir, 1<<20, 4<<20)
			if err != nil {
				t.Fatal(err)
			}
			b.Append([]byte("before"))
			b.Close()
			os.WriteFile(filepath.Join(dir, "position"), []byte(pos), 0o644)
			b, err = Open(dir, 1<<20, 4<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			b.Append([]byte("after"))
			var got []string
			for {
				p, seg, off, ok, err := b.Next()
				if !ok {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(p))
				b.Ack(seg, off)
			}
			if len(got) == 0 || got[len(got)-1] != "after" {
				t.Fatalf("read %q; the record appended after the restart is lost", got)
			}
		})
	}
}

// TestPositionInsideARecordResendsIt: a position that falls inside a record
// moves back to that record's start (sent again) instead of skipping the
// rest of the segment.
func TestPositionInsideARecordResendsIt(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	b.Append([]byte("one"))
	b.Append([]byte("two"))
	b.Close()
	os.WriteFile(filepath.Join(dir, "position"), []byte("1 13\n"), 0o644) // inside "two" (11..21)
	b, err = Open(dir, 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Append([]byte("three"))
	var got []string
	for {
		p, seg, off, ok, err := b.Next()
		if !ok {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(p))
		b.Ack(seg, off)
	}
	if fmt.Sprint(got) != "[two three]" {
		t.Fatalf("read %q, want [two three]", got)
	}
}
