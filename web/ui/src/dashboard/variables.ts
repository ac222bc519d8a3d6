// Template variables as Grafana dashboards use them: the $var / ${var} /
// ${var:format} / [[var]] syntax, the formats Grafana documents, the default
// formatting per data source (Prometheus and Loki: multi-value and All as an
// escaped regex "(a|b)"), the global variables ($__interval, $__rate_interval,
// $__range, $__from, $__to …) and the query-variable forms
// (label_values, label_names, metrics, query_result).

export const ALL = '$__all';

export interface VarOption {
  text: string;
  value: string;
}

/** One variable's state at interpolation time. */
export interface ScopeVar {
  values: string[]; // selected values ([ALL] when All is selected)
  texts?: string[];
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
  options?: VarOption[]; // every option (for All without allValue)
  raw?: boolean; // globals: always inserted as is
}
export type Scope = Record<string, ScopeVar>;

export type DefaultFormat = 'prometheus' | 'loki' | 'glob' | 'raw';

// Variable references: $name, [[name]] / [[name:fmt]], ${name} / ${name.field} / ${name:fmt} / ${name:fmt:arg}.
const VAR_RE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:}]+))?(?::([^}]+))?\}/g;

const REGEX_META = /[\\^$*+?.()|[\]{}'/]/g;

/** Escapes regex metacharacters for a regex inside a PromQL/LogQL double-quoted string (two backslashes). */
export function promRegexEscape(s: string): string {
  return s.replace(REGEX_META, (c) => `\\\\${c}`);
}

/** Escapes a plain value for a PromQL double-quoted string (backslashes only). */
export function promEscape(s: string): string {
  return s.replace(/\\/g, '\\\\');
}

/** Plain regex escaping (the ":regex" format). */
export function regexEscape(s: string): string {
  return s.replace(/[\\^$*+?.()|[\]{}]/g, (c) => `\\${c}`);
}

function isAll(v: ScopeVar): boolean {
  return v.values.length === 1 && v.values[0] === ALL;
}

/** The concrete values of a variable: All expands to every option (allValue is handled by the caller). */
function concrete(v: ScopeVar): string[] {
  if (!isAll(v)) return v.values.filter((x) => x !== ALL);
  return (v.options ?? []).map((o) => o.value).filter((x) => x !== ALL);
}

function formatDate(ms: number, arg: string | undefined): string {
  if (!arg || arg === 'iso') return new Date(ms).toISOString();
  if (arg === 'seconds') return String(Math.floor(ms / 1000));
  if (arg === 'ms') return String(ms);
  return new Date(ms).toISOString();
}

/** Applies one of Grafana's documented formats to a variable's values. */
export function applyFormat(name: string, vals: string[], texts: string[], fmt: string, arg?: string): string {
  const multi = vals.length !== 1;
  switch (fmt) {
    case 'csv':
      return vals.join(',');
    case 'distributed':
      return vals.map((x, i) => (i === 0 ? x : `${name}=${x}`)).join(',');
    case 'doublequote':
      return vals.map((x) => `"${x.replace(/"/g, '\\"')}"`).join(',');
    case 'singlequote':
      return vals.map((x) => `'${x.replace(/'/g, "\\'")}'`).join(',');
    case 'sqlstring':
      return vals.map((x) => `'${x.replace(/'/g, "''")}'`).join(',');
    case 'glob':
      return multi ? `{${vals.join(',')}}` : (vals[0] ?? '');
    case 'json':
      return JSON.stringify(multi ? vals : (vals[0] ?? ''));
    case 'lucene':
      return multi ? `(${vals.map((x) => `"${x.replace(/"/g, '\\"')}"`).join(' OR ')})` : (vals[0] ?? '').replace(/[+\-&|!(){}[\]^"~*?:\\/ ]/g, (c) => `\\${c}`);
    case 'percentencode':
      return encodeURIComponent(multi ? `{${vals.join(',')}}` : (vals[0] ?? ''));
    case 'pipe':
      return vals.join('|');
    case 'raw':
      return multi ? `{${vals.join(',')}}` : (vals[0] ?? '');
    case 'regex':
      return multi ? `(${vals.map(regexEscape).join('|')})` : regexEscape(vals[0] ?? '');
    case 'text':
      return texts.join(' + ');
    case 'queryparam':
      return vals.map((x) => `var-${encodeURIComponent(name)}=${encodeURIComponent(x)}`).join('&');
    case 'date': {
      const n = Number(vals[0]);
      return Number.isFinite(n) ? formatDate(n, arg) : (vals[0] ?? '');
    }
    default:
      return multi ? `{${vals.join(',')}}` : (vals[0] ?? '');
  }
}

