// Tempo HTTP API (/api): trace by ID (OTLP JSON), search, tags.
import { request } from './http';

export interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
  bytesValue?: string;
}
export interface KeyValue {
  key: string;
  value?: AnyValue;
}
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: string | number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValue[];
  events?: { timeUnixNano: string; name: string; attributes?: KeyValue[] }[];
  links?: { traceId: string; spanId: string; attributes?: KeyValue[] }[];
  status?: { code?: string | number; message?: string };
}
export interface OtlpTrace {
  batches?: ResourceSpans[];
  resourceSpans?: ResourceSpans[];
}
interface ResourceSpans {
  resource?: { attributes?: KeyValue[] };
  scopeSpans?: { scope?: { name?: string; version?: string }; spans?: OtlpSpan[] }[];
  instrumentationLibrarySpans?: { spans?: OtlpSpan[] }[];
}

export function valueString(v: AnyValue | undefined): string {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return String(v.intValue);
  if (v.doubleValue !== undefined) return String(v.doubleValue);
  if (v.boolValue !== undefined) return String(v.boolValue);
  if (v.arrayValue) return `[${(v.arrayValue.values ?? []).map(valueString).join(', ')}]`;
  if (v.kvlistValue) return `{${(v.kvlistValue.values ?? []).map((kv) => `${kv.key}=${valueString(kv.value)}`).join(', ')}}`;
  if (v.bytesValue !== undefined) return v.bytesValue;
  return '';
}

export function attrMap(kvs: KeyValue[] | undefined): Record<string, string> {
  const m: Record<string, string> = {};
  for (const kv of kvs ?? []) m[kv.key] = valueString(kv.value);
  return m;
}

export interface Span {
  spanId: string;
  parentId: string;
  traceId: string;
  name: string;
  service: string;
  kind: string;
  start: number; // ns offset… as absolute ms (float)
  end: number;
  attributes: Record<string, string>;
  resource: Record<string, string>;
  events: { time: number; name: string; attributes: Record<string, string> }[];
  links: { traceId: string; spanId: string }[];
  statusCode: string;
  statusMessage: string;
  scope: string;
}

/** Base64 (OTLP JSON as Tempo writes it) or hex IDs, as lower-case hex. */
export function idToHex(id: string | undefined): string {
  if (!id) return '';
  if (/^[0-9a-fA-F]+$/.test(id) && (id.length === 16 || id.length === 32)) return id.toLowerCase();
  try {
    const bin = atob(id);
    let s = '';
    for (let i = 0; i < bin.length; i++) s += bin.charCodeAt(i).toString(16).padStart(2, '0');
    return s;
  } catch {
    return id;
  }
}

const nsToMs = (ns: string) => Number(BigInt(ns) / 1000n) / 1000;

const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const CODES = ['UNSET', 'OK', 'ERROR'];

export function flattenTrace(t: OtlpTrace): Span[] {
  const out: Span[] = [];
  for (const rs of t.batches ?? t.resourceSpans ?? []) {
    const resource = attrMap(rs.resource?.attributes);
    const service = resource['service.name'] ?? 'unknown';
    const scopes = rs.scopeSpans ?? rs.instrumentationLibrarySpans ?? [];
    for (const ss of scopes) {
      const scope = ('scope' in ss ? (ss as { scope?: { name?: string } }).scope?.name : undefined) ?? '';
      for (const s of ss.spans ?? []) {
        const kind = typeof s.kind === 'number' ? KINDS[s.kind] : String(s.kind ?? 'SPAN_KIND_UNSPECIFIED').replace('SPAN_KIND_', '');
        const code = typeof s.status?.code === 'number' ? CODES[s.status.code] : String(s.status?.code ?? 'STATUS_CODE_UNSET').replace('STATUS_CODE_', '');
        out.push({
          spanId: idToHex(s.spanId),
          parentId: idToHex(s.parentSpanId),
          traceId: idToHex(s.traceId),
          name: s.name,
          service,
          kind,
          start: nsToMs(s.startTimeUnixNano),
          end: nsToMs(s.endTimeUnixNano),
          attributes: attrMap(s.attributes),
          resource,
          events: (s.events ?? []).map((e) => ({ time: nsToMs(e.timeUnixNano), name: e.name, attributes: attrMap(e.attributes) })),
          links: (s.links ?? []).map((l) => ({ traceId: idToHex(l.traceId), spanId: idToHex(l.spanId) })),
          statusCode: code,
          statusMessage: s.status?.message ?? '',
          scope,
        });
      }
    }
  }
  return out;
}

export async function traceByID(id: string, signal?: AbortSignal): Promise<Span[]> {
  const t = await request<OtlpTrace | { trace: OtlpTrace }>(`api/v2/traces/${encodeURIComponent(id)}`, { signal });
  const trace = 'trace' in t ? t.trace : t;
  return flattenTrace(trace);
}

export interface SearchTrace {
  traceID: string;
  rootServiceName?: string;
  rootTraceName?: string;
  startTimeUnixNano: string;
  durationMs?: number;
  spanSets?: { spans: { spanID: string; name?: string; startTimeUnixNano: string; durationNanos: string; attributes?: KeyValue[] }[]; matched: number }[];
  serviceStats?: Record<string, { spanCount: number; errorCount?: number }>;
}

export function search(q: string, startMs: number, endMs: number, limit: number, signal?: AbortSignal) {
  return request<{ traces?: SearchTrace[] }>('api/search', {
    params: { q, start: Math.floor(startMs / 1000), end: Math.ceil(endMs / 1000), limit },
    signal,
  }).then((r) => r.traces ?? []);
}

export async function searchTags(): Promise<{ scope: string; tags: string[] }[]> {
  const r = await request<{ scopes?: { name: string; tags: string[] }[] }>('api/v2/search/tags');
  return (r.scopes ?? []).map((s) => ({ scope: s.name, tags: s.tags ?? [] }));
}

export async function tagValues(tag: string): Promise<string[]> {
  const r = await request<{ tagValues?: { type: string; value: string }[] }>(`api/v2/search/tag/${encodeURIComponent(tag)}/values`);
  return (r.tagValues ?? []).map((v) => v.value);
}
