package generator

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Connection types, the connection_type label ("" for a plain
// client/server request, which leaves the label out).
const (
	connDirect      = ""
	connMessaging   = "messaging_system"
	connDatabase    = "database"
	connVirtualNode = "virtual_node"
)

// userClient is the client of a root server span: a request from outside
// any instrumented service.
const userClient = "user"

// edgeKey names a request: the client (or producer) span's ID, which is
// the server (or consumer) span's parent ID.
type edgeKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

// side is what one span contributes to an edge.
type side struct {
	present bool
	// measured is false for a side made up for a virtual node or the
	// "user" client: it has no duration to observe.
	measured bool
	service  string
	seconds  float64
	failed   bool
	dims     []string
	peer     string // client only: first peer attribute found
	database bool   // client only: the span carries db.* attributes
}

type edge struct {
	client, server side
	connType       string
	expires        time.Time
}

// serviceGraphs is Tempo's service-graph processor: it pairs client and
// server spans (or producer and consumer spans) of one request across
// services, waiting up to cfg.Wait for the second one.
type serviceGraphs struct {
	cfg       ServiceGraphsConfig
	pending   map[edgeKey]*edge
	requests  *family
	failed    *family
	serverSec *family
	clientSec *family
	unpaired  *family
	dropped   *family
	values    []string // scratch, guarded by the registry lock
}

func newServiceGraphs(cfg ServiceGraphsConfig, reg *registry) *serviceGraphs {
	names := []string{"client", "server", "connection_type"}
	dims := dimensionLabels(cfg.Dimensions, names)
	if cfg.EnableClientServerPrefix {
		dims = nil
		for _, d := range cfg.Dimensions {
			dims = append(dims, "client_"+sanitizeLabelName(d))
		}
		for _, d := range cfg.Dimensions {
			dims = append(dims, "server_"+sanitizeLabelName(d))
		}
	}
	edgeLabels := append(names, dims...)
	return &serviceGraphs{
		cfg:       cfg,
		pending:   map[edgeKey]*edge{},
		requests:  reg.counter("traces_service_graph_request_total", edgeLabels...),
		failed:    reg.counter("traces_service_graph_request_failed_total", edgeLabels...),
		serverSec: reg.histogram("traces_service_graph_request_server_seconds", cfg.HistogramBuckets, edgeLabels...),
		clientSec: reg.histogram("traces_service_graph_request_client_seconds", cfg.HistogramBuckets, edgeLabels...),
		unpaired:  reg.counter("traces_service_graph_unpaired_spans_total", names...),
		dropped:   reg.counter("traces_service_graph_dropped_spans_total", names...),
	}
}

func (g *serviceGraphs) record(span *spanView, svc string, now time.Time) {
	var key edgeKey
	var connType string
	isClient := false
	switch span.kind {
	case ptrace.SpanKindClient:
		key, isClient = edgeKey{span.traceID, span.spanID}, true
	case ptrace.SpanKindProducer:
		key, isClient, connType = edgeKey{span.traceID, span.spanID}, true, connMessaging
	case ptrace.SpanKindServer:
		key = edgeKey{span.traceID, span.parentID}
	case ptrace.SpanKindConsumer:
		key, connType = edgeKey{span.traceID, span.parentID}, connMessaging
	default:
		return
	}
	s := side{
		present:  true,
		measured: true,
		service:  svc,
		seconds:  span.seconds(),
		failed:   span.status == ptrace.StatusCodeError,
	}
	for _, d := range g.cfg.Dimensions {
		s.dims = append(s.dims, span.lookup(d))
	}
	if isClient {
		for _, p := range g.cfg.PeerAttributes {
			if v := span.lookup(p); v != "" {
				s.peer = v
				break
			}
		}
		s.database = span.hasSpanAttr("db.system") || span.hasSpanAttr("db.name")
	}

	if !isClient && span.parentID.IsEmpty() {
		// A root server span has no client to wait for: its caller is
		// outside the traced world.
		if connType == connDirect {
			g.emitAt(&edge{client: side{present: true, service: userClient}, server: s, connType: connVirtualNode}, now)
		}
		return
	}

	e, ok := g.pending[key]
	if !ok {
		if len(g.pending) >= g.cfg.MaxItems {
			g.count(g.dropped, isClient, svc, connType, now)
			return
		}
		e = &edge{connType: connType, expires: now.Add(time.Duration(g.cfg.Wait))}
		g.pending[key] = e
	}
	if connType != connDirect {
		e.connType = connType
	}
	if isClient {
		e.client = s
	} else {
		e.server = s
	}
	if e.client.present && e.server.present {
		delete(g.pending, key)
		g.emitAt(e, now)
	}
}

// expire settles edges whose wait is over: a client span with a peer
// attribute becomes an edge to a virtual node (the uninstrumented database
// or service it called); anything else is counted as unpaired.
func (g *serviceGraphs) expire(now time.Time) {
	for key, e := range g.pending {
		if now.Before(e.expires) {
			continue
		}
		delete(g.pending, key)
		switch {
		case e.client.present && e.client.peer != "":
			e.server = side{present: true, service: e.client.peer}
			if e.client.database {
				e.connType = connDatabase
			} else if e.connType == connDirect {
				e.connType = connVirtualNode
			}
			g.emitAt(e, now)
		case e.client.present:
			g.count(g.unpaired, true, e.client.service, e.connType, now)
		default:
			g.count(g.unpaired, false, e.server.service, e.connType, now)
		}
	}
}

func (g *serviceGraphs) count(f *family, client bool, svc, connType string, now time.Time) {
	if client {
		f.inc([]string{svc, "", connType}, 1, now)
	} else {
		f.inc([]string{"", svc, connType}, 1, now)
	}
}

// emitAt records one request. Latency is observed only for the sides that
// sent a span: a virtual node has no server-side duration, a "user" client
// none on the client side.
func (g *serviceGraphs) emitAt(e *edge, now time.Time) {
	v := append(g.values[:0], e.client.service, e.server.service, e.connType)
	if g.cfg.EnableClientServerPrefix {
		v = appendDims(v, e.client.dims, len(g.cfg.Dimensions))
		v = appendDims(v, e.server.dims, len(g.cfg.Dimensions))
	} else {
		for i := range g.cfg.Dimensions {
			val := dimAt(e.server.dims, i)
			if val == "" {
				val = dimAt(e.client.dims, i)
			}
			v = append(v, val)
		}
	}
	g.values = v
	g.requests.inc(v, 1, now)
	if e.client.failed || e.server.failed {
		g.failed.inc(v, 1, now)
	}
	if e.server.measured {
		g.serverSec.observe(v, e.server.seconds, now)
	}
	if e.client.measured {
		g.clientSec.observe(v, e.client.seconds, now)
	}
}

func appendDims(v, dims []string, n int) []string {
	for i := range n {
		v = append(v, dimAt(dims, i))
	}
	return v
}

func dimAt(dims []string, i int) string {
	if i < len(dims) {
		return dims[i]
	}
	return ""
}
