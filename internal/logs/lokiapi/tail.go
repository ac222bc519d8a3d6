package lokiapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

const maxTailDelay = 5 * time.Second

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 16 << 10,
	CheckOrigin:     func(*http.Request) bool { return true }, // Grafana proxies from its own origin
}

type tailResponse struct {
	Streams        []tailStream   `json:"streams"`
	DroppedEntries []droppedEntry `json:"dropped_entries"`
}

type tailStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

type droppedEntry struct {
	Labels    map[string]string `json:"labels"`
	Timestamp string            `json:"timestamp"`
}

type tailBatch struct {
	lbls    labels.Labels
	entries []logstore.Entry
}

// tailer receives pushed entries of matching streams; like Loki, a tail
// shows what arrives, whatever its timestamp.
type tailer struct {
	tenant  string
	pipe    *logql.Pipeline
	mu      sync.Mutex // Matches is called from ingest goroutines
	ch      chan tailBatch
	dropped atomic.Int64
	last    atomic.Pointer[droppedEntry]
}

type tailSet struct {
	mu sync.RWMutex
	m  map[*tailer]struct{}
}

// notifyTails hands committed entries to open tails without blocking ingest.
func (a *API) notifyTails(tenant string, ls labels.Labels, es []logstore.Entry) {
	a.tails.mu.RLock()
	defer a.tails.mu.RUnlock()
	for t := range a.tails.m {
		if t.tenant != tenant {
			continue
		}
		t.mu.Lock()
		match := t.pipe.Matches(ls)
		t.mu.Unlock()
		if !match {
			continue
		}
		select {
		case t.ch <- tailBatch{ls, es}:
		default:
			t.dropped.Add(int64(len(es)))
			t.last.Store(&droppedEntry{Labels: ls.Map(), Timestamp: strconv.FormatInt(es[len(es)-1].Timestamp, 10)})
		}
	}
}

// Tail handles GET /loki/api/v1/tail as a WebSocket: query, delay_for
// (seconds, at most 5), limit and start, as in Loki. It first sends up to
// limit entries since start, then every matching entry pushed afterwards.
func (a *API) Tail(w http.ResponseWriter, r *http.Request) {
	code := http.StatusSwitchingProtocols
	defer func() { a.m.queries.WithLabelValues("tail", strconv.Itoa(code)).Inc() }()
	fail := func(msg string) {
		code = http.StatusBadRequest
		http.Error(w, msg, code)
	}
	tenant, err := a.tenantOf(r)
	if err == nil {
		var st Store
		if st, err = a.readStore(tenant); err == nil {
			a.tail(w, r, tenant, st, &code, fail)
			return
		}
	}
	var he *httpError
	if errors.As(err, &he) {
		code = he.status
		http.Error(w, he.msg, code)
		return
	}
	code = http.StatusInternalServerError
	http.Error(w, err.Error(), code)
}

func (a *API) tail(w http.ResponseWriter, r *http.Request, tenant string, st Store, code *int, fail func(string)) {
	if err := r.ParseForm(); err != nil {
		fail(err.Error())
		return
	}
	sel, err := logql.ParseLogSelector(r.Form.Get("query"))
	if err != nil {
		fail(err.Error())
		return
	}
	var delay time.Duration
	if s := r.Form.Get("delay_for"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || time.Duration(n)*time.Second > maxTailDelay {
			fail("delay_for must be an integer number of seconds between 0 and 5")
			return
		}
		delay = time.Duration(n) * time.Second
	}
	limit, _, err := a.limitAndDirection(r)
	if err != nil {
		fail(err.Error())
		return
	}
	start, err := parseTime(r.Form.Get("start"), a.now().Add(-time.Hour))
	if err != nil {
		fail(err.Error())
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		*code = http.StatusBadRequest
		return // the upgrader has answered
	}
	a.tailWG.Add(1)
	defer a.tailWG.Done()
	a.m.tails.Inc()
	defer a.m.tails.Dec()
	defer conn.Close()

	t := &tailer{tenant: tenant, pipe: logql.NewPipeline(sel), ch: make(chan tailBatch, 1024)}
	a.tails.mu.Lock()
	a.tails.m[t] = struct{}{}
	a.tails.mu.Unlock()
	defer func() {
		a.tails.mu.Lock()
		delete(a.tails.m, t)
		a.tails.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // a read error means the client went away
		defer cancel()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()

	// Backfill what is already stored.
	res, err := a.engine.Load().Eval(ctx, st, sel, logql.Params{Start: start, End: a.now(), Limit: limit})
	if err != nil {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseInternalServerErr, err.Error()), time.Now().Add(time.Second))
		return
	}
	if streams := res.Value.(logql.Streams); len(streams) > 0 {
		resp := tailResponse{}
		for _, s := range streams {
			ts := tailStream{Stream: s.Labels.Map()}
			for _, e := range s.Entries {
				ts.Values = append(ts.Values, [2]string{strconv.FormatInt(e.Timestamp, 10), e.Line})
			}
			resp.Streams = append(resp.Streams, ts)
		}
		if err := conn.WriteJSON(resp); err != nil {
			return
		}
	}
	for {
		var batches []tailBatch
		select {
		case <-ctx.Done():
			return
		case <-a.closing:
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			return
		case b := <-t.ch:
			batches = append(batches, b)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
	drain:
		for len(batches) < 256 {
			select {
			case b := <-t.ch:
				batches = append(batches, b)
			default:
				break drain
			}
		}
		if err := conn.WriteJSON(a.tailFrame(t, batches)); err != nil {
			return
		}
	}
}

func (a *API) tailFrame(t *tailer, batches []tailBatch) tailResponse {
	byKey := map[string]int{}
	var resp tailResponse
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range batches {
		for _, e := range b.entries {
			line, out, ok := t.pipe.Process(b.lbls, e)
			if !ok {
				continue
			}
			k := out.String()
			i, seen := byKey[k]
			if !seen {
				i = len(resp.Streams)
				byKey[k] = i
				resp.Streams = append(resp.Streams, tailStream{Stream: out.Map()})
			}
			resp.Streams[i].Values = append(resp.Streams[i].Values, [2]string{strconv.FormatInt(e.Timestamp, 10), line})
		}
	}
	if n := t.dropped.Swap(0); n > 0 {
		if d := t.last.Load(); d != nil {
			resp.DroppedEntries = []droppedEntry{*d}
		}
		a.m.discardedEntries.WithLabelValues("tail_dropped").Add(float64(n))
	}
	return resp
}
