package forward

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestHelperForwarderProcess is the process TestForwarderSurvivesKill9
// kills; it does nothing in a normal run.
func TestHelperForwarderProcess(t *testing.T) {
	dir, endpoint := os.Getenv("FORWARD_HELPER_DIR"), os.Getenv("FORWARD_HELPER_ENDPOINT")
	if dir == "" {
		t.Skip("helper process only")
	}
	f := openFwd(t, dir, EndpointConfig{Endpoint: endpoint, Protocol: "http"})
	go f.Run(context.Background())
	for i := 0; ; i++ {
		if err := f.ConsumeTraces(context.Background(), traces(i, 10)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("appended %d\n", i)
		time.Sleep(time.Millisecond)
	}
}

// TestForwarderSurvivesKill9 kills -9 a forwarder process in the middle of
// exporting (after an outage of the endpoint), restarts it on the same
// backlog, and checks every span the killed process had accepted arrives,
// and at most the requests in flight at the kill arrive twice.
func TestForwarderSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	sink := newSpanSink()
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperForwarderProcess$")
	cmd.Env = append(os.Environ(), "FORWARD_HELPER_DIR="+dir, "FORWARD_HELPER_ENDPOINT="+srv.URL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	accepted := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "appended %d", &i); err != nil {
			continue
		}
		accepted = i
		if i == 100 {
			sink.down.Store(true)
		}
		if i == 300 {
			sink.down.Store(false)
		}
		if i == 400 {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if accepted < 400 {
		t.Fatalf("helper stopped after %d requests", accepted)
	}
	f := openFwd(t, dir, EndpointConfig{Endpoint: srv.URL, Protocol: "http"})
	defer f.Close()
	stop := run(f)
	defer stop()
	want := (accepted + 1) * 10
	waitFor(t, "every accepted span", func() bool {
		return sink.unique() >= want && f.pending() == 0
	})
	if d := sink.duplicates(); d > 10 {
		t.Errorf("%d duplicate spans; at most the one request in flight (10) may repeat", d)
	}
}

// pending is the unacknowledged bytes of every endpoint.
func (f *Forwarder) pending() int64 {
	var n int64
	for _, p := range f.set.Pending() {
		n += p
	}
	return n
}
