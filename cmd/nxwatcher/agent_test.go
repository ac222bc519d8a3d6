package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

func TestAgentCheckSyntaxAndBadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runAgent(t.Context(), []string{"--config.file=../../deploy/agent/promtail.yaml", "-check-syntax"}, &out, &errb, nil, nil); code != 0 {
		t.Fatalf("design doc config: %d %s", code, errb.String())
	}
	if code := checkAgentConfig([]string{"../../deploy/agent/promtail.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("check: %d %s", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("clients: [{url: http://x/}]\nscrape_config: []\n"), 0o644)
	errb.Reset()
	if code := runAgent(t.Context(), []string{"-config.file", bad}, &out, &errb, nil, nil); code != 1 || !strings.Contains(errb.String(), "line 2: field scrape_config not found") {
		t.Fatalf("bad config: %d %s", code, errb.String())
	}
	if code := runAgent(t.Context(), nil, &out, &errb, nil, nil); code != 2 {
		t.Fatalf("no config: %d", code)
	}
}

func TestAgentShipsAndServes(t *testing.T) {
	var pushed atomic.Int64
	loki := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req push.PushRequest
		if err != nil || req.Unmarshal(raw) != nil {
			http.Error(w, "bad", 400)
			return
		}
		for _, s := range req.Streams {
			pushed.Add(int64(len(s.Entries)))
		}
		w.WriteHeader(204)
	}))
	defer loki.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("one\ntwo\n"), 0o644)
	cfgFile := filepath.Join(dir, "promtail.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
server: {http_listen_address: 127.0.0.1, http_listen_port: 9080}
positions: {filename: %s/positions.yaml}
clients: [{url: "${NXW_AGENT_TEST_URL}", batchwait: 10ms}]
target_config: {sync_period: 50ms}
scrape_configs:
  - job_name: f
    static_configs: [{targets: [localhost], labels: {job: f, __path__: %s/*.log}}]
`, dir, dir)), 0o644)
	t.Setenv("NXW_AGENT_TEST_URL", loki.URL+"/loki/api/v1/push")
	ctx, cancel := context.WithCancel(t.Context())
	listening := make(chan string, 1)
	reload := make(chan struct{})
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() {
		done <- runAgent(ctx, []string{"-config.file=" + cfgFile, "-config.expand-env", "-server.http-listen-port=0"}, io.Discard, stderr, listening, reload)
	}()
	addr := <-listening
	deadline := time.Now().Add(10 * time.Second)
	for pushed.Load() < 2 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("lines not pushed: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range []string{"/ready", "/metrics", "/targets"} {
		// The receiver sees a push before the client has counted its
		// answer, so the sent counter may lag the lines by a moment.
		var (
			code int
			b    []byte
		)
		for wait := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			if p != "/metrics" || strings.Contains(string(b), `promtail_sent_entries_total{host="`) || time.Now().After(wait) {
				break
			}
		}
		if code != 200 {
			t.Errorf("%s: %d %s", p, code, b)
		}
		if p == "/metrics" && !strings.Contains(string(b), `promtail_sent_entries_total{host="`) {
			t.Errorf("metrics lack promtail_sent_entries_total: %s", b)
		}
	}
	// Reload: a new job appears; a broken file keeps the running config.
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("three\n"), 0o644)
	cfgText, _ := os.ReadFile(cfgFile)
	os.WriteFile(cfgFile, []byte("clients: [{url: http://x/}]\nbogus: 1\n"), 0o644)
	reload <- struct{}{}
	// The agent reads the file while handling the reload: wait until it has
	// refused the broken one before writing the good one.
	for wait := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "Reload failed"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(wait) {
			cancel()
			<-done
			t.Fatalf("broken config not refused: %s", stderr.String())
		}
	}
	os.WriteFile(cfgFile, append(cfgText, []byte(fmt.Sprintf("  - job_name: g\n    static_configs: [{targets: [localhost], labels: {job: g, __path__: %s/*.txt}}]\n", dir))...), 0o644)
	reload <- struct{}{}
	deadline = time.Now().Add(10 * time.Second)
	for pushed.Load() < 3 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("line of the reloaded config not pushed: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pushed.Load() != 3 {
		t.Fatalf("reload re-shipped lines: %d pushed", pushed.Load())
	}
	if !strings.Contains(stderr.String(), "Reload failed") || !strings.Contains(stderr.String(), "Reloaded") {
		t.Errorf("reload logs: %s", stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	pos, _ := os.ReadFile(filepath.Join(dir, "positions.yaml"))
	if !strings.Contains(string(pos), `a.log: "8"`) || !strings.Contains(string(pos), `b.txt: "6"`) {
		t.Fatalf("positions: %s", pos)
	}
}
