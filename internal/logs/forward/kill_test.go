package forward

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
)

// TestHelperForwarderProcess is the forwarder process that
// TestForwarderSurvivesKill9 kills; it does nothing in a normal run.
func TestHelperForwarderProcess(t *testing.T) {
	dir, url := os.Getenv("FORWARD_HELPER_DIR"), os.Getenv("FORWARD_HELPER_URL")
	if dir == "" {
		t.Skip("helper process only")
	}
	f := open(t, dir, EndpointConfig{URL: url, SegmentSize: 16 << 10, MaxBacklog: 16 << 20}, prometheus.NewRegistry())
	go f.Run(context.Background())
	for i := 0; i <= killAfterBatch; i++ {
		if err := f.Append(batch(i, 10)); err != nil {
			t.Fatal(err)
		}
		// The parent counts a batch as accepted once it reads this line.
		fmt.Printf("appended %d\n", i)
		time.Sleep(2 * time.Millisecond)
	}
	// No more appends: the parent knows exactly what was accepted, and kills
	// this process while the sender may still be draining the backlog.
	select {}
}

// killAfterBatch is the last batch the helper appends before it waits to be
// killed.
const killAfterBatch = 300

// TestForwarderSurvivesKill9 kills -9 a forwarder process in the middle of
// pushing to nxwatcher's own Loki push endpoint (down for part of the run),
// restarts the forwarder on the same backlog, and checks every batch the
// killed process had accepted is stored exactly once.
func TestForwarderSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	store, err := logstore.Open(t.TempDir(), logstore.Options{}, logstore.Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	api, err := lokiapi.New(lokiapi.DefaultConfig(), lokiapi.Deps{Store: store, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		api.Push(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperForwarderProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "FORWARD_HELPER_DIR="+dir, "FORWARD_HELPER_URL="+srv.URL+"/loki/api/v1/push")
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
	accepted := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "appended %d", &i); err != nil {
			continue
		}
		accepted = i
		switch i {
		case 100:
			down.Store(true) // an outage: the backlog grows
		case 200:
			down.Store(false)
		}
		if i == killAfterBatch {
			break
		}
	}
	// Kill while pushes are in flight (the backlog from the outage drains).
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killed = true
	if accepted != killAfterBatch {
		t.Fatalf("helper stopped after %d batches", accepted)
	}

	f := open(t, dir, EndpointConfig{URL: srv.URL + "/loki/api/v1/push", SegmentSize: 16 << 10, MaxBacklog: 16 << 20}, prometheus.NewRegistry())
	defer f.Close()
	stop := start(f)
	defer stop()
	entries := func() int64 { _, n, _ := store.HeadStats(); return n }
	want := int64(accepted+1) * 10
	waitFor(t, "every accepted line ("+strconv.FormatInt(want, 10)+")", func() bool {
		return entries() >= want && f.backlogPending() == 0
	})
	// Nothing arrives twice, and nothing is missing.
	if got := entries(); got != want {
		t.Fatalf("receiver stores %d entries; the killed forwarder accepted %d", got, want)
	}
}
