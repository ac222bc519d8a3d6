package logstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// searchers returns the searcher for needle with each strategy forced, so
// both the rare-pivot and the byte-pair scan are checked on every input.
func searchers(needle []byte) map[string]*searcher {
	out := map[string]*searcher{"auto": newSearcher(needle)}
	r := *newSearcher(needle)
	r.rare = true
	out["rare"] = &r
	p := *newSearcher(needle)
	p.rare, p.grams = false, nil
	out["pair"] = &p
	if len(needle) >= 2 { // any length works; the searcher uses it from gramMin
		g := *newSearcher(needle)
		g.rare, g.grams = false, gramSet(needle)
		out["grams"] = &g
		rg := *newSearcher(needle)
		rg.rare, rg.grams = true, gramSet(needle) // cutover to the 2-gram scan
		out["rare+grams"] = &rg
	}
	return out
}

func refIndex(t, needle []byte, from int) int {
	if from > len(t) {
		return -1
	}
	i := bytes.Index(t[from:], needle)
	if i < 0 {
		return -1
	}
	return from + i
}

func checkIndex(t *testing.T, text, needle []byte) {
	t.Helper()
	for name, s := range searchers(needle) {
		for from := range len(text) + 2 {
			if got, want := s.index(text, from), refIndex(text, needle, from); got != want {
				t.Fatalf("%s: index(%q, %q, from %d) = %d, want %d", name, text, needle, from, got, want)
			}
		}
	}
}

func TestSearcherIndexCases(t *testing.T) {
	long := strings.Repeat("level=info msg=x ", 10)
	for _, tc := range []struct{ text, needle string }{
		{"", "a"},
		{"a", "a"},
		{"a", "ab"},                           // needle longer than the text
		{"ab", "b"},                           // at the very end
		{"ba", "b"},                           // at the very start
		{"aaaaaaaaaaaaaaaaaaaaaaaaab", "aab"}, // repeated bytes: overlapping partial matches
		{"aaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaa"},
		{"abababababababababababababc", "ababc"},
		{"Error error ERROR", "error"}, // case-sensitive
		{"Error error ERROR", "ERROR"},
		{"Error error ERROR", "eRROR"},
		{long + "OutOfMemoryError", "OutOfMemoryError"},
		{long + "OutOfMemoryErro", "OutOfMemoryError"}, // cut at the end
		{long, "msg=y"},
		{long + "msg=y", "msg=y"},
		{"GET GET GET GET GET GET GET GET GET GET GET GET GET GET GET GET GET GET GET GET GETX", "GETX"}, // dense rare pivot: cutover
		{strings.Repeat("0123456789abcdef", 20) + "deadbeef", "deadbeef"},
		{"x\x00\x00\x01\x00y\x01\x01", "\x01\x00y"}, // zero bytes and borrows in the SWAR lanes
		{"\xff\x80\x7f\x80\xff", "\x80\xff"},
	} {
		checkIndex(t, []byte(tc.text), []byte(tc.needle))
	}
}

func TestSearcherIndexRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "abc\x00\x01", "0123456789abcdef", "eta =\"", "AaBb"}
	for range 3000 {
		alpha := alphabets[r.IntN(len(alphabets))]
		text := make([]byte, r.IntN(120))
		for i := range text {
			text[i] = alpha[r.IntN(len(alpha))]
		}
		var needle []byte
		if len(text) > 0 && r.IntN(2) == 0 { // a piece of the text
			i := r.IntN(len(text))
			needle = bytes.Clone(text[i:min(len(text), i+1+r.IntN(20))])
		} else {
			needle = make([]byte, 1+r.IntN(8))
			for i := range needle {
				needle[i] = alpha[r.IntN(len(alpha))]
			}
		}
		checkIndex(t, text, needle)
	}
}

