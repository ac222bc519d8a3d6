// Package grafana holds the provisioning files for a real Grafana 11.5 next
// to nxwatcher (docs/ui.md, "Keeping a real Grafana"), embedded so the
// built-in UI answers GET /api/datasources with the same names and UIDs a
// real Grafana gets: dashboards written for one resolve their data-source
// references in the other.
package grafana

import _ "embed"

// Datasources is provisioning/datasources/nxwatcher.yaml: the three data
// sources (Prometheus, Loki, Tempo) with their stable UIDs.
//
//go:embed provisioning/datasources/nxwatcher.yaml
var Datasources []byte
