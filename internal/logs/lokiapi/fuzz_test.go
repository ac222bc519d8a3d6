package lokiapi

import (
	"errors"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/grafana/loki/pkg/push"
)

func FuzzDecodePushProto(f *testing.F) {
	b, _ := proto.Marshal(&push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{
		{Timestamp: time.Unix(1, 2), Line: "x", StructuredMetadata: push.LabelsAdapter{{Name: "k", Value: "v"}}}}}}})
	f.Add(b)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		streams, err := decodePushProto(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("error %v is not a positioned *DecodeError", err)
			}
			return
		}
		for _, s := range streams {
			parseLabelString(s.labelString) // must not panic
		}
	})
}

func FuzzDecodePushJSON(f *testing.F) {
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":"v"}]]}]}`))
	f.Add([]byte(`{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"2024-01-01T00:00:00Z","line":"x"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := decodePushJSON(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
		}
	})
}

func FuzzParseLabelString(f *testing.F) {
	f.Add(`{a="b", c="d\"e"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := parseLabelString(s)
		if err != nil {
			return
		}
		again, err := parseLabelString(ls.String())
		if err != nil || again.String() != ls.String() {
			t.Fatalf("%q parsed to %s, which reparses to %s (%v)", s, ls, again, err)
		}
	})
}
