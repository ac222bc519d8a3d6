package lokiapi

import (
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// PushError is a refused push (or part of one), with the HTTP status Loki
// would answer: 400 for invalid input, 429 for rate and stream limits,
// 413 for oversized bodies, 5xx for store failures. For OTLP gRPC, 400
// maps to InvalidArgument (permanent) and 429 to ResourceExhausted (retry).
type PushError struct {
	Status int
	Msg    string
}

func (e *PushError) Error() string { return e.Msg }

// Loki's discard reasons, used as the metric label.
const (
	reasonInvalidLabels   = "invalid_labels"
	reasonMissingLabels   = "missing_labels"
	reasonTooManyLabels   = "max_label_names_per_series"
	reasonNameTooLong     = "label_name_too_long"
	reasonValueTooLong    = "label_value_too_long"
	reasonDuplicateLabel  = "duplicate_label_names"
	reasonLineTooLong     = "line_too_long"
	reasonTooOld          = "greater_than_max_sample_age"
	reasonTooNew          = "too_far_in_future"
	reasonRateLimited     = "rate_limited"
	reasonStreamLimit     = "stream_limit"
	reasonOutOfOrder      = "too_far_behind"
	reasonMetadataTooBig  = "structured_metadata_too_large"
	reasonMetadataTooMany = "structured_metadata_too_many"
	reasonNoMetadata      = "disallow_structured_metadata"
	reasonMalformed       = "malformed"
	reasonDiskFull        = "disk_full" // ours: Loki has no such reason
)

// Push handles POST /loki/api/v1/push.
func (a *API) Push(w http.ResponseWriter, r *http.Request) {
	format := "protobuf"
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		format = "json"
	}
	perr := a.push(r, format, ct)
	code := http.StatusNoContent
	if perr != nil {
		code = perr.Status
	}
	a.m.pushRequests.WithLabelValues(format, strconv.Itoa(code)).Inc()
	if perr != nil {
		if perr.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, perr.Msg, perr.Status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) push(r *http.Request, format, ct string) *PushError {
	tenant, terr := a.tenantOf(r)
	if terr != nil {
		he := terr.(*httpError)
		return &PushError{Status: he.status, Msg: he.msg}
	}
	lim := a.limits.Load()
	body, perr := readBody(r, int64(lim.MaxPushBodySize))
	if perr != nil {
		a.m.discardedEntries.WithLabelValues(reasonMalformed).Inc()
		return perr
	}
	var streams []pushStream
	var err error
	if format == "json" {
		streams, err = decodePushJSON(body)
	} else {
		if ct != "" && ct != "application/x-protobuf" {
			a.m.discardedEntries.WithLabelValues(reasonMalformed).Inc()
			return &PushError{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("unsupported Content-Type %q: use application/x-protobuf (snappy) or application/json", ct)}
		}
		raw, derr := s2.Decode(nil, body) // s2 reads snappy block format
		if derr != nil {
			a.m.discardedEntries.WithLabelValues(reasonMalformed).Inc()
			return &PushError{Status: http.StatusBadRequest, Msg: "malformed protobuf push: snappy: " + derr.Error()}
		}
		streams, err = decodePushProto(raw)
	}
	if err != nil {
		a.m.discardedEntries.WithLabelValues(reasonMalformed).Inc()
		return &PushError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	return a.ingest(tenant, streams, format)
}

// readBody reads the body with a size cap, undoing Content-Encoding.
func readBody(r *http.Request, maxSize int64) ([]byte, *PushError) {
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, maxSize)
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(rd)
		if err != nil {
			return nil, &PushError{Status: http.StatusBadRequest, Msg: "malformed gzip body: " + err.Error()}
		}
		defer gz.Close()
		rd = io.LimitReader(gz, maxSize+1)
	case "deflate":
		fr := flate.NewReader(rd)
		defer fr.Close()
		rd = io.LimitReader(fr, maxSize+1)
	case "snappy":
		// Body is still the snappy block Loki expects; handled by the decoder.
	default:
		return nil, &PushError{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("unsupported Content-Encoding %q", enc)}
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &PushError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("push body exceeds max_push_body_size (%d bytes)", maxSize)}
		}
		return nil, &PushError{Status: http.StatusBadRequest, Msg: "read push body: " + err.Error()}
	}
	if int64(len(b)) > maxSize {
		return nil, &PushError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("decompressed push body exceeds max_push_body_size (%d bytes)", maxSize)}
	}
	return b, nil
}

// rejections collects refusals; the first few messages go back to the client.
type rejections struct {
	msgs       []string
	n          int
	status     int
	a          *API
	entriesBad int
	retryable  int // of entriesBad, refused by a limit that may clear (429)
}