/** The default (no explicit format) rendering of a variable for a data source type. */
function defaultFormat(v: ScopeVar, vals: string[], df: DefaultFormat): string {
  if (df === 'prometheus' || df === 'loki') {
    if (!v.multi && !v.includeAll) return promEscape(vals[0] ?? '');
    const esc = vals.map(promRegexEscape);
    if (esc.length === 1) return esc[0];
    return `(${esc.join('|')})`;
  }
  if (df === 'raw') return vals.join(',');
  return vals.length === 1 ? vals[0] : `{${vals.join(',')}}`;
}

/**
 * Replaces variable references in text. Unknown names are left as written
 * (so a literal "$" in a query survives); fmt applies to every variable
 * without an explicit format.
 */
export function interpolate(text: string, scope: Scope, df: DefaultFormat = 'glob'): string {
  if (!text || (!text.includes('$') && !text.includes('[['))) return text;
  return text.replace(VAR_RE, (whole, n1: string, n2: string, f2: string, n3: string, field: string, f3: string) => {
    const name = n1 ?? n2 ?? n3;
    const v = scope[name];
    if (!v) return whole;
    let fmt = f2 ?? f3;
    let arg: string | undefined;
    if (fmt && fmt.includes(':')) {
      const i = fmt.indexOf(':');
      arg = fmt.slice(i + 1);
      fmt = fmt.slice(0, i);
    }
    if (v.raw) {
      if (fmt === 'date') return formatDate(Number(v.values[0]), arg);
      return v.values[0] ?? '';
    }
    if (field === 'text') return (v.texts ?? v.values).join(' + ');
    if (isAll(v) && v.allValue !== undefined && v.allValue !== null && v.allValue !== '') {
      return fmt === 'queryparam' ? `var-${encodeURIComponent(name)}=${encodeURIComponent(ALL)}` : v.allValue;
    }
    const vals = concrete(v);
    const texts = isAll(v) ? ['All'] : (v.texts ?? vals);
    if (fmt) return applyFormat(name, vals, texts, fmt, arg);
    return defaultFormat(v, vals, df);
  });
}

/** Names of the variables a text refers to (for chaining). */
export function referencedVars(text: string): string[] {
  const out = new Set<string>();
  for (const m of (text ?? '').matchAll(VAR_RE)) out.add(m[1] ?? m[2] ?? m[4]);
  return [...out];
}

// Interval rounding: a familiar value at or above the raw one.
const NICE_MS = [
  10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000,
  7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000, 604_800_000, 2_592_000_000, 31_536_000_000,
];

export function roundInterval(ms: number): number {
  for (const n of NICE_MS) if (n >= ms) return n;
  return NICE_MS[NICE_MS.length - 1];
}

/** An interval as Grafana prints it: one unit ("500ms", "15s", "2m", "1h", "1d"). */
export function formatInterval(ms: number): string {
  const units: [string, number][] = [
    ['y', 31_536_000_000],
    ['w', 604_800_000],
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [u, v] of units) if (ms >= v && ms % v === 0) return `${ms / v}${u}`;
  if (ms >= 1000) return `${Math.round(ms / 1000)}s`;
  return `${Math.max(1, Math.round(ms))}ms`;
}

/** Parses "15s", "1m", "500ms", ">10s" (a panel's min interval) to ms; NaN if unreadable. */
export function parseInterval(s: string | undefined | null): number {
  if (!s) return NaN;
  const m = /^>?\s*(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$/.exec(s.trim());
  if (!m) return NaN;
  const f: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };
  return parseFloat(m[1]) * f[m[2]];
}

export interface IntervalInfo {
  intervalMs: number;
  rateIntervalMs: number;
}

