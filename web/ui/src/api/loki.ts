// Loki HTTP API (/loki/api/v1). Log queries ask for the categorize-labels
// encoding, as Grafana 11 does, so stream labels, structured metadata and
// parsed fields come back apart.
import { apiURL, request } from './http';

export interface LogEntry {
  ts: string; // nanoseconds, as a string
  line: string;
  stream: Record<string, string>;
  metadata: Record<string, string>;
  parsed: Record<string, string>;
}

type Value = [string, string] | [string, string, { structuredMetadata?: Record<string, string>; parsed?: Record<string, string> }];

interface StreamsData {
  resultType: 'streams';
  result: { stream: Record<string, string>; values: Value[] }[];
  encodingFlags?: string[];
}
interface MatrixData {
  resultType: 'matrix';
  result: { metric: Record<string, string>; values: [number, string][] }[];
}
interface Envelope<T> {
  status: string;
  data: T;
}

export function flattenStreams(data: StreamsData): LogEntry[] {
  const out: LogEntry[] = [];
  for (const s of data.result ?? []) {
    for (const v of s.values) {
      const extra = v.length > 2 ? (v[2] ?? {}) : {};
      out.push({ ts: v[0], line: v[1], stream: s.stream, metadata: extra.structuredMetadata ?? {}, parsed: extra.parsed ?? {} });
    }
  }
  return out;
}

/** Compares nanosecond timestamps given as strings of possibly different length. */
export function compareTs(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function queryLogs(
  query: string,
  startMs: number,
  endMs: number,
  limit: number,
  direction: 'backward' | 'forward',
  signal?: AbortSignal,
  endNs?: string,
): Promise<LogEntry[]> {
  const env = await request<Envelope<StreamsData | MatrixData>>('loki/api/v1/query_range', {
    params: { query, start: `${startMs}000000`, end: endNs ?? `${endMs}000000`, limit, direction },
    headers: { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' },
    signal,
  });
  if (env.data.resultType !== 'streams') throw new Error('this is a metric query: use Explore metrics or wrap it in a log selector');
  const entries = flattenStreams(env.data);
  entries.sort((a, b) => (direction === 'backward' ? compareTs(b.ts, a.ts) : compareTs(a.ts, b.ts)));
  return entries;
}

export async function queryMatrix(query: string, startMs: number, endMs: number, step: number, signal?: AbortSignal) {
  const env = await request<Envelope<MatrixData>>('loki/api/v1/query_range', {
    params: { query, start: `${startMs}000000`, end: `${endMs}000000`, step },
    signal,
  });
  return env.data.result ?? [];
}

export const labels = (startMs: number, endMs: number) =>
  request<{ data?: string[] }>('loki/api/v1/labels', { params: { start: `${startMs}000000`, end: `${endMs}000000` } }).then((e) => e.data ?? []);

export const labelValues = (name: string, startMs: number, endMs: number) =>
  request<{ data?: string[] }>(`loki/api/v1/label/${encodeURIComponent(name)}/values`, {
    params: { start: `${startMs}000000`, end: `${endMs}000000` },
  }).then((e) => e.data ?? []);

/** The WebSocket URL of a live tail. */
export function tailURL(query: string, startNs: string, limit = 100): string {
  const u = new URL(apiURL('loki/api/v1/tail', { query, start: startNs, limit }));
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

export interface TailMessage {
  streams?: { stream: Record<string, string>; values: [string, string][] }[];
  dropped_entries?: { labels: Record<string, string>; timestamp: string }[] | null;
}