func (rj *rejections) add(status int, reason string, entries, bytes int, msg string) {
	rj.a.m.discardedEntries.WithLabelValues(reason).Add(float64(entries))
	rj.a.m.discardedBytes.WithLabelValues(reason).Add(float64(bytes))
	rj.n++
	rj.entriesBad += entries
	if len(rj.msgs) < 10 {
		rj.msgs = append(rj.msgs, msg)
	}
	// A limit that may clear (429) wins over invalid input (400), as in
	// Loki, where the ingester's stream-limit error replaces the
	// distributor's validation error: the sender retries, the store drops
	// the entries it already holds as exact duplicates, the invalid ones
	// are refused again, and the limited ones get another chance. Answering
	// 400 would make the sender drop entries that were merely throttled.
	if status == http.StatusTooManyRequests {
		rj.retryable += entries
	}
	if rj.status == 0 || status == http.StatusTooManyRequests {
		rj.status = status
	}
}

func (rj *rejections) err() *PushError {
	if rj.n == 0 {
		return nil
	}
	msg := strings.Join(rj.msgs, "\n")
	if rj.n > len(rj.msgs) {
		msg += fmt.Sprintf("\n(and %d more errors)", rj.n-len(rj.msgs))
	}
	return &PushError{Status: rj.status, Msg: msg}
}

// ingestResult is what became of a push's entries.
type ingestResult struct {
	received  int // entries in the request
	refused   int // entries not stored (exact duplicates of stored ones count as stored)
	retryable int // of refused, refused by a limit that may clear
	err       *PushError
}

func entryBytes(es []logstore.Entry) int {
	n := 0
	for _, e := range es {
		n += len(e.Line)
	}
	return n
}

// cachedLabels are a pushed label string's parsed labels and, once
// computed under the limits lim, the labels with service_name discovered.
type cachedLabels struct {
	raw, disc labels.Labels
	lim       *Limits
}

func (a *API) streamLabels(s *pushStream) (labels.Labels, error) {
	if s.parsed {
		return s.lbls, nil
	}
	a.labelCacheMu.Lock()
	c, ok := a.labelCache[s.labelString]
	a.labelCacheMu.Unlock()
	if ok {
		return c.raw, nil
	}
	ls, err := parseLabelString(s.labelString)
	if err != nil {
		return ls, err
	}
	a.labelCacheMu.Lock()
	if len(a.labelCache) > 100_000 { // bound memory against label churn
		clear(a.labelCache)
	}
	a.labelCache[s.labelString] = cachedLabels{raw: ls}
	a.labelCacheMu.Unlock()
	return ls, nil
}

// discoveredLabels is discoverServiceName(ls, …) for stream s, cached for
// pushed label strings while the limits stay the same (a reload installs
// new *Limits, which recomputes it).
func (a *API) discoveredLabels(s *pushStream, ls labels.Labels, lim *Limits) labels.Labels {
	if s.parsed {
		return discoverServiceName(ls, lim.DiscoverServiceName)
	}
	a.labelCacheMu.Lock()
	c, ok := a.labelCache[s.labelString]
	a.labelCacheMu.Unlock()
	if ok && c.lim == lim {
		return c.disc
	}
	disc := discoverServiceName(ls, lim.DiscoverServiceName)
	if ok {
		a.labelCacheMu.Lock()
		a.labelCache[s.labelString] = cachedLabels{raw: c.raw, disc: disc, lim: lim}
		a.labelCacheMu.Unlock()
	}
	return disc
}

// validateLabels applies Loki's stream label checks.
func validateLabels(ls labels.Labels, lim *Limits) (reason, msg string) {
	if ls.IsEmpty() {
		return reasonMissingLabels, "error at least one label pair is required per stream"
	}
	if n := ls.Len(); n > lim.MaxLabelNamesPerSeries {
		return reasonTooManyLabels, fmt.Sprintf("entry for stream '%s' has %d label names; limit %d", ls, n, lim.MaxLabelNamesPerSeries)
	}
	if dup, ok := ls.HasDuplicateLabelNames(); ok {
		return reasonDuplicateLabel, fmt.Sprintf("stream '%s' has duplicate label name: '%s'", ls, dup)
	}
	ls.Range(func(l labels.Label) {
		if reason != "" {
			return
		}
		switch {
		case len(l.Name) > lim.MaxLabelNameLength:
			reason, msg = reasonNameTooLong, fmt.Sprintf("stream '%s' has label name too long: '%s'", ls, l.Name)
		case len(l.Value) > lim.MaxLabelValueLength:
			reason, msg = reasonValueTooLong, fmt.Sprintf("stream '%s' has label value too long: '%s'", ls, l.Value)
		case !validLabelName(l.Name):
			reason, msg = reasonInvalidLabels, fmt.Sprintf("error parsing labels '%s' with error: invalid label name %q", ls, l.Name)
		case l.Value == "":
			reason, msg = reasonInvalidLabels, fmt.Sprintf("error parsing labels '%s' with error: label %q has an empty value", ls, l.Name)
		}
	})
	return reason, msg
}

