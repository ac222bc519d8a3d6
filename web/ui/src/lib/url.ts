// The UI's address lives in the hash: "#/explore/metrics?query=…&from=now-1h".
// Hash routing keeps every asset and API URL relative to the page, so the UI
// works at "/" and under any --web.route-prefix with no server rewriting.
import { useCallback, useSyncExternalStore } from 'react';

export interface Loc {
  path: string;
  params: URLSearchParams;
}

/** Splits a hash ("#/a/b?x=1") into path and params; "" and "#" are "/". */
export function parseHash(hash: string): Loc {
  const h = hash.startsWith('#') ? hash.slice(1) : hash;
  const i = h.indexOf('?');
  const path = (i >= 0 ? h.slice(0, i) : h) || '/';
  return { path: path.startsWith('/') ? path : `/${path}`, params: new URLSearchParams(i >= 0 ? h.slice(i + 1) : '') };
}

/** Joins path and params back into a hash, dropping empty values and sorting nothing (order is kept). */
export function formatHash(path: string, params: URLSearchParams | Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  const entries = params instanceof URLSearchParams ? [...params.entries()] : Object.entries(params);
  for (const [k, v] of entries) if (v !== undefined && v !== '') q.append(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

/** Returns params with the given keys set (undefined or "" deletes). */
export function withParams(params: URLSearchParams, set: Record<string, string | undefined>): URLSearchParams {
  const q = new URLSearchParams(params);
  for (const [k, v] of Object.entries(set)) {
    if (v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  return q;
}

function subscribe(cb: () => void): () => void {
  window.addEventListener('hashchange', cb);
  return () => window.removeEventListener('hashchange', cb);
}

const getHash = () => window.location.hash;

export function navigate(path: string, params: URLSearchParams | Record<string, string | undefined> = {}, replace = false): void {
  const h = formatHash(path, params);
  if (h === window.location.hash) return;
  if (replace) {
    window.history.replaceState(null, '', h);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    window.location.hash = h;
  }
}

/** The current location and a setter for its params (push by default, replace for typing). */
export function useLocation(): [Loc, (set: Record<string, string | undefined>, replace?: boolean) => void] {
  const hash = useSyncExternalStore(subscribe, getHash);
  const loc = parseHash(hash);
  const setParams = useCallback((set: Record<string, string | undefined>, replace = false) => {
    const cur = parseHash(window.location.hash);
    navigate(cur.path, withParams(cur.params, set), replace);
  }, []);
  return [loc, setParams];
}

// When the page last navigated: 0 (the document's time origin) until the
// first hash change, then the time of the latest one. Dashboards measure
// their render time from it (window.__nxDashboardRenderedMs).
let lastNavigation = 0;
if (typeof window !== 'undefined') {
  window.addEventListener('hashchange', () => {
    lastNavigation = performance.now();
  });
}

export function navigationStart(): number {
  return lastNavigation;
}
