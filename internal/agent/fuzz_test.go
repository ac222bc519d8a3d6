package agent

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../../deploy/agent/promtail.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Add("clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - match: {selector: '{a=\"b\"} |= \"x\"', stages: [{regex: {expression: '(?P<a>.)'}}]}\n")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := Parse([]byte(s), false)
		if err == nil && len(cfg.Clients) == 0 {
			t.Fatal("a valid config without clients")
		}
	})
}

// FuzzLinePipelines feeds arbitrary lines to the parsing stages: they must
// never panic, and a line always comes out (stages pass what they cannot
// parse).
func FuzzLinePipelines(f *testing.F) {
	for _, s := range []string{
		`{"log":"x\n","stream":"stdout","time":"2019-04-30T02:12:41.8443515Z"}`,
		`2019-01-01T01:00:00Z stdout F hello`, `2019-01-01T01:00:00Z stderr P part`,
		`a=1 b="x \" y" c`, `{"a":{"b":[1,2]}}`, "\xff\x00", `level=`, `"`,
	} {
		f.Add(s)
	}
	stages := `
- docker: {}
- logfmt: {mapping: {a: a, b: b}}
- json: {expressions: {x: "a.b[0]"}}
- regex: {expression: '(?P<w>\w+)'}
- labels: {a: a, w: w}
- timestamp: {source: a, format: UnixMs}
- template: {source: w, template: '{{ ToUpper .Value }}'}
- replace: {expression: '(\d)', replace: 'N'}
`
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsRune(line, '\n') {
			return
		}
		out := runStages(t, stages, model.LabelSet{"job": "f"}, line)
		if len(out) != 1 {
			t.Fatalf("%d entries out of one line", len(out))
		}
	})
}

// FuzzDecodePush feeds arbitrary bodies to the loki_push_api decoders:
// they must return an error or streams, never panic.
func FuzzDecodePush(f *testing.F) {
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x"],["2","y",{"m":"v"}]]}]}`), true)
	f.Add([]byte("\xff\x06\x00\x00sNaPpY"), false)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		if isJSON {
			_, _ = decodePushJSON(body)
		} else {
			_, _ = decodePushProto(body)
		}
	})
}

// FuzzSyslogFrames feeds arbitrary TCP streams to the syslog framing and
// parsing: no panic, no hang.
func FuzzSyslogFrames(f *testing.F) {
	f.Add([]byte("<165>1 2003-10-11T22:14:15.003Z host app 1 ID [a@1 b=\"c\"] msg\n"))
	f.Add([]byte("12 <13>1 - - - "))
	f.Add([]byte("99999999999 x"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		src := &lineSource{job: "f", kind: "syslog", m: newSourceMetrics(nil), cache: map[string]model.LabelSet{},
			out: func(context.Context, Entry) {}}
		p, _ := NewPipeline(nil, nil)
		src.pipeline = p
		st := &syslogTarget{src: src, maxLen: 256, idle: time.Second, logger: slog.New(slog.DiscardHandler)}
		r := bufio.NewReaderSize(bytes.NewReader(stream), 4096)
		parser := st.parser()
		addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
		for i := 0; i < 1000; i++ {
			b, err := r.Peek(1)
			if err != nil {
				return
			}
			var frame []byte
			if b[0] >= '0' && b[0] <= '9' {
				frame, err = st.readOctetCounted(r)
			} else {
				frame, err = st.readLine(r)
			}
			if frame != nil {
				st.handleFrame(context.Background(), parser, frame, addr)
			}
			if err != nil {
				return
			}
		}
	})
}
