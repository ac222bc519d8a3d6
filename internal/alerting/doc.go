// Package alerting is the embedded Alertmanager of nxwatcher serve, wired by
// hand from github.com/prometheus/alertmanager packages (its app and ui
// packages do not build from the module proxy): the mem alert store,
// silences and notification log persisted under the data directory,
// inhibitor, dispatcher with routing and grouping, every upstream receiver
// type, templates, time intervals, and the API v2.
//
// Routes (the API is one http.Handler; mount it at the prefix):
//
//	method  path                          handler
//	GET     /api/v2/status                Handler()
//	GET     /api/v2/receivers             Handler()
//	GET     /api/v2/alerts                Handler()
//	POST    /api/v2/alerts                Handler()
//	GET     /api/v2/alerts/groups         Handler()
//	GET     /api/v2/silences              Handler()
//	POST    /api/v2/silences              Handler()
//	GET     /api/v2/silence/{silenceID}   Handler()
//	DELETE  /api/v2/silence/{silenceID}   Handler()
//
// i.e. mux.Handle("/api/v2/", am.Handler()) on the main listener and on
// Config.ListenAddress when set.
package alerting
