// One fetch wrapper for every API module: relative URLs (so a route prefix
// works), JSON in and out, typed errors, and a global "unauthorized" event so
// the shell can show the login page when a session ends.

export class APIError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function apiURL(path: string, params?: Record<string, string | number | undefined>): string {
  const u = new URL(path.replace(/^\//, ''), document.baseURI);
  if (params) for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.searchParams.set(k, String(v));
  return u.toString();
}

export const UNAUTHORIZED_EVENT = 'nxwatcher:unauthorized';

export interface RequestOptions {
  method?: string;
  params?: Record<string, string | number | undefined>;
  body?: unknown;
  form?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  let body: BodyInit | undefined;
  let url = apiURL(path, opts.form ? undefined : opts.params);
  if (opts.form) {
    const f = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.form)) if (v !== undefined && v !== '') f.set(k, String(v));
    body = f;
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    if (opts.params) url = apiURL(path, opts.params);
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url, {
    method: opts.method ?? (body ? 'POST' : 'GET'),
    headers,
    body,
    credentials: 'same-origin',
    signal: opts.signal,
  });
  const text = await res.text();
  if (!res.ok) {
    if (res.status === 401 && !path.includes('api/ui/')) window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
    let msg = text.trim() || res.statusText;
    try {
      const j = JSON.parse(text) as { error?: string; message?: string };
      msg = j.error ?? j.message ?? msg;
    } catch {
      // not JSON: keep the text
    }
    throw new APIError(res.status, `${res.status}: ${msg}`);
  }
  if (text === '') return undefined as T;
  return JSON.parse(text) as T;
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
