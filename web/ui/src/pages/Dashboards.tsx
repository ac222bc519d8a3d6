// Dashboards: the list (search, tags, import) at #/dashboards and one
// dashboard at #/dashboards/<uid>. The renderer lives in ../dashboard and
// loads with this page, not with the shell.
import { useEffect, useState } from 'react';
import { APIError, errorText } from '../api/http';
import { deleteDashboard, getDashboard, listDataSources, saveDashboard, searchDashboards } from '../api/dashboards';
import DashboardView from '../dashboard/DashboardView';
import { normalise } from '../dashboard/layout';
import { parseImport } from '../dashboard/importjson';
import { useAsync } from '../lib/useAsync';
import { navigate, useLocation } from '../lib/url';

function ImportForm({ onDone }: { onDone: () => void }) {
  const [text, setText] = useState('');
  const [overwrite, setOverwrite] = useState(false);
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setErr('');
    setBusy(true);
    try {
      const ds = await listDataSources();
      const d = parseImport(text, ds);
      const r = await saveDashboard(d, overwrite);
      onDone();
      navigate(`/dashboards/${encodeURIComponent(r.uid)}`);
    } catch (e) {
      if (e instanceof APIError && e.status === 412) setErr(`${errorText(e)} — tick "Overwrite" to replace it.`);
      else setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="card import-form"
      aria-label="Import dashboard"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <h3 style={{ marginTop: 0 }}>Import a Grafana dashboard</h3>
      <label>
        Dashboard JSON
        <textarea data-testid="dashboard-import-json" rows={12} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} className="mono" placeholder='{"title": "…", "panels": […]}' />
      </label>
      <div className="row">
        <label className="inline">
          or a file
          <input
            type="file"
            accept=".json,application/json"
            data-testid="dashboard-import-file"
            onChange={async (e) => {
              const f = e.target.files?.[0];
              if (f) setText(await f.text());
            }}
          />
        </label>
        <label className="inline">
          <input type="checkbox" checked={overwrite} onChange={(e) => setOverwrite(e.target.checked)} /> Overwrite a dashboard with the same uid or title
        </label>
        <div className="spacer" />
        <button type="submit" className="btn primary" disabled={busy || !text.trim()} data-testid="dashboard-import-submit">
          Import
        </button>
      </div>
      {err && (
        <div className="error" role="alert" data-testid="dashboard-import-error">
          {err}
        </div>
      )}
    </form>
  );
}

function DashboardList() {
  const [loc, setParams] = useLocation();
  const query = loc.params.get('query') ?? '';
  const tag = loc.params.get('tag') ?? '';
  const [draft, setDraft] = useState(query);
  const [importing, setImporting] = useState(false);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    const t = window.setTimeout(() => draft !== query && setParams({ query: draft }, true), 250);
    return () => window.clearTimeout(t);
  }, [draft, query, setParams]);
  const st = useAsync((signal) => searchDashboards(query, tag || undefined, signal), [query, tag, reload]);
  return (
    <div className="page" data-testid="dashboards">
      <div className="toolbar">
        <h2 style={{ margin: 0 }}>Dashboards</h2>
        <input type="search" placeholder="Search dashboards" aria-label="Search dashboards" value={draft} onChange={(e) => setDraft(e.target.value)} data-testid="dashboard-search" style={{ minWidth: 280 }} />
        {tag && (
          <button type="button" className="btn small" onClick={() => setParams({ tag: undefined })}>
            tag: {tag} ✕
          </button>
        )}
        <div className="spacer" />
        <button type="button" className="btn" onClick={() => setImporting(!importing)} aria-expanded={importing} data-testid="dashboard-import">
          Import
        </button>
      </div>
      {importing && <ImportForm onDone={() => setReload((x) => x + 1)} />}
      {st.error && <div className="error">{st.error}</div>}
      <ul className="dash-list" data-testid="dashboard-list" aria-busy={st.loading}>
        {(st.data ?? []).map((h) => (
          <li key={h.uid || `file:${h.file}`} data-testid="dashboard-item" data-uid={h.uid}>
            {h.uid ? <a href={`#/dashboards/${encodeURIComponent(h.uid)}`}>{h.title}</a> : <span>{h.title || h.file}</span>}
            {h.source && <span className="badge">{h.source}</span>}
            {(h.tags ?? []).map((t) => (
              <button key={t} type="button" className="badge tag" onClick={() => setParams({ tag: t })}>
                {t}
              </button>
            ))}
            {h.error && <span className="error small">{h.error}</span>}
          </li>
        ))}
      </ul>
      {st.data && st.data.length === 0 && <p className="muted">No dashboards match.</p>}
    </div>
  );
}

function DashboardPage({ uid }: { uid: string }) {
  const [reload] = useState(0);
  const st = useAsync(async (signal) => {
    const [d, ds] = await Promise.all([getDashboard(uid, signal), listDataSources(signal)]);
    return { dash: normalise(d.dashboard), meta: d.meta, ds };
  }, [uid, reload]);
  if (st.error) {
    return (
      <div className="page" data-testid="dashboard-missing">
        <h2>Dashboard {uid}</h2>
        <p className="error">{st.error}</p>
        <a href="#/dashboards">All dashboards</a>
      </div>
    );
  }
  if (!st.data) return <div className="page muted">Loading dashboard…</div>;
  const { dash, meta, ds } = st.data;
  return (
    <DashboardView
      dash={{ ...dash, uid: dash.uid ?? uid }}
      datasources={ds}
      canDelete={!!meta?.canDelete}
      onDelete={async () => {
        if (!window.confirm(`Delete the imported dashboard "${dash.title}"?`)) return;
        try {
          await deleteDashboard(uid);
          navigate('/dashboards');
        } catch (e) {
          window.alert(errorText(e));
        }
      }}
    />
  );
}

export default function Dashboards() {
  const [loc] = useLocation();
  if (loc.path.startsWith('/dashboards/') && loc.path.length > '/dashboards/'.length) {
    const uid = decodeURIComponent(loc.path.slice('/dashboards/'.length));
    return <DashboardPage key={uid} uid={uid} />;
  }
  return <DashboardList />;
}
