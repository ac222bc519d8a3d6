package chaos

import (
	"maps"
	"testing"
)

func TestParseListening(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		web       string
		named     map[string]string
	}{
		{
			name: "component only",
			log: `time=2026-11-30T16:37:02.993Z level=INFO source=server.go:54 msg=Listening component=web address=127.0.0.1:40001
`,
			web: "127.0.0.1:40001", named: map[string]string{},
		},
		{
			name: "otlp lines with protocol, before and after the web line",
			log: `time=x level=INFO msg=Listening component=otlp protocol=grpc address=127.0.0.1:40002
time=x level=INFO msg=Listening component=otlp protocol=http address=127.0.0.1:40003
time=x level=INFO msg=Listening component=web address=127.0.0.1:40001
time=x level=INFO msg="Listening elsewhere" component=web address=127.0.0.1:1
`,
			web:   "127.0.0.1:40001",
			named: map[string]string{"otlp-grpc": "127.0.0.1:40002", "otlp-http": "127.0.0.1:40003"},
		},
		{
			name: "listener attribute wins",
			log: `time=x level=INFO msg=Listening component=server listener=web address=127.0.0.1:40001
time=x level=INFO msg=Listening component=server listener=otlp-grpc address=127.0.0.1:40002
time=x level=INFO msg=Listening component=alerting listener="alertmanager" address="127.0.0.1:40004"
`,
			web:   "127.0.0.1:40001",
			named: map[string]string{"otlp-grpc": "127.0.0.1:40002", "alertmanager": "127.0.0.1:40004"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web, named := parseListening([]byte(tc.log))
			if web != tc.web || !maps.Equal(named, tc.named) {
				t.Errorf("got %q %v, want %q %v", web, named, tc.web, tc.named)
			}
		})
	}
}
