// Command agent measures `nxwatcher agent` from files to an acknowledged
// push: lines/s and MB/s per CPU-second, CPU cores and RSS at a fixed rate.
//
// The agent runs in this process, alone: the files are written and the push
// endpoint is served by a child process (this program with -role=aux), so
// the CPU (utime+stime from getrusage) and RSS (VmHWM/VmRSS of
// /proc/self/status) charged to the agent are its own.
//
//	go run ./bench/agent                         # -mode=throughput: 1M lines pre-written over 200 files
//	go run ./bench/agent -mode=rate -rate=10000  # 10k lines/s over 200 files for 30 s
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/agent"
	"github.com/nx-watcher/nxwatcher/internal/procmem"
)

func main() {
	role := flag.String("role", "agent", "agent (measured) or aux (writer and push receiver)")
	mode := flag.String("mode", "throughput", "throughput: pre-written lines as fast as possible; rate: lines written at -rate")
	lines := flag.Int("lines", 1_000_000, "throughput: lines to pre-write")
	files := flag.Int("files", 200, "files written")
	rate := flag.Int("rate", 10000, "rate: lines per second")
	duration := flag.Duration("duration", 30*time.Second, "rate: how long")
	lineLen := flag.Int("line-bytes", 150, "bytes per line (CRI prefix included)")
	stages := flag.String("stages", "cri", "pipeline: cri, docker or none")
	dir := flag.String("dir", "", "directory for the files (default: a temp dir)")
	flag.Parse()
	if *role == "aux" {
		aux(*dir, *mode, *lines, *files, *rate, *duration, *lineLen)
		return
	}
	if err := run(*mode, *lines, *files, *rate, *duration, *lineLen, *stages); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(mode string, lines, files, rate int, duration time.Duration, lineLen int, stages string) error {
	dir, err := os.MkdirTemp("", "agent-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-role=aux", "-dir="+dir, "-mode="+mode, "-lines="+strconv.Itoa(lines),
		"-files="+strconv.Itoa(files), "-rate="+strconv.Itoa(rate), "-duration="+duration.String(), "-line-bytes="+strconv.Itoa(lineLen))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var pushURL string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			pushURL = u
		}
		if sc.Text() == "READY" {
			break
		}
	}
	go io.Copy(io.Discard, out)
	stagesYAML := ""
	switch stages {
	case "cri":
		stagesYAML = "    pipeline_stages: [{cri: {}}]\n"
	case "docker":
		stagesYAML = "    pipeline_stages: [{docker: {}}]\n"
	}
	cfg, err := agent.Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s/loki/api/v1/push}]
scrape_configs:
  - job_name: bench
    static_configs: [{targets: [localhost], labels: {job: bench, __path__: %s/*.log}}]
%s`, dir, pushURL, dir, stagesYAML)), false)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	a, err := agent.New(cfg, agent.Options{}, agent.Deps{Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg})
	if err != nil {
		return err
	}
	// count returns lines acknowledged and lines written (-1 while writing).
	count := func() (int64, int64) {
		resp, err := http.Get(pushURL + "/count")
		if err != nil {
			return -1, -1
		}
		defer resp.Body.Close()
		var acked, written int64
		fmt.Fscan(resp.Body, &acked, &written)
		return acked, written
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	cpu0, t0 := cpuSeconds(), time.Now()
	go func() { done <- a.Run(ctx) }()
	// As `nxwatcher agent` does (internal/procmem), unmap the executable's
	// start-up pages once it has settled; rssSettled is the peak after that.
	settled := make(chan struct{})
	settle := time.AfterFunc(procmem.StartupSettle, func() {
		procmem.ReleaseStartupPages(slog.New(slog.DiscardHandler))
		close(settled)
	})
	defer settle.Stop()
	var rssMax, rssSettled int64
	for {
		acked, written := count()
		if written >= 0 && acked >= written {
			break
		}
		time.Sleep(100 * time.Millisecond)
		rss := rssKiB("VmRSS")
		rssMax = max(rssMax, rss)
		select {
		case <-settled:
			rssSettled = max(rssSettled, rss)
		default:
		}
		if time.Since(t0) > duration+5*time.Minute {
			return fmt.Errorf("gave up: %d of %d lines acknowledged", acked, written)
		}
	}
	cpu, wall := cpuSeconds()-cpu0, time.Since(t0)
	got, _ := count()
	cancel()
	<-done
	mb := float64(got) * float64(lineLen) / 1e6
	fmt.Printf("mode=%s stages=%s files=%d lines_acked=%d line_bytes=%d\n", mode, stages, files, got, lineLen)
	fmt.Printf("wall_s=%.2f agent_cpu_s=%.2f agent_cores=%.3f\n", wall.Seconds(), cpu, cpu/wall.Seconds())
	fmt.Printf("lines_per_cpu_s=%.0f mb_per_cpu_s=%.1f lines_per_s=%.0f\n", float64(got)/cpu, mb/cpu, float64(got)/wall.Seconds())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("rss_max_after_settle_mib=%.1f (0 = the run ended before %s)\n", float64(rssSettled)/1024, procmem.StartupSettle)
	fmt.Printf("rss_max_sampled_mib=%.1f vmhwm_mib=%.1f rss_anon_mib=%.1f rss_file_mib=%.1f heap_inuse_mib=%.1f go_sys_mib=%.1f\n", float64(rssMax)/1024, float64(rssKiB("VmHWM"))/1024, float64(rssKiB("RssAnon"))/1024, float64(rssKiB("RssFile"))/1024,
		float64(ms.HeapInuse)/(1<<20), float64(ms.Sys)/(1<<20))
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func rssKiB(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// aux serves the push endpoint (counting entries) and writes the files.
func aux(dir, mode string, lines, files, rate int, duration time.Duration, lineLen int) {
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /loki/api/v1/push", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req push.PushRequest
		if err != nil || req.Unmarshal(raw) != nil {
			http.Error(w, "bad request", 400)
			return
		}
		for _, s := range req.Streams {
			n.Add(int64(len(s.Entries)))
		}
		w.WriteHeader(http.StatusNoContent)
	})
	var written atomic.Int64
	written.Store(-1) // unknown until the writer is done
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, n.Load(), written.Load()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, mux)
	fs := make([]*os.File, files)
	for i := range fs {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%03d.log", i)))
		if err != nil {
			panic(err)
		}
		fs[i] = f
	}
	pad := strings.Repeat("x", max(0, lineLen-len("2026-01-01T00:00:00.000000000Z stdout F line 0000000 ")-1))
	line := func(i int) string {
		return time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z") + fmt.Sprintf(" stdout F line %07d %s\n", i, pad)
	}
	fmt.Printf("URL http://%s\n", ln.Addr())
	if mode == "throughput" {
		bufs := make([]*bufio.Writer, files)
		for i, f := range fs {
			bufs[i] = bufio.NewWriterSize(f, 1<<20)
		}
		for i := 0; i < lines; i++ {
			bufs[i%files].WriteString(line(i))
		}
		for _, b := range bufs {
			b.Flush()
		}
		written.Store(int64(lines))
		fmt.Println("READY")
		select {}
	}
	fmt.Println("READY")
	// rate: one write per file every 10 ms.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := rate / 100
	end := time.Now().Add(duration)
	i := 0
	var sb strings.Builder
	for time.Now().Before(end) {
		<-tick.C
		for k := 0; k < perTick; k++ {
			sb.Reset()
			sb.WriteString(line(i))
			fs[i%files].WriteString(sb.String())
			i++
		}
	}
	written.Store(int64(i))
	select {}
}
