package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// The scrape load is bench/metrics's: one listener, targets × perTarget
// counter series, pre-rendered text exposition in a few variants so values
// change between scrapes.

// targetServer is the synthetic scrape fleet: one HTTP listener on loopback,
// target i at /t/i, each exposing perTarget series in the text format.
// Bodies are rendered up front in `variants` versions with different values,
// served in turn, so the bench process spends almost no CPU per scrape and
// values still change between scrapes.
type targetServer struct {
	ln     net.Listener
	srv    *http.Server
	bodies [][][]byte // [target][variant]
	next   []atomic.Uint32
	served atomic.Int64
}

const scrapeVariants = 4

func startTargets(targets, perTarget int) (*targetServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ts := &targetServer{ln: ln, bodies: make([][][]byte, targets), next: make([]atomic.Uint32, targets)}
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

func (ts *targetServer) addr() string { return ts.ln.Addr().String() }

func (ts *targetServer) close() {
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
