// Time ranges as Grafana writes them: relative ("now-1h", "now") or absolute
// (epoch milliseconds or an ISO date). They live in the URL unresolved, so a
// shared link to "the last hour" stays the last hour.

export interface TimeRange {
  from: string;
  to: string;
}

export const DEFAULT_RANGE: TimeRange = { from: 'now-1h', to: 'now' };

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** Parses a Prometheus duration ("1h30m", "15s", "500ms", "2d") into milliseconds; NaN if invalid. */
export function parseDuration(s: string): number {
  const str = s.trim();
  if (str === '') return NaN;
  if (/^\d+(\.\d+)?$/.test(str)) return parseFloat(str) * 1000; // bare seconds, as Prometheus's step
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(str)) !== null) {
    total += parseFloat(m[1]) * UNIT_MS[m[2]];
    pos = re.lastIndex;
  }
  return pos === str.length && pos > 0 ? total : NaN;
}

/** Formats milliseconds as a compact Prometheus duration: 90000 → "1m30s". */
export function formatPromDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s';
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [u, v] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= v) {
      parts.push(`${Math.floor(rest / v)}${u}`);
      rest %= v;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}

/**
 * Resolves one end of a range to epoch milliseconds. Accepts "now",
 * "now-<duration>", "now+<duration>", epoch seconds (≤ 10 digits, as Loki
 * reads them), epoch milliseconds, and ISO 8601 dates. NaN if unreadable.
 */
export function parseTime(s: string, now: number): number {
  const str = s.trim();
  if (str === 'now') return now;
  const rel = /^now([+-])(.+)$/.exec(str);
  if (rel) {
    const d = parseDuration(rel[2]);
    if (Number.isNaN(d)) return NaN;
    return rel[1] === '-' ? now - d : now + d;
  }
  if (/^\d+$/.test(str)) {
    const n = parseInt(str, 10);
    return str.length <= 10 ? n * 1000 : n;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(str)) {
    const t = Date.parse(str);
    return Number.isNaN(t) ? NaN : t;
  }
  return NaN;
}

export interface ResolvedRange {
  start: number; // epoch ms
  end: number; // epoch ms
}

/** Resolves a range; an unreadable or reversed range falls back to the default. */
export function resolveRange(r: TimeRange, now: number): ResolvedRange {
  const start = parseTime(r.from, now);
  const end = parseTime(r.to, now);
  if (Number.isNaN(start) || Number.isNaN(end) || start >= end) {
    return { start: now - 3_600_000, end: now };
  }
  return { start, end };
}

export function isRelative(r: TimeRange): boolean {
  return r.from.startsWith('now') || r.to.startsWith('now');
}

const NICE_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** A step (seconds) giving at most ~maxPoints points over the range, rounded up to a familiar value. */
export function autoStep(r: ResolvedRange, maxPoints = 300): number {
  const raw = (r.end - r.start) / 1000 / maxPoints;
  for (const s of NICE_STEPS_S) if (s >= raw) return s;
  return Math.ceil(raw / 86400) * 86400;
}

/** Human label for a range: "Last 1 hour" for the quick ranges, else both ends. */
export function describeRange(r: TimeRange): string {
  const q = QUICK_RANGES.find((x) => x.from === r.from && x.to === r.to);
  if (q) return q.label;
  const fmt = (s: string) => {
    if (s.startsWith('now')) return s;
    const t = parseTime(s, Date.now());
    return Number.isNaN(t) ? s : formatDateTime(t);
  };
  return `${fmt(r.from)} → ${fmt(r.to)}`;
}

export const QUICK_RANGES: { label: string; from: string; to: string }[] = [
  { label: 'Last 5 minutes', from: 'now-5m', to: 'now' },
  { label: 'Last 15 minutes', from: 'now-15m', to: 'now' },
  { label: 'Last 30 minutes', from: 'now-30m', to: 'now' },
  { label: 'Last 1 hour', from: 'now-1h', to: 'now' },
  { label: 'Last 3 hours', from: 'now-3h', to: 'now' },
  { label: 'Last 6 hours', from: 'now-6h', to: 'now' },
  { label: 'Last 12 hours', from: 'now-12h', to: 'now' },
  { label: 'Last 24 hours', from: 'now-24h', to: 'now' },
  { label: 'Last 2 days', from: 'now-2d', to: 'now' },
  { label: 'Last 7 days', from: 'now-7d', to: 'now' },
];

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** Local "YYYY-MM-DD HH:MM:SS". */
export function formatDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local "YYYY-MM-DD HH:MM:SS.mmm". */
export function formatDateTimeMs(ms: number): string {
  return `${formatDateTime(ms)}.${pad(Math.floor(((ms % 1000) + 1000) % 1000), 3)}`;
}

/** Shifts a range to absolute values centred on the same span (used by "zoom out"). */
export function zoomOut(r: ResolvedRange, factor = 2): TimeRange {
  const span = r.end - r.start;
  const mid = r.start + span / 2;
  return { from: String(Math.round(mid - (span * factor) / 2)), to: String(Math.round(mid + (span * factor) / 2)) };
}
