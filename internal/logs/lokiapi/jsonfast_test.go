package lokiapi

import (
	"encoding/json"
	"testing"
)

// The JSON push fast path for plain strings gives what encoding/json gives,
// and declines every string it could get wrong.
func TestJSONPlainStringMatchesEncodingJSON(t *testing.T) {
	for _, raw := range []string{
		`""`, `"1700000000000000000"`, `"level=info msg=\"hi\""`, `"tab\there"`, `"a\\b"`, `"\u00e9t\u00e9"`,
		`"été ✓"`, "\"bad \xff utf8\"", "\"ctl \x01\"", `null`, `17`, `true`, `"x"y"`, ` "x" `, `"`, `{}`,
		"\"\xed\xa0\x80 surrogate\"",
	} {
		got, ok := jsonPlainString([]byte(raw))
		var want string
		err := json.Unmarshal([]byte(raw), &want)
		if ok && (err != nil || got != want) {
			t.Errorf("%q: fast path %q, encoding/json %q (%v)", raw, got, want, err)
		}
	}
	for _, raw := range []string{`"1700000000000000000"`, `"level=info msg=ok"`, `"été ✓"`} {
		if _, ok := jsonPlainString([]byte(raw)); !ok {
			t.Errorf("%q: plain string not taken by the fast path", raw)
		}
	}
}

// Escaped and invalid-UTF-8 lines in a push still decode as encoding/json
// decodes them (through the slow path).
func TestDecodePushJSONEscapedLines(t *testing.T) {
	body := "{\"streams\":[{\"stream\":{\"app\":\"a\"},\"values\":[[\"1\",\"plain\"],[\"2\",\"q\\\"uote\\n\"],[\"3\",\"bad \xff\"],[\" 4\",\"\\u00e9\"]]}]}"
	ss, err := decodePushJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"plain", "q\"uote\n", "bad \ufffd", "é"}
	if len(ss) != 1 || len(ss[0].entries) != len(want) {
		t.Fatalf("decoded %+v", ss)
	}
	for i, e := range ss[0].entries {
		if e.Line != want[i] || e.Timestamp != int64(i+1) {
			t.Errorf("entry %d: %d %q, want %d %q", i, e.Timestamp, e.Line, i+1, want[i])
		}
	}
}
