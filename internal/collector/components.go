package collector

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/probabilisticsamplerprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/zpagesextension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// Components returns the factories of this distribution, as the Collector's
// builder would generate them from a manifest (ADR 0060 says why each one is
// in or out). Module paths are recorded so `validate` and the service's
// build info name them as upstream does.
func Components() (otelcol.Factories, error) {
	var (
		f   otelcol.Factories
		err error
	)
	f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
		memorylimiterprocessor.NewFactory(),
		resourceprocessor.NewFactory(),
		probabilisticsamplerprocessor.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		otlpexporter.NewFactory(), // "otlp_grpc", with "otlp" as its deprecated alias
		otlphttpexporter.NewFactory(),
		debugexporter.NewFactory(),
		prometheusremotewriteexporter.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		healthcheckextension.NewFactory(),
		pprofextension.NewFactory(),
		zpagesextension.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Connectors, err = otelcol.MakeFactoryMap[connector.Factory]()
	if err != nil {
		return f, err
	}
	f.Telemetry = otelconftelemetry.NewFactory()

	f.ReceiverModules = modules(f.Receivers, map[string]string{
		"otlp": "go.opentelemetry.io/collector/receiver/otlpreceiver v0.165.0",
	})
	f.ProcessorModules = modules(f.Processors, map[string]string{
		"batch":                 "go.opentelemetry.io/collector/processor/batchprocessor v0.165.0",
		"memory_limiter":        "go.opentelemetry.io/collector/processor/memorylimiterprocessor v0.165.0",
		"resource":              "github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor v0.165.0",
		"probabilistic_sampler": "github.com/open-telemetry/opentelemetry-collector-contrib/processor/probabilisticsamplerprocessor v0.165.0",
	})
	f.ExporterModules = modules(f.Exporters, map[string]string{
		"otlp_grpc":               "go.opentelemetry.io/collector/exporter/otlpexporter v0.165.0",
		"otlp":                    "go.opentelemetry.io/collector/exporter/otlpexporter v0.165.0",
		"otlphttp":                "go.opentelemetry.io/collector/exporter/otlphttpexporter v0.165.0",
		"otlp_http":               "go.opentelemetry.io/collector/exporter/otlphttpexporter v0.165.0",
		"debug":                   "go.opentelemetry.io/collector/exporter/debugexporter v0.165.0",
		"prometheusremotewrite":   "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter v0.165.0",
		"prometheus_remote_write": "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter v0.165.0",
	})
	f.ExtensionModules = modules(f.Extensions, map[string]string{
		"health_check": "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension v0.165.0",
		"pprof":        "github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension v0.165.0",
		"zpages":       "go.opentelemetry.io/collector/extension/zpagesextension v0.165.0",
	})
	return f, nil
}

// modules maps every registered type (aliases included) to its module.
func modules[T component.Factory](factories map[component.Type]T, byName map[string]string) map[component.Type]string {
	m := make(map[component.Type]string, len(factories))
	for t := range factories {
		if mod, ok := byName[t.String()]; ok {
			m[t] = mod
		}
	}
	return m
}
