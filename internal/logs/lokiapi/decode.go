package lokiapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// DecodeError is a malformed push body, with the byte offset where decoding failed.
type DecodeError struct {
	Format string // "protobuf" or "json"
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("malformed %s push at byte %d: %s", e.Format, e.Offset, e.Msg)
}

// pushStream is one stream of a push before validation. Labels stay as the
// client wrote them (protobuf) or as a parsed map (JSON, OTLP).
type pushStream struct {
	labelString string
	lbls        labels.Labels
	parsed      bool
	entries     []logstore.Entry
}

// decodePushProto reads a logproto.PushRequest (see docs/formats/logstore.md
// for the field numbers we rely on).
func decodePushProto(b []byte) ([]pushStream, error) {
	var out []pushStream
	off := 0
	err := walkFields(b, &off, func(num protowire.Number, typ protowire.Type, v []byte, base int) error {
		if num != 1 {
			return nil // format (2) and unknown fields are ignored
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("streams: wrong wire type %d", typ)
		}
		s, err := decodeStream(v, base)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

type fieldFn func(num protowire.Number, typ protowire.Type, v []byte, base int) error

// walkFields calls fn for every field; v is the payload of length-delimited
// fields and nil otherwise. base is the offset of v within the whole body.
func walkFields(b []byte, off *int, fn fieldFn) error {
	start := *off
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return &DecodeError{Format: "protobuf", Offset: start + i, Msg: protowire.ParseError(n).Error()}
		}
		i += n
		var v []byte
		vbase := start + i
		switch typ {
		case protowire.BytesType:
			val, m := protowire.ConsumeBytes(b[i:])
			if m < 0 {
				return &DecodeError{Format: "protobuf", Offset: start + i, Msg: protowire.ParseError(m).Error()}
			}
			v, n = val, m
			vbase = start + i + m - len(val)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[i:])
			if n < 0 {
				return &DecodeError{Format: "protobuf", Offset: start + i, Msg: protowire.ParseError(n).Error()}
			}
			if typ == protowire.VarintType {
				v = b[i : i+n]
			}
		}
		if err := fn(num, typ, v, vbase); err != nil {
			if _, ok := err.(*DecodeError); ok {
				return err
			}
			return &DecodeError{Format: "protobuf", Offset: start + i, Msg: err.Error()}
		}
		i += n
	}
	return nil
}

func decodeStream(b []byte, base int) (pushStream, error) {
	var s pushStream
	off := base
	err := walkFields(b, &off, func(num protowire.Number, typ protowire.Type, v []byte, vb int) error {
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return fmt.Errorf("stream labels: wrong wire type %d", typ)
			}
			s.labelString = string(v)
		case 2:
			if typ != protowire.BytesType {
				return fmt.Errorf("stream entries: wrong wire type %d", typ)
			}
			e, err := decodeEntry(v, vb)
			if err != nil {
				return err
			}
			s.entries = append(s.entries, e)
		}
		return nil
	})
	return s, err
}

func decodeEntry(b []byte, base int) (logstore.Entry, error) {
	var e logstore.Entry
	var md []labels.Label
	off := base
	err := walkFields(b, &off, func(num protowire.Number, typ protowire.Type, v []byte, vb int) error {
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return fmt.Errorf("entry timestamp: wrong wire type %d", typ)
			}
			var secs, nanos int64
			o := vb
			if err := walkFields(v, &o, func(n protowire.Number, t protowire.Type, x []byte, _ int) error {
				if t != protowire.VarintType {
					return fmt.Errorf("timestamp field %d: wrong wire type %d", n, t)
				}
				val, _ := protowire.ConsumeVarint(x)
				switch n {
				case 1:
					secs = int64(val)
				case 2:
					nanos = int64(int32(val))
				}
				return nil
			}); err != nil {
				return err
			}
			e.Timestamp = secs*int64(time.Second) + nanos
		case 2:
			if typ != protowire.BytesType {
				return fmt.Errorf("entry line: wrong wire type %d", typ)
			}
			e.Line = unsafe.String(unsafe.SliceData(v), len(v)) // aliases the decoded body, never reused
		case 3:
			if typ != protowire.BytesType {
				return fmt.Errorf("structured metadata: wrong wire type %d", typ)
			}
			var l labels.Label
			o := vb
			if err := walkFields(v, &o, func(n protowire.Number, t protowire.Type, x []byte, _ int) error {
				if t != protowire.BytesType {
					return fmt.Errorf("label pair field %d: wrong wire type %d", n, t)
				}
				switch n {
				case 1:
					l.Name = unsafe.String(unsafe.SliceData(x), len(x))
				case 2:
					l.Value = unsafe.String(unsafe.SliceData(x), len(x))
				}
				return nil
			}); err != nil {
				return err
			}
			md = append(md, l)
		}
		return nil
	})
	if len(md) > 0 {
		e.Metadata = labels.New(md...)
	}
	return e, err
}

