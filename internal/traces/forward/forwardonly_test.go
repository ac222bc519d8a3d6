package forward

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.yaml.in/yaml/v2"
)

// TestHelperForwardOnlyReceiver is the forward-only node that
// TestForwardOnlyAckedSpansSurviveKill9 kills: an OTLP/HTTP receiver whose
// only trace consumer is the forwarder, answering 200 only once
// ConsumeTraces returned nil. It does nothing in a normal run.
func TestHelperForwardOnlyReceiver(t *testing.T) {
	dir, endpoint := os.Getenv("FORWARD_ONLY_DIR"), os.Getenv("FORWARD_ONLY_ENDPOINT")
	if dir == "" {
		t.Skip("helper process only")
	}
	f := openFwd(t, dir, EndpointConfig{Endpoint: endpoint, Protocol: "http"})
	go f.Run(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := f.ConsumeTraces(r.Context(), req.Traces()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
}

// TestForwardOnlyAckedSpansSurviveKill9: in forward-only mode the backlog is
// the only copy of an accepted span. A client exports to a forward-only
// node while the central endpoint is down, the node is killed with SIGKILL
// right after acknowledging the last request, and a forwarder restarted on
// its backlog delivers every acknowledged span.
func TestForwardOnlyAckedSpansSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	sink := newSpanSink()
	sink.down.Store(true) // nothing leaves the node before the kill
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperForwardOnlyReceiver$")
	cmd.Env = append(os.Environ(), "FORWARD_ONLY_DIR="+dir, "FORWARD_ONLY_ENDPOINT="+srv.URL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	addr := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("helper did not start")
	}
	go io.Copy(io.Discard, out)
	client := &http.Client{Timeout: 10 * time.Second}
	const requests, per = 200, 10
	for i := range requests {
		body, err := ptraceotlp.NewExportRequestFromTraces(traces(i, per)).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("export %d: %s", i, resp.Status)
		}
	}
	// Killed at once after the last acknowledgement: no clean shutdown, no
	// sync.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killed = true
	client.CloseIdleConnections()
	if sink.unique() != 0 {
		t.Fatalf("%d spans left the node while the endpoint was down", sink.unique())
	}

	sink.down.Store(false)
	f := openFwd(t, dir, EndpointConfig{Endpoint: srv.URL, Protocol: "http"})
	defer f.Close()
	stop := run(f)
	defer stop()
	waitFor(t, "every acknowledged span", func() bool { return sink.unique() >= requests*per && f.pending() == 0 })
	if sink.unique() != requests*per || sink.duplicates() != 0 {
		t.Fatalf("central endpoint got %d spans (%d duplicates), want exactly %d", sink.unique(), sink.duplicates(), requests*per)
	}
}

// TestApplyConfigReload: a reload moves a named endpoint from a receiver
// that is down to one that is up (its queued spans arrive there), removes
// one (its backlog is dropped and counted) and adds one.
func TestApplyConfigReload(t *testing.T) {
	down, up, added := newSpanSink(), newSpanSink(), newSpanSink()
	down.down.Store(true)
	sDown, sUp, sAdded := httptest.NewServer(down), httptest.NewServer(up), httptest.NewServer(added)
	defer sDown.Close()
	defer sUp.Close()
	defer sAdded.Close()
	dir := t.TempDir()
	f := openFwd(t, dir, EndpointConfig{Name: "tempo", Endpoint: sDown.URL, Protocol: "http"})
	defer f.Close()
	stop := run(f)
	defer stop()
	for i := range 10 {
		if err := f.ConsumeTraces(context.Background(), traces(i, 5)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(name, url string) EndpointConfig {
		c := EndpointConfig{Name: name, Endpoint: url, Protocol: "http", SegmentSize: 8 << 10, MaxBacklog: 1 << 20}
		c.MinBackoff, c.MaxBackoff = 10_000_000, 100_000_000
		return c
	}
	if err := f.ApplyConfig([]EndpointConfig{cfg("tempo", sUp.URL), cfg("collector", sAdded.URL)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "queued spans at the changed endpoint's new address", func() bool { return up.unique() == 50 })
	if err := f.ConsumeTraces(context.Background(), traces(10, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new spans at both", func() bool { return up.unique() == 55 && added.unique() == 5 })
	if up.duplicates() != 0 {
		t.Fatalf("%d duplicates", up.duplicates())
	}
	// Remove tempo while its receiver is down again: its backlog goes.
	up.down.Store(true)
	if err := f.ConsumeTraces(context.Background(), traces(11, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "collector got the batch", func() bool { return added.unique() == 10 })
	pending := f.set.Pending()["tempo"]
	if err := f.ApplyConfig([]EndpointConfig{cfg("collector", sAdded.URL)}); err != nil {
		t.Fatal(err)
	}
	if got := testutilValue(t, f.m.droppedBytes.WithLabelValues("tempo", "endpoint_removed")); got != float64(pending) || got == 0 {
		t.Fatalf("dropped bytes for the removed endpoint = %v, want %d", got, pending)
	}
}

func TestMode(t *testing.T) {
	var c struct {
		Mode Mode `yaml:"mode"`
	}
	if err := yaml.UnmarshalStrict([]byte("mode: forward-only"), &c); err != nil || !c.Mode.ForwardOnly() {
		t.Fatalf("forward-only: %v %q", err, c.Mode)
	}
	if err := yaml.UnmarshalStrict([]byte("mode: local"), &c); err == nil || !strings.Contains(err.Error(), `mode: "local" is neither`) {
		t.Fatalf("unknown mode: %v", err)
	}
	if err := ValidateMode(ModeForwardOnly, nil); err == nil || !strings.Contains(err.Error(), "needs at least one traces.forward endpoint") {
		t.Fatalf("forward-only without endpoints: %v", err)
	}
	if err := ValidateMode(ModeForwardOnly, []EndpointConfig{{Endpoint: "tempo:4317"}}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateMode("", nil); err != nil {
		t.Fatal(err)
	}
	err := ValidateEndpoints([]EndpointConfig{{Endpoint: "tempo:4317"}, {Endpoint: "tempo:4317"}})
	if err == nil || !strings.Contains(err.Error(), "traces.forward[1]: same name as traces.forward[0]") {
		t.Fatalf("name clash: %v", err)
	}
}

func testutilValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}
