// Number, size and duration formatting for axes, legends and tables.

const SI: [number, string][] = [
  [1e15, 'P'],
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

function trim(n: number, digits: number): string {
  // toPrecision without a trailing ".0" or exponent for ordinary numbers.
  const s = n.toPrecision(digits);
  if (s.includes('e')) return String(Number(s));
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** Short SI form: 1234 → "1.23k", 0.00012 → "120µ", NaN → "NaN". */
export function formatShort(v: number, digits = 3): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  for (const [f, p] of SI) if (a >= f) return trim(v / f, digits) + p;
  if (a >= 1) return trim(v, digits);
  if (a >= 1e-3) return trim(v, digits);
  if (a >= 1e-6) return trim(v * 1e6, digits) + 'µ';
  if (a >= 1e-9) return trim(v * 1e9, digits) + 'n';
  return v.toExponential(2);
}

/** Bytes in IEC units: 1536 → "1.5 KiB". */
export function formatBytes(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let n = Math.abs(v);
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${v < 0 ? '-' : ''}${i === 0 ? n : trim(n, 3)} ${units[i]}`;
}

/** A duration in milliseconds, readable: 0.0123 → "12.3µs", 1530 → "1.53s", 95000 → "1m35s". */
export function formatDurationMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const a = Math.abs(ms);
  if (a === 0) return '0s';
  if (a < 0.001) return `${trim(ms * 1e6, 3)}ns`;
  if (a < 1) return `${trim(ms * 1e3, 3)}µs`;
  if (a < 1000) return `${trim(ms, 3)}ms`;
  if (a < 60_000) return `${trim(ms / 1000, 3)}s`;
  const m = Math.floor(a / 60_000);
  const s = Math.round((a % 60_000) / 1000);
  if (a < 3_600_000) return `${ms < 0 ? '-' : ''}${m}m${s ? `${s}s` : ''}`;
  const h = Math.floor(a / 3_600_000);
  const mm = Math.round((a % 3_600_000) / 60_000);
  return `${ms < 0 ? '-' : ''}${h}h${mm ? `${mm}m` : ''}`;
}

export type Unit = 'short' | 'bytes' | 'seconds' | 'ms' | 'percent' | 'percentunit' | 'reqps' | 'none';

/** Formats by a Grafana-style unit id (a subset; unknown ids fall back to "short"). */
export function formatUnit(v: number, unit: Unit | string = 'short'): string {
  switch (unit) {
    case 'bytes':
      return formatBytes(v);
    case 'seconds':
    case 's':
      return formatDurationMs(v * 1000);
    case 'ms':
      return formatDurationMs(v);
    case 'percent':
      return `${trim(v, 3)}%`;
    case 'percentunit':
      return `${trim(v * 100, 3)}%`;
    case 'reqps':
      return `${formatShort(v)} req/s`;
    case 'none':
      return String(v);
    default:
      return formatShort(v);
  }
}

/** Guesses a unit from a metric name, as the table and axes do when none is given. */
export function unitForMetric(name: string): Unit {
  if (/_bytes(_total)?$/.test(name)) return 'bytes';
  if (/_seconds(_total|_sum|_bucket)?$/.test(name)) return 'seconds';
  if (/_ratio$/.test(name)) return 'percentunit';
  return 'short';
}

/** Renders a label set as PromQL/LogQL writes it: {a="1", b="x\"y"}. */
export function formatLabels(labels: Record<string, string>, skip: string[] = []): string {
  const keys = Object.keys(labels)
    .filter((k) => !skip.includes(k))
    .sort();
  return `{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(', ')}}`;
}

/** Series name as Prometheus's UI shows it: name{labels}. */
export function seriesName(metric: Record<string, string>): string {
  const name = metric.__name__ ?? '';
  const rest = formatLabels(metric, ['__name__']);
  return rest === '{}' ? name || '{}' : name + rest;
}
