package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCollectorValidateCommand(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing-receiver.yaml")
	if err := os.WriteFile(missing, []byte("receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp, jaeger]\n      exporters: [debug]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"design doc config", []string{"validate", "--config=../../deploy/collector/otel-collector.yaml"}, 0, "service::telemetry::metrics::address was removed"},
		{"flags before validate", []string{"--config", "../../deploy/collector/otel-collector.yaml", "validate"}, 0, ""},
		{"default config", []string{"validate"}, 0, ""},
		{"missing receiver", []string{"validate", "--config=" + missing}, 1, `Error: service::pipelines::traces: references receiver "jaeger" which is not configured`},
		{"unknown component via --set", []string{"validate", "--config=../../deploy/collector/otel-collector.yaml", "--set=exporters.zipkin.endpoint=x"}, 1, `'exporters' unknown type: "zipkin"`},
		{"missing file", []string{"validate", "--config=" + filepath.Join(t.TempDir(), "nope.yaml")}, 1, "no such file or directory"},
		{"unexpected argument", []string{"validate", "extra"}, 2, `unexpected arguments ["extra"]`},
		{"unknown flag", []string{"--config.file=x"}, 2, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runCollector(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nwant it to contain %q", code, tc.wantCode, stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestCollectorHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runCollector(t.Context(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"usage: nxwatcher collector", "-config", "-set", "validate"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}
