package forward

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// TestHelperForwardOnlyNode is the forward-only node that
// TestForwardOnlyAckedPushSurvivesKill9 kills: a Loki push endpoint that
// stores nothing locally and answers 204 only once Append returned nil.
// It does nothing in a normal run.
func TestHelperForwardOnlyNode(t *testing.T) {
	dir, url := os.Getenv("FORWARD_ONLY_DIR"), os.Getenv("FORWARD_ONLY_URL")
	if dir == "" {
		t.Skip("helper process only")
	}
	f := open(t, dir, EndpointConfig{URL: url, SegmentSize: 16 << 10, MaxBacklog: 16 << 20}, prometheus.NewRegistry())
	go f.Run(t.Context())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req push.PushRequest
		if err == nil {
			err = req.Unmarshal(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		streams := make([]Stream, 0, len(req.Streams))
		for _, s := range req.Streams {
			ls, err := parser.NewParser(parser.Options{}).ParseMetric(s.Labels)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			st := Stream{Labels: ls}
			for _, e := range s.Entries {
				st.Entries = append(st.Entries, logstore.Entry{Timestamp: e.Timestamp.UnixNano(), Line: e.Line})
			}
			streams = append(streams, st)
		}
		if err := f.Append(streams); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}

// TestForwardOnlyAckedPushSurvivesKill9: in forward-only mode the backlog
// is the only copy of an accepted line. A client pushes to a forward-only
// node while the central Loki is down; the node is killed with SIGKILL
// right after answering the last push; a forwarder restarted on its
// backlog delivers every acknowledged line, each once.
func TestForwardOnlyAckedPushSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	sink := newLokiSink(t)
	sink.down.Store(true)
	dir := t.TempDir()
	url := sink.srv.URL + "/loki/api/v1/push"
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperForwardOnlyNode$")
	cmd.Env = append(os.Environ(), "FORWARD_ONLY_DIR="+dir, "FORWARD_ONLY_URL="+url)
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
	const pushes, per = 200, 10
	for i := range pushes {
		body, _ := encode(batch(i, per))
		resp, err := client.Post("http://"+addr+"/loki/api/v1/push", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("push %d: %s", i, resp.Status)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL) // at once after the last answer
	cmd.Wait()
	killed = true
	client.CloseIdleConnections()
	if sink.unique() != 0 {
		t.Fatalf("%d lines left the node while the endpoint was down", sink.unique())
	}

	sink.down.Store(false)
	f := open(t, dir, EndpointConfig{URL: url, SegmentSize: 16 << 10, MaxBacklog: 16 << 20}, prometheus.NewRegistry())
	defer f.Close()
	stop := start(f)
	defer stop()
	waitFor(t, "every acknowledged line", func() bool { return sink.unique() >= pushes*per && f.backlogPending() == 0 })
	if sink.unique() != pushes*per || sink.duplicates() != 0 {
		t.Fatalf("central Loki got %d lines (%d duplicates), want exactly %d", sink.unique(), sink.duplicates(), pushes*per)
	}
}
