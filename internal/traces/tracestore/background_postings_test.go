package tracestore

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// Hand-made protobuf, for what pdata will not build (repeated keys, a
// resource without spans).
func pbLen(num int, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	b := binary.AppendUvarint(nil, uint64(num)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

func pbVarint(num int, v uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(nil, uint64(num)<<3), v)
}

func pbFixed(num int, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(binary.AppendUvarint(nil, uint64(num)<<3|1), v)
}

func pbStr(num int, s string) []byte { return pbLen(num, []byte(s)) }

func kvStr(k, v string) []byte { return pbLen(1, pbStr(1, k), pbLen(2, pbStr(1, v))) }
func kvInt(k string, v int64) []byte {
	return pbLen(1, pbStr(1, k), pbLen(2, pbVarint(3, uint64(v))))
}

// kvs wraps KeyValue bodies (made by kvStr etc. as field 1) as field num.
func kvs(num int, kv ...[]byte) []byte {
	var out []byte
	for _, b := range kv {
		// kvStr made field 1 of the body: re-tag it as num.
		_, _, _, body, _, _ := protoField(b)
		out = append(out, pbLen(num, body)...)
	}
	return out
}

// postingTraces returns traces that take every path of the cut's
// postings: attributes of every kind, repeated keys in spans and
// resources, a repeated service.name, resources without spans, events
// and links, long names and values, many values of one key, and traces
// the columns refuse (an array value, a long string).
func postingTraces(n int) [][]byte {
	var out [][]byte
	for i := range n {
		sid := func(j int) []byte { return pbLen(2, binary.BigEndian.AppendUint64(nil, uint64(i*100+j+1))) }
		span := func(j int, extra ...[]byte) []byte {
			parts := [][]byte{sid(j), pbStr(5, fmt.Sprintf("op-%d", (i+j)%7)), pbVarint(6, uint64(j%6)),
				pbFixed(7, uint64(1e9+i*1000+j)), pbFixed(8, uint64(1e9+i*1000+j+50)),
				pbLen(15, pbVarint(3, uint64((i+j)%3)))}
			if j > 0 {
				parts = append(parts, pbLen(4, binary.BigEndian.AppendUint64(nil, uint64(i*100+1))))
			}
			parts = append(parts, kvs(9, kvStr("http.method", []string{"GET", "POST"}[j%2]),
				kvInt("http.status_code", int64(200+100*(i%4))), kvStr("url", fmt.Sprintf("/item/%d", i*3+j))))
			parts = append(parts, extra...)
			return pbLen(2, parts...)
		}
		var extra [][]byte
		switch i % 9 {
		case 1: // repeated span key, bool, double and empty values
			extra = append(extra, kvs(9, kvStr("http.method", "PUT"),
				pbLen(1, pbStr(1, "flag"), pbLen(2, pbVarint(2, uint64(i%2)))),
				pbLen(1, pbStr(1, "ratio"), pbLen(2, pbFixed(4, math.Float64bits(float64(i)/3)))),
				pbLen(1, pbStr(1, "empty"), pbLen(2))))
		case 2: // event and link attributes
			extra = append(extra, pbLen(11, kvs(3, kvStr("exception.type", "EOF"))),
				pbLen(13, kvs(4, kvStr("link.kind", "follows"))))
		case 3: // a long name (columns hold it, postings do not index it)
			extra = append(extra, pbStr(5, strings.Repeat("n", 300)))
		case 4: // an array value: the columns refuse the trace
			extra = append(extra, kvs(9, pbLen(1, pbStr(1, "arr"), pbLen(2, pbLen(5)))))
		case 5: // a long string value: also refused
			extra = append(extra, kvs(9, kvStr("long", strings.Repeat("v", 300))))
		}
		res := kvs(1, kvStr("service.name", fmt.Sprintf("svc-%d", i%3)), kvStr("env", "prod"),
			kvStr("host", fmt.Sprintf("h%d", i%5)))
		if i%4 == 0 { // repeated resource keys, a second service.name
			res = append(res, kvs(1, kvStr("env", "dev"), kvStr("service.name", "other"))...)
		}
		rs := pbLen(1, pbLen(1, res), pbLen(2, span(0, extra...), span(1), span(2)))
		td := rs
		if i%3 == 0 { // a resource without spans, then one more with spans
			td = append(td, pbLen(1, pbLen(1, kvs(1, kvStr("service.name", "lonely"), kvStr("zone", "z1"))))...)
			td = append(td, pbLen(1, pbLen(1, kvs(1, kvStr("service.name", "second"))), pbLen(2, span(3)))...)
		}
		out = append(out, td)
	}
	return out
}

// cutPostings writes traces as a level-0 block and returns its postings.
func cutPostings(t *testing.T, traces [][]byte, fromColumns bool) map[string]string {
	t.Helper()
	defer func(v bool) { postingsFromColumns = v }(postingsFromColumns)
	postingsFromColumns = fromColumns
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	bw, err := newBlockWriter(t.TempDir(), enc, 1<<20, 0, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, td := range traces {
		var id TraceID
		binary.BigEndian.PutUint64(id[8:], uint64(i+1))
		if err := bw.add(traceRecord{id: id, data: td, spans: 3, minStart: 1e9, maxEnd: 2e9}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := bw.finish()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	b, err := openBlock(dir, dec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	out := map[string]string{}
	for _, k := range b.postingKeys() {
		kp, err := b.keyPostings(k)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "complete=%v", kp.complete)
		for _, v := range slices.Sorted(maps.Keys(kp.values)) {
			fmt.Fprintf(&sb, " %q:%v", v, kp.decode(kp.values[v]))
		}
		out[k] = sb.String()
	}
	return out
}

// TestPostingsFromColumns: a cut's postings taken from its column groups
// are those the per-span path (fromWalk, the scanner) makes, value for
// value and trace for trace.
func TestPostingsFromColumns(t *testing.T) {
	for _, tc := range []struct{ dict, chunk int }{{256, 1024}, {3, 8}, {256, 5}} {
		t.Run(fmt.Sprintf("maxAttrDict=%d,chunk=%d", tc.dict, tc.chunk), func(t *testing.T) {
			defer func(v, c int) { maxAttrDict, chunkTraces = v, c }(maxAttrDict, chunkTraces)
			maxAttrDict, chunkTraces = tc.dict, tc.chunk
			traces := postingTraces(60)
			got, want := cutPostings(t, traces, true), cutPostings(t, traces, false)
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if got[k] != want[k] {
					t.Errorf("key %q:\nfrom columns %s\nper span     %s", k, got[k], want[k])
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("key %q only from columns: %s", k, got[k])
				}
			}
			for _, k := range []string{"span.http.method", "event.exception.type", "resource.zone", "name", "span.flag"} {
				if _, ok := want[k]; !ok {
					t.Errorf("no postings for %q: the traces do not take every path", k)
				}
			}
		})
	}
}
