// Command rss pushes a paced load through /loki/api/v1/push (in process, as
// the server runs it: WAL, head, flushes, compaction) and reports the rate
// reached, CPU used and the process RSS. See bench/README.md ("logs").
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

func main() {
	rate := flag.Int("rate", 90000, "lines per second to push")
	dur := flag.Duration("duration", 60*time.Second, "how long to push")
	streams := flag.Int("streams", 20, "streams per push")
	dir := flag.String("dir", "", "data directory (default: a temporary one)")
	fsync := flag.String("fsync", "interval", "WAL fsync policy: always, interval, never")
	headMax := flag.Int64("head-max-bytes", 0, "flush the head beyond this many bytes (0: the default)")
	memProfile := flag.String("memprofile", "", "write a heap profile here at the end")
	flag.Parse()
	defer func() {
		if *memProfile != "" {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}()
	if err := run(*rate, *dur, *streams, *dir, *fsync, *headMax); err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(1) //nolint:gocritic // the deferred profile is not needed on failure
	}
}

func line(r *rand.Rand, i int) string {
	return fmt.Sprintf("level=info caller=handler.go:%d method=GET path=/api/v1/users/%d status=200 duration=%d.%dms trace_id=%016x%016x msg=\"request served\"",
		100+i%400, r.IntN(100000), r.IntN(200), r.IntN(10), r.Uint64(), r.Uint64())
}

func run(rate int, dur time.Duration, streams int, dir, fsync string, headMax int64) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "logs-rss-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfg := lokiapi.DefaultConfig()
	cfg.WAL.Fsync = fsync
	cfg.Limits.IngestionRateMB = 0
	cfg.Limits.RejectOldSamples = false
	if headMax > 0 {
		cfg.Storage.HeadMaxBytes = units.Bytes(headMax)
	}
	opts := cfg.StoreOptions()
	db, err := logstore.Open(dir, opts, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	defer db.Close()
	api, err := lokiapi.New(cfg, lokiapi.Deps{Registerer: prometheus.NewRegistry(), Store: db})
	if err != nil {
		return err
	}
	defer api.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()

	// Pushes of 10 ms worth of lines, built before the clock starts.
	const tick = 10 * time.Millisecond
	perPush := rate / int(time.Second/tick)
	r := rand.New(rand.NewPCG(7, 8))
	var bodies [][]byte
	raw := 0
	base := time.Now()
	for b := range 300 {
		req := &push.PushRequest{}
		for s := range streams {
			st := push.Stream{Labels: fmt.Sprintf(`{app="bench", pod="api-%d"}`, s)}
			for i := range perPush / streams {
				k := b*perPush + s*(perPush/streams) + i
				l := line(r, k)
				raw += len(l)
				st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(k) * 10 * time.Microsecond), Line: l})
			}
			req.Streams = append(req.Streams, st)
		}
		pb, _ := proto.Marshal(req)
		bodies = append(bodies, bytes.Clone(snappy.Encode(nil, pb))) // Encode over-allocates: keep only the bytes
	}
	avgLine := float64(raw) / float64(300*perPush)
	runtime.GC()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	sent, peak := 0, 0
	t := time.NewTicker(tick)
	defer t.Stop()
	for i := 0; time.Since(start) < dur; i++ {
		if float64(sent) >= float64(rate)*time.Since(start).Seconds() {
			<-t.C // ahead of schedule: wait; behind: push at once to catch up
		}
		req := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/x-protobuf")
		w := httptest.NewRecorder()
		api.Push(w, req)
		if w.Code != http.StatusNoContent {
			return fmt.Errorf("push: %d %s", w.Code, w.Body)
		}
		sent += perPush / streams * streams
		if i%100 == 0 {
			peak = max(peak, rssKiB("VmRSS"))
		}
	}
	elapsed := time.Since(start)
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	cancel()
	<-done
	lps := float64(sent) / elapsed.Seconds()
	fmt.Printf("pushed %d lines in %s: %.0f lines/s, %.1f MB/s raw (avg line %.0f B)\n", sent, elapsed.Round(time.Millisecond), lps, lps*avgLine/1e6, avgLine)
	fmt.Printf("cpu %.2fs = %.2f cores; per core: %.0f lines/s, %.1f MB/s\n", cpu.Seconds(), cpu.Seconds()/elapsed.Seconds(), float64(sent)/cpu.Seconds(), float64(sent)*avgLine/1e6/cpu.Seconds())
	fmt.Printf("rss: sampled peak %d MiB, VmHWM %d MiB, at end %d MiB (includes %d MiB of prebuilt request bodies)\n",
		peak/1024, rssKiB("VmHWM")/1024, rssKiB("VmRSS")/1024, totalLen(bodies)>>20)
	streamsN, _, headBytes := db.HeadStats()
	fmt.Printf("head: %d streams, %d MiB; blocks: %d\n", streamsN, headBytes>>20, len(db.Blocks()))
	return nil
}

func totalLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

func rssKiB(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), field+":") {
			var v int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(sc.Text(), field+":")), "%d", &v)
			return v
		}
	}
	return 0
}
