// Query and URL building for the links between signals: log line → trace,
// trace → logs, trace → metrics, exemplar → trace, service map → traces.
import type { TimeRange } from './time';

/** A hash URL of the UI, e.g. "#/explore/logs?query=…&from=…&to=…". Empty params are left out. */
export function pageHref(path: string, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

/** Quotes a string for a PromQL/LogQL/TraceQL double-quoted literal. */
export function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

const TRACE_KEYS = ['trace_id', 'traceid', 'traceID', 'traceId', 'TraceId', 'TraceID', 'trace-id', 'otelTraceID'];
const HEX_ID = /^[0-9a-fA-F]{16,32}$/;
const LINE_RE = /(?:trace_?id|traceID|otelTraceID)"?\s*[=:]\s*"?([0-9a-fA-F]{16,32})\b/i;

/** The trace ID of a log entry, from its fields/metadata (any common spelling) or from the line text. */
export function findTraceId(line: string, fields: Record<string, string> = {}): string | undefined {
  for (const k of TRACE_KEYS) {
    const v = fields[k];
    if (v && HEX_ID.test(v)) return v.toLowerCase();
  }
  for (const [k, v] of Object.entries(fields)) {
    if (/^trace[_-]?id$/i.test(k) && HEX_ID.test(v)) return v.toLowerCase();
  }
  const m = LINE_RE.exec(line);
  return m ? m[1].toLowerCase() : undefined;
}

export function traceHref(traceId: string, range?: TimeRange): string {
  return pageHref(`/explore/traces/${traceId}`, { from: range?.from, to: range?.to });
}

/** Widens a trace's [start, end] (ms) by a margin on both sides, as Grafana's span start/end shift does. */
export function traceWindow(startMs: number, endMs: number, marginMs = 60_000): TimeRange {
  return { from: String(Math.floor(startMs - marginMs)), to: String(Math.ceil(endMs + marginMs)) };
}

/**
 * The LogQL of traces → logs: the service's streams, filtered by the trace ID.
 * `service_name` is the label Loki (and our logstore) gives every stream.
 */
export function traceToLogsQuery(traceId: string, service?: string): string {
  const sel = service ? `{service_name=${quote(service)}}` : '{service_name=~".+"}';
  return `${sel} |= ${quote(traceId)}`;
}

export function traceToLogsHref(traceId: string, service: string | undefined, startMs: number, endMs: number): string {
  const r = traceWindow(startMs, endMs);
  return pageHref('/explore/logs', { query: traceToLogsQuery(traceId, service), from: r.from, to: r.to });
}

/** The PromQL of traces → metrics: request rate, error rate and p95 from the metrics-generator's span metrics. */
export function traceToMetricsQueries(service: string, spanName?: string): { name: string; query: string }[] {
  const sel = [`service=${quote(service)}`];
  if (spanName) sel.push(`span_name=${quote(spanName)}`);
  const s = sel.join(', ');
  return [
    { name: 'Request rate', query: `sum(rate(traces_spanmetrics_calls_total{${s}}[5m]))` },
    {
      name: 'Error rate',
      query: `sum(rate(traces_spanmetrics_calls_total{${s}, status_code="STATUS_CODE_ERROR"}[5m])) / sum(rate(traces_spanmetrics_calls_total{${s}}[5m]))`,
    },
    {
      name: 'p95 duration',
      query: `histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{${s}}[5m])))`,
    },
  ];
}

export function traceToMetricsHref(service: string, startMs: number, endMs: number, spanName?: string): string {
  const r = traceWindow(startMs, endMs, 30 * 60_000);
  return pageHref('/explore/metrics', {
    query: traceToMetricsQueries(service, spanName)[0].query,
    from: r.from,
    to: r.to,
  });
}

/** Traces of one service (the service map's node click). */
export function serviceTracesHref(service: string, range: TimeRange): string {
  return pageHref('/explore/traces', { q: `{ resource.service.name = ${quote(service)} }`, from: range.from, to: range.to });
}

/** The TraceQL the search form builds. */
export function buildTraceQL(f: {
  service?: string;
  spanName?: string;
  minDuration?: string;
  maxDuration?: string;
  tags?: { key: string; value: string }[];
}): string {
  const conds: string[] = [];
  if (f.service) conds.push(`resource.service.name = ${quote(f.service)}`);
  if (f.spanName) conds.push(`name = ${quote(f.spanName)}`);
  if (f.minDuration) conds.push(`duration >= ${f.minDuration}`);
  if (f.maxDuration) conds.push(`duration <= ${f.maxDuration}`);
  for (const t of f.tags ?? []) {
    if (!t.key) continue;
    const key = /^(\.|span\.|resource\.)/.test(t.key) ? t.key : `.${t.key}`;
    conds.push(`${key} = ${quote(t.value)}`);
  }
  return `{ ${conds.join(' && ')} }`.replace('{  }', '{}');
}
