// Alertmanager API v2 (/api/v2).
import { request } from './http';

export interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual?: boolean;
}
export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  fingerprint: string;
  status: { state: 'active' | 'suppressed' | 'unprocessed'; silencedBy: string[]; inhibitedBy: string[] };
  receivers: { name: string }[];
  generatorURL?: string;
}
export interface AlertGroup {
  labels: Record<string, string>;
  receiver: { name: string };
  alerts: Alert[];
}
export interface Silence {
  id: string;
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  status: { state: 'active' | 'pending' | 'expired' };
  updatedAt?: string;
}

export const alertGroups = () => request<AlertGroup[]>('api/v2/alerts/groups');
export const silences = () => request<Silence[]>('api/v2/silences');
export const receivers = () => request<{ name: string }[]>('api/v2/receivers');
export const status = () => request<Record<string, unknown>>('api/v2/status');

export function saveSilence(s: { id?: string; matchers: Matcher[]; startsAt: string; endsAt: string; createdBy: string; comment: string }) {
  return request<{ silenceID: string }>('api/v2/silences', { method: 'POST', body: s });
}

export function expireSilence(id: string) {
  return request<void>(`api/v2/silence/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

/** Parses "a=b, c=~d.*, e!=f" into matchers. */
export function parseMatchers(s: string): Matcher[] {
  const out: Matcher[] = [];
  const body = s.trim().replace(/^\{/, '').replace(/\}$/, '');
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*))\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body)) !== null && m[0] !== '') {
    const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] ?? '').trim();
    out.push({ name: m[1], value, isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') });
    if (re.lastIndex >= body.length) break;
  }
  return out;
}

export function matcherOp(m: Matcher): string {
  const neg = m.isEqual === false;
  if (m.isRegex) return neg ? '!~' : '=~';
  return neg ? '!=' : '=';
}

export function formatMatchers(ms: Matcher[]): string {
  return ms.map((m) => `${m.name}${matcherOp(m)}${JSON.stringify(m.value)}`).join(', ');
}