func FuzzSearcherIndex(f *testing.F) {
	f.Add([]byte("level=info trace_id=0123456789abcdef"), []byte("abcdef"), 0)
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaaab"), []byte("ab"), 3)
	f.Add([]byte("GET GET GET GET GETX"), []byte("GETX"), 1)
	f.Fuzz(func(t *testing.T, text, needle []byte, from int) {
		if len(needle) == 0 || from < 0 || from > len(text)+1 {
			return
		}
		want := refIndex(text, needle, from)
		for name, s := range searchers(needle) {
			if got := s.index(text, from); got != want {
				t.Fatalf("%s: index(%q, %q, %d) = %d, want %d", name, text, needle, from, got, want)
			}
		}
	})
}

// chunkOf builds and decodes a chunk holding lines, through the stored form.
func chunkOf(t testing.TB, lines []string, s *searcher) *chunkView {
	t.Helper()
	c := &rawChunk{}
	for i, l := range lines {
		c.append(int64(i), l, labels.EmptyLabels())
	}
	raw, release, err := decompressChunk(compressChunk(c.encode(), chunkEncodingS2), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	v, err := parseChunk(raw, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func checkSearch(t *testing.T, lines []string, needle string) {
	t.Helper()
	var want []int
	for i, l := range lines {
		if strings.Contains(l, needle) {
			want = append(want, i)
		}
	}
	for name, s := range searchers([]byte(needle)) {
		for _, lazy := range []bool{false, true} {
			sp := s
			if !lazy {
				sp = nil
			}
			v := chunkOf(t, lines, sp)
			var got []int
			v.search(s, func(i int) { got = append(got, i) })
			if !slices.Equal(got, want) {
				t.Fatalf("%s (lazy %v): search(%q) in %q = %v, want %v", name, lazy, needle, lines, got, want)
			}
			if lazy && len(want) == 0 && !strings.Contains(strings.Join(lines, ""), needle) && v.len() != 0 {
				t.Fatalf("%s: chunk without the needle was decoded (%d entries)", name, v.len())
			}
		}
	}
}

func TestChunkSearchLineBoundaries(t *testing.T) {
	for _, tc := range []struct {
		lines  []string
		needle string
	}{
		{[]string{"abc", "def"}, "cd"},         // only across the boundary: no match
		{[]string{"abc", "def"}, "abcdef"},     // longer than every line
		{[]string{"abc", "", "def"}, "c"},      // empty line in between
		{[]string{"", "", "x"}, "x"},           // leading empty lines
		{[]string{"x", "", ""}, "x"},           // trailing empty lines
		{[]string{"abab", "abab", "ab"}, "ab"}, // several hits per line: one call per line
		{[]string{"aab", "aab", "aa"}, "aa"},   // hit at line start and ends
		{[]string{"cd", "cd cd", "xcd"}, "cd"}, // needle is a whole line
		{[]string{"trace_id=dead", "beef", "deadbeef"}, "deadbeef"},
		{[]string{"Error", "error", "ERROR"}, "error"},     // case-sensitive
		{[]string{"GET /a", "GET /b", "GET /c"}, "GET /c"}, // rare pivot hits every line
	} {
		checkSearch(t, tc.lines, tc.needle)
	}
}

func TestChunkSearchRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const alpha = "abc0f "
	for range 500 {
		lines := make([]string, 1+r.IntN(30))
		for i := range lines {
			b := make([]byte, r.IntN(12))
			for j := range b {
				b[j] = alpha[r.IntN(len(alpha))]
			}
			lines[i] = string(b)
		}
		all := strings.Join(lines, "")
		needle := "ab"
		if len(all) > 0 {
			i := r.IntN(len(all))
			needle = all[i:min(len(all), i+1+r.IntN(6))] // often spans lines
		}
		checkSearch(t, lines, needle)
	}
}

// logText is ~1 MiB of logfmt lines with random trace IDs, like the bench's.
func logText(n int) ([]byte, string) {
	r := rand.New(rand.NewPCG(3, 4))
	var b []byte
	var id string
	for i := 0; len(b) < n; i++ {
		l := fmt.Sprintf("level=info caller=handler.go:%d method=GET path=/api/v1/users/%d status=200 duration=%d.%dms trace_id=%016x%016x msg=\"request served\"",
			100+i%400, r.IntN(100000), r.IntN(200), r.IntN(10), r.Uint64(), r.Uint64())
		if len(b) > n/2 && id == "" {
			id = l[strings.Index(l, "trace_id=")+9:][:32]
		}
		b = append(b, l...)
	}
	return b, id
}

func BenchmarkSearcher(b *testing.B) {
	text, id := logText(1 << 20)
	for _, needle := range []string{id, id[:16], id[:8], "OutOfMemoryError", "status=500", "GET /x"} {
		for name, s := range searchers([]byte(needle)) {
			b.Run(fmt.Sprintf("%s/%s", needle, name), func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				cpu0 := cpuTime()
				for b.Loop() {
					for p := 0; ; p++ {
						if p = s.index(text, p); p < 0 {
							break
						}
					}
				}
				b.ReportMetric(float64(len(text))*float64(b.N)/(cpuTime()-cpu0).Seconds()/1e6, "cpuMB/s")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// counts only the cycles this benchmark got.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPairLanes checks the SWAR lane flags against a byte-by-byte reference:
// every matching lane flagged, and a non-matching lane flagged only above a
// matching one (the borrow of the has-zero trick).
func TestPairLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		c1, c2 := byte(r.UintN(4)), byte(r.UintN(4)) // small values: many matches, zero and 0x01 lanes
		var x, y uint64
		for j := range 8 {
			x |= uint64(r.UintN(4)) << (8 * j)
			y |= uint64(r.UintN(4)) << (8 * j)
		}
		if r.IntN(2) == 0 {
			x ^= swarHi & r.Uint64() // high-bit lanes too
		}
		z := pairLanes(x, y, swarLo*uint64(c1), swarLo*uint64(c2)) & swarHi
		below := false
		for j := range 8 {
			match := byte(x>>(8*j)) == c1 && byte(y>>(8*j)) == c2
			flagged := z>>(8*j+7)&1 == 1
			if match && !flagged || flagged && !match && !below {
				t.Fatalf("x=%016x y=%016x c1=%d c2=%d: lane %d match %v flagged %v", x, y, c1, c2, j, match, flagged)
			}
			below = below || match
		}
	}
}

// TestPairScanCandidates bounds the pair scan's false candidates on log
// text: its flagged lanes are the exact pair matches plus a few borrows.
func TestPairScanCandidates(t *testing.T) {
	text, id := logText(1 << 18)
	s := newSearcher([]byte(id))
	r1, r2 := swarLo*uint64(s.c1), swarLo*uint64(s.c2)
	exact, flagged := 0, 0
	for i := 0; i+max(s.k1, s.k2)+8 <= len(text); i += 8 {
		z := pairLanes(binary.LittleEndian.Uint64(text[i+s.k1:]), binary.LittleEndian.Uint64(text[i+s.k2:]), r1, r2) & swarHi
		flagged += bits.OnesCount64(z)
		for j := range 8 {
			if text[i+j+s.k1] == s.c1 && text[i+j+s.k2] == s.c2 {
				exact++
			}
		}
	}
	if flagged < exact || flagged > exact+exact/4+8 {
		t.Fatalf("flagged %d lanes for %d exact pair matches", flagged, exact)
	}
	if exact > len(text)/200 {
		t.Fatalf("pivots %q@%d %q@%d match every %d bytes: poor pair choice", s.c1, s.k1, s.c2, s.k2, len(text)/max(exact, 1))
	}
}

// TestSearcherRepetitiveText: a long needle of one repeated byte plus a
// rare byte, in a long run of that byte, is found (or not) by every
// strategy, and the 2-gram scan stays fast (pivot check before comparing).
func TestSearcherRepetitiveText(t *testing.T) {
	needle := []byte(strings.Repeat("a", 100) + "b")
	text := bytes.Repeat([]byte("a"), 1<<16)
	for name, s := range searchers(needle) {
		if got := s.index(text, 0); got != -1 {
			t.Fatalf("%s: found at %d in a run of a", name, got)
		}
		withB := append(bytes.Clone(text), 'b')
		if got, want := s.index(withB, 0), len(text)-100; got != want {
			t.Fatalf("%s: index = %d, want %d", name, got, want)
		}
	}
}
