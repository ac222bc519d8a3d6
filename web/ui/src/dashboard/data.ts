// Running a panel's targets through our public APIs: Prometheus
// query/query_range, Loki query_range (log and metric queries), Tempo search
// and trace by ID, and the service graph (Prometheus series the
// metrics-generator writes, as Grafana's Tempo "Service Graph" reads them).
import { request } from '../api/http';
import * as prom from '../api/prometheus';
import * as tempo from '../api/tempo';
import { flattenStreams, compareTs, type LogEntry } from '../api/loki';
import type { DataSource } from '../api/dashboards';
import { buildEdges, serviceGraphQueries, type Edge } from '../lib/servicegraph';
import { seriesName } from '../lib/format';
import type { DataSourceRef, Panel, Target } from './types';
import { computeIntervals, globalScope, interpolate, legend, parseInterval, type DefaultFormat, type Scope } from './variables';

export interface Series {
  refId: string;
  name: string;
  labels: Record<string, string>;
  points: [number, number | null][]; // [epoch ms, value]
}

export interface PanelData {
  series: Series[];
  logs?: LogEntry[];
  traces?: tempo.SearchTrace[];
  spans?: tempo.Span[];
  edges?: Edge[];
  /** The interpolated queries, for "explore this query". */
  queries: { refId: string; ds: DataSource; expr: string }[];
}

export const MIXED = '-- Mixed --';

/** The data source a reference names: by uid or name (also through a datasource variable), the default when empty. */
export function resolveDataSource(ref: DataSourceRef | string | null | undefined, list: DataSource[], scope: Scope): DataSource | 'mixed' | undefined {
  const def = list.find((d) => d.isDefault) ?? list.find((d) => d.type === 'prometheus') ?? list[0];
  if (ref === null || ref === undefined || ref === '') return def;
  const byKey = (k: string) => {
    const v = interpolate(k, scope, 'raw');
    if (v === MIXED || v === 'mixed') return 'mixed' as const;
    if (v === 'default' || v === '-- Default --') return def;
    return list.find((d) => d.uid === v) ?? list.find((d) => d.name === v) ?? list.find((d) => d.name.toLowerCase() === v.toLowerCase());
  };
  if (typeof ref === 'string') return byKey(ref);
  if (ref.uid) {
    const r = byKey(ref.uid);
    if (r) return r;
    if (ref.type && !ref.uid.includes('$')) return undefined;
  }
  if (ref.type === 'datasource' && ref.uid === MIXED) return 'mixed';
  if (ref.type) return list.find((d) => d.type === ref.type);
  return def;
}

function formatFor(type: string): DefaultFormat {
  return type === 'prometheus' ? 'prometheus' : type === 'loki' ? 'loki' : 'glob';
}

export interface QueryContext {
  startMs: number;
  endMs: number;
  maxDataPoints: number;
  datasources: DataSource[];
  scope: Scope; // dashboard variables
  dashboardTitle?: string;
  signal?: AbortSignal;
  /** The panel wants logs (a logs panel) rather than numbers. */
  wantLogs?: boolean;
  /** The panel reduces series to values (stat, gauge…): instant queries where a target asks. */
}

function targetExpr(t: Target): string {
  return (t.expr ?? (typeof t.query === 'string' ? t.query : '') ?? '').trim();
}

type Envelope<T> = { status: string; data: T };
interface LokiData {
  resultType: 'streams' | 'matrix' | 'vector' | 'scalar';
  result: unknown;
}

function num(s: string): number | null {
  const v = parseFloat(s);
  return Number.isNaN(v) && s !== 'NaN' ? null : v;
}

function matrixSeries(refId: string, rows: { metric: Record<string, string>; values?: [number, string][] }[], fmt: string | undefined, expr: string): Series[] {
  return rows.map((r) => ({
    refId,
    labels: r.metric,
    name: legend(fmt, r.metric) ?? autoName(r.metric, expr),
    points: (r.values ?? []).map(([t, v]) => [t * 1000, num(v)] as [number, number | null]),
  }));
}

function autoName(metric: Record<string, string>, expr: string): string {
  const n = seriesName(metric);
  return n === '{}' ? expr : n;
}

