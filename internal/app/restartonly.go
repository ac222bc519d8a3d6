package app

import (
	"reflect"
	"strings"

	"github.com/nx-watcher/nxwatcher/internal/config"
)

// reloadableKeys are the parts of the serve config a reload puts in force
// (docs/configuration.md, "Reload"); every other key is read at start-up.
var reloadableKeys = map[string]bool{
	"metrics.prometheus":                true,
	"metrics.prometheus_config_file":    true,
	"metrics.retention":                 true,
	"metrics.retention_size":            true,
	"alerting.alertmanager":             true,
	"alerting.alertmanager_config_file": true,
	"logs.limits":                       true,
	"logs.querier":                      true,
	"logs.forward":                      true,
	"traces.forward":                    true,
	// The UI re-reads accounts, roles and session settings; its port stays.
	"ui.admin_user":           true,
	"ui.admin_password_file":  true,
	"ui.session_ttl":          true,
	"ui.session_idle_timeout": true,
	"ui.users":                true,
	"ui.anonymous":            true,
	"ui.cookie_secure":        true,
	"ui.csrf_trusted_origins": true,
	"ui.dashboards_path":      true,
	"ui.tenant":               true,
}

// restartOnlyChanges lists the keys that differ between the config in force
// and a reloaded one but take effect only at the next start, so a reload
// can say so instead of accepting them in silence.
func restartOnlyChanges(running, next *config.Config) []string {
	var changed []string
	diffKeys("", reflect.ValueOf(*running), reflect.ValueOf(*next), &changed)
	return changed
}

func diffKeys(prefix string, a, b reflect.Value, out *[]string) {
	if reloadableKeys[prefix] {
		return
	}
	if a.Kind() == reflect.Struct {
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			key := prefix
			if !strings.Contains(opts, "inline") {
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				key = strings.TrimPrefix(prefix+"."+name, ".")
			}
			diffKeys(key, a.Field(i), b.Field(i), out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, prefix)
	}
}
