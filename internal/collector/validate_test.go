package collector

import (
	"os"
	"path/filepath"
	"slices"
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

// Every component of the distribution is registered and a config using
// them all validates.
func TestComponentsAll(t *testing.T) {
	f, err := Components()
	if err != nil {
		t.Fatal(err)
	}
	names := func(m map[string]bool) string { return strings.Join(sortedKeys(m), ",") }
	got := map[string]map[string]bool{"receivers": {}, "processors": {}, "exporters": {}, "extensions": {}}
	for k := range f.Receivers {
		got["receivers"][k.String()] = true
	}
	for k := range f.Processors {
		got["processors"][k.String()] = true
	}
	for k := range f.Exporters {
		got["exporters"][k.String()] = true
	}
	for k := range f.Extensions {
		got["extensions"][k.String()] = true
	}
	want := map[string]string{
		"receivers":  "otlp",
		"processors": "batch,memory_limiter,probabilistic_sampler,resource",
		"exporters":  "debug,otlp,otlp_grpc,otlp_http,otlphttp,prometheus_remote_write,prometheusremotewrite",
		"extensions": "health_check,pprof,zpages",
	}
	for kind, mods := range map[string]int{"receivers": len(f.ReceiverModules), "processors": len(f.ProcessorModules), "exporters": len(f.ExporterModules), "extensions": len(f.ExtensionModules)} {
		if mods != len(got[kind]) {
			t.Errorf("%s: %d module entries for %d types", kind, mods, len(got[kind]))
		}
	}
	for kind, w := range want {
		if g := names(got[kind]); g != w {
			t.Errorf("%s = %s, want %s", kind, g, w)
		}
	}
	config := `receivers:
  otlp:
    protocols:
      grpc:
processors:
  probabilistic_sampler:
    sampling_percentage: 10
  memory_limiter:
    check_interval: 1s
    limit_mib: 100
exporters:
  prometheusremotewrite:
    endpoint: http://127.0.0.1:9090/api/v1/write
  otlphttp:
    endpoint: http://127.0.0.1:4318
extensions:
  health_check:
  pprof:
  zpages:
service:
  extensions: [health_check, pprof, zpages]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, probabilistic_sampler]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [prometheusremotewrite]
`
	path := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Validate(t.Context(), Options{Configs: []string{path}, Stderr: &syncBuffer{}}); err != nil {
		t.Fatalf("Validate(all components) = %v", err)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
