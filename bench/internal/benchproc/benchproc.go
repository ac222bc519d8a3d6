// Package benchproc runs the servers a metrics benchmark measures (nxwatcher
// serve and Debian's Prometheus as child processes, with their CPU and
// memory read from /proc) and the synthetic scrape targets they scrape.
package benchproc

import (
	"bufio"
	"bytes"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/common/model"
)

// Server is one running server process under test.
type Server struct {
	Name    string
	cmd     *exec.Cmd
	Base    string // http://127.0.0.1:PORT
	LogPath string
	Exited  chan struct{}
}

// StartNXWatcher runs `nxwatcher serve` with a config whose metrics section
// is promYAML and everything that is not the metrics role switched off.
func StartNXWatcher(ctx context.Context, bin, dir, promYAML string) (*Server, error) {
	cfg := "# written by the metrics benchmarks: metrics role only\n" +
		"otlp: {enabled: false, grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\n" +
		"traces: {enabled: false}\n" +
		"alerting: {enabled: false}\n" +
		"metrics:\n  retention: 1d\n  prometheus:\n" + indent(promYAML, "    ")
	cfgPath := filepath.Join(dir, "nxwatcher.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s := &Server{Name: "nxwatcher", LogPath: filepath.Join(dir, "server.log")}
	if err := s.start(bin, "serve", "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0"); err != nil {
		return nil, err
	}
	// The listen address is only known from the log line.
	re := regexp.MustCompile(`msg=Listening component=web address=(127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(s.LogPath)
		if m := re.FindSubmatch(b); m != nil {
			s.Base = "http://" + string(m[1])
			return s, s.WaitReady(ctx)
		}
		select {
		case <-s.Exited:
			return s, fmt.Errorf("nxwatcher exited early; log tail:\n%s", Tail(s.LogPath))
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return s, fmt.Errorf("nxwatcher: no Listening line after 60s; log tail:\n%s", Tail(s.LogPath))
}

// StartPrometheus runs Debian's prometheus with the same prometheus.yml.
func StartPrometheus(ctx context.Context, bin, dir, promYAML string) (*Server, error) {
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(promYAML), 0o644); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Name: "prometheus", LogPath: filepath.Join(dir, "server.log"), Base: "http://127.0.0.1:" + port}
	if err := s.start(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port, "--web.enable-remote-write-receiver",
		"--storage.tsdb.retention.time=1d"); err != nil {
		return nil, err
	}
	return s, s.WaitReady(ctx)
}

func (s *Server) start(bin string, args ...string) error {
	logf, err := os.Create(s.LogPath)
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
	s.Exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.Exited) }()
	return nil
}

func (s *Server) WaitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.Base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.Exited:
			return fmt.Errorf("%s exited early; log tail:\n%s", s.Name, Tail(s.LogPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after 60s", s.Name)
}

// stop sends SIGTERM, waits up to 30s for a clean TSDB close, then kills.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.Exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.Exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.Exited
	}
}

func (s *Server) Pid() int { return s.cmd.Process.Pid }

// ProcCPU is the process's user+system CPU seconds from /proc/PID/stat.
func ProcCPU(pid int) (float64, error) {
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

// ProcMem returns VmRSS and VmHWM (peak RSS) in bytes.
func ProcMem(pid int) (rss, hwm int64, err error) {
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
func (s *Server) Metric(names ...string) (map[string]float64, error) {
	req, _ := http.NewRequest(http.MethodGet, s.Base+"/metrics", nil)
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

func FreePort() (string, error) {
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

func Tail(path string) string {
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

// TargetServer is the synthetic scrape fleet: one HTTP listener on loopback,
// target i at /t/i, each exposing perTarget series in the text format.
// Bodies are rendered up front in `variants` versions with different values,
// served in turn, so the bench process spends almost no CPU per scrape and
// values still change between scrapes.
type TargetServer struct {
	ln     net.Listener
	srv    *http.Server
	bodies [][][]byte // [target][variant]
	next   []atomic.Uint32
	served atomic.Int64
}

const scrapeVariants = 4

func StartTargets(targets, perTarget int) (*TargetServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ts := &TargetServer{ln: ln, bodies: make([][][]byte, targets), next: make([]atomic.Uint32, targets)}
	for t := range targets {
		ts.bodies[t] = make([][]byte, scrapeVariants)
		for v := range scrapeVariants {
			ts.bodies[t][v] = renderTarget(t, perTarget, v)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n >= targets {
			http.NotFound(w, r)
			return
		}
		v := ts.next[n].Add(1) % scrapeVariants
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(ts.bodies[n][v])
		ts.served.Add(1)
	})
	ts.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ts.srv.Serve(ln) }()
	return ts, nil
}

func (ts *TargetServer) Addr() string { return ts.ln.Addr().String() }

func (ts *TargetServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ts.srv.Shutdown(ctx)
}

// renderTarget writes perTarget series as 20 counter families of
// perTarget/20 series each, labelled like HTTP request counters.
func renderTarget(target, perTarget, variant int) []byte {
	const families = 20
	var b bytes.Buffer
	b.Grow(perTarget * 90)
	per := (perTarget + families - 1) / families
	written := 0
	for f := 0; f < families && written < perTarget; f++ {
		name := fmt.Sprintf("app_requests_%02d_total", f)
		fmt.Fprintf(&b, "# HELP %s Synthetic request counter %d.\n# TYPE %s counter\n", name, f, name)
		for s := 0; s < per && written < perTarget; s++ {
			val := (target+1)*1000 + s*7 + variant*(s%13+1)
			fmt.Fprintf(&b, "%s{handler=\"/api/v1/handler_%03d\",method=\"%s\",code=\"%d\"} %d\n",
				name, s/4, [...]string{"GET", "POST", "PUT", "DELETE"}[s%4], 200+100*(s%3), val)
			written++
		}
	}
	return b.Bytes()
}

// Sleep waits d, failing early if the server died or ctx ended.
func Sleep(ctx context.Context, s *Server, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.Exited:
		return fmt.Errorf("%s exited; log tail:\n%s", s.Name, Tail(s.LogPath))
	case <-time.After(d):
		return nil
	}
}

// ScrapeConfig is a prometheus.yml scraping targets synthetic targets at addr.
func ScrapeConfig(addr string, targets int, interval time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: synthetic\n    static_configs:\n",
		model.Duration(interval), model.Duration(min(interval, 10*time.Second)))
	for t := range targets {
		fmt.Fprintf(&b, "      - targets: ['%s']\n        labels: {__metrics_path__: '/t/%d', shard: 's%d'}\n", addr, t, t)
	}
	return b.String()
}

// WorkDir is a bench run's work directory: out, created if need be, or a new
// temporary directory named after prefix, which cleanup removes unless keep.
func WorkDir(out, prefix string, keep bool) (dir string, cleanup func(), err error) {
	if out != "" {
		return out, func() {}, os.MkdirAll(out, 0o755)
	}
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, err
	}
	if keep {
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// ModuleRoot is the directory of the nxwatcher module the bench runs in.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the nxwatcher module; pass -nxwatcher")
	}
	return filepath.Dir(gomod), nil
}

// LoadAvg is the 1, 5 and 15 minute load averages, "?" when unknown.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// MiB converts bytes to mebibytes.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

// Logf logs a timestamped progress line to stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
