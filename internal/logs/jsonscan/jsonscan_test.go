package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

var scalars = []string{
	`""`, `"a"`, `"héllo → wörld"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\u2192"`, `"12345678"`, `"1234567"`,
	`"a long string that runs past sixteen bytes with an \"escape\" in it"`, "\"bad\x01control\"",
	`"\x"`, `"\u12g4"`, `"\u12"`, `"unterminated`, `"ends in backslash\`, "\"\xff\xfe invalid utf-8\"",
	`0`, `-0`, `12`, `-12.5`, `1e9`, `1E+9`, `2.5e-3`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `--1`, `+1`,
	`true`, `false`, `null`, `tru`, `nul`, `falsy`, `True`,
}

// TestScalarEndAgreesWithEncodingJSON: a scalar alone is accepted exactly
// when encoding/json accepts it, and its end is the whole input.
func TestScalarEndAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range scalars {
		end, ok := ScalarEnd(in, 0)
		got := ok && end == len(in)
		if want := json.Valid([]byte(in)); got != want {
			t.Errorf("ScalarEnd(%q) = %d, %v; encoding/json valid = %v", in, end, ok, want)
		}
	}
}

// TestStringEndStopsAtTheClosingQuote: what follows a string is not read.
func TestStringEndStopsAtTheClosingQuote(t *testing.T) {
	for _, tail := range []string{`,"b":1}`, strings.Repeat("x", 40), "\x00"} {
		in := `"key with \"quotes\" and more than sixteen bytes"` + tail
		if got, want := StringEnd(in, 1), len(in)-len(tail); got != want {
			t.Errorf("StringEnd(%q) = %d, want %d", in, got, want)
		}
		if got, want := ShortStringEnd(in, 1), len(in)-len(tail); got != want {
			t.Errorf("ShortStringEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSkipSpace(t *testing.T) {
	if got := SkipSpace(" \t\r\n x", 0); got != 5 {
		t.Errorf("SkipSpace = %d, want 5", got)
	}
	if got := SkipSpace("\v", 0); got != 0 {
		t.Errorf("vertical tab is not JSON white space: SkipSpace = %d", got)
	}
}

// FuzzScalarEnd compares ScalarEnd with encoding/json on any input.
func FuzzScalarEnd(f *testing.F) {
	for _, s := range scalars {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if in == "" {
			return
		}
		end, ok := ScalarEnd(in, 0)
		if ok && (end > len(in) || end <= 0) {
			t.Fatalf("ScalarEnd(%q) = %d past the input", in, end)
		}
		got := ok && end == len(in)
		if want := json.Valid([]byte(in)) && !strings.ContainsAny(in[:1], "{[ \t\r\n") && !strings.ContainsAny(in[len(in)-1:], " \t\r\n"); got != want {
			t.Fatalf("ScalarEnd(%q) = %d, %v; encoding/json (a bare scalar) valid = %v", in, end, ok, want)
		}
	})
}

func BenchmarkStringEnd(b *testing.B) {
	in := `"` + strings.Repeat(`GET /api/v1/orders/12345 took 42ms \"ok\" `, 4) + `"`
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if StringEnd(in, 1) != len(in) {
			b.Fatal("wrong end")
		}
	}
}
