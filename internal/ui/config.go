package ui

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// Role is what a user may do. Roles are ordered: admin can do everything an
// editor can, an editor everything a viewer can.
type Role string

// The roles, as Grafana names its organisation roles.
const (
	RoleViewer Role = "viewer"
	RoleEditor Role = "editor"
	RoleAdmin  Role = "admin"
)

func (r Role) valid() bool { return r == RoleViewer || r == RoleEditor || r == RoleAdmin }

// rank orders roles for "at least" checks.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleEditor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Config is the `ui:` section of the serve config.
type Config struct {
	// AdminUser is the admin's login name. GF_SECURITY_ADMIN_USER wins.
	AdminUser string `yaml:"admin_user"`
	// AdminPasswordFile holds the admin password in clear (a mounted
	// Secret). GF_SECURITY_ADMIN_PASSWORD (or ..._PASSWORD__FILE) wins.
	// Empty and no env var: serve generates a password at first start.
	AdminPasswordFile string `yaml:"admin_password_file"`
	// ListenAddress is the UI's own port (":3000" in the manifests), where
	// every request needs a session. Empty: no own port; the UI is served at
	// "/" of the main listener only.
	ListenAddress string `yaml:"listen_address"`
	// SessionTTL is a session's maximum lifetime, whatever its activity
	// (Grafana's login_maximum_lifetime_duration, 30d).
	SessionTTL model.Duration `yaml:"session_ttl"`
	// SessionIdleTimeout ends a session not used for this long (Grafana's
	// login_maximum_inactive_lifetime_duration, 7d).
	SessionIdleTimeout model.Duration `yaml:"session_idle_timeout"`
	// Users are extra accounts besides the admin.
	Users []UserConfig `yaml:"users"`
	// Anonymous lets requests without a session in as a viewer.
	Anonymous AnonymousConfig `yaml:"anonymous"`
	// CookieSecure marks the session cookie Secure even on plain HTTP (set it
	// behind a TLS-terminating proxy). Under TLS the cookie is always Secure.
	CookieSecure bool `yaml:"cookie_secure"`
	// CSRFTrustedOrigins are origins ("https://grafana.example.com") whose
	// cross-origin state-changing requests are let through (Grafana's
	// csrf_trusted_origins). Same-origin requests never need listing.
	CSRFTrustedOrigins []string `yaml:"csrf_trusted_origins"`
	// DashboardsPath is a folder of Grafana dashboard JSON files (*.json,
	// read recursively) the UI lists besides the built-in ones; read at
	// start and at every reload. Empty: none. Relative to the config file.
	DashboardsPath string `yaml:"dashboards_path"`
	// Tenant is the X-Scope-OrgID the UI's own listener adds to requests
	// that carry none, as a Grafana Loki/Tempo datasource does with its
	// custom header, so the UI works with logs.auth_enabled and
	// traces.multitenancy_enabled. Empty: none added.
	Tenant string `yaml:"tenant"`
}

// UserConfig is one extra account. Exactly one of PasswordHash and
// PasswordHashFile is set; the hash is bcrypt (htpasswd -nbBC 10 user pw).
type UserConfig struct {
	Name             string           `yaml:"name"`
	PasswordHash     commoncfg.Secret `yaml:"password_hash"`
	PasswordHashFile string           `yaml:"password_hash_file"`
	Role             Role             `yaml:"role"`
}

// AnonymousConfig is Grafana's [auth.anonymous]: requests without a session
// act as Role. Only viewer is accepted: anonymous requests never change state.
type AnonymousConfig struct {
	Enabled bool `yaml:"enabled"`
	Role    Role `yaml:"role"`
}

// Grafana's defaults for session lifetimes.
const (
	defaultSessionTTL  = 30 * 24 * time.Hour
	defaultIdleTimeout = 7 * 24 * time.Hour
)

// DefaultConfig is Grafana's defaults: user admin, 30d session lifetime, 7d
// idle timeout, no own port, no anonymous access.
func DefaultConfig() Config {
	return Config{
		AdminUser:          "admin",
		SessionTTL:         model.Duration(defaultSessionTTL),
		SessionIdleTimeout: model.Duration(defaultIdleTimeout),
		Anonymous:          AnonymousConfig{Role: RoleViewer},
	}
}

// ResolvePaths makes the config's file paths relative to baseDir, the
// directory of the config file.
func (c *Config) ResolvePaths(baseDir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	c.AdminPasswordFile = abs(c.AdminPasswordFile)
	c.DashboardsPath = abs(c.DashboardsPath)
	for i := range c.Users {
		c.Users[i].PasswordHashFile = abs(c.Users[i].PasswordHashFile)
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Tenant != "" {
		if err := tenancy.ValidateID(c.Tenant); err != nil {
			errs = append(errs, fmt.Errorf("tenant: %w", err))
		}
	}
	if strings.TrimSpace(c.AdminUser) == "" {
		errs = append(errs, errors.New("ui.admin_user: must not be empty"))
	}
	if c.ListenAddress != "" {
		if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
			errs = append(errs, fmt.Errorf("ui.listen_address: %w", err))
		}
	}
	if c.SessionTTL <= 0 {
		errs = append(errs, errors.New("ui.session_ttl: must be positive"))
	}
	if c.SessionIdleTimeout <= 0 {
		errs = append(errs, errors.New("ui.session_idle_timeout: must be positive"))
	}
	if c.SessionTTL > 0 && c.SessionIdleTimeout > c.SessionTTL {
		errs = append(errs, errors.New("ui.session_idle_timeout: must not exceed session_ttl"))
	}
	seen := map[string]bool{c.AdminUser: true}
	for i, u := range c.Users {
		p := fmt.Sprintf("ui.users[%d]", i)
		switch {
		case strings.TrimSpace(u.Name) == "":
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", p))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is already a user (or the admin)", p, u.Name))
		}
		seen[u.Name] = true
		if !u.Role.valid() {
			errs = append(errs, fmt.Errorf("%s.role: %q is not one of viewer, editor, admin", p, u.Role))
		}
		switch {
		case u.PasswordHash != "" && u.PasswordHashFile != "":
			errs = append(errs, fmt.Errorf("%s: password_hash and password_hash_file are mutually exclusive", p))
		case u.PasswordHash == "" && u.PasswordHashFile == "":
			errs = append(errs, fmt.Errorf("%s: one of password_hash or password_hash_file is required", p))
		case u.PasswordHash != "":
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				errs = append(errs, fmt.Errorf("%s.password_hash: not a bcrypt hash: %w", p, err))
			}
		}
	}
	if c.Anonymous.Enabled && c.Anonymous.Role != RoleViewer {
		errs = append(errs, fmt.Errorf("ui.anonymous.role: %q: only viewer is supported (anonymous requests never change state)", c.Anonymous.Role))
	}
	cop := http.NewCrossOriginProtection()
	for i, o := range c.CSRFTrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("ui.csrf_trusted_origins[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
