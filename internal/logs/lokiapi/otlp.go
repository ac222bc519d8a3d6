package lokiapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// indexedResourceAttributes are Loki 3's default resource attributes stored
// as index labels; every other attribute becomes structured metadata.
var indexedResourceAttributes = map[string]bool{
	"cloud.availability_zone": true, "cloud.region": true, "container.name": true,
	"deployment.environment": true, "deployment.environment.name": true, "k8s.cluster.name": true,
	"k8s.container.name": true, "k8s.cronjob.name": true, "k8s.daemonset.name": true,
	"k8s.deployment.name": true, "k8s.job.name": true, "k8s.namespace.name": true,
	"k8s.pod.name": true, "k8s.replicaset.name": true, "k8s.statefulset.name": true,
	"service.instance.id": true, "service.name": true, "service.namespace": true,
}

// ConsumeLogs ingests OTLP logs with Loki 3's mapping; the valid records of
// a batch are stored whatever happens to the others. Its error follows the
// OTLP receiver's contract (internal/otlp):
//   - some records stored, some refused: *otlp.PartialSuccessError with the
//     exact number refused and Loki's messages saying why; the sender must
//     not retry (the refused ones would be refused again, or, for the stream
//     limit, would need the limit raised);
//   - none stored, all refused as invalid: wraps otlp.ErrInvalidInput
//     (permanent: 400 / InvalidArgument);
//   - none stored because of a limit that may clear (rate, stream limit) or
//     a store failure: a plain error, which the receiver answers as
//     retryable (503 / Unavailable). A retry is harmless: the store drops
//     records it already holds as exact duplicates.
//
// The error also unwraps to the *PushError with Loki's status.
//
// The tenant is the one the OTLP receiver put in ctx (tenancy.FromContext);
// with logs.auth_enabled a ctx without one is refused as invalid input
// ("no org id"), with it off the records are tenant "fake" whatever ctx says.
func (a *API) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	tenant := tenancy.Default
	if a.auth {
		t, ok := tenancy.FromContext(ctx)
		if !ok {
			return fmt.Errorf("%w: %w", otlp.ErrInvalidInput, tenancy.ErrNoOrgID)
		}
		if err := tenancy.ValidateID(t); err != nil {
			return fmt.Errorf("%w: %w", otlp.ErrInvalidInput, err)
		}
		tenant = t
	}
	return a.otlpResult(a.ingestResult(tenant, otlpToStreams(ld, a.now().UnixNano()), "otlp"))
}

// otlpError carries a refusal as the OTLP receiver expects it while
// keeping the Loki-style *PushError reachable with errors.As.
type otlpError struct {
	kind error // *otlp.PartialSuccessError, otlp.ErrInvalidInput or nil (retry)
	perr *PushError
}

func (e *otlpError) Error() string {
	if e.kind != nil {
		return e.kind.Error() + ": " + e.perr.Msg
	}
	return "logs not stored, retry later: " + e.perr.Msg
}

func (e *otlpError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.perr}
	}
	return []error{e.perr}
}

func (a *API) otlpResult(r ingestResult) error {
	if r.err == nil {
		return nil
	}
	switch {
	case r.refused < r.received && r.err.Status < 500:
		return &otlpError{kind: &otlp.PartialSuccessError{Rejected: int64(r.refused), Reason: r.err.Msg}, perr: r.err}
	case r.retryable > 0 || r.err.Status >= 500:
		return &otlpError{perr: r.err}
	default:
		return &otlpError{kind: otlp.ErrInvalidInput, perr: r.err}
	}
}

