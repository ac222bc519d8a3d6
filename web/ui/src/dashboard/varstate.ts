// Evaluating a dashboard's variables in order (so a variable can use the
// ones before it): options from the data sources, the current selection
// from the URL (var-<name>), else the saved one, else the first option.
import { request } from '../api/http';
import * as prom from '../api/prometheus';
import type { DataSource } from '../api/dashboards';
import { resolveDataSource } from './data';
import type { Variable } from './types';
import {
  ALL,
  applyVarRegex,
  computeIntervals,
  globalScope,
  intervalOptions,
  interpolate,
  parseCustom,
  parseLokiVarQuery,
  parsePromVarQuery,
  queryResultText,
  sortOptions,
  type Scope,
  type VarOption,
} from './variables';

export interface VarState {
  def: Variable;
  options: VarOption[];
  current: string[];
  texts: string[];
  error?: string;
}

export interface VarContext {
  datasources: DataSource[];
  startMs: number;
  endMs: number;
  signal?: AbortSignal;
}

type Envelope<T> = { status: string; data: T };

function queryText(q: unknown): unknown {
  if (q && typeof q === 'object' && 'query' in q && typeof (q as { query: unknown }).query === 'string' && !('label' in q)) return (q as { query: string }).query;
  return q;
}

async function promOptions(q: string, ctx: VarContext): Promise<string[]> {
  const p = parsePromVarQuery(q);
  const range = { start: ctx.startMs / 1000, end: ctx.endMs / 1000 };
  if (!p) {
    // A bare expression: Grafana runs it as query_result.
    return promOptions(`query_result(${q})`, ctx);
  }
  switch (p.kind) {
    case 'label_values': {
      const env = await request<Envelope<string[] | null>>(`api/v1/label/${encodeURIComponent(p.label)}/values`, { params: { 'match[]': p.match, ...range }, signal: ctx.signal });
      return env.data ?? [];
    }
    case 'label_names': {
      const env = await request<Envelope<string[] | null>>('api/v1/labels', { params: { 'match[]': p.match, ...range }, signal: ctx.signal });
      return env.data ?? [];
    }
    case 'metrics': {
      const env = await request<Envelope<string[] | null>>('api/v1/label/__name__/values', { params: range, signal: ctx.signal });
      let re: RegExp | undefined;
      try {
        re = p.regex ? new RegExp(p.regex) : undefined;
      } catch {
        re = undefined;
      }
      return (env.data ?? []).filter((n) => !re || re.test(n));
    }
    case 'query_result': {
      const d = await prom.queryInstant(p.expr, ctx.endMs, ctx.signal);
      if (d.resultType === 'vector') return d.result.map((r) => queryResultText(r.metric, r.value[1], r.value[0]));
      if (d.resultType === 'matrix') return d.result.map((r) => queryResultText(r.metric, r.values?.[r.values.length - 1]?.[1] ?? '', r.values?.[r.values.length - 1]?.[0] ?? 0));
      return [queryResultText({}, d.result[1], d.result[0])];
    }
  }
}

async function lokiOptions(q: unknown, ctx: VarContext): Promise<string[]> {
  const p = parseLokiVarQuery(q);
  if (!p) throw new Error(`unsupported Loki variable query ${JSON.stringify(q)}`);
  const params = { start: `${ctx.startMs}000000`, end: `${ctx.endMs}000000`, query: p.stream };
  if (p.kind === 'label_names') {
    const r = await request<{ data?: string[] }>('loki/api/v1/labels', { params, signal: ctx.signal });
    return r.data ?? [];
  }
  const r = await request<{ data?: string[] }>(`loki/api/v1/label/${encodeURIComponent(p.label)}/values`, { params, signal: ctx.signal });
  return r.data ?? [];
}

