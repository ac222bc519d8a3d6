// Command dashboard measures how long the built-in UI takes to render a
// 20-panel dashboard over 24 hours of demo data (issue 12's target: ≤ 2 s
// on the shared 2-core machine).
//
// It builds nxwatcher (or takes -nxwatcher), starts `nxwatcher demo
// --backfill=24h` as a child process on 127.0.0.1:0, imports
// bench-20-panels.json (twenty panels of the eight deploy/dashboards, see
// board.go) through POST /api/dashboards/db, logs in, and opens
// #/dashboards/nx-bench-20-panels?from=now-24h&to=now in a fresh headless
// Chromium tab per run. A run ends when the dashboard root gets
// data-rendered="true"; its figure is window.__nxDashboardRenderedMs, the
// renderer's own milliseconds since navigation (the contract between the
// renderer and this benchmark, docs/dashboards.md). CPU is read from /proc:
// the serve process's and the Chromium process tree's user+system seconds
// over each run.
//
//	go run ./bench/ui/dashboard [-runs 5] [-backfill 24h] [-storage dir] [-nxwatcher path]
//
// With -storage naming a directory that already holds a backfilled demo,
// pass -backfill=0 to reuse it (start-up then takes seconds, not minutes).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	bin := flag.String("nxwatcher", "", "nxwatcher binary (default: go build ./cmd/nxwatcher into a temporary directory)")
	exe := flag.String("chromium", "/usr/bin/chromium", "chromium binary")
	runs := flag.Int("runs", 5, "renders measured (each in a fresh tab)")
	backfill := flag.Duration("backfill", 24*time.Hour, "the demo's --backfill (0 to reuse -storage as it is)")
	storage := flag.String("storage", "", "the demo's --storage.path (default: a temporary directory, removed at the end)")
	settle := flag.Duration("settle", 60*time.Second, "wait after the demo is up, so live scrapes, logs, traces and the service graph exist")
	timeout := flag.Duration("timeout", 60*time.Second, "longest wait for one render")
	board := flag.String("board", "", "dashboard JSON to open (default: bench-20-panels.json next to this source)")
	flag.Parse()
	if err := run(*bin, *exe, *runs, *backfill, *storage, *settle, *timeout, *board); err != nil {
		log.Fatal(err)
	}
}

