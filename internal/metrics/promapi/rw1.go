package promapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
)

// rw1Handler is POST /api/v1/write. Remote write 1.0 requests of plain
// samples (what Prometheus, Grafana Agent/Alloy and vmagent send) take a
// fast path: a decoder that leaves label strings in the request bytes and a
// cache from the hash of a series' label bytes to its labels and series
// reference, so only new series build labels (ADR 0008). Everything else —
// remote write 2.0, exemplars, histograms, a body that does not decode, a
// wrong content type or encoding — goes to Prometheus's own handler,
// unchanged. The fast path answers as upstream does, status code and
// message, and feeds the same counters
// (prometheus_api_remote_write_invalid_labels_samples_total,
// prometheus_api_remote_write_without_metadata_appended_samples_total and
// the TSDB's own).
type rw1Handler struct {
	logger     *slog.Logger
	appendable storage.AppendableV2
	upstream   http.Handler

	invalidLabels   prometheus.Counter
	withoutMetadata prometheus.Counter

	cache *seriesCache
	bufs  sync.Pool    // *rw1Buffers
	fast  atomic.Int64 // requests answered by the fast path (tests)
}

type rw1Buffers struct {
	compressed, decoded []byte
	req                 rw1Request
	scratch             labels.ScratchBuilder
	fresh               []freshSeries
}

type freshSeries struct {
	hash uint64
	e    cacheEntry
}

// Limits and defaults of client_golang's remote write handler.
const (
	maxDecodedSize      = 32 * 1024 * 1024
	appProtoContentType = "application/x-protobuf"
	maxAheadTime        = 10 * time.Minute
	// Larger buffers are not kept for the next request.
	maxPooledBuffer = 4 << 20
)

// newRW1Handler builds Prometheus's write handler (registering its counters
// on reg) and the fast path in front of it.
func newRW1Handler(logger *slog.Logger, reg prometheus.Registerer, app storage.AppendableV2, msgs remoteapi.MessageTypes) *rw1Handler {
	cap := &capturingRegisterer{Registerer: reg, got: map[string]prometheus.Collector{}}
	if reg == nil {
		cap.Registerer = prometheus.NewRegistry()
	}
	up := remote.NewWriteHandler(logger, cap, app, msgs, false, false)
	h := &rw1Handler{
		logger: logger, appendable: app, upstream: up,
		invalidLabels:   cap.counter("prometheus_api_remote_write_invalid_labels_samples_total"),
		withoutMetadata: cap.counter("prometheus_api_remote_write_without_metadata_appended_samples_total"),
		cache:           newSeriesCache(time.Now),
	}
	h.bufs.New = func() any { return &rw1Buffers{scratch: labels.NewScratchBuilder(8)} }
	return h
}

// capturingRegisterer keeps the collectors upstream's handler registers, so
// the fast path counts into the very same series.
type capturingRegisterer struct {
	prometheus.Registerer
	got map[string]prometheus.Collector
}

func (c *capturingRegisterer) Register(col prometheus.Collector) error {
	c.keep(col)
	return c.Registerer.Register(col)
}

func (c *capturingRegisterer) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		c.keep(col)
	}
	c.Registerer.MustRegister(cols...)
}

func (c *capturingRegisterer) keep(col prometheus.Collector) {
	ch := make(chan *prometheus.Desc, 4)
	col.Describe(ch)
	close(ch)
	for d := range ch {
		s := d.String()
		if i := strings.Index(s, `fqName: "`); i >= 0 {
			name := s[i+len(`fqName: "`):]
			c.got[name[:strings.IndexByte(name, '"')]] = col
		}
	}
}

func (c *capturingRegisterer) counter(name string) prometheus.Counter {
	if col, ok := c.got[name].(prometheus.Counter); ok {
		return col
	}
	// Upstream renamed or dropped it: count somewhere harmless rather
	// than fail; TestFastWriteCountsLikeUpstream catches it.
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "unregistered"})
}

func (h *rw1Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.fastEligible(r) {
		h.upstream.ServeHTTP(w, r)
		return
	}
	bufs := h.bufs.Get().(*rw1Buffers)
	defer h.putBuffers(bufs)

	// Read the body as upstream's snappy middleware does; on anything it
	// would answer with an error, give it the bytes read so far (and the
	// read error) and let it answer.
	compressed, readErr := readAllInto(bufs.compressed[:0], io.LimitReader(r.Body, maxDecodedSize+1))
	bufs.compressed = compressed
	replay := func() {
		var body io.Reader = bytes.NewReader(compressed)
		if readErr != nil {
			body = io.MultiReader(body, errReader{readErr})
		}
		r.Body = io.NopCloser(body)
		h.upstream.ServeHTTP(w, r)
	}
	if readErr != nil || len(compressed) > maxDecodedSize {
		replay()
		return
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil || n > maxDecodedSize {
		replay()
		return
	}
	if cap(bufs.decoded) < n {
		bufs.decoded = make([]byte, n)
	}
	decoded, err := snappy.Decode(bufs.decoded[:n], compressed)
	if err != nil || !bufs.req.decode(decoded) {
		replay()
		return
	}
	if err := h.write(r, bufs); err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, storage.ErrOutOfOrderSample), errors.Is(err, storage.ErrOutOfBounds),
			errors.Is(err, storage.ErrDuplicateSampleForTimestamp), errors.Is(err, storage.ErrTooOldSample):
			status = http.StatusBadRequest
		}
		if status/100 == 5 {
			h.logger.Error("Error while storing the remote write request", "err", err)
		}
		http.Error(w, err.Error(), status)
		return
	}
	h.fast.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// fastEligible: a POST of a 1.0 message, snappy or unencoded.
