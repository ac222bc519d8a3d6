// Status: scrape targets (health, last error, labels before and after
// relabelling), service discovery, the running config, TSDB stats, build
// info and runtime flags — all from Prometheus's /api/v1/status and targets.
import { Fragment, useState } from 'react';
import * as prom from '../api/prometheus';
import { clientConfig, statusSource } from '../api/session';
import { useAsync } from '../lib/useAsync';
import { useTab } from '../components/Tabs';
import Labels from '../components/Labels';
import { formatDateTime } from '../lib/time';
import { formatBytes, formatDurationMs, formatShort } from '../lib/format';

const TABS = [
  { id: 'targets', label: 'Targets' },
  { id: 'sd', label: 'Service discovery' },
  { id: 'config', label: 'Configuration' },
  { id: 'tsdb', label: 'TSDB' },
  { id: 'stores', label: 'Log & trace stores' },
  { id: 'build', label: 'Build & runtime' },
  { id: 'flags', label: 'Flags' },
];

export default function Status() {
  const [tab, tabs] = useTab(TABS);
  return (
    <div className="page" data-testid="status">
      {tabs}
      {tab === 'targets' && <Targets />}
      {tab === 'sd' && <Discovery />}
      {tab === 'config' && <Config />}
      {tab === 'tsdb' && <TSDB />}
      {tab === 'stores' && <Stores />}
      {tab === 'build' && <Build />}
      {tab === 'flags' && <Flags />}
    </div>
  );
}

