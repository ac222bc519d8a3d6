// Package alerting is the embedded Alertmanager of nxwatcher serve, wired by
// hand from github.com/prometheus/alertmanager packages (its app and ui
// packages do not build from the module proxy): the mem alert store,
// silences and notification log persisted under the data directory,
// inhibitor, dispatcher with routing and grouping, every upstream receiver
// type, templates, time intervals, and the API v2.
//
// # Routes
//
// The API is one http.Handler; mount it at APIPath(), which is
// RoutePrefix+"/api/v2/" ("/api/v2/" without a prefix):
//
//	method  path                                 handler
//	GET     <prefix>/api/v2/status               Handler()
//	GET     <prefix>/api/v2/receivers            Handler()
//	GET     <prefix>/api/v2/alerts               Handler()
//	POST    <prefix>/api/v2/alerts               Handler()
//	GET     <prefix>/api/v2/alerts/groups        Handler()
//	GET     <prefix>/api/v2/silences             Handler()
//	POST    <prefix>/api/v2/silences             Handler()
//	GET     <prefix>/api/v2/silence/{silenceID}  Handler()
//	DELETE  <prefix>/api/v2/silence/{silenceID}  Handler()
//
// i.e. mux.Handle(am.APIPath(), am.Handler()) on the main listener and on
// Config.ListenAddress when set. The Alertmanager listener also serves
// /metrics with the process's ordinary metrics handler: the package's
// metrics are registered on Deps.Registerer, nothing special is needed.
//
// # External URL and route prefix
//
// Deps.External is the externally visible URL, path prefix included
// (--web.external-url); it is {{ .ExternalURL }} in templates, without a
// trailing "/". Deps.RoutePrefix (--web.route-prefix) defaults to its path.
//
// # Reloads: Prepare, then commit
//
// Prepare(cfg) builds the whole new state — alertmanager.yml parsed,
// relative paths resolved against Config.BaseDir (inline body) or the
// file's directory, templates parsed, credential files opened, every
// receiver's integrations, route tree, time intervals and inhibition rules
// built — and touches nothing that runs. It returns commit, which swaps the
// state in and cannot fail. A composition root prepares every component,
// then commits all of them or none. ApplyConfig is Prepare + commit.
//
// # Checks
//
// Config.Validate checks what serve would load (the alertmanager.yml, its
// templates and credential files; errors carry lines of the serve file).
// CheckAlertmanagerFile checks a bare alertmanager.yml; IsAlertmanagerYAML
// tells one from other YAML files.
//
// # Durability
//
// A silence created or expired through the API is on disk before the API
// answers. Each notification-log entry is on disk before the pipeline goes
// on (see durableNflog), so a crash does not resend what was sent.
package alerting
