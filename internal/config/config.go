// Package config is the schema of the one YAML file that `nxwatcher serve`
// reads: strict decoding (unknown keys name their line), defaults, Validate,
// and the native sections parsed by their upstream parsers.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	promconfig "github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/metrics"
)

// Config is the whole serve config. Each section belongs to the package that
// runs it; this package only puts them together.
type Config struct {
	Metrics metrics.Config `yaml:"metrics"`

	// File is where the config was read from ("" for the embedded default).
	File string `yaml:"-"`
}

// DefaultConfig is what every key defaults to when left out.
func DefaultConfig() Config {
	return Config{Metrics: metrics.DefaultConfig()}
}

//go:embed default.yml
var embeddedDefault string

// SelfTargetPlaceholder in default.yml is replaced by the address the server
// listens on, so the default config scrapes our own /metrics.
const SelfTargetPlaceholder = "NXWATCHER_SELF_TARGET"

// Default is the embedded config used when no file is given.
func Default(selfTarget string, logger *slog.Logger) (*Config, error) {
	text := strings.ReplaceAll(embeddedDefault, SelfTargetPlaceholder, selfTarget)
	cfg, err := Parse([]byte(text), ".", logger)
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	return cfg, nil
}

// LoadFile reads, validates and resolves a serve config file.
func LoadFile(path string, logger *slog.Logger) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(b, filepath.Dir(path), logger)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	cfg.File = path
	return cfg, nil
}

// Parse decodes a serve config strictly, validates it and resolves its
// native sections; relative paths resolve against baseDir.
func Parse(data []byte, baseDir string, logger *slog.Logger) (*Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Metrics.Resolve(baseDir, logger); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate reports every problem of every section at once.
func (c *Config) Validate() error {
	return errors.Join(c.Metrics.Validate())
}

// String prints the config back as YAML, native sections included.
func (c *Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("<config: %v>", err)
	}
	return string(b)
}

// Kinds of file that CheckFile recognises.
const (
	KindServe      = "nxwatcher serve config"
	KindPrometheus = "prometheus config"
)

// CheckFile validates a serve config or, when the file has none of the serve
// config's sections, a bare prometheus.yml, with Prometheus's own parser.
func CheckFile(path string, logger *slog.Logger) (kind string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(b, &top); err != nil {
		return "", fmt.Errorf("parse yaml: %w", err)
	}
	if isServeConfig(top) {
		_, err := LoadFile(path, logger)
		return KindServe, err
	}
	_, err = promconfig.LoadFile(path, false, logger)
	return KindPrometheus, err
}

func isServeConfig(top map[string]yaml.Node) bool {
	if len(top) == 0 {
		return true
	}
	for _, key := range serveSections() {
		if _, ok := top[key]; ok {
			return true
		}
	}
	return false
}

// serveSections are the top-level keys of Config.
func serveSections() []string {
	t := reflect.TypeFor[Config]()
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}