func run(bin, exe string, runs int, backfill time.Duration, storage string, settle, timeout time.Duration, boardPath string) error {
	tmp, err := os.MkdirTemp("", "nxw-bench-dashboard-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if boardPath == "" {
		boardPath = filepath.Join("bench", "ui", "dashboard", BoardFile)
	}
	boardJSON, err := os.ReadFile(boardPath)
	if err != nil {
		return fmt.Errorf("read the board (run from the repository root or pass -board): %w", err)
	}
	if bin == "" {
		bin = filepath.Join(tmp, "nxwatcher")
		t0 := time.Now()
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/nxwatcher")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build nxwatcher: %w", err)
		}
		log.Printf("built nxwatcher in %.0f s", time.Since(t0).Seconds())
	}
	if storage == "" {
		storage = filepath.Join(tmp, "data")
	}

	pwb := make([]byte, 12)
	_, _ = rand.Read(pwb)
	password := hex.EncodeToString(pwb)
	serve, base, err := startDemo(bin, storage, backfill, password)
	if err != nil {
		return err
	}
	defer serve.stop()
	log.Printf("demo up at %s after %.0f s wall, %.1f serve CPU-seconds (backfill %s)", base, serve.upWall.Seconds(), serve.cpu(), backfill)
	if err := importBoard(base, boardJSON); err != nil {
		return err
	}
	log.Printf("settling %s", settle)
	time.Sleep(settle)

	profile := filepath.Join(tmp, "chromium")
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(profile),
		// Tall enough that all 20 panels are in view: the renderer only
		// waits for panels in view.
		chromedp.WindowSize(1600, 2600))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/")); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}
	browserPID := chromedp.FromContext(bctx).Browser.Process().Pid
	login := fmt.Sprintf(`fetch("api/ui/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({user: "admin", password: %q})}).then(r => r.status)`, password)
	if status, err := chromedp.Run(bctx, chromedp.Evaluate[int](login, chromedp.EvalAwaitPromise)); err != nil || status != 200 {
		return fmt.Errorf("log in: status %d, %v", status, err)
	}

	// Baseline: what a fresh tab costs without the dashboard — the shell,
	// the bundle and the dashboard list — so the panels' share of the
	// Chromium CPU can be told apart.
	var baseMS, baseCPU []float64
	for range min(runs, 3) {
		c0 := treeCPU(browserPID)
		var c1 float64
		ms, err := openList(bctx, base+"/#/dashboards", timeout, func() { c1 = treeCPU(browserPID) })
		if err != nil {
			return fmt.Errorf("baseline (dashboard list): %w", err)
		}
		baseMS, baseCPU = append(baseMS, ms), append(baseCPU, c1-c0)
	}
	fmt.Printf("baseline, a fresh tab showing the dashboard list: median %.0f ms, chromium %.2f CPU-s\n", median(baseMS), median(baseCPU))

	url := base + "/#/dashboards/" + BoardUID + "?from=now-24h&to=now"
	type result struct {
		ms         float64
		wall       float64
		chrome     float64
		serve      float64
		states     map[string]int
		unrendered bool
	}
	var results []result
	for i := range runs {
		c0, s0 := treeCPU(browserPID), serve.cpu()
		t0 := time.Now()
		var wall, c1, s1 float64
		r, err := renderOnce(bctx, url, timeout, func() {
			wall = time.Since(t0).Seconds() * 1000
			c1, s1 = treeCPU(browserPID), serve.cpu()
		})
		res := result{ms: r.MS, wall: wall, chrome: c1 - c0, serve: s1 - s0, states: r.States}
		if err != nil {
			return fmt.Errorf("run %d: %w (panel states %v; is the renderer in internal/ui/dist? git log -- internal/ui/dist)", i+1, err, r.States)
		}
		results = append(results, res)
		fmt.Printf("run %d: rendered in %5.0f ms (%5.0f ms wall incl. tab set-up)  %d queries, last answered at %5.0f ms, slowest %4.0f ms  chromium %.2f CPU-s  serve %.2f CPU-s  panels %v\n",
			i+1, res.ms, res.wall, r.Queries.N, r.Queries.LastEnd, r.Queries.Slowest, res.chrome, res.serve, res.states)
		for _, q := range r.Queries.Top {
			fmt.Printf("        %s\n", q)
		}
	}
	var ms, ch, sv []float64
	for _, r := range results {
		ms, ch, sv = append(ms, r.ms), append(ch, r.chrome), append(sv, r.serve)
	}
	if qs, err := measureQueries(base, boardJSON, serve.cpu); err != nil {
		log.Printf("query costs: %v", err)
	} else {
		printQueryCosts(qs, 8)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n20-panel dashboard over 24 h (%s): median %.0f ms (min %.0f, max %.0f) over %d runs; target ≤ 2000 ms\n",
		filepath.Base(boardPath), median(ms), slices.Min(ms), slices.Max(ms), len(ms))
	fmt.Printf("CPU per render (median): chromium %.2f CPU-s (%.2f above the list-page baseline), serve %.2f CPU-s\n", median(ch), median(ch)-median(baseCPU), median(sv))
	fmt.Printf("loadavg at end: %s\n", strings.TrimSpace(string(load)))
	return nil
}

type renderResult struct {
	MS     float64        `json:"ms"`
	States map[string]int `json:"states"`
	// Queries are the data requests (Prometheus, Loki, Tempo APIs) the page
	// made: how many, when the last one ended (ms since navigation), and
	// the slowest one's duration.
	Queries struct {
		N       int     `json:"n"`
		LastEnd float64 `json:"lastEnd"`
		Slowest float64 `json:"slowest"`
		// Top are the three slowest: total, queued in the browser, server
		// time to first byte, path (and the query, for GETs).
		Top []string `json:"top"`
	} `json:"queries"`
}

