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
// CheckRuleFiles and TestRuleFiles are `promtool check rules` and
// `promtool test rules`.
package ruler
