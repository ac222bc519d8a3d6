// Command ui measures the built-in web UI: bundle size (gzipped, initial and
// total) from internal/ui/dist, and in headless Chromium the time to first
// render of Explore, to render 50,000 log lines, and to render a 1,000-span
// trace. The pages talk to a stub API on 127.0.0.1 that answers canned data
// at once, so the figures are the browser's work (fetch, parse, React render,
// layout, paint), not the stores'.
//
//	go run ./bench/ui [-runs 5] [-chromium /usr/bin/chromium] [-dist internal/ui/dist]
//
// Each render time is the median of -runs; CPU is the chromium processes'
// user+system time per render (from /proc), read alongside.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	dist := flag.String("dist", "internal/ui/dist", "built UI (npm run build in web/ui)")
	exe := flag.String("chromium", "/usr/bin/chromium", "chromium binary")
	runs := flag.Int("runs", 5, "runs per render measurement (median reported)")
	lines := flag.Int("lines", 50000, "log lines to render")
	spans := flag.Int("spans", 1000, "spans of the trace to render")
	flag.Parse()

	initial, total, err := bundleSizes(*dist)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bundle: initial %.1f KB gzipped, total %.1f KB gzipped (%s)\n", float64(initial)/1024, float64(total)/1024, *dist)

	srv, err := stubServer(*dist, *lines, *spans)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.Addr + "/"

	profile, err := os.MkdirTemp("", "nxw-bench-ui-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(profile)
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(*exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(profile), chromedp.WindowSize(1400, 900))
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		log.Fatalf("start chromium: %v", err)
	}

	measure := func(name string, f func() (float64, error)) {
		var ms, cpu []float64
		for range *runs {
			c0 := chromiumCPU(profile)
			v, err := f()
			if err != nil {
				log.Fatalf("%s: %v", name, err)
			}
			ms = append(ms, v)
			cpu = append(cpu, chromiumCPU(profile)-c0)
		}
		fmt.Printf("%-34s median %7.1f ms  (min %7.1f, max %7.1f)  chromium CPU %.3f s/render\n", name, median(ms), slices.Min(ms), slices.Max(ms), median(cpu))
	}

	// First render: a fresh page load of Explore metrics until its query row
	// is in the DOM, from navigation start (performance.now()).
	measure("first render of Explore (cold tab)", func() (float64, error) {
		tctx, tcancel := chromedp.NewContext(ctx) // a new tab: no in-memory module cache
		defer tcancel()
		tctx, tout := context.WithTimeout(tctx, 30*time.Second)
		defer tout()
		if err := chromedp.Do(tctx, chromedp.Navigate(base+"#/explore/metrics")); err != nil {
			return 0, err
		}
		return chromedp.Run(tctx, chromedp.Evaluate[float64](waitJS(`document.querySelector('[data-testid="explore-metrics"] .query-row')`, ""), chromedp.EvalAwaitPromise))
	})

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#/explore/metrics")); err != nil {
		log.Fatal(err)
	}
	measure(fmt.Sprintf("render %d log lines", *lines), func() (float64, error) {
		tctx, tout := context.WithTimeout(ctx, 60*time.Second)
		defer tout()
		if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`(location.hash = "#/", true)`)); err != nil {
			return 0, err
		}
		route := "#/explore/logs?query=%7Bjob%3D%22bench%22%7D&limit=" + strconv.Itoa(*lines)
		cond := fmt.Sprintf(`document.querySelector('[data-testid="log-list"][data-count="%d"] [data-testid="log-line"]') && document.querySelector('[data-testid="volume-bar"]')`, *lines)
		return chromedp.Run(tctx, chromedp.Evaluate[float64](waitJS(cond, route), chromedp.EvalAwaitPromise))
	})
	measure(fmt.Sprintf("render a %d-span trace", *spans), func() (float64, error) {
		tctx, tout := context.WithTimeout(ctx, 60*time.Second)
		defer tout()
		if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`(location.hash = "#/", true)`)); err != nil {
			return 0, err
		}
		cond := fmt.Sprintf(`document.querySelector('[data-testid="span-count"]')?.textContent === "%d" && document.querySelector('[data-testid="span-row"]')`, *spans)
		return chromedp.Run(tctx, chromedp.Evaluate[float64](waitJS(cond, "#/explore/traces/"+benchTraceID), chromedp.EvalAwaitPromise))
	})
}

// waitJS returns a promise of the milliseconds from now (or from navigation
// start when route is empty) until cond holds after a paint: it sets the
// route, watches DOM mutations, and waits one animation frame plus a task
// so the frame that shows the result has been produced.
func waitJS(cond, route string) string {
	r, _ := json.Marshal(route)
	return fmt.Sprintf(`new Promise((resolve) => {
  const route = %s;
  const t0 = route ? performance.now() : 0;
  const done = () => requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - t0), 0));
  const check = () => { if (%s) { obs.disconnect(); done(); return true; } return false; };
  const obs = new MutationObserver(check);
  obs.observe(document.documentElement, { childList: true, subtree: true, attributes: true, characterData: true });
  if (route) location.hash = route;
  check();
})`, r, cond)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

var assetRef = regexp.MustCompile(`(?:src|href)="\./(assets/[^"]+)"`)

// bundleSizes gzips (level 9) what index.html loads (initial) and every file.
func bundleSizes(dist string) (initial, total int, err error) {
	index, err := os.ReadFile(filepath.Join(dist, "index.html"))
	if err != nil {
		return 0, 0, err
	}
	gz := func(b []byte) int {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, 9)
		w.Write(b)
		w.Close()
		return buf.Len()
	}
	initial = gz(index)
	for _, m := range assetRef.FindAllSubmatch(index, -1) {
		b, err := os.ReadFile(filepath.Join(dist, string(m[1])))
		if err != nil {
			return 0, 0, err
		}
		initial += gz(b)
	}
	err = filepath.WalkDir(dist, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		total += gz(b)
		return nil
	})
	return initial, total, err
}