// jsonPush is Loki's JSON push body; values are [ts, line] or
// [ts, line, {structured metadata}].
type jsonPush struct {
	Streams []struct {
		Stream map[string]string   `json:"stream"`
		Values [][]json.RawMessage `json:"values"`
		// Legacy shape: {"labels": "{...}", "entries": [{"ts": RFC3339, "line": "..."}]}.
		Labels  string `json:"labels"`
		Entries []struct {
			Ts   time.Time `json:"ts"`
			Line string    `json:"line"`
		} `json:"entries"`
	} `json:"streams"`
}

// jsonPlainString is the fast path for a JSON string without escapes,
// control characters or invalid UTF-8 (nearly every timestamp and log
// line): its bytes between the quotes are its value. Anything else reports
// false and goes through encoding/json, which decides the value or the
// error exactly as before. The body was validated as a whole already.
func jsonPlainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

func decodePushJSON(b []byte) ([]pushStream, error) {
	var p jsonPush
	if err := json.Unmarshal(b, &p); err != nil {
		off := 0
		if se, ok := err.(*json.SyntaxError); ok {
			off = int(se.Offset)
		}
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			off = int(te.Offset)
		}
		return nil, &DecodeError{Format: "json", Offset: off, Msg: err.Error()}
	}
	out := make([]pushStream, 0, len(p.Streams))
	for si, s := range p.Streams {
		ps := pushStream{}
		if s.Labels != "" {
			ps.labelString = s.Labels
		} else {
			b := labels.NewScratchBuilder(len(s.Stream))
			for k, v := range s.Stream {
				b.Add(k, v)
			}
			b.Sort()
			ps.lbls, ps.parsed = b.Labels(), true
		}
		for _, e := range s.Entries {
			ps.entries = append(ps.entries, logstore.Entry{Timestamp: e.Ts.UnixNano(), Line: e.Line})
		}
		for vi, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return nil, &DecodeError{Format: "json", Msg: fmt.Sprintf("streams[%d].values[%d]: want [timestamp, line] or [timestamp, line, metadata], got %d elements", si, vi, len(v))}
			}
			tsStr, ok := jsonPlainString(v[0])
			if !ok {
				if err := json.Unmarshal(v[0], &tsStr); err != nil {
					return nil, &DecodeError{Format: "json", Msg: fmt.Sprintf("streams[%d].values[%d]: timestamp must be a string of Unix nanoseconds", si, vi)}
				}
			}
			ts, err := strconv.ParseInt(strings.TrimSpace(tsStr), 10, 64)
			if err != nil {
				return nil, &DecodeError{Format: "json", Msg: fmt.Sprintf("streams[%d].values[%d]: timestamp %q is not Unix nanoseconds", si, vi, tsStr)}
			}
			line, ok := jsonPlainString(v[1])
			if !ok {
				if err := json.Unmarshal(v[1], &line); err != nil {
					return nil, &DecodeError{Format: "json", Msg: fmt.Sprintf("streams[%d].values[%d]: line must be a string", si, vi)}
				}
			}
			e := logstore.Entry{Timestamp: ts, Line: line}
			if len(v) == 3 {
				var md map[string]string
				if err := json.Unmarshal(v[2], &md); err != nil {
					return nil, &DecodeError{Format: "json", Msg: fmt.Sprintf("streams[%d].values[%d]: structured metadata must be an object of strings", si, vi)}
				}
				if len(md) > 0 {
					e.Metadata = labels.FromMap(md)
				}
			}
			ps.entries = append(ps.entries, e)
		}
		out = append(out, ps)
	}
	return out, nil
}

// parseLabelString reads Loki's stream label form {a="b", c="d"}.
func parseLabelString(s string) (labels.Labels, error) {
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
			i++
		}
	}
	skip()
	if i >= len(s) || s[i] != '{' {
		return labels.EmptyLabels(), fmt.Errorf("1:%d: expected {", i+1)
	}
	i++
	b := labels.NewScratchBuilder(8)
	for {
		skip()
		if i < len(s) && s[i] == '}' {
			i++
			break
		}
		st := i
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > st && s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i == st {
			return labels.EmptyLabels(), fmt.Errorf("1:%d: expected label name", i+1)
		}
		name := s[st:i]
		skip()
		if i >= len(s) || s[i] != '=' {
			return labels.EmptyLabels(), fmt.Errorf("1:%d: expected = after %s", i+1, name)
		}
		i++
		skip()
		q, err := strconv.QuotedPrefix(s[i:])
		if err != nil || q[0] == '\'' {
			return labels.EmptyLabels(), fmt.Errorf("1:%d: expected quoted value for %s", i+1, name)
		}
		v, _ := strconv.Unquote(q)
		i += len(q)
		b.Add(name, v)
		skip()
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		if i < len(s) && s[i] == '}' {
			i++
			break
		}
		return labels.EmptyLabels(), fmt.Errorf("1:%d: expected , or }", i+1)
	}
	skip()
	if i != len(s) {
		return labels.EmptyLabels(), fmt.Errorf("1:%d: unexpected text after }", i+1)
	}
	b.Sort()
	return b.Labels(), nil
}
