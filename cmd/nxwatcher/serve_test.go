package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestServeHelpAndUnknownFlagPrintCleanUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantCode int
	}{
		{[]string{"serve", "--help"}, 0},
		{[]string{"serve", "-h"}, 0},
		{[]string{"serve", "--no-such-flag"}, 2},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(tc.args, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if code != tc.wantCode {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.wantCode, out)
		}
		for _, want := range []string{"usage: nxwatcher serve", "-log.level", "(default info)", "-web.external-url", "-web.route-prefix", "-config.file"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: usage lacks %q:\n%s", tc.args, want, out)
			}
		}
		if strings.Contains(out, "panic") {
			t.Errorf("%v: usage ends in a panic message:\n%s", tc.args, out)
		}
	}
}

// The start-up log says the version, the config source and every listener.
func TestStartupLogsVersionConfigAndListeners(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, quietConfig)
	p := startProc(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))
	logs := p.logs.String()
	for _, want := range []string{
		"msg=\"Starting nxwatcher\"", "version=", "config=" + cfg,
		"msg=Listening component=web address=127.0.0.1:",
		"msg=Listening component=otlp protocol=grpc address=127.0.0.1:",
		"msg=Listening component=otlp protocol=http address=127.0.0.1:",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs)
		}
	}
}

// SIGHUP and SIGTERM that arrive while serve is still starting (stores
// opening, WAL replay) are handled: no death by the default signal action.
func TestSignalsDuringStartupAreHandled(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, quietConfig)
	cmd := exec.Command(binPath, "serve", "--web.listen-address=127.0.0.1:0", "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))
	logs := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Starting nxwatcher") {
				close(started)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("no start-up log:\n%s", logs)
	}
	// Right after the first log line the stores are still opening.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("serve did not stop after SIGTERM during start-up:\n%s", logs)
	}
	if st := cmd.ProcessState; !st.Success() {
		t.Fatalf("serve exit after signals during start-up = %v, want 0\n%s", st, logs)
	}
	if !strings.Contains(logs.String(), "Received signal, stopping") {
		t.Fatalf("SIGTERM not logged:\n%s", logs)
	}
}

// --web.route-prefix moves every route below the prefix, as Prometheus does.
func TestRoutePrefix(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, quietConfig)
	p := startProcPrefixed(t, "/nx", "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.external-url=http://example.com:8080/nx/")
	get := func(path string) int {
		c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{
		"/nx/-/ready":                 200,
		"/nx/api/v1/query?query=1":    200,
		"/nx/loki/api/v1/labels":      200,
		"/api/v1/query?query=1":       404,
		"/":                           302,
		"/nx/api/v1/status/buildinfo": 200,
	} {
		if got := get(path); got != want {
			t.Errorf("GET %s = %d, want %d", path, got, want)
		}
	}
	if !strings.Contains(p.logs.String(), "external_url=http://example.com:8080/nx") {
		t.Errorf("external URL not logged as resolved:\n%s", p.logs)
	}
}

func TestCheckConfigReportsBrokenRuleFileAndBareAlertmanagerYML(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.rules.yml"), "groups: [{name: g, rules: [{record: 'r:x', expr: 'sum(up'}]}]\n")
	serveCfg := filepath.Join(dir, "serve.yml")
	writeFile(t, serveCfg, "metrics:\n  prometheus:\n    rule_files: [bad.rules.yml, none-*.yml]\n")
	am := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, am, "route: {receiver: x}\nreceivers: [{name: x}]\n")
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"check", "config", serveCfg, am}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String() + stderr.String()
	for _, want := range []string{"FAILED: " + serveCfg, "bad.rules.yml", "WARNING", "none-*.yml", "SUCCESS: " + am + " is a valid alertmanager config"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
