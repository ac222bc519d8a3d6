// Field config as Grafana dashboards write it: units, decimals, thresholds,
// value mappings and colours. Our own code, written from Grafana's
// documentation of the options (not its source).
import { formatBytes } from '../lib/format';

export interface ThresholdStep {
  value: number | null;
  color: string;
}
export interface Thresholds {
  mode?: 'absolute' | 'percentage';
  steps?: ThresholdStep[];
}
export interface MappingResult {
  text?: string;
  color?: string;
  index?: number;
}
export type ValueMapping =
  | { type: 'value'; options: Record<string, MappingResult> }
  | { type: 'range'; options: { from?: number | null; to?: number | null; result: MappingResult } }
  | { type: 'regex'; options: { pattern: string; result: MappingResult } }
  | { type: 'special'; options: { match: string; result: MappingResult } };

export interface FieldConfig {
  unit?: string;
  decimals?: number | null;
  min?: number | null;
  max?: number | null;
  thresholds?: Thresholds;
  mappings?: ValueMapping[] | null;
  color?: { mode?: string; fixedColor?: string };
  displayName?: string;
  noValue?: string;
  custom?: Record<string, unknown> | null;
}

function fixed(v: number, decimals: number | null | undefined, auto = 3): string {
  if (decimals !== undefined && decimals !== null && decimals >= 0) return v.toFixed(Math.min(20, decimals));
  if (v === 0) return '0';
  const a = Math.abs(v);
  // Automatic: up to `auto` significant digits, no trailing zeros, no exponent for ordinary numbers.
  let d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(10, Math.ceil(-Math.log10(a)) + auto - 1);
  if (a >= 1000) d = 0;
  const s = v.toFixed(d);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

function scaled(v: number, decimals: number | null | undefined, base: number, units: string[], sep = ' '): string {
  let i = 0;
  let n = Math.abs(v);
  while (n >= base && i < units.length - 1) {
    n /= base;
    i++;
  }
  return `${fixed(v < 0 ? -n : n, decimals)}${units[i] ? sep + units[i] : ''}`;
}

const SHORT = ['', 'K', 'Mil', 'Bil', 'Tri', 'Quadr', 'Quint'];

function short(v: number, decimals: number | null | undefined): string {
  if (Math.abs(v) < 1000) return fixed(v, decimals);
  return scaled(v, decimals, 1000, SHORT);
}

/** Durations from seconds: "850 ms", "1.50 s", "2.5 min", "3 hour" as Grafana's s/ms units read. */
function duration(sec: number, decimals: number | null | undefined): string {
  const a = Math.abs(sec);
  if (a === 0) return '0 s';
  if (a < 1e-6) return `${fixed(sec * 1e9, decimals)} ns`;
  if (a < 1e-3) return `${fixed(sec * 1e6, decimals)} µs`;
  if (a < 1) return `${fixed(sec * 1e3, decimals)} ms`;
  if (a < 60) return `${fixed(sec, decimals)} s`;
  if (a < 3600) return `${fixed(sec / 60, decimals)} min`;
  if (a < 86400) return `${fixed(sec / 3600, decimals)} hour`;
  if (a < 604800) return `${fixed(sec / 86400, decimals)} day`;
  return `${fixed(sec / 604800, decimals)} week`;
}

const RATE_SUFFIX: Record<string, string> = {
  reqps: 'req/s',
  rps: 'rd/s',
  wps: 'wr/s',
  iops: 'io/s',
  ops: 'ops/s',
  opm: 'ops/min',
  reqpm: 'req/min',
  cps: 'c/s',
  mps: 'msg/s',
  eps: 'evt/s',
};

/** Formats a value by a Grafana unit id; unknown ids fall back to "short" (with the id as suffix when it looks like free text). */
export function formatValue(v: number | null | undefined, unit = 'short', decimals?: number | null): string {
  if (v === null || v === undefined) return 'No data';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  const u = unit || 'short';
  if (u.startsWith('suffix:')) return `${fixed(v, decimals)}${u.slice(7)}`;
  if (u.startsWith('prefix:')) return `${u.slice(7)}${fixed(v, decimals)}`;
  if (u.startsWith('currency')) return `${fixed(v, decimals ?? 2)}`;
  switch (u) {
    case 'none':
      return fixed(v, decimals);
    case 'short':
      return short(v, decimals);
    case 'percent':
      return `${fixed(v, decimals)}%`;
    case 'percentunit':
      return `${fixed(v * 100, decimals)}%`;
    case 'bytes':
    case 'decbytes':
    case 'bits':
    case 'decbits':
    case 'kbytes':
    case 'mbytes':
    case 'gbytes':
    case 'deckbytes':
    case 'decmbytes':
    case 'decgbytes': {
      const si = u.startsWith('dec');
      const base = si ? 1000 : 1024;
      const bits = u.endsWith('bits');
      const mult = u.includes('kbytes') ? base : u.includes('mbytes') ? base ** 2 : u.includes('gbytes') ? base ** 3 : 1;
      const names = bits ? (si ? ['b', 'kb', 'Mb', 'Gb', 'Tb', 'Pb'] : ['b', 'Kib', 'Mib', 'Gib', 'Tib', 'Pib']) : si ? ['B', 'kB', 'MB', 'GB', 'TB', 'PB'] : ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
      if (decimals === undefined && !si && !bits && mult === 1) return formatBytes(v);
      return scaled(v * mult, decimals, base, names);
    }
    case 'Bps':
    case 'binBps':
      return scaled(v, decimals, u === 'Bps' ? 1000 : 1024, u === 'Bps' ? ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'] : ['B/s', 'KiB/s', 'MiB/s', 'GiB/s', 'TiB/s']);
    case 'bps':
      return scaled(v, decimals, 1000, ['b/s', 'kb/s', 'Mb/s', 'Gb/s', 'Tb/s']);
    case 's':
    case 'seconds':
    case 'dtdurations':
      return duration(v, decimals);
    case 'ms':
      return duration(v / 1e3, decimals);
    case 'µs':
    case 'us':
      return duration(v / 1e6, decimals);
    case 'ns':
      return duration(v / 1e9, decimals);
    case 'm':
      return duration(v * 60, decimals);
    case 'h':
      return duration(v * 3600, decimals);
    case 'd':
      return duration(v * 86400, decimals);
    case 'hertz':
      return scaled(v, decimals, 1000, ['Hz', 'kHz', 'MHz', 'GHz']);
    case 'celsius':
      return `${fixed(v, decimals)}°C`;
    case 'bool':
      return v ? 'true' : 'false';
    case 'dateTimeAsIso':
    case 'dateTimeAsSystem':
      return new Date(v).toISOString();
  }
  if (RATE_SUFFIX[u]) return `${short(v, decimals)} ${RATE_SUFFIX[u]}`;
  return short(v, decimals);
}

// Grafana's named colours (the classic palette names dashboards use).
const NAMED: Record<string, string> = {
  green: '#73bf69',
  'semi-dark-green': '#56a64b',
  'dark-green': '#37872d',
  'light-green': '#96d98d',
  red: '#f2495c',
  'semi-dark-red': '#e02f44',
  'dark-red': '#c4162a',
  'light-red': '#ff7383',
  orange: '#ff9830',
  'semi-dark-orange': '#fa6400',
  'dark-orange': '#fa6400',
  'light-orange': '#ffb357',
  yellow: '#fade2a',
  'semi-dark-yellow': '#f2cc0c',
  'dark-yellow': '#e0b400',
  'light-yellow': '#ffee52',
  blue: '#5794f2',
  'semi-dark-blue': '#3274d9',
  'dark-blue': '#1f60c4',
  'light-blue': '#8ab8ff',
  purple: '#b877d9',
  'semi-dark-purple': '#a352cc',
  'dark-purple': '#8f3bb8',
  'light-purple': '#ca95e5',
  transparent: 'transparent',
  text: 'var(--fg)',
};

/** A Grafana colour name ("green", "dark-red") or any CSS colour → a CSS colour. */
export function cssColour(c: string | undefined): string {
  if (!c) return 'var(--fg)';
  return NAMED[c] ?? NAMED[c.replace(/^super-light-/, 'light-')] ?? c;
}

/** The threshold step a value falls in: the last step whose value ≤ v (null is the base, −∞). */
export function thresholdColour(v: number, th: Thresholds | undefined, min?: number | null, max?: number | null): string | undefined {
  const steps = th?.steps;
  if (!steps?.length) return undefined;
  let x = v;
  if (th?.mode === 'percentage') {
    const lo = min ?? 0;
    const hi = max ?? 100;
    x = hi === lo ? 0 : ((v - lo) / (hi - lo)) * 100;
  }
  let colour = steps[0].color;
  for (const s of steps) {
    const sv = s.value === null || s.value === undefined ? -Infinity : s.value;
    if (x >= sv) colour = s.color;
  }
  return cssColour(colour);
}

/** Applies value mappings (value, range, regex, special) to a value; the first that matches wins. */
export function mapValue(v: number | string | null | undefined, mappings: ValueMapping[] | null | undefined): MappingResult | undefined {
  for (const m of mappings ?? []) {
    switch (m.type) {
      case 'value': {
        if (v === null || v === undefined) break;
        const r = m.options[String(v)];
        if (r) return r;
        break;
      }
      case 'range': {
        const n = typeof v === 'number' ? v : Number(v);
        if (v === null || v === undefined || Number.isNaN(n)) break;
        const from = m.options.from ?? -Infinity;
        const to = m.options.to ?? Infinity;
        if (n >= from && n <= to) return m.options.result;
        break;
      }
      case 'regex': {
        if (v === null || v === undefined) break;
        try {
          if (new RegExp(m.options.pattern).test(String(v))) return m.options.result;
        } catch {
          // an invalid pattern maps nothing
        }
        break;
      }
      case 'special': {
        const match = m.options.match;
        const isNull = v === null || v === undefined;
        const isNaN = typeof v === 'number' && Number.isNaN(v);
        if (
          (match === 'null' && isNull) ||
          (match === 'nan' && isNaN) ||
          (match === 'null+nan' && (isNull || isNaN)) ||
          (match === 'true' && (v === 1 || v === 'true')) ||
          (match === 'false' && (v === 0 || v === 'false')) ||
          (match === 'empty' && v === '')
        )
          return m.options.result;
        break;
      }
    }
  }
  return undefined;
}

export interface Display {
  text: string;
  colour?: string;
}

/** The text and colour of one value under a field config: mappings first, then unit/decimals and thresholds. */
export function display(v: number | null | undefined, fc: FieldConfig): Display {
  const mapped = mapValue(v, fc.mappings);
  const th = v === null || v === undefined ? undefined : thresholdColour(v, fc.thresholds, fc.min, fc.max);
  const fixedCol = fc.color?.mode === 'fixed' ? cssColour(fc.color.fixedColor) : undefined;
  if (mapped) {
    return { text: mapped.text ?? formatValue(v, fc.unit, fc.decimals), colour: mapped.color ? cssColour(mapped.color) : (fixedCol ?? th) };
  }
  if ((v === null || v === undefined) && fc.noValue !== undefined) return { text: fc.noValue };
  return { text: formatValue(v, fc.unit, fc.decimals), colour: fixedCol ?? th };
}

/** Merges a panel's defaults with the overrides that match a series name (matcher byName / byRegexp / byFrameRefID). */
export function fieldConfigFor(
  defaults: FieldConfig | undefined,
  overrides: { matcher: { id: string; options?: unknown }; properties: { id: string; value: unknown }[] }[] | undefined,
  name: string,
  refId: string,
): FieldConfig {
  const fc: FieldConfig = { ...(defaults ?? {}) };
  for (const o of overrides ?? []) {
    const opt = String(o.matcher?.options ?? '');
    let hit = false;
    if (o.matcher?.id === 'byName') hit = opt === name;
    else if (o.matcher?.id === 'byFrameRefID') hit = opt === refId;
    else if (o.matcher?.id === 'byRegexp') {
      try {
        hit = new RegExp(opt).test(name);
      } catch {
        hit = false;
      }
    }
    if (!hit) continue;
    for (const p of o.properties ?? []) {
      const key = p.id.startsWith('custom.') ? undefined : p.id;
      if (key === 'unit' || key === 'decimals' || key === 'min' || key === 'max' || key === 'displayName' || key === 'noValue') {
        (fc as Record<string, unknown>)[key] = p.value;
      } else if (key === 'thresholds') fc.thresholds = p.value as Thresholds;
      else if (key === 'mappings') fc.mappings = p.value as ValueMapping[];
      else if (key === 'color') fc.color = p.value as FieldConfig['color'];
      else if (p.id.startsWith('custom.')) fc.custom = { ...(fc.custom ?? {}), [p.id.slice(7)]: p.value };
    }
  }
  return fc;
}

/** Reduces a series to one number, as Grafana's reduceOptions.calcs does (the first calc is used). */
export function reduce(values: (number | null)[], calc = 'lastNotNull'): number | null {
  const nn = values.filter((v): v is number => v !== null && !Number.isNaN(v));
  switch (calc) {
    case 'last':
      return values.length ? values[values.length - 1] : null;
    case 'lastNotNull':
      return nn.length ? nn[nn.length - 1] : null;
    case 'first':
      return values.length ? values[0] : null;
    case 'firstNotNull':
      return nn.length ? nn[0] : null;
    case 'mean':
      return nn.length ? nn.reduce((a, b) => a + b, 0) / nn.length : null;
    case 'sum':
      return nn.length ? nn.reduce((a, b) => a + b, 0) : null;
    case 'max':
      return nn.length ? Math.max(...nn) : null;
    case 'min':
      return nn.length ? Math.min(...nn) : null;
    case 'count':
      return values.length;
    case 'range':
      return nn.length ? Math.max(...nn) - Math.min(...nn) : null;
    case 'delta': {
      // Sum of increases, treating drops as counter resets.
      let d = 0;
      for (let i = 1; i < nn.length; i++) d += nn[i] >= nn[i - 1] ? nn[i] - nn[i - 1] : nn[i];
      return nn.length ? d : null;
    }
    case 'diff':
      return nn.length ? nn[nn.length - 1] - nn[0] : null;
    default:
      return nn.length ? nn[nn.length - 1] : null;
  }
}