func validLabelName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ingest validates streams, applies limits and commits what is valid. The
// valid entries of a push are kept even when others are refused, and the
// answer names every refusal (up to ten messages) with Loki's wording.
func (a *API) ingest(tenant string, streams []pushStream, format string) *PushError {
	return a.ingestResult(tenant, streams, format).err
}

func (a *API) ingestResult(tenant string, streams []pushStream, format string) ingestResult {
	lim := a.limits.Load()
	now := a.now()
	rj := &rejections{a: a}
	total, totalBytes := 0, 0
	var ok []accepted
	received := 0
	result := func(err *PushError) ingestResult {
		return ingestResult{received: received, refused: rj.entriesBad, retryable: rj.retryable, err: err}
	}
	for i := range streams {
		received += len(streams[i].entries)
	}
	for i := range streams {
		s := &streams[i]
		nb := entryBytes(s.entries)
		a.m.receivedEntries.WithLabelValues(format).Add(float64(len(s.entries)))
		a.m.receivedBytes.WithLabelValues(format).Add(float64(nb))
		if len(s.entries) == 0 {
			continue
		}
		ls, err := a.streamLabels(s)
		if err != nil {
			rj.add(http.StatusBadRequest, reasonInvalidLabels, len(s.entries), nb, fmt.Sprintf("error parsing labels '%s' with error: %v", s.labelString, err))
			continue
		}
		if reason, msg := validateLabels(ls, lim); reason != "" {
			rj.add(http.StatusBadRequest, reason, len(s.entries), nb, msg)
			continue
		}
		// Loki 3's discovered labels, after the client's labels and
		// metadata passed the limits (ADR 0017).
		ls = a.discoveredLabels(s, ls, lim)
		fixedLevel := ""
		if lim.DiscoverLogLevels {
			fixedLevel = streamLevel(ls)
		}
		keep := s.entries[:0]
		for _, e := range s.entries {
			if reason, msg := a.validateEntry(&e, ls, lim, now); reason != "" {
				rj.add(http.StatusBadRequest, reason, 1, len(e.Line), msg)
				continue
			}
			if lim.DiscoverLogLevels {
				addDetectedLevel(&e, fixedLevel)
			}
			keep = append(keep, e)
		}
		if len(keep) == 0 {
			continue
		}
		ok = append(ok, accepted{ls, keep})
		total += len(keep)
		totalBytes += entryBytes(keep)
	}
	if totalBytes > 0 && !a.limiters.Load().get(tenant).AllowN(now, totalBytes) {
		rj.add(http.StatusTooManyRequests, reasonRateLimited, total, totalBytes,
			fmt.Sprintf("Ingestion rate limit exceeded for user %s (limit: %d bytes/sec) while attempting to ingest '%d' lines totaling '%d' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
				tenant, int64(lim.IngestionRateMB*(1<<20)), total, totalBytes))
		return result(rj.err())
	}
	if len(ok) == 0 {
		return result(rj.err())
	}
	st, err := a.storeFor(tenant, true)
	if err != nil {
		rj.retryable += total
		rj.entriesBad += total
		a.logger.Error("open tenant store", "tenant", tenant, "err", err)
		return result(&PushError{Status: http.StatusServiceUnavailable, Msg: "store push: " + err.Error()})
	}
	if st == nil { // forward-only: the forwarder persists before it returns
		return a.forwardResult(tenant, ok, total, rj, result)
	}
	app := st.Appender()
	for _, s := range ok {
		for _, e := range s.es {
			app.Append(s.ls, e)
		}
	}
	refused, err := app.Commit()
	if err != nil {
		// Nothing of this commit is acknowledged; what may have reached the
		// head is dropped as an exact duplicate when the sender retries.
		rj.retryable += total
		rj.entriesBad += total
		if errors.Is(err, logstore.ErrDiskFull) {
			// Retryable for every Loki client (5xx) and for OTLP (503); the
			// store takes writes again by itself once space returns.
			a.m.discardedEntries.WithLabelValues(reasonDiskFull).Add(float64(total))
			return result(&PushError{Status: http.StatusServiceUnavailable, Msg: "store push: " + err.Error()})
		}
		a.logger.Error("commit push", "err", err)
		return result(&PushError{Status: http.StatusInternalServerError, Msg: "store push: " + err.Error()})
	}
	if a.forward != nil {
		if r := a.forwardResult(tenant, ok, total, rj, result); r.err != nil && r.err.Status == http.StatusServiceUnavailable {
			return r
		}
	}
	// Tails see what was stored: not the refused entries, nor a retry's
	// lines the store already held.
	for _, s := range app.Stored() {
		a.notifyTails(tenant, s.Labels, s.Entries)
	}
	for _, rf := range refused {
		switch {
		case errors.Is(rf.Err, logstore.ErrTooManyStreams):
			rj.add(http.StatusTooManyRequests, reasonStreamLimit, rf.Dropped, len(rf.Entry.Line)*rf.Dropped,
				fmt.Sprintf("Maximum active stream limit exceeded when trying to create stream %s, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '%s', total ignored: %d out of %d",
					rf.Labels, tenant, rf.Dropped, rf.Total))
		case errors.Is(rf.Err, logstore.ErrOutOfOrder):
			rj.add(http.StatusBadRequest, reasonOutOfOrder, rf.Dropped, len(rf.Entry.Line)*rf.Dropped,
				fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry too far behind, oldest acceptable timestamp is: %s',\nuser '%s', total ignored: %d out of %d for stream: %s",
					time.Unix(0, rf.Entry.Timestamp).UTC(), time.Unix(0, rf.Floor).UTC().Format(time.RFC3339), tenant, rf.Dropped, rf.Total, rf.Labels))
		default:
			rj.add(http.StatusBadRequest, "other", rf.Dropped, 0, rf.Err.Error())
		}
	}
	return result(rj.err())
}

