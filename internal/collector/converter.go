package collector

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
)

const (
	telemetryAddressKey = "service::telemetry::metrics::address"
	telemetryReadersKey = "service::telemetry::metrics::readers"
)

// telemetryAddressConverter keeps configs written for Collector ≤ 0.127
// loadable: `service.telemetry.metrics.address` (deprecated in 0.111, an error
// since 0.128) is rewritten into the current form, one pull-Prometheus reader
// on the same host:port, with the exporter options upstream's own default
// reader uses (so metric names stay `otelcol_receiver_accepted_spans`, ...).
// It logs one warning naming the replacement. When `readers` are configured
// too, they win and the address is dropped, also with a warning.
type telemetryAddressConverter struct {
	logger *zap.Logger
}

// NewTelemetryAddressConverterFactory returns the converter's factory, for
// otelcol.ConfigProviderSettings.ResolverSettings.ConverterFactories.
func NewTelemetryAddressConverterFactory() confmap.ConverterFactory {
	return confmap.NewConverterFactory(func(set confmap.ConverterSettings) confmap.Converter {
		logger := set.Logger
		if logger == nil {
			logger = zap.NewNop()
		}
		return telemetryAddressConverter{logger: logger}
	})
}

func (c telemetryAddressConverter) Convert(_ context.Context, conf *confmap.Conf) error {
	if !conf.IsSet(telemetryAddressKey) {
		return nil
	}
	raw := conf.Get(telemetryAddressKey)
	conf.Delete(telemetryAddressKey)
	addr, ok := raw.(string)
	if !ok {
		return fmt.Errorf("service::telemetry::metrics::address: expected a host:port string, got %T", raw)
	}
	if addr == "" {
		// An empty address turned the endpoint off in 0.118.
		c.logger.Warn("service::telemetry::metrics::address is empty; removed (no Prometheus endpoint for internal metrics)")
		return nil
	}
	if conf.IsSet(telemetryReadersKey) {
		c.logger.Warn("service::telemetry::metrics::address is ignored because service::telemetry::metrics::readers is set; remove the address",
			zap.String("address", addr))
		return nil
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("service::telemetry::metrics::address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("service::telemetry::metrics::address %q: invalid port %q", addr, portText)
	}
	if host == "" {
		host = "0.0.0.0" // ":8888" listened on every interface
	}
	reader := map[string]any{
		"pull": map[string]any{
			"exporter": map[string]any{
				"prometheus": map[string]any{
					"host":                host,
					"port":                port,
					"without_scope_info":  true,
					"without_units":       true,
					"without_type_suffix": true,
				},
			},
		},
	}
	if err := conf.Merge(confmap.NewFromStringMap(map[string]any{
		"service": map[string]any{"telemetry": map[string]any{"metrics": map[string]any{
			"readers": []any{reader},
		}}},
	})); err != nil {
		return fmt.Errorf("rewrite service::telemetry::metrics::address: %w", err)
	}
	c.logger.Warn("service::telemetry::metrics::address was removed in Collector v0.128; rewritten to service::telemetry::metrics::readers[0].pull.exporter.prometheus (update the config to silence this)",
		zap.String("address", addr), zap.String("host", host), zap.Int("port", port))
	return nil
}
