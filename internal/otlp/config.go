package otlp

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/units"
)

// Config is the `otlp:` section of the serve config.
type Config struct {
	// GRPCEndpoint is where the foundation binds the OTLP/gRPC listener.
	GRPCEndpoint string `yaml:"grpc_endpoint"`
	// HTTPEndpoint is where the foundation binds the OTLP/HTTP listener.
	HTTPEndpoint string `yaml:"http_endpoint"`
	// MaxRequestBytes caps one request, both on the wire and after gzip
	// decompression (as gRPC's max receive message size does).
	MaxRequestBytes units.Bytes `yaml:"max_request_bytes"`
	// MemoryLimit caps the estimated bytes held by requests in flight. Past
	// it the receivers refuse with a retryable error instead of growing.
	MemoryLimit units.Bytes `yaml:"memory_limit"`
	// RetryAfter is what refusals tell senders to wait (Retry-After header,
	// gRPC RetryInfo).
	RetryAfter model.Duration `yaml:"retry_after"`
}

// Defaults, exported so docs and the foundation can quote them.
const (
	DefaultGRPCEndpoint    = ":4317"
	DefaultHTTPEndpoint    = ":4318"
	DefaultMaxRequestBytes = 16 << 20
	DefaultMemoryLimit     = 128 << 20
	DefaultRetryAfter      = model.Duration(time.Second)
)

// DefaultConfig returns the settings `nxwatcher serve` uses with no config.
func DefaultConfig() Config {
	return Config{
		GRPCEndpoint:    DefaultGRPCEndpoint,
		HTTPEndpoint:    DefaultHTTPEndpoint,
		MaxRequestBytes: DefaultMaxRequestBytes,
		MemoryLimit:     DefaultMemoryLimit,
		RetryAfter:      DefaultRetryAfter,
	}
}

// Validate reports every problem in the section at once.
func (c Config) Validate() error {
	var errs []error
	for _, ep := range []struct{ key, value string }{
		{"grpc_endpoint", c.GRPCEndpoint},
		{"http_endpoint", c.HTTPEndpoint},
	} {
		if ep.value == "" {
			errs = append(errs, fmt.Errorf("otlp.%s: must not be empty", ep.key))
			continue
		}
		if _, _, err := net.SplitHostPort(ep.value); err != nil {
			errs = append(errs, fmt.Errorf("otlp.%s: %q is not host:port: %w", ep.key, ep.value, err))
		}
	}
	if c.MaxRequestBytes <= 0 {
		errs = append(errs, fmt.Errorf("otlp.max_request_bytes: must be positive, got %s", c.MaxRequestBytes))
	}
	if c.MemoryLimit <= 0 {
		errs = append(errs, fmt.Errorf("otlp.memory_limit: must be positive, got %s", c.MemoryLimit))
	} else if c.MemoryLimit < c.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("otlp.memory_limit: %s is below max_request_bytes %s", c.MemoryLimit, c.MaxRequestBytes))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("otlp.retry_after: must not be negative, got %s", c.RetryAfter))
	}
	return errors.Join(errs...)
}