function Targets() {
  const st = useAsync(() => prom.targets(), []);
  const [open, setOpen] = useState<string | undefined>();
  const [filter, setFilter] = useState<'all' | 'down'>('all');
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  const pools = new Map<string, prom.Target[]>();
  for (const t of st.data.activeTargets) {
    if (filter === 'down' && t.health === 'up') continue;
    pools.set(t.scrapePool, [...(pools.get(t.scrapePool) ?? []), t]);
  }
  return (
    <div data-testid="targets">
      <div className="row" style={{ marginBottom: 8 }}>
        <label className="inline">
          <input type="checkbox" checked={filter === 'down'} onChange={(e) => setFilter(e.target.checked ? 'down' : 'all')} /> Unhealthy only
        </label>
      </div>
      {[...pools.entries()].map(([pool, ts]) => (
        <div className="card" key={pool} style={{ marginBottom: 8 }}>
          <b>{pool}</b>{' '}
          <span className="muted small">
            ({ts.filter((t) => t.health === 'up').length}/{ts.length} up)
          </span>
          <table className="data">
            <thead>
              <tr>
                <th>Endpoint</th>
                <th>State</th>
                <th>Labels</th>
                <th>Last scrape</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              {ts.map((t) => (
                <Fragment key={t.scrapeUrl}>
                  <tr data-testid="target" data-health={t.health} onClick={() => setOpen(open === t.scrapeUrl ? undefined : t.scrapeUrl)} style={{ cursor: 'pointer' }}>
                    <td className="mono small">{t.scrapeUrl}</td>
                    <td>
                      <span className={`badge ${t.health}`}>{t.health}</span>
                    </td>
                    <td>
                      <Labels labels={t.labels} />
                    </td>
                    <td className="small">
                      {t.lastScrape && !t.lastScrape.startsWith('0001') ? formatDateTime(Date.parse(t.lastScrape)) : 'never'}
                      <div className="muted">{formatDurationMs(t.lastScrapeDuration * 1000)}</div>
                    </td>
                    <td className="error small">{t.lastError}</td>
                  </tr>
                  {open === t.scrapeUrl && (
                    <tr>
                      <td colSpan={5}>
                        <div className="grid2">
                          <div>
                            <div className="muted small">Discovered labels (before relabelling)</div>
                            <Labels labels={t.discoveredLabels} />
                          </div>
                          <div>
                            <div className="muted small">Target labels (after relabelling)</div>
                            <Labels labels={t.labels} />
                          </div>
                        </div>
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function Discovery() {
  const st = useAsync(() => prom.targets(), []);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  const pools = new Map<string, { active: prom.Target[]; dropped: { discoveredLabels: Record<string, string> }[] }>();
  for (const t of st.data.activeTargets) {
    const p = pools.get(t.scrapePool) ?? { active: [], dropped: [] };
    p.active.push(t);
    pools.set(t.scrapePool, p);
  }
  for (const t of st.data.droppedTargets ?? []) {
    const pool = t.scrapePool ?? t.discoveredLabels.job ?? '?';
    const p = pools.get(pool) ?? { active: [], dropped: [] };
    p.dropped.push(t);
    pools.set(pool, p);
  }
  return (
    <div data-testid="service-discovery">
      {[...pools.entries()].map(([pool, p]) => (
        <div className="card" key={pool} style={{ marginBottom: 8 }}>
          <b>{pool}</b>{' '}
          <span className="muted small">
            {p.active.length} active, {p.dropped.length + (st.data?.droppedTargetCounts?.[pool] && !p.dropped.length ? st.data.droppedTargetCounts[pool] : 0)} dropped
          </span>
          <table className="data">
            <thead>
              <tr>
                <th>Discovered labels</th>
                <th>Target labels</th>
              </tr>
            </thead>
            <tbody>
              {p.active.map((t) => (
                <tr key={t.scrapeUrl}>
                  <td>
                    <Labels labels={t.discoveredLabels} />
                  </td>
                  <td>
                    <Labels labels={t.labels} />
                  </td>
                </tr>
              ))}
              {p.dropped.map((t, i) => (
                <tr key={`d${i}`}>
                  <td>
                    <Labels labels={t.discoveredLabels} />
                  </td>
                  <td className="muted">dropped</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function Config() {
  const st = useAsync(() => prom.config(), []);
  if (st.error) return <div className="error">{st.error}</div>;
  return <pre className="config">{st.data ?? 'Loading…'}</pre>;
}

function TopList({ title, items, fmt = formatShort }: { title: string; items?: { name: string; value: number }[]; fmt?: (v: number) => string }) {
  return (
    <div className="card">
      <h3 style={{ marginTop: 0 }}>{title}</h3>
      <table className="data small">
        <tbody>
          {(items ?? []).map((i) => (
            <tr key={i.name}>
              <td className="mono">{i.name}</td>
              <td>{fmt(i.value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function TSDB() {
  const st = useAsync(() => prom.tsdbStatus(), []);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  const h = st.data.headStats;
  return (
    <div data-testid="tsdb">
      <div className="card" style={{ marginBottom: 8 }}>
        Head: <b>{h.numSeries}</b> series, <b>{h.chunkCount}</b> chunks
        {h.minTime > 0 && (
          <>
            , {formatDateTime(h.minTime)} → {formatDateTime(h.maxTime)}
          </>
        )}
      </div>
      <div className="grid2">
        <TopList title="Series by metric name" items={st.data.seriesCountByMetricName} />
        <TopList title="Label values by label name" items={st.data.labelValueCountByLabelName} />
        <TopList title="Memory by label name" items={st.data.memoryInBytesByLabelName} fmt={formatBytes} />
        <TopList title="Series by label pair" items={st.data.seriesCountByLabelValuePair} />
      </div>
    </div>
  );
}

function KVTable({ m }: { m?: Record<string, unknown> }) {
  if (!m) return <div className="muted">Loading…</div>;
  return (
    <table className="data small">
      <tbody>
        {Object.keys(m)
          .sort()
          .map((k) => (
            <tr key={k}>
              <td className="mono">{k}</td>
              <td className="mono">{typeof m[k] === 'object' ? JSON.stringify(m[k]) : String(m[k])}</td>
            </tr>
          ))}
      </tbody>
    </table>
  );
}

function Build() {
  const b = useAsync(() => prom.buildInfo(), []);
  const r = useAsync(() => prom.runtimeInfo(), []);
  return (
    <div className="grid2" data-testid="build">
      <div className="card">
        <h3 style={{ marginTop: 0 }}>Build</h3>
        {b.error ? <div className="error">{b.error}</div> : <KVTable m={b.data} />}
      </div>
      <div className="card">
        <h3 style={{ marginTop: 0 }}>Runtime</h3>
        {r.error ? <div className="error">{r.error}</div> : <KVTable m={r.data} />}
      </div>
    </div>
  );
}

function Flags() {
  const f = useAsync(() => prom.flags(), []);
  return <div data-testid="flags">{f.error ? <div className="error">{f.error}</div> : <KVTable m={f.data} />}</div>;
}

// Log store and trace store statistics have no upstream API: the server
// publishes them under /api/ui/status/{name}, listed by /api/ui/config.
function Stores() {
  const st = useAsync(async () => {
    const cfg = await clientConfig();
    return Promise.all(cfg.status.map(async (name) => ({ name, data: await statusSource(name).catch((e: unknown) => ({ error: String(e) })) })));
  }, []);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  if (st.data.length === 0) return <p className="muted">This server publishes no store statistics (no /api/ui/status sources).</p>;
  return (
    <div className="grid2" data-testid="stores">
      {st.data.map((s) => (
        <div className="card" key={s.name}>
          <h3 style={{ marginTop: 0 }}>{s.name}</h3>
          {s.data && typeof s.data === 'object' && !Array.isArray(s.data) ? <KVTable m={s.data as Record<string, unknown>} /> : <pre className="small">{JSON.stringify(s.data, null, 2)}</pre>}
        </div>
      ))}
    </div>
  );
}