// chromiumCPU is the user+system CPU seconds of every process whose command
// line names the profile directory (the browser and its renderers).
func chromiumCPU(profile string) float64 {
	ents, _ := os.ReadDir("/proc")
	var ticks float64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmd, []byte(profile)) {
			// Renderers do not carry --user-data-dir; match their parent's
			// zygote by the chromium path and the profile-less type flag too.
			if err != nil || !bytes.Contains(cmd, []byte("--type=")) || !bytes.Contains(cmd, []byte("chromium")) {
				continue
			}
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			ticks += u + s
		}
	}
	return ticks / 100 // USER_HZ
}

const benchTraceID = "0123456789abcdef0123456789abcdef"

type stub struct {
	*http.Server
	Addr string
}

// stubServer serves the built UI and canned API answers on 127.0.0.1.
func stubServer(dist string, lines, spans int) (*stub, error) {
	logsJSON := logsBody(lines)
	volumeJSON := volumeBody()
	traceJSON := traceBody(spans)
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dist)))
	js := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
	mux.HandleFunc("/api/ui/session", js([]byte(`{"user":"bench","role":"admin"}`)))
	mux.HandleFunc("/loki/api/v1/query_range", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.FormValue("query"), "sum by") {
			js(volumeJSON)(w, r)
			return
		}
		js(logsJSON)(w, r)
	})
	mux.HandleFunc("/api/v2/traces/", js(traceJSON))
	empty := js([]byte(`{"status":"success","data":[]}`))
	mux.HandleFunc("/api/v1/", empty)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &stub{Server: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, Addr: ln.Addr().String()}
	go s.Serve(ln)
	return s, nil
}

var levels = []string{"info", "info", "info", "debug", "warn", "error"}

func logsBody(n int) []byte {
	now := time.Now().UnixNano()
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	streams := make([]stream, 5)
	for i := range streams {
		streams[i].Stream = map[string]string{"job": "bench", "service_name": fmt.Sprintf("svc-%d", i), "namespace": "prod"}
	}
	for i := range n {
		lvl := levels[i%len(levels)]
		line := fmt.Sprintf(`ts=%d level=%s msg="handled request %d" path=/api/v1/items/%d status=200 duration_ms=%d trace_id=%032x`, now-int64(i)*1e6, lvl, i, i%977, i%313, i)
		s := &streams[i%len(streams)]
		s.Values = append(s.Values, []any{strconv.FormatInt(now-int64(i)*1e6, 10), line, map[string]any{"structuredMetadata": map[string]string{"detected_level": lvl}}})
	}
	b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "streams", "result": streams, "encodingFlags": []string{"categorize-labels"}}})
	return b
}

func volumeBody() []byte {
	now := time.Now().Unix()
	var result []map[string]any
	for _, l := range []string{"info", "debug", "warn", "error"} {
		var vals [][]any
		for t := now - 3600; t <= now; t += 60 {
			vals = append(vals, []any{t, strconv.Itoa(100 + int(t%37))})
		}
		result = append(result, map[string]any{"metric": map[string]string{"detected_level": l}, "values": vals})
	}
	b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": result}})
	return b
}

// traceBody is a trace of n spans over 8 services: each span's parent is an
// earlier span (a deterministic, bushy tree a few levels deep).
func traceBody(n int) []byte {
	start := time.Now().Add(-time.Minute).UnixNano()
	bySvc := map[int][]map[string]any{}
	for i := range n {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("%016x", (i-1)/4+1)
		}
		s := start + int64(i)*200_000
		sp := map[string]any{
			"traceId": benchTraceID, "spanId": fmt.Sprintf("%016x", i+1), "parentSpanId": parent,
			"name": fmt.Sprintf("operation-%d", i%50), "kind": "SPAN_KIND_SERVER",
			"startTimeUnixNano": strconv.FormatInt(s, 10), "endTimeUnixNano": strconv.FormatInt(s+int64(n-i)*300_000, 10),
			"attributes": []any{map[string]any{"key": "http.route", "value": map[string]any{"stringValue": fmt.Sprintf("/r/%d", i%20)}}},
			"status":     map[string]any{},
		}
		bySvc[i%8] = append(bySvc[i%8], sp)
	}
	var batches []any
	for svc := range 8 {
		batches = append(batches, map[string]any{
			"resource":   map[string]any{"attributes": []any{map[string]any{"key": "service.name", "value": map[string]any{"stringValue": fmt.Sprintf("service-%d", svc)}}}},
			"scopeSpans": []any{map[string]any{"scope": map[string]any{"name": "bench"}, "spans": bySvc[svc]}},
		})
	}
	b, _ := json.Marshal(map[string]any{"trace": map[string]any{"batches": batches}})
	return b
}
