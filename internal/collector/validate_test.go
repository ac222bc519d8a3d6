package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateDesignDocConfig(t *testing.T) {
	var stderr syncBuffer
	if err := Validate(t.Context(), Options{Configs: []string{"../../deploy/collector/otel-collector.yaml"}, Stderr: &stderr}); err != nil {
		t.Fatalf("Validate(design doc config) = %v\n%s", err, stderr.String())
	}
	if n := strings.Count(stderr.String(), "service::telemetry::metrics::address was removed"); n != 1 {
		t.Errorf("converter warned %d times, want 1:\n%s", n, stderr.String())
	}
}

func TestValidateDefaultConfig(t *testing.T) {
	if err := Validate(t.Context(), Options{Stderr: &syncBuffer{}}); err != nil {
		t.Fatalf("Validate(default config) = %v", err)
	}
}

// Bad configs fail with upstream's own error text.
func TestValidateRejects(t *testing.T) {
	const head = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\n"
	for _, tc := range []struct {
		name, config string
		sets         []string
		want         string
	}{
		{
			name:   "unknown exporter",
			config: head + "  nope:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nope]\n",
			want:   `'exporters' unknown type: "nope" for id: "nope" (valid values: [`,
		},
		{
			name:   "unknown processor type",
			config: head + "processors:\n  k8sattributes:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [k8sattributes]\n      exporters: [debug]\n",
			want:   `'processors' unknown type: "k8sattributes"`,
		},
		{
			name:   "pipeline with a missing receiver",
			config: head + "service:\n  pipelines:\n    traces:\n      receivers: [otlp, jaeger]\n      exporters: [debug]\n",
			want:   `service::pipelines::traces: references receiver "jaeger" which is not configured`,
		},
		{
			name:   "exporter without endpoint",
			config: head + "  otlp_grpc:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc]\n",
			want:   `requires a non-empty "endpoint"`,
		},
		{
			// Upstream checks receiver endpoints only when it binds them; the
			// exporter's endpoint is checked by validate.
			name:   "bad exporter endpoint",
			config: head + "  otlp_grpc:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc]\n",
			sets:   []string{"exporters.otlp_grpc.endpoint=localhost:notaport"},
			want:   `exporters::otlp_grpc::clientconfig: invalid port "notaport"`,
		},
		{
			name:   "bad --set",
			config: head,
			sets:   []string{"processors.batch.timeout"},
			want:   `invalid argument "processors.batch.timeout" for "--set" flag: missing equal sign`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Validate(t.Context(), Options{Configs: []string{path}, Sets: tc.sets, Stderr: &syncBuffer{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSetURI(t *testing.T) {
	got, err := SetURI("exporters.otlp/tempo.endpoint = 127.0.0.1:4317")
	if err != nil {
		t.Fatal(err)
	}
	if want := "yaml:exporters::otlp/tempo::endpoint: 127.0.0.1:4317"; got != want {
		t.Errorf("SetURI = %q, want %q", got, want)
	}
}