// forwardResult hands accepted streams to the forwarder; a failure answers
// 503 so the sender retries.
func (a *API) forwardResult(tenant string, ok []accepted, total int, rj *rejections, result func(*PushError) ingestResult) ingestResult {
	streams := make([]AcceptedStream, len(ok))
	for i, s := range ok {
		streams[i] = AcceptedStream{Tenant: tenant, Labels: s.ls, Entries: s.es}
	}
	if err := a.forward(streams); err != nil {
		rj.retryable += total
		rj.entriesBad += total
		a.logger.Error("forward push", "err", err)
		return result(&PushError{Status: http.StatusServiceUnavailable, Msg: "forward push: " + err.Error()})
	}
	return result(rj.err())
}

func (a *API) validateEntry(e *logstore.Entry, ls labels.Labels, lim *Limits, now time.Time) (reason, msg string) {
	ts := time.Unix(0, e.Timestamp)
	if lim.RejectOldSamples && ts.Before(now.Add(-time.Duration(lim.RejectOldSamplesMaxAge))) {
		return reasonTooOld, fmt.Sprintf("entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s",
			ls, ts.UTC().Format(time.RFC3339), now.Add(-time.Duration(lim.RejectOldSamplesMaxAge)).UTC().Format(time.RFC3339))
	}
	if ts.After(now.Add(time.Duration(lim.CreationGracePeriod))) {
		return reasonTooNew, fmt.Sprintf("entry for stream '%s' has timestamp too new: %s", ls, ts.UTC().Format(time.RFC3339))
	}
	if lim.MaxLineSize > 0 && len(e.Line) > int(lim.MaxLineSize) {
		if lim.MaxLineSizeTruncate {
			e.Line = e.Line[:lim.MaxLineSize]
		} else {
			return reasonLineTooLong, fmt.Sprintf("Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes", lim.MaxLineSize, ls, len(e.Line))
		}
	}
	if n := e.Metadata.Len(); n > 0 {
		if !lim.AllowStructuredMetadata {
			return reasonNoMetadata, fmt.Sprintf("stream '%s' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it.", ls)
		}
		if lim.MaxStructuredMetadataEntriesCount > 0 && n > lim.MaxStructuredMetadataEntriesCount {
			return reasonMetadataTooMany, fmt.Sprintf("stream '%s' has too many structured metadata labels: '%d', limit: '%d'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.", ls, n, lim.MaxStructuredMetadataEntriesCount)
		}
		size := 0
		e.Metadata.Range(func(l labels.Label) { size += len(l.Name) + len(l.Value) })
		if lim.MaxStructuredMetadataSize > 0 && size > int(lim.MaxStructuredMetadataSize) {
			return reasonMetadataTooBig, fmt.Sprintf("stream '%s' has structured metadata too large: '%d' bytes, limit: '%d' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.", ls, size, lim.MaxStructuredMetadataSize)
		}
	}
	return "", ""
}

type accepted struct {
	ls labels.Labels
	es []logstore.Entry
}
