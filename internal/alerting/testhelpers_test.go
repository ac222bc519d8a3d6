package alerting

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
)

// webhookSink is a test receiver that records every notification.
type webhookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []webhookMessage
	status int // answer; 0 means 200
	notify chan struct{}
}

type webhookMessage struct {
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
	} `json:"alerts"`
	received time.Time
}

func newWebhookSink(t *testing.T, status int) *webhookSink {
	t.Helper()
	s := &webhookSink{status: status, notify: make(chan struct{}, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m webhookMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("webhook body: %v: %s", err, body)
		}
		m.received = time.Now()
		s.mu.Lock()
		s.got = append(s.got, m)
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
		if s.status != 0 {
			w.WriteHeader(s.status)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) messages() []webhookMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]webhookMessage(nil), s.got...)
}

// wait blocks until the sink holds at least n messages or the timeout ends.
func (s *webhookSink) wait(t *testing.T, n int, timeout time.Duration) []webhookMessage {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("webhook got %d messages, want %d within %v", len(s.messages()), n, timeout)
		case <-t.Context().Done():
			t.Fatal("test ended")
		}
	}
}

type testAM struct {
	am      *Alertmanager
	reg     *prometheus.Registry
	srv     *httptest.Server
	client  *amclient.AlertmanagerAPI
	stopRun func()
}

// startAM builds an Alertmanager over dataDir with the given
// alertmanager.yml body and serves its API on 127.0.0.1:0.
func startAM(t testing.TB, dataDir, amYAML string) *testAM {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Alertmanager = native.Section{Text: amYAML, Line: 3}
	reg := prometheus.NewRegistry()
	am, err := New(cfg, dataDir, Deps{Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v2/", am.Handler())
	srv := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- am.Run(ctx) }()
	ta := &testAM{am: am, reg: reg, srv: srv}
	var once sync.Once
	ta.stopRun = func() {
		once.Do(func() {
			srv.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
			if err := am.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(ta.stopRun)
	u, _ := url.Parse(srv.URL)
	ta.client = amclient.NewHTTPClientWithConfig(strfmt.Default, amclient.DefaultTransportConfig().WithHost(u.Host).WithSchemes([]string{"http"}))
	return ta
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}