/**
 * $__interval and $__rate_interval for a range: range / maxDataPoints rounded
 * up to a familiar value, never below the minimum interval (the panel's
 * `interval`, else the data source's scrape interval); the rate interval is
 * max(interval + scrape interval, 4 × scrape interval), as Grafana documents.
 */
export function computeIntervals(rangeMs: number, maxDataPoints: number, minInterval?: string | null, scrapeMs = 15_000): IntervalInfo {
  const min = parseInterval(minInterval ?? undefined);
  const scrape = Number.isNaN(min) ? scrapeMs : min;
  const raw = rangeMs / Math.max(1, maxDataPoints);
  const intervalMs = Math.max(roundInterval(raw), scrape);
  return { intervalMs, rateIntervalMs: Math.max(intervalMs + scrape, 4 * scrape) };
}

/** The global variables for one query. */
export function globalScope(startMs: number, endMs: number, iv: IntervalInfo, dashboardTitle = ''): Scope {
  const g = (v: string): ScopeVar => ({ values: [v], raw: true });
  const rangeMs = endMs - startMs;
  return {
    __interval: g(formatInterval(iv.intervalMs)),
    __interval_ms: g(String(iv.intervalMs)),
    __rate_interval: g(formatInterval(iv.rateIntervalMs)),
    __rate_interval_ms: g(String(iv.rateIntervalMs)),
    __auto: g(formatInterval(iv.intervalMs)),
    __range: g(`${Math.round(rangeMs / 1000)}s`),
    __range_s: g(String(Math.round(rangeMs / 1000))),
    __range_ms: g(String(rangeMs)),
    __from: g(String(startMs)),
    __to: g(String(endMs)),
    __dashboard: g(dashboardTitle),
  };
}

// ---- Query variables ----

export type PromVarQuery =
  | { kind: 'label_values'; match?: string; label: string }
  | { kind: 'label_names'; match?: string }
  | { kind: 'metrics'; regex: string }
  | { kind: 'query_result'; expr: string };

/** Splits "a, b" at the last comma outside braces, brackets, parentheses and quotes. */
function splitLastArg(s: string): [string, string] | undefined {
  let depth = 0;
  let quote = '';
  let last = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '{' || c === '(' || c === '[') depth++;
    else if (c === '}' || c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) last = i;
  }
  if (last < 0) return undefined;
  return [s.slice(0, last).trim(), s.slice(last + 1).trim()];
}

/** Parses a Prometheus variable query as Grafana's Prometheus data source reads it. */
export function parsePromVarQuery(q: string): PromVarQuery | undefined {
  const s = q.trim();
  let m = /^label_names\(\s*(.*)\)$/s.exec(s);
  if (m) return { kind: 'label_names', match: m[1].trim() || undefined };
  m = /^label_values\((.*)\)$/s.exec(s);
  if (m) {
    const inner = m[1].trim();
    const parts = splitLastArg(inner);
    if (!parts) return { kind: 'label_values', label: inner };
    return { kind: 'label_values', match: parts[0] || undefined, label: parts[1] };
  }
  m = /^metrics\((.*)\)$/s.exec(s);
  if (m) return { kind: 'metrics', regex: m[1].trim() };
  m = /^query_result\((.*)\)$/s.exec(s);
  if (m) return { kind: 'query_result', expr: m[1].trim() };
  return undefined;
}

/** Loki variable queries: the object form {type: 0|1, label, stream} or label_names() / label_values(sel, label). */
export type LokiVarQuery = { kind: 'label_names'; stream?: string } | { kind: 'label_values'; label: string; stream?: string };

export function parseLokiVarQuery(q: unknown): LokiVarQuery | undefined {
  if (q && typeof q === 'object') {
    const o = q as { type?: number | string; label?: string; stream?: string; query?: string };
    if (typeof o.query === 'string' && o.label === undefined) return parseLokiVarQuery(o.query);
    if (o.type === 0 || o.type === 'labelNames') return { kind: 'label_names', stream: o.stream || undefined };
    if (o.label) return { kind: 'label_values', label: o.label, stream: o.stream || undefined };
    return undefined;
  }
  if (typeof q !== 'string') return undefined;
  const p = parsePromVarQuery(q);
  if (!p) return undefined;
  if (p.kind === 'label_names') return { kind: 'label_names', stream: p.match };
  if (p.kind === 'label_values') return { kind: 'label_values', label: p.label, stream: p.match };
  return undefined;
}

