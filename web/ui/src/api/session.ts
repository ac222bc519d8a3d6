// The UI's own endpoints (/api/ui), which no upstream API has: login,
// logout, session.
import { APIError, request } from './http';

export interface Session {
  user: string;
  role: 'viewer' | 'editor' | 'admin' | string;
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
