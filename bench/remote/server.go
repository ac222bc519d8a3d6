package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one running server process under test.
type server struct {
	name    string
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	logPath string
	exited  chan struct{}
}

// startNXWatcher runs `nxwatcher serve` with a config whose metrics section
// is promYAML and everything that is not the metrics role switched off.
func startNXWatcher(ctx context.Context, bin, dir, promYAML string) (*server, error) {
	cfg := "# written by bench/remote: metrics role only\n" +
		"otlp: {enabled: false, grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\n" +
		"traces: {enabled: false}\n" +
		"alerting: {enabled: false}\n" +
		"metrics:\n  retention: 1d\n  prometheus:\n" + indent(promYAML, "    ")
	cfgPath := filepath.Join(dir, "nxwatcher.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s := &server{name: "nxwatcher", logPath: filepath.Join(dir, "server.log")}
	if err := s.start(bin, "serve", "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0"); err != nil {
		return nil, err
	}
	// The listen address is only known from the log line.
	re := regexp.MustCompile(`msg=Listening component=web address=(127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(s.logPath)
		if m := re.FindSubmatch(b); m != nil {
			s.base = "http://" + string(m[1])
			return s, s.waitReady(ctx)
		}
		select {
		case <-s.exited:
			return s, fmt.Errorf("nxwatcher exited early; log tail:\n%s", tail(s.logPath))
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return s, fmt.Errorf("nxwatcher: no Listening line after 60s; log tail:\n%s", tail(s.logPath))
}

// startPrometheus runs Debian's prometheus with the same prometheus.yml.
func startPrometheus(ctx context.Context, bin, dir, promYAML string) (*server, error) {
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(promYAML), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{name: "prometheus", logPath: filepath.Join(dir, "server.log"), base: "http://127.0.0.1:" + port}
	if err := s.start(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port, "--web.enable-remote-write-receiver",
		"--storage.tsdb.retention.time=1d"); err != nil {
		return nil, err
	}
	return s, s.waitReady(ctx)
}

func (s *server) start(bin string, args ...string) error {
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.exited) }()
	return nil
}

func (s *server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited early; log tail:\n%s", s.name, tail(s.logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after 60s", s.name)
}

// stop sends SIGTERM, waits up to 30s for a clean TSDB close, then kills.
func (s *server) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// procCPU is the process's user+system CPU seconds from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) start at
	// field 3 (state); utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clkTck = 100 // USER_HZ on Linux/amd64 (getconf CLK_TCK)
	return (ut + st) / clkTck, nil
}

// procMem returns VmRSS and VmHWM (peak RSS) in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			*dst = kb * 1024
		}
	}
	return rss, hwm, sc.Err()
}

// metric sums every sample of the named metric family (all label values)
// in the server's own /metrics text exposition.
func (s *server) metric(names ...string) (map[string]float64, error) {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || !want[line[:end]] {
			continue
		}
		rest := line[end:]
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err == nil {
			out[line[:end]] += v
		}
	}
	return out, sc.Err()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, _ := f.Stat()
	if st != nil && st.Size() > 4096 {
		_, _ = f.Seek(st.Size()-4096, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
