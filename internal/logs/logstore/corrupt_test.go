package logstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// zerosFrame is one zstd frame that decodes to n zero bytes (a few KiB).
func zerosFrame(t testing.TB, n int) []byte {
	t.Helper()
	enc, _ := zstdCodecs()
	return enc.EncodeAll(make([]byte, n), nil)
}

// storedZstd builds a stored chunk with encoding 2 whose header claims
// claim bytes and whose body is frame, padded with a zstd skippable frame
// to total bytes when total > 0, with a valid CRC-32C: corrupt, yet it
// passes the checksum.
func storedZstd(claim uint64, frame []byte, total int) []byte {
	b := []byte{chunkEncodingZstd}
	b = binary.AppendUvarint(b, claim)
	b = append(b, frame...)
	if pad := total - 4 - len(b); total > 0 && pad >= 8 {
		b = binary.LittleEndian.AppendUint32(b, 0x184D2A50) // skippable frame magic
		b = binary.LittleEndian.AppendUint32(b, uint32(pad-8))
		b = append(b, make([]byte, pad-8)...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A zstd chunk whose frame decodes to far more than its header (and the
// index) say must fail without allocating what the frame would decode to;
// before, DecodeAll grew the buffer up to the decoder's 1 GiB limit.
func TestDecompressZstdBoundedByHeader(t *testing.T) {
	const big = 64 << 20
	frame := zerosFrame(t, big)
	cases := []struct {
		name  string
		claim uint64
		want  int
	}{
		{"frame larger than header", 1000, 0},
		{"frame larger than header and index", 1000, 1000},
		{"header disagrees with index", big, 1000},
		{"header beyond any chunk", 4 << 30, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stored := storedZstd(tc.claim, frame, 0)
			for _, pooled := range []bool{false, true} {
				var err error
				n := allocated(func() {
					var release func()
					_, release, err = decompressChunk(stored, pooled, tc.want)
					release()
				})
				if !errors.Is(err, ErrCorruptChunk) {
					t.Fatalf("pooled=%v: err = %v, want ErrCorruptChunk", pooled, err)
				}
				if n > 4<<20 {
					t.Fatalf("pooled=%v: decoding allocated %d bytes for a chunk of %d claimed bytes", pooled, n, tc.claim)
				}
			}
		})
	}
	// The same frame with an honest header decodes.
	raw, release, err := decompressChunk(storedZstd(4096, zerosFrame(t, 4096), 0), false, 4096)
	defer release()
	if err != nil || len(raw) != 4096 {
		t.Fatalf("honest chunk: %d bytes, %v", len(raw), err)
	}
}

// An s2 chunk whose header claims more than the index records is refused
// before its buffer is allocated.
func TestDecompressS2BoundedByIndex(t *testing.T) {
	var rc rawChunk
	rc.append(1, strings.Repeat("x", 1<<20), labels.EmptyLabels())
	raw := rc.encode()
	stored := compressChunk(raw, chunkEncodingS2)
	var err error
	n := allocated(func() { _, _, err = decompressChunk(stored, false, 100) })
	if !errors.Is(err, ErrCorruptChunk) || n > 64<<10 {
		t.Fatalf("err = %v after %d bytes allocated", err, n)
	}
	if got, _, err := decompressChunk(stored, false, len(raw)); err != nil || len(got) != len(raw) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

// A block chunk replaced by a zstd bomb of the same length (valid CRC, the
// index's size in its header) fails the query with a corrupt-chunk error,
// is counted, and costs no more memory than the chunk's recorded size.
func TestQueryCorruptZstdChunkCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, err := Open(t.TempDir(), DefaultOptions(), Deps{Registerer: reg}) // 256 KiB chunks: room for the bomb
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ls := labels.FromStrings("app", "bomb")
	app := db.Appender()
	for i := range 8000 {
		app.Append(ls, Entry{Timestamp: base + int64(i), Line: fmt.Sprintf("level=info seq=%d msg=\"request served\" id=%08x", i, i*7919)})
	}
	if _, err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	q, err := db.Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close() // before db.Close: a pinned block would make it wait
	if len(q.blocks) != 1 {
		t.Fatalf("%d blocks", len(q.blocks))
	}
	b := q.blocks[0]
	c := b.streams[0].chunks[0]
	bomb := storedZstd(uint64(c.meta.RawBytes), zerosFrame(t, 64<<20), int(c.length))
	if len(bomb) != int(c.length) {
		t.Fatalf("crafted chunk is %d bytes, the slot %d", len(bomb), c.length)
	}
	f, err := os.OpenFile(filepath.Join(b.dir, "chunks"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bomb, int64(c.off)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var qerr error
	n := allocated(func() {
		ss := q.Select(context.Background(), SelectHints{Start: 0, End: 1 << 62}, labels.MustNewMatcher(labels.MatchEqual, "app", "bomb"))
		for ss.Next() {
			it := ss.At().Iterator(context.Background())
			for it.Next() {
			}
			qerr = it.Err()
			it.Close()
		}
	})
	if !errors.Is(qerr, ErrCorruptChunk) || !strings.Contains(qerr.Error(), "chunk at") {
		t.Fatalf("query error = %v, want a corrupt chunk named by its offset", qerr)
	}
	if n > 16<<20 {
		t.Fatalf("the query allocated %d bytes", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "nxwatcher_logstore_query_corrupt_chunks_total" {
			got = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if got != 1 {
		t.Fatalf("corrupt chunks counted: %v, want 1", got)
	}
}
