package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ModuleRoot is the directory of the go.mod that holds this package.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if p := strings.TrimSpace(string(out)); p != "" && p != os.DevNull {
			return filepath.Dir(p), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildBinary compiles ./cmd/nxwatcher of the module into dir.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nxwatcher")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/nxwatcher")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/nxwatcher: %w\n%s", err, out)
	}
	return bin, nil
}

// ServerConfig is what the harness puts into the serve config.
type ServerConfig struct {
	ScrapeTarget string // host:port of the scrape target; "" for none
	GRPCAddr     string // OTLP/gRPC listener, chosen by the harness
	HTTPAddr     string // OTLP/HTTP listener, chosen by the harness
}

// YAML renders the serve config: every role but alerting, a 1 s scrape of
// the target, small WAL segments (so a 64 MiB disk is not taken by one
// preallocated segment) and ingestion limits above the harness's load.
func (c ServerConfig) YAML() string {
	var b strings.Builder
	b.WriteString("# written by bench/chaos\n")
	b.WriteString("metrics:\n  retention: 1d\n  prometheus:\n    global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 15s}\n")
	if c.ScrapeTarget != "" {
		fmt.Fprintf(&b, "    scrape_configs:\n      - job_name: chaos_target\n        scrape_interval: 1s\n        scrape_timeout: 1s\n        static_configs: [{targets: ['%s']}]\n", c.ScrapeTarget)
	}
	b.WriteString("alerting: {enabled: false}\n")
	b.WriteString("logs:\n  wal: {segment_size: 1MiB}\n  limits: {ingestion_rate_mb: 64, ingestion_burst_size_mb: 128}\n")
	b.WriteString("traces: {enabled: true}\n")
	fmt.Fprintf(&b, "otlp: {enabled: true, grpc_endpoint: '%s', http_endpoint: '%s'}\n", c.GRPCAddr, c.HTTPAddr)
	return b.String()
}

// FreePort returns a loopback address that was free a moment ago.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Server is one `nxwatcher serve` process (restartable on the same storage).
type Server struct {
	Bin, Dir, StoragePath string
	Config                ServerConfig

	// InFlight counts requests the senders have on the wire, so a kill can
	// be timed to cut one.
	InFlight atomic.Int64

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	base    string // http://127.0.0.1:PORT of the running process
	starts  int
	logPath string
}

// Base is the HTTP base URL of the running process ("" while down).
func (s *Server) Base() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// GRPCAddr is the OTLP/gRPC address of the current config.
func (s *Server) GRPCAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Config.GRPCAddr
}

// LogPath is the stderr of the latest start.
func (s *Server) LogPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logPath
}

// Listen lines: `msg=Listening component=web address=…` for the main
// listener and `msg=Listening component=otlp protocol=grpc address=…` for
// the OTLP ones; a `listener=<name>` attribute, when present, names the
// listener instead.
var logfmtRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S*)`)

// parseListening returns the main HTTP address and the other listeners by
// name ("otlp-grpc", "otlp-http", "alertmanager", …) from a serve log.
func parseListening(log []byte) (web string, named map[string]string) {
	named = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(log)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		attrs := map[string]string{}
		for _, m := range logfmtRE.FindAllStringSubmatch(sc.Text(), -1) {
			v := m[2]
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			attrs[m[1]] = v
		}
		if attrs["msg"] != "Listening" || attrs["address"] == "" {
			continue
		}
		name := attrs["listener"]
		if name == "" {
			name = attrs["component"]
			if p := attrs["protocol"]; p != "" {
				name += "-" + p
			}
		}
		switch name {
		case "web", "http", "main":
			web = attrs["address"]
		default:
			named[name] = attrs["address"]
		}
	}
	return web, named
}

// Start runs the server and waits until /-/ready answers 200. When the
// chosen OTLP ports were taken by someone else meanwhile, it picks new ones
// and tries again.
func (s *Server) Start(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = s.start(ctx)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		g, e1 := FreePort()
		h, e2 := FreePort()
		if e := errors.Join(e1, e2); e != nil {
			return e
		}
		s.mu.Lock()
		s.Config.GRPCAddr, s.Config.HTTPAddr = g, h
		s.mu.Unlock()
	}
	return err
}

// KillDuringStart starts the server and kills it after d, ready or not
// (typically while it replays its WALs); no sender sees it up.
func (s *Server) KillDuringStart(d time.Duration) error {
	if _, _, err := s.spawn(); err != nil {
		return err
	}
	time.Sleep(d)
	s.Kill()
	return nil
}

func (s *Server) start(ctx context.Context) error {
	logPath, exited, err := s.spawn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	var base string
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		if web, _ := parseListening(b); web != "" {
			base = "http://" + web
			if ok, _ := probe(ctx, base+"/-/ready"); ok {
				s.mu.Lock()
				s.base = base
				s.mu.Unlock()
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("nxwatcher exited during start-up; log tail:\n%s", Tail(logPath, 30))
		case <-ctx.Done():
			s.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.Kill()
	return fmt.Errorf("nxwatcher not ready after 90s (listen address %q); log tail:\n%s", base, Tail(logPath, 30))
}

// spawn writes the config and starts the process.
func (s *Server) spawn() (string, chan struct{}, error) {
	s.mu.Lock()
	s.starts++
	cfgPath := filepath.Join(s.Dir, "nxwatcher.yml")
	logPath := filepath.Join(s.Dir, fmt.Sprintf("server-%03d.log", s.starts))
	s.logPath = logPath
	cfg := s.Config.YAML()
	s.mu.Unlock()
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(s.Bin, "serve", "--config.file="+cfgPath, "--storage.path="+s.StoragePath,
		"--web.listen-address=127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the harness
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return logPath, exited, nil
}

func probe(ctx context.Context, url string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.base = ""
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Stop sends SIGTERM and waits up to 30 s for a clean exit, then kills.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	s.mu.Lock()
	s.base = ""
	s.mu.Unlock()
}

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Tail is the last n lines of a file.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