/** The text of a query_result row as Grafana gives it to the variable regex: name{labels} value timestamp. */
export function queryResultText(metric: Record<string, string>, value: string, tsSec: number): string {
  const name = metric.__name__ ?? '';
  const labels = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .map((k) => `${k}="${metric[k]}"`)
    .join(', ');
  return `${name}{${labels}} ${value} ${Math.round(tsSec * 1000)}`;
}

/** Applies a variable's regex ("/pattern/flags" or a bare pattern) to raw values: the first group (or named groups text/value) extracts. */
export function applyVarRegex(values: string[], regex: string | undefined): VarOption[] {
  const seen = new Set<string>();
  const out: VarOption[] = [];
  const add = (text: string, value: string) => {
    if (seen.has(value)) return;
    seen.add(value);
    out.push({ text, value });
  };
  if (!regex) {
    for (const v of values) add(v, v);
    return out;
  }
  let re: RegExp;
  try {
    const m = /^\/(.*)\/([gimsuy]*)$/s.exec(regex);
    re = m ? new RegExp(m[1], m[2].replace('g', '')) : new RegExp(regex);
  } catch {
    for (const v of values) add(v, v);
    return out;
  }
  for (const v of values) {
    const m = re.exec(v);
    if (!m) continue;
    const g = m.groups;
    if (g && (g.value !== undefined || g.text !== undefined)) {
      add(g.text ?? g.value ?? v, g.value ?? g.text ?? v);
    } else add(m[1] ?? m[0], m[1] ?? m[0]);
  }
  return out;
}

/** Grafana's custom variable: comma-separated values (\, escapes a comma), "text : value" pairs. */
export function parseCustom(q: string): VarOption[] {
  const items: string[] = [];
  let cur = '';
  for (let i = 0; i < q.length; i++) {
    if (q[i] === '\\' && q[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (q[i] === ',') {
      items.push(cur);
      cur = '';
    } else cur += q[i];
  }
  items.push(cur);
  return items
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const m = /^(.+?)\s+:\s+(.+)$/.exec(s);
      return m ? { text: m[1].trim(), value: m[2].trim() } : { text: s, value: s };
    });
}

/** Sorts options as a variable's `sort` asks: 1/2 alphabetical, 3/4 numerical, 5/6 case-insensitive, 7/8 natural. */
export function sortOptions(opts: VarOption[], sort: number | undefined): VarOption[] {
  if (!sort) return opts;
  const num = (s: string) => {
    const m = /-?\d+(\.\d+)?/.exec(s);
    return m ? parseFloat(m[0]) : -Infinity;
  };
  const coll = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const cmp: Record<number, (a: VarOption, b: VarOption) => number> = {
    1: (a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0),
    3: (a, b) => num(a.text) - num(b.text),
    5: (a, b) => a.text.toLowerCase().localeCompare(b.text.toLowerCase()),
    7: (a, b) => coll.compare(a.text, b.text),
  };
  const base = cmp[sort % 2 === 0 ? sort - 1 : sort];
  if (!base) return opts;
  const out = [...opts].sort(base);
  return sort % 2 === 0 ? out.reverse() : out;
}

/** Interval variable options and the auto value: range / auto_count, at least auto_min. */
export function intervalOptions(q: string, auto: boolean, autoCount: number | undefined, autoMin: string | undefined, rangeMs: number): VarOption[] {
  const opts = q
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => ({ text: s, value: s }));
  if (auto) {
    const min = parseInterval(autoMin ?? '10s');
    const raw = rangeMs / (autoCount || 30);
    const ms = Math.max(roundInterval(raw), Number.isNaN(min) ? 0 : min);
    opts.unshift({ text: 'auto', value: formatInterval(ms) });
  }
  return opts;
}

/** Substitutes {{label}} in a legend format; "__auto" and "" give undefined (the caller uses the series name). */
export function legend(fmt: string | undefined, labels: Record<string, string>): string | undefined {
  if (!fmt || fmt === '__auto') return undefined;
  return fmt.replace(/\{\{\s*([^}\s]+)\s*\}\}/g, (_w, k: string) => labels[k] ?? '');
}
