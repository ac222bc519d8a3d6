package collector

import (
	"reflect"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestTelemetryAddressConverter(t *testing.T) {
	pull := func(host string, port int) []any {
		return []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{"prometheus": map[string]any{
			"host": host, "port": port,
			"without_scope_info": true, "without_units": true, "without_type_suffix": true,
		}}}}}
	}
	for _, tc := range []struct {
		name        string
		metrics     map[string]any
		wantReaders any // nil: no readers key
		wantWarns   int
		wantErr     string
	}{
		{name: "design doc address", metrics: map[string]any{"address": "0.0.0.0:8888"}, wantReaders: pull("0.0.0.0", 8888), wantWarns: 1},
		{name: "level kept", metrics: map[string]any{"address": "127.0.0.1:9999", "level": "detailed"}, wantReaders: pull("127.0.0.1", 9999), wantWarns: 1},
		{name: "empty host listens everywhere", metrics: map[string]any{"address": ":8888"}, wantReaders: pull("0.0.0.0", 8888), wantWarns: 1},
		{name: "no address untouched", metrics: map[string]any{"level": "basic"}},
		{name: "empty address dropped", metrics: map[string]any{"address": ""}, wantWarns: 1},
		{name: "readers win", metrics: map[string]any{"address": "0.0.0.0:8888", "readers": pull("localhost", 1)}, wantReaders: pull("localhost", 1), wantWarns: 1},
		{name: "no port", metrics: map[string]any{"address": "0.0.0.0"}, wantErr: "missing port"},
		{name: "bad port", metrics: map[string]any{"address": "0.0.0.0:http"}, wantErr: "invalid port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			conv := NewTelemetryAddressConverterFactory().Create(confmap.ConverterSettings{Logger: zap.New(core)})
			conf := confmap.NewFromStringMap(map[string]any{"service": map[string]any{"telemetry": map[string]any{"metrics": tc.metrics}}})
			err := conv.Convert(t.Context(), conf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Convert = %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conf.IsSet(telemetryAddressKey) {
				t.Errorf("address still set: %v", conf.Get(telemetryAddressKey))
			}
			if got := conf.Get(telemetryReadersKey); !reflect.DeepEqual(got, tc.wantReaders) {
				t.Errorf("readers = %#v\nwant %#v", got, tc.wantReaders)
			}
			if lvl, ok := tc.metrics["level"]; ok && conf.Get("service::telemetry::metrics::level") != lvl {
				t.Errorf("level = %v, want %v", conf.Get("service::telemetry::metrics::level"), lvl)
			}
			if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != tc.wantWarns {
				t.Errorf("%d warnings, want %d: %v", n, tc.wantWarns, logs.All())
			}
		})
	}
}
