package agent

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/testcert"
)

// Written from Promtail's syslog target docs: RFC 5424 over TCP (octet
// counting and newline framing) and UDP, __syslog_* labels for relabelling,
// label_structured_data, use_incoming_timestamp.
func TestSyslogSource(t *testing.T) {
	dir := t.TempDir()
	loki, got := newCaptureLoki(t)
	cfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s, batchwait: 10ms}]
scrape_configs:
  - job_name: syslog_tcp
    syslog:
      listen_address: 127.0.0.1:0
      idle_timeout: 5s
      label_structured_data: true
      use_incoming_timestamp: true
      max_message_length: 300
      labels: {job: syslog}
    relabel_configs:
      - {source_labels: [__syslog_message_hostname], target_label: host}
      - {source_labels: [__syslog_message_app_name], target_label: app}
      - {source_labels: [__syslog_message_severity], target_label: level}
      - {source_labels: [__syslog_message_facility], target_label: facility}
      - {source_labels: [__syslog_message_sd_example_99999_test], target_label: sd_test}
      - {source_labels: [__syslog_connection_ip_address], target_label: peer}
  - job_name: syslog_udp
    syslog:
      listen_address: 127.0.0.1:0
      listen_protocol: udp
    relabel_configs:
      - {source_labels: [__syslog_message_app_name], target_label: app}
      - {source_labels: [__syslog_message_sd_example_99999_test], target_label: sd_test}
`, dir, loki.URL)), false)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, cfg, Options{})
	addrs := ag.a.SyslogAddrs()
	ts := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	msg := func(app, text string) string {
		return fmt.Sprintf(`<165>1 %s host1 %s 42 ID47 [example@99999 test="yes"] %s`, ts.Format(time.RFC3339Nano), app, text)
	}

	c, err := net.Dial("tcp", addrs["syslog_tcp"])
	if err != nil {
		t.Fatal(err)
	}
	octet := func(m string) string { return fmt.Sprintf("%d %s", len(m), m) }
	// Octet-counted frames on one connection, one of them too long.
	fmt.Fprint(c, octet(msg("app1", "first octet"))+octet(msg("app1", "second\nwith newline"))+octet(msg("app1", strings.Repeat("x", 400)))+octet(msg("app1", "after long")))
	c.Close()
	// Newline framing on another.
	c2, err := net.Dial("tcp", addrs["syslog_tcp"])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c2, msg("app2", "lf one")+"\n"+msg("app2", "lf two")+"\n"+"garbage that is no syslog\n")
	c2.Close()
	// UDP: one message per datagram.
	u, err := net.Dial("udp", addrs["syslog_udp"])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(u, msg("app3", "udp one"))
	u.Close()

	poll(t, 10*time.Second, "syslog lines forwarded", func() bool {
		_, a := got.find("after long")
		_, b := got.find("lf two")
		_, c := got.find("udp one")
		return a && b && c
	})
	e, _ := got.find("first octet")
	eq(t, "labels", e.labels, `{app="app1", facility="local4", host="host1", job="syslog", level="notice", peer="127.0.0.1", sd_test="yes"}`)
	eq(t, "incoming timestamp", e.ts.Equal(ts), true)
	if _, ok := got.find("second\nwith newline"); !ok {
		t.Error("octet-counted message with a newline inside was split")
	}
	if e, ok := got.find("lf one"); !ok || !strings.Contains(e.labels, `app="app2"`) {
		t.Errorf("lf framing: %+v", e)
	}
	e, _ = got.find("udp one")
	eq(t, "udp labels (no label_structured_data)", e.labels, `{app="app3"}`)
	if e.ts.Equal(ts) {
		t.Error("udp job without use_incoming_timestamp kept the message time")
	}
	got.mu.Lock()
	for _, en := range got.entries {
		if strings.Contains(en.line, "xxxxxxxx") {
			t.Error("message above max_message_length shipped")
		}
	}
	got.mu.Unlock()
	eq(t, "too long counted", counterValue(ag.reg, "nxwatcher_agent_source_dropped_total", "too_long"), 1)
	poll(t, 5*time.Second, "garbage counted", func() bool {
		return counterValue(ag.reg, "nxwatcher_agent_source_dropped_total", "parse_error") >= 1
	})
}

func TestSyslogConfigErrors(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{"syslog: {listen_protocol: tcp}", "listen_address is required"},
		{"syslog: {listen_address: ':1', listen_protocol: sctp}", "not tcp or udp"},
		{"syslog: {listen_address: ':1', syslog_format: rfc9999}", "not rfc5424 or rfc3164"},
		{"syslog: {listen_address: ':1'}\n    static_configs: [{targets: [x]}]", "one job has one source"},
		{"syslog: {listen_address: ':1', bogus: 1}", "field bogus not found"},
	} {
		_, err := Parse([]byte("clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: s\n    "+tc.block+"\n"), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.block, err, tc.want)
		}
	}
}

// syslog_format rfc3164 and use_rfc5424_message; /targets lists the
// network sources.
func TestSyslogRFC3164AndRawMessage(t *testing.T) {
	dir := t.TempDir()
	loki, got := newCaptureLoki(t)
	cfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s, batchwait: 10ms}]
scrape_configs:
  - job_name: bsd
    syslog: {listen_address: 127.0.0.1:0, syslog_format: rfc3164}
    relabel_configs:
      - {source_labels: [__syslog_message_app_name], target_label: app}
      - {source_labels: [__syslog_message_hostname], target_label: host}
  - job_name: raw
    syslog: {listen_address: 127.0.0.1:0, use_rfc5424_message: true}
`, dir, loki.URL)), false)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, cfg, Options{})
	addrs := ag.a.SyslogAddrs()
	c, err := net.Dial("tcp", addrs["bsd"])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8\n")
	c.Close()
	raw := `<165>1 2003-10-11T22:14:15.003Z host1 app 1 ID - whole message kept`
	c2, err := net.Dial("tcp", addrs["raw"])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c2, raw+"\n")
	c2.Close()
	poll(t, 10*time.Second, "both forwarded", func() bool { return got.len() == 2 })
	e, ok := got.find("'su root' failed for lonvick on /dev/pts/8")
	if !ok || e.labels != `{app="su", host="mymachine"}` {
		t.Errorf("rfc3164: %+v %v", e, ok)
	}
	if _, ok := got.find(raw); !ok {
		t.Error("use_rfc5424_message: the whole message is not the line")
	}
	rec := httptest.NewRecorder()
	ag.a.serveTargets(rec, httptest.NewRequest(http.MethodGet, "/targets", nil))
	if b := rec.Body.String(); !strings.Contains(b, "bsd\tsyslog/tcp\t"+addrs["bsd"]) {
		t.Errorf("/targets: %s", b)
	}
}

