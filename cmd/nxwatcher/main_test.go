package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
)

var binPath string

// TestMain builds the real binary once; the process tests signal and kill it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nxwatcher-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "nxwatcher")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build nxwatcher:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// runMain's in-process commands (check, test rules) must not leave
		// goroutines behind.
		opts := append(leakcheck.Upstream(),
			// Idle keep-alive connections of the HTTP clients the tests use.
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a running `nxwatcher serve` child process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningRE = regexp.MustCompile(`msg=Listening component=web address=(\S+)`)

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProcPrefixed(t, "", args...)
}

// startProcPrefixed starts serve and waits for readiness under a route prefix.
func startProcPrefixed(t *testing.T, prefix string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--web.listen-address=127.0.0.1:0"}, args...)...)
	p := &proc{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(p.logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("nxwatcher did not start:\n%s", p.logs)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + prefix + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nxwatcher not ready:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) wait(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(30 * time.Second):
		t.Fatalf("nxwatcher did not exit:\n%s", p.logs)
		return nil
	}
}

func query(t *testing.T, url, q string) model.Vector {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	v, _, _, err := promv1.NewAPI(c).Query(context.Background(), q, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return v.(model.Vector)
}

const quietConfig = "otlp: {grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\nmetrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n"

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKill9KeepsAcknowledgedSamples: every sample that /api/v1/write
// acknowledged before kill -9 is queryable after a restart.
func TestKill9KeepsAcknowledgedSamples(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, quietConfig)
	data := filepath.Join(dir, "data")
	p := startProc(t, "--config.file="+cfg, "--storage.path="+data)

	w, err := remoteapi.NewAPI(p.url, remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 1}))
	if err != nil {
		t.Fatal(err)
	}
	// Writers keep going while the process dies; count only acknowledged series.
	start := time.Now().Add(-time.Minute).UnixMilli()
	var mu sync.Mutex
	acked := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for writer := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req := &prompb.WriteRequest{}
				for s := range 50 {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels:  []prompb.Label{{Name: "__name__", Value: "crash_test"}, {Name: "writer", Value: fmt.Sprint(writer)}, {Name: "batch", Value: fmt.Sprint(i)}, {Name: "s", Value: fmt.Sprint(s)}},
						Samples: []prompb.Sample{{Timestamp: start, Value: 1}},
					})
				}
				if _, err := w.Write(context.Background(), remoteapi.WriteV1MessageType, req); err != nil {
					return // the process is gone
				}
				mu.Lock()
				acked += 50
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	close(stop)
	wg.Wait()
	if acked == 0 {
		t.Fatalf("no write was acknowledged before the kill:\n%s", p.logs)
	}

	p2 := startProc(t, "--config.file="+cfg, "--storage.path="+data)
	got := query(t, p2.url, `count(last_over_time(crash_test[10m]))`)
	if len(got) != 1 || int(got[0].Value) < acked {
		t.Fatalf("after kill -9: %v series, want at least the %d acknowledged", got, acked)
	}
	t.Logf("%d acknowledged series, %v found after kill -9", acked, got[0].Value)
}

// TestSIGTERMStopsCleanlyAndSIGHUPReloads drives the process's signals.
func TestSIGTERMStopsCleanlyAndSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, quietConfig+"    scrape_configs: [{job_name: first, static_configs: [{targets: ['127.0.0.1:1']}]}]\n")
	data := filepath.Join(dir, "data")
	p := startProc(t, "--config.file="+cfg, "--storage.path="+data)

	pools := func() string {
		resp, err := http.Get(p.url + "/api/v1/scrape_pools")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(pools(), `"first"`) {
		if time.Now().After(deadline) {
			t.Fatalf("scrape pools = %s", pools())
		}
		time.Sleep(50 * time.Millisecond)
	}
	writeFile(t, cfg, quietConfig+"    scrape_configs: [{job_name: second, static_configs: [{targets: ['127.0.0.1:1']}]}]\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(pools(), `"second"`) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload: pools %s\n%s", pools(), p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A broken file on SIGHUP is rejected and logged; the old config runs on.
	writeFile(t, cfg, "metrics: [not, a, mapping]\n")
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), "Reload rejected") {
		if time.Now().After(deadline) {
			t.Fatalf("bad config on SIGHUP not reported:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(pools(), `"second"`) {
		t.Fatal("a rejected reload replaced the running config")
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := p.wait(t)
	if !st.Success() || !strings.Contains(p.logs.String(), "Stopped cleanly") {
		t.Fatalf("SIGTERM exit = %v\n%s", st, p.logs)
	}
	// A clean close leaves no lock file behind and reopens without WAL repair.
	if _, err := os.Stat(filepath.Join(data, "metrics", "lock")); !os.IsNotExist(err) {
		t.Fatalf("lock file after clean stop: %v", err)
	}
	writeFile(t, cfg, quietConfig)
	p2 := startProc(t, "--config.file="+cfg, "--storage.path="+data)
	if strings.Contains(p2.logs.String(), "repair") {
		t.Fatalf("reopen after clean stop repaired the WAL:\n%s", p2.logs)
	}
}

func TestServeRejectsBadConfigAtStart(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, "metrics:\n  retentoin: 1d\n")
	cmd := exec.Command(binPath, "serve", "--web.listen-address=127.0.0.1:0", "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "retentoin") || !strings.Contains(string(out), "line 2") {
		t.Fatalf("serve with a bad config: err=%v\n%s", err, out)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	writeFile(t, good, quietConfig)
	bad := filepath.Join(dir, "bad.yml")
	writeFile(t, bad, "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n")
	for _, tc := range []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"check", "config", good}, 0, "SUCCESS"},
		{[]string{"check", "config", "../../deploy/prometheus/prometheus.yml"}, 0, "valid prometheus config"},
		{[]string{"check", "config", bad}, 1, "scrape timeout greater than scrape interval"},
		{[]string{"check", "config", filepath.Join(dir, "missing.yml")}, 1, "no such file"},
		{[]string{"check"}, 2, "usage"},
		{[]string{"check", "rules", "../../deploy/rules/bana.rules.yml"}, 0, "SUCCESS: 7 rules found"},
		{[]string{"check", "rules", bad}, 1, "bad.yml"},
		{[]string{"test", "rules", "../../deploy/rules/bana.rules.test.yml"}, 0, "SUCCESS"},
		{[]string{"test", "rules"}, 2, "usage"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(tc.args, &stdout, &stderr)
		if code != tc.wantCode || !strings.Contains(stdout.String()+stderr.String(), tc.wantOut) {
			t.Errorf("%v: exit %d, output %q; want exit %d with %q", tc.args, code, stdout.String()+stderr.String(), tc.wantCode, tc.wantOut)
		}
	}
}
