// The UI's own endpoints (/api/ui), which no upstream API has: login,
// logout, session.
import { APIError, request } from './http';

export interface Session {
  user: string;
  role: 'viewer' | 'editor' | 'admin' | string;
  anonymous?: boolean;
}

/** The current session; null when logged out; {user:"", role:"anonymous"} when the server has no login (404). */
export async function getSession(): Promise<Session | null> {
  try {
    return await request<Session>('api/ui/session');
  } catch (e) {
    if (e instanceof APIError && e.status === 401) return null;
    if (e instanceof APIError && e.status === 404) return { user: '', role: 'none' };
    throw e;
  }
}

export function login(user: string, password: string) {
  return request<Session>('api/ui/login', { method: 'POST', body: { user, password } });
}

export function logout() {
  return request<void>('api/ui/logout', { method: 'POST' });
}

export interface ClientConfig {
  version: string;
  anonymous: boolean;
  features: { metrics: boolean; logs: boolean; traces: boolean; alerting: boolean };
  status: string[];
}

/** GET /api/ui/config; a server without it (404) gets every feature on. */
export async function clientConfig(): Promise<ClientConfig> {
  try {
    return await request<ClientConfig>('api/ui/config');
  } catch (e) {
    if (e instanceof APIError && e.status === 404) {
      return { version: '', anonymous: false, features: { metrics: true, logs: true, traces: true, alerting: true }, status: [] };
    }
    throw e;
  }
}

/** GET /api/ui/status/{name}: a status source without an upstream API (log and trace store stats). */
export function statusSource(name: string) {
  return request<{ status: string; data: unknown }>(`api/ui/status/${encodeURIComponent(name)}`).then((r) => r.data);
}
