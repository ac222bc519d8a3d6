package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/version"
)

// client batches entries for one Loki push endpoint and sends them one
// batch at a time, in order, so its acknowledgements arrive in file order.
type client struct {
	dryRun     io.Writer // -dry-run: print batches here instead of pushing
	idx        int
	maxStreams int
	cfg        ClientConfig
	host       string
	http       *http.Client
	in         chan Entry
	m          *agentMetrics
	logger     *slog.Logger
	sleep      func(ctx context.Context, d time.Duration) bool
}

func newClient(idx int, cfg ClientConfig, m *agentMetrics, logger *slog.Logger) (*client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("client %d: %w", idx, err)
	}
	hc, err := commoncfg.NewClientFromConfig(cfg.HTTPClientConfig, "promtail", commoncfg.WithUserAgent("nxwatcher-agent/"+version.Version))
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", cfg.URL, err)
	}
	hc.Timeout = time.Duration(cfg.Timeout)
	return &client{
		idx: idx, cfg: cfg, host: u.Host, http: hc,
		in: make(chan Entry, 1024), m: m,
		logger: logger.With("client", u.Host),
		sleep:  sleepCtx,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// batch groups entries by tenant and stream.
type batch struct {
	byPtr   map[uintptr]cachedLabels
	streams map[string]*batchStream // key: tenant + "\xff" + labels
	bytes   int
	entries int
	acks    []*ackRef
	first   time.Time
}

type batchStream struct {
	tenant string
	labels string
	s      push.Stream
}

func newBatch() *batch { return &batch{streams: map[string]*batchStream{}} }

// add puts e in the batch; false when e would be a stream beyond maxStreams
// (0: no limit) and was left out.
func (b *batch) add(e Entry, ext model.LabelSet, cache map[model.Fingerprint]cachedLabels, maxStreams int) bool {
	tenant := string(e.Labels[tenantLabel])
	var ls string
	if e.shared && e.Labels != nil {
		// A target's (or a stage's cached) set that nobody writes to: its
		// address identifies it, no hashing needed.
		if b.byPtr == nil {
			b.byPtr = map[uintptr]cachedLabels{}
		}
		ptr := uintptr(reflect.ValueOf(map[model.LabelName]model.LabelValue(e.Labels)).UnsafePointer())
		if c, ok := b.byPtr[ptr]; ok {
			ls = c.str
		} else {
			ls = streamLabels(e.Labels, ext, cache)
			b.byPtr[ptr] = cachedLabels{set: e.Labels, str: ls} // holds the map: the address is not reused
		}
	} else {
		ls = streamLabels(e.Labels, ext, cache)
	}
	key := ls
	if tenant != "" {
		key = tenant + "\xff" + ls
	}
	st := b.streams[key]
	if st == nil && maxStreams > 0 && len(b.streams) >= maxStreams {
		return false
	}
	if st == nil {
		st = &batchStream{tenant: tenant, labels: ls, s: push.Stream{Labels: ls}}
		b.streams[key] = st
	}
	pe := push.Entry{Timestamp: e.Time, Line: e.Line}
	for n, v := range e.Metadata {
		pe.StructuredMetadata = append(pe.StructuredMetadata, push.LabelAdapter{Name: string(n), Value: string(v)})
	}
	st.s.Entries = append(st.s.Entries, pe)
	if b.entries == 0 {
		b.first = time.Now()
	}
	b.entries++
	b.bytes += len(e.Line)
	if e.ack != nil {
		b.acks = append(b.acks, e.ack)
	}
	return true
}

type cachedLabels struct {
	set model.LabelSet
	str string
}

// streamLabels is the stream's label string: the entry's labels without
// reserved ones (__…), with the client's external labels added.
func streamLabels(ls, ext model.LabelSet, cache map[model.Fingerprint]cachedLabels) string {
	fp := ls.FastFingerprint()
	if c, ok := cache[fp]; ok && c.set.Equal(ls) {
		return c.str
	}
	out := make(model.LabelSet, len(ls)+len(ext))
	for k, v := range ext {
		out[k] = v
	}
	for k, v := range ls {
		if strings.HasPrefix(string(k), "__") {
			continue
		}
		out[k] = v
	}
	str := out.String()
	if len(cache) > 10000 {
		clear(cache)
	}
	cache[fp] = cachedLabels{set: ls, str: str}
	return str
}

// run batches and sends until in is closed, then sends what is left.
func (c *client) run(ctx context.Context) {
	b := newBatch()
	cache := map[model.Fingerprint]cachedLabels{}
	wait := time.Duration(c.cfg.BatchWait)
	tick := time.NewTicker(max(wait/2, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case e, ok := <-c.in:
			if !ok {
				if b.entries > 0 {
					c.send(ctx, b)
				}
				return
			}
			if b.entries > 0 && b.bytes+len(e.Line) > c.cfg.BatchSize {
				c.send(ctx, b)
				b = newBatch()
			}
			if !b.add(e, c.cfg.ExternalLabels, cache, c.maxStreams) {
				// limits_config.max_streams: a stream beyond the limit is
				// dropped and counted, as Promtail does.
				c.m.droppedEntries.WithLabelValues(c.host, "stream_limited").Inc()
				c.m.droppedBytes.WithLabelValues(c.host, "stream_limited").Add(float64(len(e.Line)))
				if e.ack != nil {
					e.ack.done(c.idx)
				}
			}
		case <-tick.C:
			if b.entries > 0 && time.Since(b.first) >= wait {
				c.send(ctx, b)
				b = newBatch()
			}
		}
	}
}

// send pushes a batch (one request per tenant), retrying on 429, 5xx and
// network errors with backoff; other 4xx drop the batch. Every entry is
// acknowledged afterwards, sent or dropped, so positions move on.
func (c *client) send(ctx context.Context, b *batch) {
	if c.dryRun != nil {
		c.print(b)
		return
	}
	byTenant := map[string][]push.Stream{}
	for _, st := range b.streams {
		byTenant[st.tenant] = append(byTenant[st.tenant], st.s)
	}
	for tenant, streams := range byTenant {
		sort.Slice(streams, func(i, j int) bool { return streams[i].Labels < streams[j].Labels })
		n := 0
		nb := 0
		for _, s := range streams {
			n += len(s.Entries)
			for _, e := range s.Entries {
				nb += len(e.Line)
			}
		}
		switch c.sendRequest(ctx, tenant, streams) {
		case pushSent:
			c.m.sentEntries.WithLabelValues(c.host).Add(float64(n))
			c.m.sentBytes.WithLabelValues(c.host).Add(float64(nb))
		case pushAborted:
			// Shutting down: leave the entries unacknowledged so their
			// lines are read again after the restart (at least once).
			return
		default:
			c.m.droppedEntries.WithLabelValues(c.host, "push_failed").Add(float64(n))
			c.m.droppedBytes.WithLabelValues(c.host, "push_failed").Add(float64(nb))
		}
	}
	for _, a := range b.acks {
		a.done(c.idx)
	}
}

type pushResult int

const (
	pushSent pushResult = iota
	pushDropped
	pushAborted
)

// sendRequest says whether the server accepted the streams, refused them
// for good, or the agent stopped before either.
func (c *client) sendRequest(ctx context.Context, tenant string, streams []push.Stream) pushResult {
	req := push.PushRequest{Streams: streams}
	raw, err := req.Marshal()
	if err != nil {
		c.logger.Error("encode push request", "err", err)
		return pushDropped
	}
	body := snappy.Encode(nil, raw)
	c.m.encodedBytes.WithLabelValues(c.host).Add(float64(len(body)))
	if tenant == "" {
		tenant = c.cfg.TenantID
	}
	backoff := time.Duration(c.cfg.Backoff.MinPeriod)
	for attempt := 0; ; attempt++ {
		status, msg, err := c.post(ctx, tenant, body)
		retry := false
		switch {
		case err != nil:
			retry = true
			c.logger.Warn("push failed", "err", err, "attempt", attempt+1)
		case status/100 == 2:
			return pushSent
		case status == http.StatusTooManyRequests:
			if c.cfg.DropRateLimitedBatches {
				c.logger.Warn("push rate limited; batch dropped (drop_rate_limited_batches)", "msg", msg)
				return pushDropped
			}
			retry = true
			c.logger.Warn("push rate limited", "msg", msg, "attempt", attempt+1)
		case status/100 == 5:
			retry = true
			c.logger.Warn("push failed", "status", status, "msg", msg, "attempt", attempt+1)
		default:
			c.logger.Error("push refused; batch dropped", "status", status, "msg", msg)
			return pushDropped
		}
		if ctx.Err() != nil {
			return pushAborted
		}
		if !retry {
			return pushDropped
		}
		if attempt+1 >= c.cfg.Backoff.MaxRetries {
			c.logger.Error("push failed after retries; batch dropped", "attempts", attempt+1)
			return pushDropped
		}
		c.m.retries.WithLabelValues(c.host).Inc()
		if !c.sleep(ctx, backoff) {
			return pushAborted
		}
		backoff = min(2*backoff, time.Duration(c.cfg.Backoff.MaxPeriod))
	}
}

func (c *client) post(ctx context.Context, tenant string, body []byte) (int, string, error) {
	tctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.m.requestDuration.WithLabelValues(c.host, "network").Observe(time.Since(start).Seconds())
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	c.m.requestDuration.WithLabelValues(c.host, strconv.Itoa(resp.StatusCode)).Observe(time.Since(start).Seconds())
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// print writes a batch as Promtail's -dry-run does: time, labels, line.
func (c *client) print(b *batch) {
	keys := make([]string, 0, len(b.streams))
	for k := range b.streams {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	for _, k := range keys {
		st := b.streams[k]
		for _, e := range st.s.Entries {
			fmt.Fprintf(&buf, "%s\t%s\t%s\n", e.Timestamp.Format(time.RFC3339Nano), st.labels, e.Line)
		}
	}
	c.dryRun.Write(buf.Bytes())
	c.m.sentEntries.WithLabelValues(c.host).Add(float64(b.entries))
	for _, a := range b.acks {
		a.done(c.idx)
	}
}
