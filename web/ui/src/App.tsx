// The shell: session check, login, top navigation and the page routes.
// Pages load lazily so the first paint carries only the shell.
import { lazy, Suspense, useEffect, useState } from 'react';
import { getSession, logout, type Session } from './api/session';
import { UNAUTHORIZED_EVENT, errorText } from './api/http';
import { navigate, useLocation } from './lib/url';
import Login from './pages/Login';

const ExploreMetrics = lazy(() => import('./pages/ExploreMetrics'));
const ExploreLogs = lazy(() => import('./pages/ExploreLogs'));
const ExploreTraces = lazy(() => import('./pages/ExploreTraces'));
const TraceView = lazy(() => import('./pages/TraceView'));
const Alerting = lazy(() => import('./pages/Alerting'));
const Status = lazy(() => import('./pages/Status'));
const ServiceMap = lazy(() => import('./pages/ServiceMap'));
const Dashboards = lazy(() => import('./pages/Dashboards'));

export const NAV: { path: string; label: string }[] = [
  { path: '/explore/metrics', label: 'Metrics' },
  { path: '/explore/logs', label: 'Logs' },
  { path: '/explore/traces', label: 'Traces' },
  { path: '/alerting', label: 'Alerting' },
  { path: '/service-map', label: 'Service map' },
  { path: '/dashboards', label: 'Dashboards' },
  { path: '/status', label: 'Status' },
];

/** Keeps the time range when moving between pages. */
function navHref(path: string, params: URLSearchParams): string {
  const q = new URLSearchParams();
  for (const k of ['from', 'to']) {
    const v = params.get(k);
    if (v) q.set(k, v);
  }
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

function Page({ path }: { path: string }) {
  if (path === '/explore/metrics') return <ExploreMetrics />;
  if (path === '/explore/logs') return <ExploreLogs />;
  if (path === '/explore/traces') return <ExploreTraces />;
  const m = /^\/explore\/traces\/([0-9a-fA-F]+)$/.exec(path);
  if (m) return <TraceView traceId={m[1].toLowerCase()} />;
  if (path === '/alerting') return <Alerting />;
  if (path === '/status') return <Status />;
  if (path === '/service-map') return <ServiceMap />;
  if (path === '/dashboards' || path.startsWith('/dashboards/')) return <Dashboards />;
  return (
    <div className="page">
      <h2>Not found</h2>
      <p>
        No page at <code>{path}</code>. <a href="#/explore/metrics">Explore metrics</a>
      </p>
    </div>
  );
}

export default function App() {
  const [loc] = useLocation();
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState('');

  useEffect(() => {
    getSession().then(setSession, (e) => setError(errorText(e)));
    const onUnauth = () => setSession(null);
    window.addEventListener(UNAUTHORIZED_EVENT, onUnauth);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, onUnauth);
  }, []);

  useEffect(() => {
    if (session && loc.path === '/') navigate('/explore/metrics', {}, true);
  }, [session, loc.path]);

  if (error) return <div className="page error">Cannot reach nx-watcher: {error}</div>;
  if (session === undefined) return <div className="page muted">Loading…</div>;
  if (session === null) return <Login onLogin={setSession} />;

  return (
    <div className="shell">
      <header className="topnav">
        <a className="brand" href="#/explore/metrics">
          nx-watcher
        </a>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <a
              key={n.path}
              href={navHref(n.path, loc.params)}
              className={loc.path === n.path || loc.path.startsWith(n.path + '/') ? 'active' : ''}
              aria-current={loc.path === n.path ? 'page' : undefined}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <div className="spacer" />
        {session.anonymous && (
          <>
            <span className="muted small" data-testid="session-user">
              anonymous ({session.role})
            </span>
            <button type="button" className="btn" onClick={() => setSession(null)}>
              Log in
            </button>
          </>
        )}
        {session.role !== 'none' && !session.anonymous && (
          <>
            <span className="muted small" data-testid="session-user">
              {session.user} ({session.role})
            </span>
            <button
              type="button"
              className="btn"
              onClick={async () => {
                try {
                  await logout();
                } finally {
                  setSession(null);
                }
              }}
            >
              Log out
            </button>
          </>
        )}
      </header>
      <Suspense fallback={<div className="page muted">Loading…</div>}>
        <Page path={loc.path} />
      </Suspense>
    </div>
  );
}
