package collector

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultConfig is the config used when no --config is given (default.yaml):
// OTLP gRPC/HTTP on 0.0.0.0:4317/4318, memory_limiter and batch, exported
// with otlp_grpc to localhost:4317.
//
//go:embed default.yaml
var DefaultConfig string

// Options are the command line of `nxwatcher collector`, spelled as the
// Collector spells them.
type Options struct {
	// Configs are the --config values: file paths or `scheme:` URIs
	// (file:, env:, yaml:). Empty runs DefaultConfig.
	Configs []string
	// Sets are the --set values, "a.b.c=value"; they override Configs.
	Sets []string
	// Stderr receives the Collector's logs; nil is os.Stderr.
	Stderr io.Writer
	// Version is reported as the service's build version.
	Version string
	// KeepGRPCLogger leaves grpc's process-wide logger alone. Upstream
	// replaces it (unsynchronised) at every start; set this when the
	// collector shares its process with other gRPC users (tests, benches).
	KeepGRPCLogger bool
}

// SetURI turns one --set value into the yaml: URI the Collector's own
// --set flag produces ("a.b=c" → "yaml:a::b: c").
func SetURI(s string) (string, error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", errors.New("missing equal sign")
	}
	return "yaml:" + strings.TrimSpace(strings.ReplaceAll(key, ".", "::")) + ": " + strings.TrimSpace(value), nil
}

// Settings builds the otelcol.CollectorSettings for opts: this
// distribution's components, the file/env/yaml providers with "env" as the
// default scheme (as otelcol's command sets it), and the telemetry address
// converter.
func Settings(opts Options) (otelcol.CollectorSettings, error) {
	uris := append([]string(nil), opts.Configs...)
	if len(uris) == 0 {
		uris = []string{"yaml:" + DefaultConfig}
	}
	for _, s := range opts.Sets {
		u, err := SetURI(s)
		if err != nil {
			return otelcol.CollectorSettings{}, fmt.Errorf("invalid argument %q for \"--set\" flag: %w", s, err)
		}
		uris = append(uris, u)
	}
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	stderr := opts.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	sink := zapcore.AddSync(stderr)
	return otelcol.CollectorSettings{
		Factories: Components,
		BuildInfo: component.BuildInfo{
			Command:     "nxwatcher collector",
			Description: "nx-watcher's OpenTelemetry Collector distribution",
			Version:     version,
		},
		// The caller cancels Run's context on SIGINT/SIGTERM.
		DisableGracefulShutdown: true,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs:          uris,
				DefaultScheme: "env",
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				ConverterFactories: []confmap.ConverterFactory{
					NewTelemetryAddressConverterFactory(),
				},
			},
		},
		SkipSettingGRPCLogger: opts.KeepGRPCLogger,
		// Keep the level and encoding the config chose, write to stderr.
		LoggingOptions: []zap.Option{zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			enc := zap.NewProductionEncoderConfig()
			enc.EncodeTime = zapcore.ISO8601TimeEncoder
			return zapcore.NewCore(zapcore.NewConsoleEncoder(enc), sink, c)
		})},
	}, nil
}

// Run runs the collector until ctx ends (or a component fails); it returns
// after every component has shut down, so exporters have drained.
func Run(ctx context.Context, opts Options) error {
	set, err := Settings(opts)
	if err != nil {
		return err
	}
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return err
	}
	return col.Run(ctx)
}

// Validate loads and validates the config as `otelcol validate` does,
// without starting anything.
func Validate(ctx context.Context, opts Options) error {
	set, err := Settings(opts)
	if err != nil {
		return err
	}
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return err
	}
	return col.DryRun(ctx)
}