// OTLPLogs handles POST /otlp/v1/logs (and /v1/logs on the OTLP port):
// protobuf or JSON bodies, optionally gzip-compressed.
func (a *API) OTLPLogs(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	format := "otlp_protobuf"
	if ct == "application/json" {
		format = "otlp_json"
	}
	code := http.StatusOK
	defer func() { a.m.pushRequests.WithLabelValues(format, strconv.Itoa(code)).Inc() }()
	fail := func(status int, msg string) {
		code = status
		a.m.discardedEntries.WithLabelValues(reasonMalformed).Inc()
		http.Error(w, msg, status)
	}
	tenant, terr := a.tenantOf(r)
	if terr != nil {
		he := terr.(*httpError)
		code = he.status
		http.Error(w, he.msg, he.status)
		return
	}
	if ct != "application/json" && ct != "application/x-protobuf" {
		fail(http.StatusUnsupportedMediaType, "unsupported Content-Type "+strconv.Quote(ct)+": use application/x-protobuf or application/json")
		return
	}
	body, perr := readBody(r, int64(a.limits.Load().MaxPushBodySize))
	if perr != nil {
		fail(perr.Status, perr.Msg)
		return
	}
	req := plogotlp.NewExportRequest()
	var err error
	if format == "otlp_json" {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		fail(http.StatusBadRequest, "malformed OTLP logs request: "+err.Error())
		return
	}
	resp := plogotlp.NewExportResponse()
	var partial *otlp.PartialSuccessError
	if err := a.otlpResult(a.ingestResult(tenant, otlpToStreams(req.Logs(), a.now().UnixNano()), "otlp")); errors.As(err, &partial) {
		// Stored in part: 200 with partial_success, as the OTLP spec says.
		resp.PartialSuccess().SetRejectedLogRecords(partial.Rejected)
		resp.PartialSuccess().SetErrorMessage(partial.Reason)
	} else if err != nil {
		var perr *PushError
		errors.As(err, &perr)
		code = perr.Status
		if code >= 500 {
			code = http.StatusServiceUnavailable // OTLP/HTTP retries 429, 502, 503, 504 only
		}
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, perr.Msg, code)
		return
	}
	var out []byte
	if format == "otlp_json" {
		out, _ = resp.MarshalJSON()
	} else {
		out, _ = resp.MarshalProto()
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

func otlpToStreams(ld plog.Logs, now int64) []pushStream {
	var out []pushStream
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		idx := labels.NewScratchBuilder(8)
		var resMD []labels.Label
		hasService := false
		rl.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			if indexedResourceAttributes[k] {
				if s := v.AsString(); s != "" {
					idx.Add(sanitize(k), s)
					hasService = hasService || k == "service.name"
				}
				return true
			}
			resMD = flattenAttr(resMD, sanitize(k), v)
			return true
		})
		if !hasService {
			idx.Add("service_name", "unknown_service")
		}
		idx.Sort()
		ps := pushStream{lbls: idx.Labels(), parsed: true}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			scopeMD := append([]labels.Label(nil), resMD...)
			if n := sl.Scope().Name(); n != "" {
				scopeMD = append(scopeMD, labels.Label{Name: "scope_name", Value: n})
			}
			if v := sl.Scope().Version(); v != "" {
				scopeMD = append(scopeMD, labels.Label{Name: "scope_version", Value: v})
			}
			sl.Scope().Attributes().Range(func(k string, v pcommon.Value) bool {
				scopeMD = flattenAttr(scopeMD, sanitize(k), v)
				return true
			})
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				md := append([]labels.Label(nil), scopeMD...)
				lr.Attributes().Range(func(k string, v pcommon.Value) bool {
					md = flattenAttr(md, sanitize(k), v)
					return true
				})
				ts := int64(lr.Timestamp())
				if ts == 0 {
					ts = int64(lr.ObservedTimestamp())
				} else if lr.ObservedTimestamp() != 0 {
					md = append(md, labels.Label{Name: "observed_timestamp", Value: strconv.FormatInt(int64(lr.ObservedTimestamp()), 10)})
				}
				if ts == 0 {
					ts = now
				}
				if s := lr.SeverityText(); s != "" {
					md = append(md, labels.Label{Name: "severity_text", Value: s})
				}
				if n := lr.SeverityNumber(); n != 0 {
					md = append(md, labels.Label{Name: "severity_number", Value: strconv.Itoa(int(n))})
				}
				if t := lr.TraceID(); !t.IsEmpty() {
					md = append(md, labels.Label{Name: "trace_id", Value: hex.EncodeToString(t[:])})
				}
				if s := lr.SpanID(); !s.IsEmpty() {
					md = append(md, labels.Label{Name: "span_id", Value: hex.EncodeToString(s[:])})
				}
				if f := lr.Flags(); f != 0 {
					md = append(md, labels.Label{Name: "flags", Value: strconv.Itoa(int(f))})
				}
				e := logstore.Entry{Timestamp: ts, Line: lr.Body().AsString()}
				if len(md) > 0 {
					e.Metadata = dedupLabels(md)
				}
				ps.entries = append(ps.entries, e)
			}
		}
		out = append(out, ps)
	}
	return out
}

// dedupLabels keeps the last value of a repeated name (log over scope over resource).
func dedupLabels(ls []labels.Label) labels.Labels {
	seen := map[string]int{}
	var out []labels.Label
	for _, l := range ls {
		if l.Value == "" {
			continue
		}
		if i, ok := seen[l.Name]; ok {
			out[i] = l
			continue
		}
		seen[l.Name] = len(out)
		out = append(out, l)
	}
	return labels.New(out...)
}

// flattenAttr flattens maps with _ like the LogQL json parser does.
func flattenAttr(dst []labels.Label, name string, v pcommon.Value) []labels.Label {
	if v.Type() == pcommon.ValueTypeMap {
		v.Map().Range(func(k string, sub pcommon.Value) bool {
			dst = flattenAttr(dst, name+"_"+sanitize(k), sub)
			return true
		})
		return dst
	}
	return append(dst, labels.Label{Name: name, Value: v.AsString()})
}

// sanitize turns an attribute name into a label name: every character but
// letters, digits and _ becomes _.
func sanitize(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}
