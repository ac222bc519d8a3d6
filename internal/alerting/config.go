package alerting

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
)

// Config is the `alerting:` section of the serve config.
type Config struct {
	// Enabled turns the embedded Alertmanager on. Staging may turn it off.
	Enabled bool `yaml:"enabled"`
	// Alertmanager is the body of an alertmanager.yml, pasted inline.
	Alertmanager native.Section `yaml:"alertmanager,omitempty"`
	// AlertmanagerConfigFile is a path to an alertmanager.yml; exclusive
	// with Alertmanager.
	AlertmanagerConfigFile string `yaml:"alertmanager_config_file,omitempty"`
	// ListenAddress is an optional second port that serves only the
	// Alertmanager API (":9093" in the manifests), for clients that expect
	// Alertmanager on its own port.
	ListenAddress string `yaml:"listen_address,omitempty"`
	// Retention is how long silences and notification-log entries are kept
	// after they expire (Alertmanager's --data.retention).
	Retention model.Duration `yaml:"retention,omitempty"`
	// MaintenanceInterval is how often expired state is collected and a
	// snapshot written (Alertmanager's --data.maintenance-interval).
	// Silence changes made through the API are also written at once.
	MaintenanceInterval model.Duration `yaml:"maintenance_interval,omitempty"`

	// BaseDir is the directory of the serve config file. Relative paths in
	// an inline `alertmanager:` body (templates, http_config credential
	// files, receivers' *_file keys) resolve against it, as Alertmanager
	// resolves them against the directory of its alertmanager.yml. Set by
	// the config loader, not by YAML; "" means the working directory.
	BaseDir string `yaml:"-"`
}

// defaultAlertmanagerYAML is used when alerting is enabled without any
// alertmanager.yml: alerts are kept and shown by the API but sent nowhere.
const defaultAlertmanagerYAML = `route:
  receiver: default
receivers:
  - name: default
`

// DefaultConfig returns the section's defaults: enabled, no receivers,
// Alertmanager's own retention (120h) and maintenance interval (15m).
func DefaultConfig() Config {
	return Config{
		Enabled:             true,
		Retention:           model.Duration(120 * time.Hour),
		MaintenanceInterval: model.Duration(15 * time.Minute),
	}
}

// Validate reports every problem of the section at once. The
// alertmanager.yml body is parsed by Alertmanager's own parser.
func (c Config) Validate() error {
	var errs []error
	if !c.Alertmanager.IsZero() && c.AlertmanagerConfigFile != "" {
		errs = append(errs, errors.New("alerting: set either alertmanager or alertmanager_config_file, not both"))
	}
	if c.ListenAddress != "" {
		if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
			errs = append(errs, fmt.Errorf("alerting.listen_address: %w", err))
		}
	}
	if c.Retention <= 0 {
		errs = append(errs, errors.New("alerting.retention: must be positive"))
	}
	if c.MaintenanceInterval <= 0 {
		errs = append(errs, errors.New("alerting.maintenance_interval: must be positive"))
	}
	if c.Alertmanager.IsZero() || c.AlertmanagerConfigFile == "" {
		if _, err := c.LoadAlertmanagerConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LoadAlertmanagerConfig parses the alertmanager.yml the section names with
// Alertmanager's config.Load, resolves its relative paths (against the
// directory of the file it was written in) and checks what serve would
// read: every template parses and every credential file (*_file keys,
// http_config files) can be opened. Errors carry lines of the serve config
// file (inline body) or the name of the file.
func (c Config) LoadAlertmanagerConfig() (*amconfig.Config, error) {
	switch {
	case c.AlertmanagerConfigFile != "":
		conf, err := loadAMFile(c.AlertmanagerConfigFile)
		if err != nil {
			return nil, fmt.Errorf("alerting.alertmanager_config_file (%s): %w", c.AlertmanagerConfigFile, err)
		}
		return conf, nil
	case !c.Alertmanager.IsZero():
		if c.Alertmanager.File != "" {
			conf, err := loadAMFile(c.Alertmanager.File)
			return conf, c.Alertmanager.Explain("alerting.alertmanager", err)
		}
		text := c.Alertmanager.Text
		conf, err := loadAM(func() (*amconfig.Config, error) { return amconfig.Load(text) })
		if err == nil {
			err = checkFiles(conf, text, c.BaseDir)
		}
		if err != nil {
			return nil, c.Alertmanager.Explain("alerting.alertmanager", err)
		}
		return conf, nil
	default:
		conf, err := amconfig.Load(defaultAlertmanagerYAML)
		if err != nil {
			return nil, fmt.Errorf("alerting: default alertmanager config: %w", err)
		}
		return conf, nil
	}
}

// CheckAlertmanagerFile checks a bare alertmanager.yml as serve would load
// it (amtool check-config plus templates and credential files; relative
// paths resolve against the file's directory). Errors name the file and,
// where the parser gives one, the line.
func CheckAlertmanagerFile(path string) error {
	if _, err := loadAMFile(path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// loadAMFile loads an alertmanager.yml file and checks the files it names.
func loadAMFile(path string) (*amconfig.Config, error) {
	conf, err := loadAM(func() (*amconfig.Config, error) { return amconfig.LoadFile(path) })
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := checkFiles(conf, string(text), filepath.Dir(path)); err != nil {
		return nil, err
	}
	return conf, nil
}

// loadAM turns a panic of Alertmanager's config parser into an error:
// v0.34.2 dereferences a nil sub-route for input like "routes: [-]"
// (found by FuzzLoadAlertmanagerConfig), and a reload must not crash the
// server.
func loadAM(load func() (*amconfig.Config, error)) (conf *amconfig.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			conf, err = nil, fmt.Errorf("invalid configuration (the parser failed: %v); check for empty list items such as a bare '-' under routes", r)
		}
	}()
	return load()
}

// IsAlertmanagerYAML reports whether a YAML document looks like a bare
// alertmanager.yml: it has a top-level route or receivers key and none of
// the serve config's sections.
func IsAlertmanagerYAML(data []byte) bool {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return false
	}
	for _, k := range []string{"metrics", "logs", "traces", "otlp", "rules", "alerting"} {
		if _, ok := top[k]; ok {
			return false
		}
	}
	_, route := top["route"]
	_, receivers := top["receivers"]
	return route || receivers
}
