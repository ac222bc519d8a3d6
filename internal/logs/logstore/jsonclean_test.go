package logstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

var jsonObjectLines = []struct {
	line  string
	claim bool
}{
	{`{}`, true},
	{`{"a":1}`, true},
	{" \t{\"a\" : 1 ,\n\"b\":[1,{\"a\":1,\"a\":1,\"\\u0061\":{}}],\"c\":\"x\\\"y \\u00e9\"} trailing", false}, // an escaped key inside an array: not plain, not claimed
	{" \t{\"a\" : 1 ,\n\"b\":[1,{\"a\":1,\"a\":1,\"c\":{}}],\"c\":\"x\\\"y \\u00e9\"} trailing", true},
	{`{"A":0,"level":[{"":""}] }`, false},
	{`{"a_b":1,"a":{"c":1},"_x9":null,"t":true,"f":false,"n":-1.5e+3}`, true},
	{"{\"m\":\"bad \xff utf8\"}", true},
	{`{"a":1,"a":2}`, false},
	{`{"a":{"b":1},"a_b":1}`, false},
	{`{"a":{"b":{}},"a_b":{}}`, false},
	{`{"a\u0062":1}`, false},
	{`{"9a":1}`, false},
	{`{"":1}`, false},
	{`{"a-b":1}`, false},
	{`{"x_extracted":1}`, false},
	{`{"a":{"b_extracted":1}}`, false},
	{`{"a":1`, false},
	{`{"a":01}`, false},
	{`{"a":1.}`, false},
	{"{\"a\":\"\x01\"}", false},
	{`{"a":"\x"}`, false},
	{`{"a":tru}`, false},
	{`{"a":[1,]}`, false},
	{`[1]`, false},
	{`"a"`, false},
	{`level=info msg="x"`, false},
	{``, false},
	{`{"a":` + strings.Repeat(`{"a":`, jsonCleanMaxDepth) + `1` + strings.Repeat(`}`, jsonCleanMaxDepth+1), false},
	{`{"a":` + strings.Repeat(`[`, jsonCleanMaxDepth) + strings.Repeat(`]`, jsonCleanMaxDepth) + `}`, false},
	{`{"a":` + strings.Repeat(`[`, jsonCleanMaxDepth-1) + strings.Repeat(`]`, jsonCleanMaxDepth-1) + `}`, true},
}

func TestJSONObjectLine(t *testing.T) {
	for _, c := range jsonObjectLines {
		if got := JSONObjectLine(c.line); got != c.claim {
			t.Errorf("%.80q: claimed %v, want %v", c.line, got, c.claim)
		}
		if err := checkJSONObjectLine(c.line); err != nil {
			t.Errorf("%.80q: %v", c.line, err)
		}
		for n := range len(c.line) {
			if err := checkJSONObjectLine(c.line[:n]); err != nil {
				t.Errorf("%.80q: %v", c.line[:n], err)
			}
		}
	}
}

// checkJSONObjectLine: a claimed line decodes (encoding/json's Decoder,
// the first value, an object), and its names — keys reached through
// objects, flattened — are plain, none ends in _extracted, and there are
// as many distinct ones as the checker recorded.
func checkJSONObjectLine(line string) error {
	var c jsonChecker
	if !c.line([]byte(line)) {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(line))
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errNotObject
	}
	names := map[string]bool{}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, x := range m {
			if !plainKey(k) {
				return errNotPlain
			}
			n := k
			if prefix != "" {
				n = prefix + "_" + k
			}
			if strings.HasSuffix(n, "_extracted") {
				return errNotPlain
			}
			names[n] = true
			if o, ok := x.(map[string]any); ok {
				if err := walk(n, o); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", m); err != nil {
		return err
	}
	if len(names) != len(c.offs)/2 {
		return errNamesTwice
	}
	return nil
}

type jsonCheckErr string

func (e jsonCheckErr) Error() string { return string(e) }

const (
	errNotObject  jsonCheckErr = "claimed, but not an object"
	errNotPlain   jsonCheckErr = "claimed, but a name is not plain"
	errNamesTwice jsonCheckErr = "claimed, but a name appears twice"
)

func FuzzJSONObjectLine(f *testing.F) {
	for _, c := range jsonObjectLines {
		f.Add(c.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if err := checkJSONObjectLine(line); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	})
}

// BenchmarkJSONObjectLine is the check a cut pays per JSON line, over
// lines shaped like bench/logs' JSONLine, and per logfmt line (refused at
// its first byte).
func BenchmarkJSONObjectLine(b *testing.B) {
	var jsonLines, logfmtLines []string
	for i := range 1024 {
		l := fmt.Sprintf(`{"level":"info","caller":"handler.go:%d","method":"GET","path":"/api/v1/users/%d","status":200,"duration_ms":%d.%d,"trace_id":"%016x%016x","msg":"upstream said \"ok\"\tin 2 tries \u00e9"`,
			100+i%400, i*7919%100000, i%200, i%10, uint64(i)*0x9E3779B97F4A7C15, uint64(i)*0xC2B2AE3D27D4EB4F)
		if i%3 == 0 {
			l += `,"http":{"proto":"HTTP/1.1","client":{"ip":"10.0.3.4","port":4242}},"tags":["api","v1"]`
		}
		jsonLines = append(jsonLines, l+"}")
		logfmtLines = append(logfmtLines, fmt.Sprintf(`level=info caller=handler.go:%d method=GET path=/api/v1/users/%d status=200`, 100+i%400, i))
	}
	for _, c := range []struct {
		name  string
		lines []string
		claim bool
	}{{"json", jsonLines, true}, {"logfmt", logfmtLines, false}} {
		b.Run(c.name, func(b *testing.B) {
			var n int64
			var bs [][]byte
			for _, l := range c.lines {
				n += int64(len(l))
				bs = append(bs, []byte(l))
			}
			var ck jsonChecker
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range bs {
					if ck.line(l) != c.claim {
						b.Fatal(string(l))
					}
				}
			}
		})
	}
}