func (h *rw1Handler) fastEligible(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = appProtoContentType
	}
	if ct != appProtoContentType {
		msg, err := remoteapi.ParseProtoMsg(ct)
		if err != nil || msg != remoteapi.WriteV1MessageType {
			return false
		}
	}
	enc := r.Header.Get("Content-Encoding")
	return enc == "" || enc == "snappy"
}

func (h *rw1Handler) putBuffers(b *rw1Buffers) {
	if cap(b.compressed) > maxPooledBuffer {
		b.compressed = nil
	}
	if cap(b.decoded) > maxPooledBuffer {
		b.decoded = nil
	}
	if cap(b.req.pairs) > 1<<16 || cap(b.req.samples) > 1<<16 {
		b.req = rw1Request{}
	}
	b.req.reset() // no views into the request bytes survive it
	clear(b.fresh[:cap(b.fresh)])
	b.fresh = b.fresh[:0]
	h.bufs.Put(b)
}

// write appends the decoded request as upstream's 1.0 write does: same
// label checks, same appender calls in the same order, same errors.
func (h *rw1Handler) write(r *http.Request, b *rw1Buffers) (err error) {
	samplesWithInvalidLabels := 0
	samplesAppended := 0
	app := h.appendable.AppenderV2(r.Context())
	defer func() {
		if err != nil {
			_ = app.Rollback()
			return
		}
		err = app.Commit()
		if err != nil {
			h.withoutMetadata.Add(float64(samplesAppended))
			return
		}
		for _, f := range b.fresh {
			h.cache.put(f.hash, f.e)
		}
	}()
	if _, ok := app.(storage.ExemplarAppenderV2); !ok {
		return fmt.Errorf("remote write 1.0 receiver requires a storage.ExemplarAppenderV2, got %T", app)
	}
	maxTime := timestamp.FromTime(time.Now().Add(maxAheadTime))
	h.cache.tick()
	q := &b.req
	for _, s := range q.series {
		pairs := q.pairs[s.pairsFrom:s.pairsTo]
		e, hit := h.cache.get(s.hash, pairs)
		ls, ref := e.ls, e.ref
		if !hit {
			ls = buildLabels(&b.scratch, pairs)
			if !ls.Has(labels.MetricName) || !ls.IsValid(model.UTF8Validation) {
				h.logger.Warn("Invalid metric names or labels", "got", ls.String())
				samplesWithInvalidLabels++
				continue
			} else if duplicateLabel, hasDuplicate := ls.HasDuplicateLabelNames(); hasDuplicate {
				h.logger.Warn("Invalid labels for series.", "labels", ls.String(), "duplicated_label", duplicateLabel)
				samplesWithInvalidLabels++
				continue
			}
		}
		for _, smp := range q.samples[s.samplesFrom : s.samplesFrom+s.samples] {
			if smp.t > maxTime {
				err = fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)
			} else {
				ref, err = app.Append(ref, ls, 0, smp.t, smp.v, nil, nil, storage.AOptions{})
			}
			if err != nil && !errors.Is(err, (*storage.AppendPartialError)(nil)) {
				if errors.Is(err, storage.ErrOutOfOrderSample) ||
					errors.Is(err, storage.ErrOutOfBounds) ||
					errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
					errors.Is(err, storage.ErrTooOldSample) {
					h.logger.Error("Out of order sample from remote write", "err", err.Error(), "series", ls.String(), "timestamp", smp.t)
				}
				return err
			}
			err = nil
		}
		samplesAppended += int(s.samples)
		if !hit && ref != 0 {
			b.fresh = append(b.fresh, freshSeries{hash: s.hash, e: cacheEntry{ls: ls, ref: ref}})
		}
	}
	if samplesWithInvalidLabels > 0 {
		h.invalidLabels.Add(float64(samplesWithInvalidLabels))
	}
	return nil
}

// buildLabels is prompb's ToLabels over the request's views: the labels
// sorted by name, in storage of their own.
func buildLabels(b *labels.ScratchBuilder, pairs []rw1Pair) labels.Labels {
	b.Reset()
	for _, p := range pairs {
		if labelsShareStrings {
			b.Add(strings.Clone(p.name), strings.Clone(p.value))
		} else {
			b.Add(p.name, p.value)
		}
	}
	b.Sort()
	return b.Labels()
}

// readAllInto is io.ReadAll appending to buf.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return buf, err
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