// Syslog over TLS (tls_config with cert_file/key_file): a client trusting
// the CA ships, one trusting another CA is refused.
func TestSyslogTLS(t *testing.T) {
	dir := t.TempDir()
	pool, cert, key := testcert.Pair(t, dir, "syslog")
	otherPool, _, _ := testcert.Pair(t, dir, "other")
	loki, got := newCaptureLoki(t)
	cfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s, batchwait: 10ms}]
scrape_configs:
  - job_name: tls
    syslog: {listen_address: 127.0.0.1:0, tls_config: {cert_file: %s, key_file: %s}}
`, dir, loki.URL, cert, key)), false)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, cfg, Options{})
	addr := ag.a.SyslogAddrs()["tls"]
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: otherPool}); err == nil {
		c.Close()
		t.Error("a client trusting another CA connected")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	m := "<165>1 - host app - - - over tls"
	fmt.Fprintf(c, "%d %s", len(m), m)
	c.Close()
	poll(t, 10*time.Second, "tls message forwarded", func() bool { _, ok := got.find("over tls"); return ok })

	for _, bad := range []string{
		"syslog: {listen_address: ':1', listen_protocol: udp, tls_config: {cert_file: a, key_file: b}}",
		"syslog: {listen_address: ':1', tls_config: {cert_file: a}}",
	} {
		if _, err := Parse([]byte("clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: s\n    "+bad+"\n"), false); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// Promtail sources the agent lacks are refused with a pointer, not only
// "field not found".
func TestUnsupportedSourceNamed(t *testing.T) {
	for _, src := range []string{"journal: {max_age: 12h}", "gelf: {}", "windows_events: {}"} {
		_, err := Parse([]byte("clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: j\n    "+src+"\n"), false)
		name := src[:strings.IndexByte(src, ':')]
		if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "Promtail's "+name+" source is not implemented") {
			t.Errorf("%s: %v", src, err)
		}
	}
}
