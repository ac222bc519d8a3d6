package logstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestChunkMetadataRoundTripAndBloom: metadata written straight into the
// column decodes back per entry (consecutive equal sets shared, different
// ones not), and the bloom holds the pairs of every distinct set, also
// those that follow a repeated one.
func TestChunkMetadataRoundTripAndBloom(t *testing.T) {
	mds := []labels.Labels{
		labels.FromStrings("detected_level", "info"),
		labels.FromStrings("detected_level", "info"),
		labels.EmptyLabels(),
		labels.FromStrings("detected_level", "error", "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
		labels.FromStrings("detected_level", "info"),
		labels.FromStrings("detected_level", "info", "k", string(make([]byte, 200))), // lengths over one varint byte
	}
	c := &rawChunk{}
	for i, md := range mds {
		c.append(int64(i), "line", md)
	}
	raw, release, err := decompressChunk(compressChunk(c.encode(), chunkEncodingS2), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	v, err := parseChunk(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range mds {
		e, err := v.entry(i, false)
		if err != nil {
			t.Fatal(err)
		}
		if !labels.Equal(e.Metadata, want) {
			t.Errorf("entry %d: metadata %s, want %s", i, e.Metadata, want)
		}
	}
	bloom := buildBloom(v)
	for _, needle := range []string{"detected_level=info", "detected_level=error", "trace_id=4bf92f3577b34da6a3ce929d0e0e4736"} {
		if !bloomMayContain(bloom, []string{needle}) {
			t.Errorf("bloom misses %q", needle)
		}
	}
	if bloomMayContain(bloom, []string{"trace_id=00000000000000000000000000000000"}) {
		t.Log("bloom false positive (allowed, but unlikely at this size)")
	}
	var got []string
	rangeMetadataBlob([]byte{2, 1, 'a', 1, 'b', 5, 'x'}, func(n, v []byte) { got = append(got, string(n)+"="+string(v)) })
	if len(got) != 1 || got[0] != "a=b" {
		t.Errorf("truncated blob: %v", got)
	}
}

// BenchmarkChunkAppendMetadata: appending an entry with one metadata pair
// allocates nothing beyond the columns' growth.
func BenchmarkChunkAppendMetadata(b *testing.B) {
	md := labels.FromStrings("detected_level", "info")
	b.ReportAllocs()
	c := &rawChunk{}
	for i := 0; i < b.N; i++ {
		if c.entries == 10000 {
			c = &rawChunk{}
		}
		c.append(int64(i), "level=info msg=hello", md)
	}
}

// BenchmarkAppendMetadata is the store's share of the cost of Loki 3's
// detected_level: the same 1000-line commits (WAL, head, chunk cuts with
// blooms) with no metadata and with one detected_level pair per entry.
// cpu-ns/line is the process CPU (user+system) per line.
func BenchmarkAppendMetadata(b *testing.B) {
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = fmt.Sprintf("level=info caller=handler.go:%d method=GET path=/api/%d status=200 duration=%dms trace_id=%032x msg=\"request served\"", i%400, i*7919%100000, i%200, uint64(i)*0x9E3779B97F4A7C15)
	}
	ls := labels.FromStrings("app", "bench", "pod", "api-0", "service_name", "bench")
	for _, tc := range []struct {
		name string
		md   labels.Labels
	}{{"none", labels.EmptyLabels()}, {"detected_level", labels.FromStrings("detected_level", "info")}} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := Open(b.TempDir(), Options{}, Deps{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.ReportAllocs()
			base := time.Now().Add(-time.Hour).UnixNano()
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				app := db.Appender()
				for j, l := range lines {
					app.Append(ls, Entry{Timestamp: base + int64(i*len(lines)+j), Line: l, Metadata: tc.md})
				}
				c0 := cpuTime()
				if _, err := app.Commit(); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*len(lines)), "cpu-ns/line")
		})
	}
}

// BenchmarkBuildBloomMetadata: the bloom of a chunk of 1500 logfmt lines
// without metadata and with the same detected_level on every entry.
func BenchmarkBuildBloomMetadata(b *testing.B) {
	for _, md := range []labels.Labels{labels.EmptyLabels(), labels.FromStrings("detected_level", "info")} {
		c := &rawChunk{}
		for i := range 1500 {
			c.append(int64(i), fmt.Sprintf("level=info caller=handler.go:%d method=GET path=/api/%d status=200 duration=%dms trace_id=%032x msg=\"request served\"", i%400, i*7919%100000, i%200, uint64(i)*0x9E3779B97F4A7C15), md)
		}
		v, err := c.view()
		if err != nil {
			b.Fatal(err)
		}
		b.Run("md="+md.String(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buildBloom(v)
			}
		})
	}
}
