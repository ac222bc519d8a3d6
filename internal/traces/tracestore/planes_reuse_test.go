package tracestore

import (
	"slices"
	"testing"
)

// TestPlanesReuse: readPlanes into a reused buffer holding other values
// (it assigns the first planes instead of clearing first) gives the
// values written, for every plane count.
func TestPlanesReuse(t *testing.T) {
	for w := 0; w <= 8; w++ {
		vals := make([]uint64, 37)
		for i := range vals {
			if w > 0 {
				vals[i] = (uint64(i) * 0x9e3779b97f4a7c15) >> (64 - 8*w)
			}
		}
		p := appendPlanes(nil, vals)
		dirty := make([]uint64, 64)
		for i := range dirty {
			dirty[i] = ^uint64(0)
		}
		got, ok := readPlanes(p, len(vals), dirty)
		if !ok || !slices.Equal(got, vals) {
			t.Fatalf("%d planes (written %d): got %x, want %x", w, p[0], got, vals)
		}
	}
}

// BenchmarkReadPlanes: a group's start column (1024 traces, ~5.5k spans,
// 4 planes) decoded into a reused buffer.
func BenchmarkReadPlanes(b *testing.B) {
	vals := make([]uint64, 5500)
	for i := range vals {
		vals[i] = (uint64(i) * 0x9e3779b97f4a7c15) >> 32
	}
	p := appendPlanes(nil, vals)
	var out []uint64
	b.ReportAllocs()
	for b.Loop() {
		out, _ = readPlanes(p, len(vals), out)
	}
}
