package app

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// No secret of the config shows in any status endpoint or log line; each is
// masked as Prometheus and Alertmanager mask them.
func TestSecretsNeverShown(t *testing.T) {
	secrets := []string{"scrape-pass-9f2", "rw-pass-7c1", "am-bearer-5d0", "smtp-pass-3a8", "slack-hook-token-1b4", "webhook-pass-8e6"}
	cfgText := `metrics:
  prometheus:
    global: {scrape_interval: 1h}
    scrape_configs:
      - job_name: guarded
        basic_auth: {username: u, password: scrape-pass-9f2}
        static_configs: [{targets: ['127.0.0.1:1']}]
    remote_write:
      - url: http://127.0.0.1:1/api/v1/write
        basic_auth: {username: u, password: rw-pass-7c1}
    alerting:
      alertmanagers:
        - authorization: {credentials: am-bearer-5d0}
          static_configs: [{targets: ['127.0.0.1:1']}]
alerting:
  alertmanager:
    global:
      smtp_smarthost: 'localhost:25'
      smtp_from: 'a@example.com'
      smtp_auth_username: u
      smtp_auth_password: smtp-pass-3a8
    route: {receiver: all}
    receivers:
      - name: all
        email_configs: [{to: 'b@example.com'}]
        slack_configs: [{api_url: 'https://hooks.slack.com/services/slack-hook-token-1b4', channel: '#x'}]
        webhook_configs:
          - url: http://127.0.0.1:1/hook
            http_config: {basic_auth: {username: u, password: webhook-pass-8e6}}
`
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "serve.yml")
	writeConfig(t, cfgFile, cfgText)
	logs := &lockedBuffer{}
	a, err := New(Options{ConfigFile: cfgFile, StoragePath: filepath.Join(dir, "data"), ListenAddress: "127.0.0.1:0", EnableLifecycle: true},
		Deps{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), AdjustConfig: loopbackOTLP})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		a.Close()
		for _, s := range secrets {
			if strings.Contains(logs.String(), s) {
				t.Errorf("secret %q in the log", s)
			}
		}
	}()
	ts := &testServer{app: a, url: "http://" + a.Addr().String()}
	waitFor(t, 20*time.Second, "ready", func() bool { c, _ := ts.get(t, "/-/ready"); return c == http.StatusOK })
	if code, _ := ts.post(t, "/-/reload", "", nil, nil); code != http.StatusOK {
		t.Fatalf("reload = %d", code)
	}
	for _, path := range []string{
		"/api/v1/status/config", "/api/v1/status/flags", "/api/v1/status/runtimeinfo", "/api/v1/status/buildinfo",
		"/api/v1/targets", "/api/v1/alertmanagers", "/api/v1/rules", "/api/v2/status", "/api/v2/receivers", "/metrics",
	} {
		code, body := ts.get(t, path)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d", path, code)
		}
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("GET %s shows secret %q", path, s)
			}
		}
		if path == "/api/v1/status/config" && !strings.Contains(body, `\u003csecret\u003e`) {
			t.Errorf("status/config does not mask secrets as <secret>:\n%s", body)
		}
	}
}
