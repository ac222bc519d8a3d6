// Package ruler evaluates the rule_files of a prometheus.yml with
// Prometheus's rules manager over the TSDB and PromQL engine, writes ALERTS
// and ALERTS_FOR_STATE (so `for` state is restored after a restart), and
// sends alerts the way Prometheus does: through Prometheus's notifier to
// the alerting.alertmanagers of the config (with its own discovery manager,
// named "notify"), and in-process to Deps.Notify (the embedded
// Alertmanager).
//
// It has no HTTP routes of its own: Manager() is web/api/v1's
// RulesRetriever (/api/v1/rules, /api/v1/alerts) and the Ruler is its
// AlertmanagerRetriever (/api/v1/alertmanagers).
//
// Reloads are two-phase: Prepare(pc) expands rule_files (relative to the
// config file's directory, as Prometheus's config loader leaves them),
// parses every file with its PromQL and templates, and builds the HTTP
// clients of alerting.alertmanagers, without touching what runs; the
// commit it returns applies the notifier, its discovery and the rule
// groups Prepare parsed, and cannot fail. ApplyConfig is Prepare + commit.
//
// Deps.External is Prometheus's --web.external-url (path prefix included):
// alert generator URLs are <External>/graph?g0.expr=….
//
// CheckConfig checks the rule files a prometheus.yml references (for
// `nxwatcher check config`); CheckRuleFiles and TestRuleFiles are
// `promtool check rules` and `promtool test rules`.
package ruler
