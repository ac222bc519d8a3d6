package forward

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// TestApplyConfigReload: while running, a reload moves a named endpoint
// from a receiver that is down to another one (its queued lines arrive
// there, each once), removes an endpoint (its backlog is deleted and its
// unsent bytes counted) and adds one (it gets what is accepted after).
func TestApplyConfigReload(t *testing.T) {
	down, up, added, removed := newLokiSink(t), newLokiSink(t), newLokiSink(t), newLokiSink(t)
	down.down.Store(true)
	removed.down.Store(true)
	fast := func(c EndpointConfig) EndpointConfig {
		c.MinBackoff, c.MaxBackoff = model.Duration(10*time.Millisecond), model.Duration(50*time.Millisecond)
		return c
	}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	f, err := Open(dir, []EndpointConfig{
		fast(EndpointConfig{Name: "central", URL: down.srv.URL + "/loki/api/v1/push"}),
		fast(EndpointConfig{Name: "old", URL: removed.srv.URL + "/loki/api/v1/push"}),
	}, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := start(f)
	defer stop()
	for i := range 10 {
		if err := f.Append(batch(i, 5)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failed push to the down receiver", func() bool {
		return testutil.ToFloat64(f.m.failedRequests.WithLabelValues("central", "503")) > 0
	})
	oldPending := f.set.Pending()["old"]

	next := []EndpointConfig{
		fast(EndpointConfig{Name: "central", URL: up.srv.URL + "/loki/api/v1/push"}),
		fast(EndpointConfig{Name: "new", URL: added.srv.URL + "/loki/api/v1/push"}),
	}
	if err := f.CheckConfig(next); err != nil {
		t.Fatal(err)
	}
	if err := f.ApplyConfig(next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queued lines at the changed endpoint's new URL", func() bool { return up.unique() == 50 })
	if _, err := os.Stat(filepath.Join(dir, "old")); !os.IsNotExist(err) {
		t.Fatalf("the removed endpoint's backlog is still on disk: %v", err)
	}
	if got := testutil.ToFloat64(f.m.droppedBytes.WithLabelValues("old", "endpoint_removed")); got != float64(oldPending) || got == 0 {
		t.Fatalf("dropped bytes of the removed endpoint = %v, want its pending %d", got, oldPending)
	}
	if got := testutil.ToFloat64(f.m.endpoints); got != 2 {
		t.Fatalf("nxwatcher_logs_forward_endpoints = %v, want 2", got)
	}
	if err := f.Append(batch(10, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next batch at both endpoints", func() bool { return up.unique() == 55 && added.unique() == 5 })
	if up.duplicates() != 0 {
		t.Fatalf("%d duplicates at the changed endpoint", up.duplicates())
	}

	// A refused reload changes nothing.
	bad := append(next, EndpointConfig{URL: "ftp://x"})
	if err := f.ApplyConfig(bad); err == nil || !strings.Contains(err.Error(), "logs.forward[2]") {
		t.Fatalf("bad reload: %v", err)
	}
	if err := f.Append(batch(11, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch after a refused reload", func() bool { return up.unique() == 60 && added.unique() == 10 })
}

// TestOpenWithoutEndpoints: a forwarder with no endpoint opens nothing on
// disk, takes appends as no-ops, and a reload can add the first endpoint.
func TestOpenWithoutEndpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs-forward")
	f, err := Open(dir, nil, Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := start(f)
	defer stop()
	if err := f.Append(batch(0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a forwarder without endpoints created %s", dir)
	}
	sink := newLokiSink(t)
	if f.Endpoints() != 0 {
		t.Fatalf("%d endpoints", f.Endpoints())
	}
	if err := f.ApplyConfig([]EndpointConfig{{URL: sink.srv.URL + "/loki/api/v1/push"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Append(batch(1, 3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lines at the endpoint added by reload", func() bool { return sink.unique() == 3 })
}

func TestValidateEndpointsNamesClash(t *testing.T) {
	err := ValidateEndpoints([]EndpointConfig{{URL: "http://loki:3100/loki/api/v1/push"}, {URL: "http://loki:3100/loki/api/v1/push"}, {URL: ""}})
	if err == nil || !strings.Contains(err.Error(), "logs.forward[1]: same name as logs.forward[0]") || !strings.Contains(err.Error(), "logs.forward[2]: url: must be set") {
		t.Fatalf("got %v", err)
	}
}

func TestMode(t *testing.T) {
	var c struct {
		Mode Mode `yaml:"mode"`
	}
	if err := yaml.UnmarshalStrict([]byte("mode: forward-only"), &c); err != nil || !c.Mode.ForwardOnly() {
		t.Fatalf("forward-only: %v %q", err, c.Mode)
	}
	if err := yaml.UnmarshalStrict([]byte("mode: forward_only"), &c); err == nil || !strings.Contains(err.Error(), `"forward_only" is neither`) {
		t.Fatalf("unknown mode: %v", err)
	}
	ep := []EndpointConfig{{URL: "http://loki:3100/loki/api/v1/push"}}
	for _, tc := range []struct {
		mode Mode
		eps  []EndpointConfig
		want string
	}{
		{"", nil, ""},
		{ModeStore, nil, ""},
		{ModeStore, ep, ""},
		{ModeForwardOnly, ep, ""},
		{ModeForwardOnly, nil, "forward-only needs at least one logs.forward endpoint"},
		{"bogus", ep, "is neither"},
	} {
		err := ValidateMode(tc.mode, tc.eps)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidateMode(%q, %d endpoints) = %v, want %q", tc.mode, len(tc.eps), err, tc.want)
		}
	}
}
