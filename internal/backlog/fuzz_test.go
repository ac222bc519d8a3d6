package backlog

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenAndDrain: whatever is on disk (a segment of any bytes, any
// position file), Open does not panic, reading the backlog ends, every
// record handed out has a good checksum, and appending after it works.
func FuzzOpenAndDrain(f *testing.F) {
	rec := func(p string) []byte {
		b := make([]byte, 8+len(p))
		binary.BigEndian.PutUint32(b, uint32(len(p)))
		binary.BigEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), castagnoli))
		copy(b[8:], p)
		return b
	}
	f.Add(append(rec("one"), rec("two")...), "1 0\n")
	f.Add(append(rec("one"), 0, 0, 0, 9, 1), "1 11\n")
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, "")
	f.Add(rec("x"), "7 99999\n")
	f.Fuzz(func(t *testing.T, seg []byte, pos string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000001.seg"), seg, 0o644); err != nil {
			t.Fatal(err)
		}
		if pos != "" {
			if err := os.WriteFile(filepath.Join(dir, "position"), []byte(pos), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := Open(dir, 1<<10, 1<<20)
		if err != nil {
			return // a position file that does not parse is refused, not guessed
		}
		defer b.Close()
		if err := b.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		sawAfter := false
		for i := 0; ; i++ {
			if i > len(seg)+10 {
				t.Fatal("reading the backlog does not end")
			}
			p, s, off, ok, err := b.Next()
			if !ok {
				break
			}
			if err == nil && string(p) == "after" {
				sawAfter = true
			}
			if err := b.Ack(s, off); err != nil {
				t.Fatal(err)
			}
		}
		if !sawAfter {
			t.Fatal("the record appended after open was never read")
		}
	})
}
