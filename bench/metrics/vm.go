package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
)

// server is what a run measures: nxwatcher and Prometheus through
// benchproc, VictoriaMetrics through vmServer.
type server interface {
	base() string
	exited() <-chan struct{}
	Metric(names ...string) (map[string]float64, error)
	Pid() int
	Stop()
}

type procServer struct{ *benchproc.Server }

func (p procServer) base() string            { return p.Base }
func (p procServer) exited() <-chan struct{} { return p.Exited }

// sleep waits d, failing early if the server exited or ctx ended.
func sleep(ctx context.Context, s server, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.exited():
		return fmt.Errorf("server exited")
	case <-t.C:
		return nil
	}
}

// vmServer is Debian's single-node VictoriaMetrics (remote write 1.0 at
// /api/v1/write). Its counters are mapped onto the Prometheus names the
// benchmark reads: samples appended = vm_rows_inserted_total (rows of
// every ingest protocol; only remote write runs here), series =
// vm_new_timeseries_created_total (nothing is deleted during a run).
type vmServer struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	done    chan struct{}
	metrics *benchproc.Server // reads /metrics at url
}

func startVictoriaMetrics(ctx context.Context, bin, dir string) (*vmServer, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &vmServer{url: "http://127.0.0.1:" + port, logPath: filepath.Join(dir, "server.log"), done: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "-storageDataPath="+filepath.Join(dir, "data"), "-httpListenAddr=127.0.0.1:"+port,
		"-retentionPeriod=1d")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.done) }()
	s.metrics = &benchproc.Server{Name: "victoriametrics", Base: s.url}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return s, fmt.Errorf("victoria-metrics exited early; log tail:\n%s", benchproc.Tail(s.logPath))
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return s, fmt.Errorf("victoria-metrics not ready after 60s")
}

func (s *vmServer) base() string            { return s.url }
func (s *vmServer) exited() <-chan struct{} { return s.done }
func (s *vmServer) Pid() int                { return s.cmd.Process.Pid }

var vmNames = map[string]string{
	"prometheus_tsdb_head_samples_appended_total": "vm_rows_inserted_total",
	"prometheus_tsdb_head_series":                 "vm_new_timeseries_created_total",
}

func (s *vmServer) Metric(names ...string) (map[string]float64, error) {
	var vm []string
	for _, n := range names {
		vm = append(vm, vmNames[n])
	}
	got, err := s.metrics.Metric(vm...)
	out := map[string]float64{}
	for _, n := range names {
		if v, ok := got[vmNames[n]]; ok {
			out[n] = v
		}
	}
	return out, err
}

func (s *vmServer) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