// renderOnce opens url in a new tab and waits for data-rendered="true".
// after runs once the render is done (or failed), before the tab closes, so
// CPU read there includes the tab's renderer process.
func renderOnce(bctx context.Context, url string, timeout time.Duration, after func()) (renderResult, error) {
	tab, tcancel := chromedp.NewContext(bctx)
	defer tcancel()
	defer after()
	tctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	var r renderResult
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		return r, err
	}
	// Poll (not a MutationObserver): the figure is the renderer's own, so
	// how soon we notice does not change it.
	const wait = `new Promise((resolve) => {
  const states = () => { const s = {}; for (const p of document.querySelectorAll('[data-testid="panel"]')) s[p.dataset.state] = (s[p.dataset.state] || 0) + 1; return s; };
  const tick = () => {
    const root = document.querySelector('[data-testid="dashboard"]');
    if (root && root.dataset.rendered === "true" && typeof window.__nxDashboardRenderedMs === "number") {
      const q = {n: 0, lastEnd: 0, slowest: 0, top: []};
      const all = [];
      for (const e of performance.getEntriesByType("resource")) {
        if (!/\/(api\/v1|loki\/api|api\/(traces|search|v2\/search|metrics))\//.test(e.name)) continue;
        q.n++; q.lastEnd = Math.max(q.lastEnd, e.responseEnd); q.slowest = Math.max(q.slowest, e.duration);
        all.push(e);
      }
      all.sort((a, b) => b.duration - a.duration);
      for (const e of all.slice(0, 3)) {
        const u = new URL(e.name);
        // queued: waiting for one of the browser's six connections;
        // server: request sent until the first byte of the answer.
        q.top.push(Math.round(e.duration) + " ms (queued " + Math.round(e.requestStart - e.startTime) + ", server " + Math.round(e.responseStart - e.requestStart) + ") " + u.pathname + " " + (u.searchParams.get("query") || "").slice(0, 120));
      }
      resolve({ms: window.__nxDashboardRenderedMs, states: states(), queries: q});
      return;
    }
    window.__nxBenchStates = states();
    setTimeout(tick, 20);
  };
  tick();
})`
	r, err := chromedp.Run(tctx, chromedp.Evaluate[renderResult](wait, chromedp.EvalAwaitPromise))
	if err != nil {
		// Say how far it got.
		sctx, scancel := context.WithTimeout(tab, 5*time.Second)
		defer scancel()
		r.States, _ = chromedp.Run(sctx, chromedp.Evaluate[map[string]int](`window.__nxBenchStates || {}`))
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no data-rendered=\"true\" within %s", timeout)
		}
	}
	return r, err
}

// openList opens the dashboard list in a new tab and returns the ms from
// navigation until its first item is in the DOM.
func openList(bctx context.Context, url string, timeout time.Duration, after func()) (float64, error) {
	tab, tcancel := chromedp.NewContext(bctx)
	defer tcancel()
	defer after()
	tctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		return 0, err
	}
	return chromedp.Run(tctx, chromedp.Evaluate[float64](`new Promise((resolve) => {
  const tick = () => document.querySelector('[data-testid="dashboard-item"]') ? resolve(performance.now()) : setTimeout(tick, 20);
  tick();
})`, chromedp.EvalAwaitPromise))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// demoProc is the nxwatcher demo child process.
type demoProc struct {
	cmd    *exec.Cmd
	upWall time.Duration
}

func (d *demoProc) cpu() float64 { return procCPU(d.cmd.Process.Pid) }

func (d *demoProc) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

// startDemo runs `nxwatcher demo` and waits for the line naming its APIs.
func startDemo(bin, storage string, backfill time.Duration, password string) (*demoProc, string, error) {
	args := []string{"demo", "--web.listen-address=127.0.0.1:0", "--storage.path=" + storage, "--log.level=warn"}
	if backfill > 0 {
		args = append(args, "--backfill="+backfill.String())
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GF_SECURITY_ADMIN_PASSWORD="+password)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	d := &demoProc{cmd: cmd}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "APIs:"); ok {
				u, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
				select {
				case urls <- strings.TrimRight(u, "/"):
				default:
				}
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			d.stop()
			return nil, "", errors.New("demo ended before printing its URL")
		}
		d.upWall = time.Since(t0)
		return d, u, nil
	case <-time.After(20 * time.Minute):
		d.stop()
		return nil, "", errors.New("demo not up after 20 minutes")
	}
}

// importBoard stores the board through Grafana's create/update endpoint.
func importBoard(base string, board []byte) error {
	body, _ := json.Marshal(map[string]any{"dashboard": json.RawMessage(board), "overwrite": true, "message": "bench/ui/dashboard"})
	resp, err := http.Post(base+"/api/dashboards/db", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("import the board: %d %s", resp.StatusCode, b)
	}
	return nil
}

// procCPU is a process's user+system CPU seconds from /proc/<pid>/stat,
// with those of its children that exited and were waited for (Chromium's
// zygote reaps the renderers of closed tabs).
func procCPU(pid int) float64 {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(st, ')')
	if i < 0 || i+2 > len(st) {
		return 0
	}
	f := strings.Fields(string(st[i+2:]))
	if len(f) < 15 {
		return 0
	}
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// treeCPU is procCPU summed over pid and its descendants (Chromium's
// renderer, GPU and utility processes). Children that exited are not
// counted.
func treeCPU(pid int) float64 {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(st, ')')
		if i < 0 || i+2 > len(st) {
			continue
		}
		f := strings.Fields(string(st[i+2:]))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	var total float64
	for p := range parent {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += procCPU(p)
				break
			}
		}
	}
	return total
}
