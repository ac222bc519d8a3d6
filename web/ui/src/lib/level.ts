// Log-level detection, close to what Loki's detected_level does for a line
// without a level label: an explicit label or field wins, then a key=value or
// JSON level field in the line, then the first level word.

export type Level = 'critical' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'unknown';

export const LEVELS: Level[] = ['critical', 'error', 'warn', 'info', 'debug', 'trace', 'unknown'];

const ALIASES: Record<string, Level> = {
  critical: 'critical',
  crit: 'critical',
  fatal: 'critical',
  panic: 'critical',
  emerg: 'critical',
  emergency: 'critical',
  alert: 'critical',
  error: 'error',
  err: 'error',
  eror: 'error',
  severe: 'error',
  warn: 'warn',
  warning: 'warn',
  wrn: 'warn',
  info: 'info',
  inf: 'info',
  information: 'info',
  informational: 'info',
  notice: 'info',
  debug: 'debug',
  dbg: 'debug',
  debu: 'debug',
  trace: 'trace',
  trc: 'trace',
  unknown: 'unknown',
};

/** Normalises a level word ("WARNING", "E", "Err") to a Level, or undefined. */
export function normaliseLevel(s: string | undefined): Level | undefined {
  if (!s) return undefined;
  const k = s.trim().toLowerCase();
  if (k in ALIASES) return ALIASES[k];
  if (k.length === 1) return ({ e: 'error', w: 'warn', i: 'info', d: 'debug', t: 'trace', f: 'critical' } as Record<string, Level>)[k];
  return undefined;
}

const LABEL_KEYS = ['detected_level', 'level', 'lvl', 'severity', 'severity_text', 'loglevel', 'log_level'];
const FIELD_RE = /(?:^|[\s{,])"?(?:level|lvl|severity|loglevel|log_level)"?\s*[=:]\s*"?([A-Za-z]+)"?/i;
const WORD_RE = /\b(FATAL|PANIC|CRITICAL|CRIT|EMERG|ERROR|ERR|WARNING|WARN|INFO|NOTICE|DEBUG|TRACE)\b/i;

/** The level of one entry from its labels (stream, structured metadata, parsed) and its line. */
export function detectLevel(line: string, labels: Record<string, string> = {}): Level {
  for (const k of LABEL_KEYS) {
    const l = normaliseLevel(labels[k]);
    if (l) return l;
  }
  const f = FIELD_RE.exec(line);
  if (f) {
    const l = normaliseLevel(f[1]);
    if (l) return l;
  }
  const w = WORD_RE.exec(line);
  if (w) {
    const l = normaliseLevel(w[1]);
    if (l) return l;
  }
  return 'unknown';
}

export const LEVEL_COLOURS: Record<Level, string> = {
  critical: '#a21caf',
  error: '#dc2626',
  warn: '#d97706',
  info: '#16a34a',
  debug: '#2563eb',
  trace: '#64748b',
  unknown: '#9ca3af',
};