/** The options of one variable, given the variables before it. */
export async function loadOptions(def: Variable, scope: Scope, ctx: VarContext): Promise<VarOption[]> {
  const rangeMs = ctx.endMs - ctx.startMs;
  switch (def.type) {
    case 'custom':
      return parseCustom(interpolate(String(def.query ?? ''), scope, 'raw'));
    case 'constant':
      return [{ text: String(def.query ?? ''), value: String(def.query ?? '') }];
    case 'textbox': {
      const v = String(def.current?.value ?? def.query ?? '');
      return [{ text: v, value: v }];
    }
    case 'interval':
      return intervalOptions(String(def.query ?? ''), !!def.auto, def.auto_count, def.auto_min, rangeMs);
    case 'datasource': {
      const type = String(def.query ?? '');
      const list = ctx.datasources.filter((d) => d.type === type || d.name === type);
      return applyVarRegex(
        list.map((d) => d.name),
        def.regex ? interpolate(def.regex, scope, 'raw') : undefined,
      ).map((o) => ({ text: o.text, value: ctx.datasources.find((d) => d.name === o.value)?.uid ?? o.value }));
    }
    case 'query': {
      const iv = computeIntervals(rangeMs, 1000);
      const full: Scope = { ...scope, ...globalScope(ctx.startMs, ctx.endMs, iv) };
      const ds = resolveDataSource(def.datasource, ctx.datasources, full);
      if (!ds || ds === 'mixed') throw new Error(`variable ${def.name}: data source ${JSON.stringify(def.datasource ?? null)} not found`);
      const q = queryText(def.query ?? def.definition ?? '');
      let raw: string[];
      if (ds.type === 'prometheus') raw = await promOptions(interpolate(String(q), full, 'prometheus'), ctx);
      else if (ds.type === 'loki') {
        const iq =
          typeof q === 'string'
            ? interpolate(q, full, 'loki')
            : { ...(q as object), stream: (q as { stream?: string }).stream ? interpolate(String((q as { stream?: string }).stream), full, 'loki') : undefined };
        raw = await lokiOptions(iq, ctx);
      } else if (ds.type === 'tempo') {
        const tag = String(q).replace(/^label_values\((.*)\)$/, '$1').trim();
        const r = await request<{ tagValues?: { value: string }[] }>(`api/v2/search/tag/${encodeURIComponent(tag)}/values`, { signal: ctx.signal });
        raw = (r.tagValues ?? []).map((v) => v.value);
      } else throw new Error(`variable ${def.name}: data source type ${ds.type} is not supported`);
      const re = def.regex ? interpolate(def.regex, full, 'raw') : undefined;
      return sortOptions(applyVarRegex(raw, re), def.sort);
    }
    default:
      return [];
  }
}

function asList(v: string | string[] | undefined): string[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

/** The selection: wanted values (URL, else saved), kept if valid; All stays All; else the first option. */
export function pickCurrent(def: Variable, options: VarOption[], wanted: string[] | undefined): { current: string[]; texts: string[] } {
  if (def.type === 'constant') return { current: [String(def.query ?? '')], texts: [String(def.query ?? '')] };
  const want = (wanted && wanted.length ? wanted : asList(def.current?.value)).map((v) => (v === 'All' && def.includeAll ? ALL : v));
  if (def.type === 'textbox') {
    const v = want[0] ?? String(def.query ?? '');
    return { current: [v], texts: [v] };
  }
  if (want.includes(ALL) && def.includeAll) return { current: [ALL], texts: ['All'] };
  const byValue = new Map(options.map((o) => [o.value, o]));
  const byText = new Map(options.map((o) => [o.text, o]));
  let chosen = want.map((v) => byValue.get(v) ?? byText.get(v)).filter((o): o is VarOption => !!o);
  if (!def.multi) chosen = chosen.slice(0, 1);
  if (!chosen.length) {
    if (def.includeAll && (!options.length || !want.length)) return { current: [ALL], texts: ['All'] };
    if (options.length) chosen = [options[0]];
    else if (want.length && def.type !== 'query') return { current: want, texts: want };
    else return { current: [], texts: [] };
  }
  return { current: chosen.map((o) => o.value), texts: chosen.map((o) => o.text) };
}

/** The scope the variables give to queries. */
export function scopeOf(states: VarState[]): Scope {
  const s: Scope = {};
  for (const v of states) {
    s[v.def.name] = { values: v.current, texts: v.texts, multi: !!v.def.multi, includeAll: !!v.def.includeAll, allValue: v.def.allValue, options: v.options };
  }
  return s;
}

/** Evaluates every variable in order; one failing variable keeps its error and an empty selection. */
export async function evaluateVariables(defs: Variable[], urlValues: Record<string, string[]>, ctx: VarContext): Promise<VarState[]> {
  const out: VarState[] = [];
  for (const def of defs) {
    if (!def?.name) continue;
    let options: VarOption[] = [];
    let error: string | undefined;
    try {
      options = await loadOptions(def, scopeOf(out), ctx);
    } catch (e) {
      if (ctx.signal?.aborted) throw e;
      error = e instanceof Error ? e.message : String(e);
    }
    const { current, texts } = pickCurrent(def, options, urlValues[def.name]);
    out.push({ def, options, current, texts, error });
  }
  return out;
}