function vectorSeries(refId: string, d: prom.QueryData, fmt: string | undefined, expr: string): Series[] {
  if (d.resultType === 'matrix') return matrixSeries(refId, d.result, fmt, expr);
  if (d.resultType === 'vector') {
    return d.result.map((r) => ({ refId, labels: r.metric, name: legend(fmt, r.metric) ?? autoName(r.metric, expr), points: [[r.value[0] * 1000, num(r.value[1])]] }));
  }
  return [{ refId, labels: {}, name: legend(fmt, {}) ?? expr, points: [[d.result[0] * 1000, num(d.result[1])]] }];
}

/** Runs one panel's visible targets; rejects with the first error. */
export async function runPanel(panel: Panel, ctx: QueryContext): Promise<PanelData> {
  const panelDS = resolveDataSource(panel.datasource, ctx.datasources, ctx.scope);
  const out: PanelData = { series: [], queries: [] };
  const targets = (panel.targets ?? []).filter((t) => !t.hide);
  const jobs = targets.map(async (t, i) => {
    const refId = t.refId ?? String.fromCharCode(65 + i);
    let ds = panelDS === 'mixed' || t.datasource ? resolveDataSource(t.datasource ?? (panelDS === 'mixed' ? undefined : panel.datasource), ctx.datasources, ctx.scope) : panelDS;
    if (ds === 'mixed') ds = undefined;
    if (!ds) {
      const ref = t.datasource ?? panel.datasource;
      throw new Error(`data source ${typeof ref === 'string' ? ref : JSON.stringify(ref ?? null)} not found`);
    }
    const rangeMs = ctx.endMs - ctx.startMs;
    const minInterval = t.interval || panel.interval || undefined;
    const iv = computeIntervals(rangeMs, panel.maxDataPoints ?? ctx.maxDataPoints, minInterval, ds.type === 'prometheus' ? 15_000 : parseInterval(minInterval) || 1000);
    const scope: Scope = { ...ctx.scope, ...globalScope(ctx.startMs, ctx.endMs, iv, ctx.dashboardTitle) };
    const expr = interpolate(targetExpr(t), scope, formatFor(ds.type));
    const stepSec = Math.max(0.001, (iv.intervalMs * (t.intervalFactor ?? 1)) / 1000);
    switch (ds.type) {
      case 'prometheus': {
        if (!expr) return;
        out.queries.push({ refId, ds, expr });
        const instant = t.instant === true && t.range !== true;
        if (instant) {
          const d = await prom.queryInstant(expr, ctx.endMs, ctx.signal);
          out.series.push(...vectorSeries(refId, d, t.legendFormat, expr));
        } else {
          const d = await prom.queryRange(expr, ctx.startMs, ctx.endMs, stepSec, ctx.signal);
          out.series.push(...matrixSeries(refId, d.result, t.legendFormat, expr));
        }
        return;
      }
      case 'loki': {
        if (!expr) return;
        out.queries.push({ refId, ds, expr });
        if (t.queryType === 'instant' || (t.instant === true && t.range !== true)) {
          const env = await request<Envelope<LokiData>>('loki/api/v1/query', { params: { query: expr, time: `${ctx.endMs}000000` }, signal: ctx.signal });
          if (env.data.resultType === 'vector') {
            out.series.push(...vectorSeries(refId, env.data as prom.QueryData, t.legendFormat, expr));
            return;
          }
          if (env.data.resultType === 'streams') {
            out.logs = [...(out.logs ?? []), ...flattenStreams(env.data as Parameters<typeof flattenStreams>[0])];
            return;
          }
        }
        const env = await request<Envelope<LokiData>>('loki/api/v1/query_range', {
          params: {
            query: expr,
            start: `${ctx.startMs}000000`,
            end: `${ctx.endMs}000000`,
            step: stepSec,
            limit: t.maxLines ?? 1000,
            direction: 'backward',
          },
          headers: { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' },
          signal: ctx.signal,
        });
        if (env.data.resultType === 'streams') {
          const entries = flattenStreams(env.data as Parameters<typeof flattenStreams>[0]);
          out.logs = [...(out.logs ?? []), ...entries];
        } else if (env.data.resultType === 'matrix') {
          out.series.push(...matrixSeries(refId, env.data.result as { metric: Record<string, string>; values: [number, string][] }[], t.legendFormat, expr));
        }
        return;
      }
      case 'tempo': {
        const qt = t.queryType ?? '';
        if (qt === 'serviceMap') {
          const promDS = ctx.datasources.find((d) => d.type === 'prometheus');
          const q = serviceGraphQueries(rangeMs / 1000);
          out.queries.push({ refId, ds: promDS ?? ds, expr: q.total });
          const [tot, fail, p95] = await Promise.all([
            prom.queryInstant(q.total, ctx.endMs, ctx.signal),
            prom.queryInstant(q.failed, ctx.endMs, ctx.signal),
            prom.queryInstant(q.p95, ctx.endMs, ctx.signal),
          ]);
          const vec = (d: prom.QueryData) => (d.resultType === 'vector' ? d.result : []);
          out.edges = [...(out.edges ?? []), ...buildEdges(vec(tot), vec(fail), vec(p95))];
          return;
        }
        const q = expr || '{}';
        out.queries.push({ refId, ds, expr: q });
        if (/^[0-9a-fA-F]{16,32}$/.test(q)) {
          out.spans = [...(out.spans ?? []), ...(await tempo.traceByID(q.toLowerCase(), ctx.signal))];
          return;
        }
        const limit = t.limit ?? 20;
        out.traces = [...(out.traces ?? []), ...(await tempo.search(q, ctx.startMs, ctx.endMs, limit, ctx.signal))];
        return;
      }
      default:
        throw new Error(`data source type "${ds.type}" (${ds.name}) is not supported`);
    }
  });
  const res = await Promise.allSettled(jobs);
  const failed = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (out.logs) out.logs.sort((a, b) => compareTs(b.ts, a.ts));
  // Keep the targets' order (refId), then Prometheus's.
  const order = new Map(targets.map((t, i) => [t.refId ?? String.fromCharCode(65 + i), i]));
  out.series.sort((a, b) => (order.get(a.refId) ?? 0) - (order.get(b.refId) ?? 0));
  return out;
}

/** Whether the panel got anything to show. */
export function hasData(d: PanelData): boolean {
  return d.series.some((s) => s.points.length > 0) || !!d.logs?.length || !!d.traces?.length || !!d.spans?.length || !!d.edges?.length;
}

/** The Explore link for a query: metrics and logs pages take query/from/to; traces take q. */
export function exploreHref(q: { ds: DataSource; expr: string }, from: string, to: string): string | undefined {
  const p = new URLSearchParams();
  if (q.ds.type === 'prometheus') {
    p.set('query', q.expr);
    p.set('from', from);
    p.set('to', to);
    return `#/explore/metrics?${p}`;
  }
  if (q.ds.type === 'loki') {
    p.set('query', q.expr);
    p.set('from', from);
    p.set('to', to);
    return `#/explore/logs?${p}`;
  }
  if (q.ds.type === 'tempo') {
    if (/^[0-9a-fA-F]{16,32}$/.test(q.expr)) return `#/explore/traces/${q.expr.toLowerCase()}`;
    p.set('q', q.expr);
    p.set('from', from);
    p.set('to', to);
    return `#/explore/traces?${p}`;
  }
  return undefined;
}

// ---- Tables: Grafana's "table" format and the merge / organize transformations ----

export interface Table {
  columns: string[];
  rows: (string | number | null)[][];
  numeric: boolean[];
}

/** One row per series: its labels and its last value ("Value", or "Value #<refId>" with several queries). */
export function seriesToTable(series: Series[], multiRef: boolean): Table {
  const labelKeys = new Set<string>();
  for (const s of series) for (const k of Object.keys(s.labels)) if (k !== '__name__' || series.length > 1) labelKeys.add(k);
  const keys = [...labelKeys].sort();
  const valueCols = [...new Set(series.map((s) => (multiRef ? `Value #${s.refId}` : 'Value')))];
  const columns = ['Time', ...keys, ...valueCols];
  const rows = series.map((s) => {
    const last = s.points[s.points.length - 1];
    const row: (string | number | null)[] = [last ? last[0] : null, ...keys.map((k) => s.labels[k] ?? '')];
    for (const vc of valueCols) row.push(vc === (multiRef ? `Value #${s.refId}` : 'Value') ? (last ? last[1] : null) : null);
    return row;
  });
  return { columns, rows, numeric: columns.map((c) => c === 'Time' || c.startsWith('Value')) };
}

/** Grafana's "merge": rows with equal non-value cells become one row. */
export function mergeRows(t: Table): Table {
  const valueIdx = t.columns.map((c, i) => (c.startsWith('Value') ? i : -1)).filter((i) => i >= 0);
  const keyIdx = t.columns.map((c, i) => (c.startsWith('Value') || c === 'Time' ? -1 : i)).filter((i) => i >= 0);
  const byKey = new Map<string, (string | number | null)[]>();
  for (const r of t.rows) {
    const k = JSON.stringify(keyIdx.map((i) => r[i]));
    const cur = byKey.get(k);
    if (!cur) byKey.set(k, [...r]);
    else for (const i of valueIdx) if (r[i] !== null && r[i] !== undefined) cur[i] = r[i];
  }
  return { ...t, rows: [...byKey.values()] };
}

/** Grafana's "organize": excludeByName, renameByName, indexByName. */
export function organize(t: Table, o: { excludeByName?: Record<string, boolean>; renameByName?: Record<string, string>; indexByName?: Record<string, number> }): Table {
  let idx = t.columns.map((_, i) => i).filter((i) => !o.excludeByName?.[t.columns[i]]);
  if (o.indexByName && Object.keys(o.indexByName).length) {
    const pos = (c: string) => o.indexByName?.[c] ?? 1000;
    idx = [...idx].sort((a, b) => pos(t.columns[a]) - pos(t.columns[b]));
  }
  return {
    columns: idx.map((i) => o.renameByName?.[t.columns[i]] || t.columns[i]),
    rows: t.rows.map((r) => idx.map((i) => r[i])),
    numeric: idx.map((i) => t.numeric[i]),
  };
}

/** The table a panel shows: its series in table form, through the transformations we know. */
export function panelTable(panel: Panel, series: Series[]): Table {
  const refs = new Set(series.map((s) => s.refId));
  let t = seriesToTable(series, refs.size > 1);
  for (const tr of panel.transformations ?? []) {
    if (tr.disabled) continue;
    if (tr.id === 'merge') t = mergeRows(t);
    else if (tr.id === 'organize') t = organize(t, (tr.options ?? {}) as Parameters<typeof organize>[1]);
  }
  return t;
}

// ---- Heatmaps ----

/** A bucket bound: "+Inf" is Infinity (parseFloat reads it as NaN). */
export function leValue(le: string): number {
  if (/^\+?inf$/i.test(le.trim())) return Infinity;
  const v = parseFloat(le);
  return Number.isNaN(v) ? Infinity : v;
}

/** Buckets from series: by numeric `le` when present (de-accumulated, as Prometheus histograms are), else one row per series. */
export function heatmapBuckets(series: Series[]): { labels: string[]; times: number[]; cells: number[][] } {
  const withLe = series.filter((s) => s.labels.le !== undefined);
  let src = series;
  if (withLe.length) {
    // One row per bound: "5" and "5.0" (Prometheus 3 normalises le on scrape, older writers do not) are one bucket.
    const byLe = new Map<number, Series>();
    for (const s of withLe) {
      const k = leValue(s.labels.le);
      const cur = byLe.get(k);
      if (!cur) {
        byLe.set(k, { ...s, points: [...s.points] });
        continue;
      }
      const at = new Map(cur.points.map((p, i) => [p[0], i]));
      for (const [t, v] of s.points) {
        const i = at.get(t);
        if (i === undefined) cur.points.push([t, v]);
        else cur.points[i] = [t, (cur.points[i][1] ?? 0) + (v ?? 0)];
      }
    }
    src = [...byLe.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  }
  const ts = new Set<number>();
  for (const s of src) for (const [t] of s.points) ts.add(t);
  const times = [...ts].sort((a, b) => a - b);
  const idx = new Map(times.map((t, i) => [t, i]));
  let cells = src.map((s) => {
    const row = new Array(times.length).fill(0);
    for (const [t, v] of s.points) row[idx.get(t)!] = v ?? 0;
    return row;
  });
  if (withLe.length) {
    const cum = cells;
    cells = cum.map((row, i) => (i === 0 ? row : row.map((v, j) => Math.max(0, v - cum[i - 1][j]))));
  }
  return { labels: src.map((s) => (withLe.length ? s.labels.le : s.name)), times, cells };
}
