// Package version says what this build is, and which upstream versions its
// compatibility APIs speak for.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Set with -ldflags "-X github.com/nx-watcher/nxwatcher/internal/version.Version=…".
var (
	Version   = "0.1.0-dev"
	BuildDate = ""
	BuildUser = ""
)

// PrometheusAPI is the Prometheus release whose packages (v0.316.0) serve
// /api/v1; /api/v1/status/buildinfo reports it so Grafana enables the
// features of that version.
const PrometheusAPI = "3.16.0"

// AlertmanagerAPI is the Alertmanager release whose packages serve /api/v2;
// its /api/v2/status reports it.
const AlertmanagerAPI = "0.34.2"

// Info is what /api/v1/status/buildinfo and `nxwatcher version` print.
type Info struct {
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
	GoVersion string
}

var vcs = sync.OnceValues(func() (revision, modified string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", ""
	}
	revision = "unknown"
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	return revision, modified
})

// Get returns this build's info.
func Get() Info {
	rev, modified := vcs()
	if modified == "true" {
		rev += "-modified"
	}
	return Info{
		Version:   Version,
		Revision:  rev,
		Branch:    "main",
		BuildUser: BuildUser,
		BuildDate: BuildDate,
		GoVersion: runtime.Version(),
	}
}

// NewCollector exposes nxwatcher_build_info.
func NewCollector() prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nxwatcher_build_info",
		Help: "A metric with a constant '1' value labeled by version, revision and Go version of nxwatcher.",
		ConstLabels: prometheus.Labels{
			"version":        i.Version,
			"revision":       i.Revision,
			"goversion":      i.GoVersion,
			"prometheus_api": PrometheusAPI,
		},
	})
	g.Set(1)
	return g
}
