// Package ui serves nxwatcher's web UI (the Grafana role of the design doc):
// the embedded single-page app built from web/ui, login with sessions, and the
// few endpoints the pages need that no upstream API has. The pages read data
// only through the upstream APIs (Prometheus /api/v1, Loki /loki/api/v1,
// Tempo /api, Alertmanager /api/v2).
//
// The package registers no routes itself. Routes returns the table the
// server mounts on the main listener; paths use net/http patterns:
//
//	POST  /api/ui/login          Login: JSON {"user","password"} → 200 + Set-Cookie, 401, 429, 415
//	POST  /api/ui/logout         Logout: ends the session server-side, clears the cookie → 204
//	GET   /api/ui/session        Session: {"user","role","expires"}, or the anonymous viewer, or 401
//	GET   /api/ui/config         ClientConfig: version, anonymous on/off, enabled signals, status names
//	GET   /api/ui/status/{name}  Status: a status source without an upstream API (log/trace store stats, config)
//	GET   /api/health            Health: Grafana's health check, for probes written for Grafana
//	GET   /api/ui/dashboards     SearchDashboards: ?query=&tag= → Grafana search hits + "source", by title
//	GET   /api/dashboards/uid/{uid}     GetDashboard: {"dashboard","meta"}, 404 {"message"}
//	DELETE /api/dashboards/uid/{uid}    DeleteDashboard: imported ones only; 400 provisioned, 404
//	POST  /api/dashboards/db     ImportDashboard: Grafana's create/update (200, 400, 412, 413, 415)
//	GET   /api/datasources       Datasources: Grafana's list of our three, names/UIDs of deploy/grafana
//	GET   /api/datasources/uid/{uid}, /api/datasources/name/{name}   Datasource: one, or 404
//	(any) /                      Assets: embedded files, else index.html for any non-API GET (SPA fallback);
//	                             mount without a method ("GET /" conflicts with "/api/v2/")
//
// Login and logout refuse cross-origin browser requests on every listener
// (http.CrossOriginProtection).
//
// On the main listener the APIs stay open as Prometheus's are; the UI asks
// /api/ui/session and shows its login page on 401. The UI's own listener
// (ui.listen_address, ":3000" in the manifests) serves the same mux wrapped
// in Protect: every request, UI or API, needs a session (or the anonymous
// viewer), roles decide what may change state (see allowed), and every
// state-changing request must be same-origin.
//
// Dashboards come from three sources: the embedded deploy/dashboards, the
// folder ui.dashboards_path (read at New and at every ApplyConfig; bad files
// are logged and listed with their error) and imports, stored one file per
// dashboard under <data>/ui/dashboards/ (written atomically). Import and
// delete refuse cross-origin browser requests on every listener and a
// viewer's session; on the UI port Protect requires the editor role.
//
// Behind --web.route-prefix, set Deps.RoutePrefix so Protect judges the path
// below the prefix. ApplyConfig applies a reloaded `ui:` section (all but
// listen_address). User(ctx) tells a handler behind Protect who is calling.
//
// The admin password comes from GF_SECURITY_ADMIN_PASSWORD (or
// GF_SECURITY_ADMIN_PASSWORD__FILE), else ui.admin_password_file, else the
// hash stored by an earlier start, else it is generated at first start and
// logged once. Only bcrypt hashes and SHA-256 digests of session tokens are
// written, under <data>/ui/. docs/ui.md has the operator's view.
package ui
