// Alerting: rules (Prometheus /api/v1/rules), alerts grouped as Alertmanager
// groups them (/api/v2/alerts/groups), silences (create from an alert, edit,
// expire) and receivers.
import { useState } from 'react';
import * as prom from '../api/prometheus';
import * as am from '../api/alertmanager';
import { errorText } from '../api/http';
import { useAsync } from '../lib/useAsync';
import { useTab } from '../components/Tabs';
import Labels from '../components/Labels';
import { formatDateTime, parseDuration } from '../lib/time';
import { formatDurationMs } from '../lib/format';
import { pageHref } from '../lib/links';

const TABS = [
  { id: 'alerts', label: 'Alerts' },
  { id: 'rules', label: 'Rules' },
  { id: 'silences', label: 'Silences' },
  { id: 'receivers', label: 'Receivers' },
];

interface SilenceDraft {
  id?: string;
  matchers: string;
  duration: string;
  comment: string;
  createdBy: string;
}

export default function Alerting() {
  const [tab, tabs] = useTab(TABS);
  const [draft, setDraft] = useState<SilenceDraft | undefined>();
  const [reload, setReload] = useState(0);
  const openSilence = (d: SilenceDraft) => {
    setDraft(d);
  };
  return (
    <div className="page" data-testid="alerting">
      {tabs}
      {draft && <SilenceForm draft={draft} onDone={() => { setDraft(undefined); setReload((n) => n + 1); }} />}
      {tab === 'alerts' && <Alerts onSilence={openSilence} reload={reload} />}
      {tab === 'rules' && <Rules />}
      {tab === 'silences' && <Silences onEdit={openSilence} reload={reload} onChanged={() => setReload((n) => n + 1)} />}
      {tab === 'receivers' && <Receivers />}
    </div>
  );
}

function Alerts({ onSilence, reload }: { onSilence: (d: SilenceDraft) => void; reload: number }) {
  const st = useAsync(() => am.alertGroups(), [reload]);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  if (st.data.length === 0) return <p className="muted">No alerts are firing.</p>;
  return (
    <div data-testid="alert-groups">
      <button className="btn small" onClick={() => onSilence({ matchers: '', duration: '2h', comment: '', createdBy: '' })}>
        New silence
      </button>
      {st.data.map((g, i) => (
        <div className="card" key={i} style={{ margin: '8px 0' }}>
          <div className="row">
            <b>Group</b> <Labels labels={g.labels} /> <span className="muted small">→ {g.receiver.name}</span>
          </div>
          <table className="data">
            <tbody>
              {g.alerts.map((a) => (
                <tr key={a.fingerprint} data-testid="alert" data-alertname={a.labels.alertname} data-state={a.status.state}>
                  <td style={{ width: 90 }}>
                    <span className={`badge ${a.status.state === 'active' ? 'firing' : 'pending'}`}>{a.status.state}</span>
                  </td>
                  <td>
                    <Labels labels={a.labels} />
                    {a.annotations.summary && <div className="small">{a.annotations.summary}</div>}
                    {a.annotations.description && <div className="small muted">{a.annotations.description}</div>}
                  </td>
                  <td className="small muted">since {formatDateTime(Date.parse(a.startsAt))}</td>
                  <td>
                    <button
                      className="btn small"
                      data-testid="silence-alert"
                      onClick={() =>
                        onSilence({
                          matchers: am.formatMatchers(Object.entries(a.labels).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }))),
                          duration: '2h',
                          comment: '',
                          createdBy: '',
                        })
                      }
                    >
                      Silence
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function Rules() {
  const st = useAsync(() => prom.rules(), []);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  if (st.data.length === 0) return <p className="muted">No rule groups are loaded.</p>;
  return (
    <div data-testid="rules">
      {st.data.map((g) => (
        <div className="card" key={`${g.file}/${g.name}`} style={{ marginBottom: 8 }}>
          <div className="row">
            <b>{g.name}</b>
            <span className="muted small">
              {g.file} · every {formatDurationMs(g.interval * 1000)}
            </span>
          </div>
          <table className="data">
            <thead>
              <tr>
                <th>Rule</th>
                <th>State</th>
                <th>Health</th>
                <th>Last evaluation</th>
              </tr>
            </thead>
            <tbody>
              {g.rules.map((r) => (
                <tr key={r.name + r.query} data-testid="rule" data-rule={r.name} data-state={r.state ?? r.health}>
                  <td>
                    <b>{r.name}</b> <span className="muted small">{r.type}</span>
                    <div>
                      <a className="mono small" href={pageHref('/explore/metrics', { query: r.query })}>
                        {r.query}
                      </a>
                    </div>
                    {r.labels && <Labels labels={r.labels} />}
                  </td>
                  <td>{r.state && <span className={`badge ${r.state}`}>{r.state}{r.alerts?.length ? ` (${r.alerts.length})` : ''}</span>}</td>
                  <td>
                    <span className={`badge ${r.health === 'ok' ? 'ok' : r.health === 'err' ? 'error' : ''}`}>{r.health}</span>
                    {r.lastError && <div className="error small">{r.lastError}</div>}
                  </td>
                  <td className="small">
                    {r.lastEvaluation && !r.lastEvaluation.startsWith('0001') ? formatDateTime(Date.parse(r.lastEvaluation)) : 'never'}
                    <div className="muted">{formatDurationMs(r.evaluationTime * 1000)}</div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function Silences({ onEdit, reload, onChanged }: { onEdit: (d: SilenceDraft) => void; reload: number; onChanged: () => void }) {
  const st = useAsync(() => am.silences(), [reload]);
  const [err, setErr] = useState('');
  const [showExpired, setShowExpired] = useState(false);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  const list = st.data.filter((s) => showExpired || s.status.state !== 'expired').sort((a, b) => b.startsAt.localeCompare(a.startsAt));
  return (
    <div data-testid="silences">
      <div className="row">
        <button className="btn small" onClick={() => onEdit({ matchers: '', duration: '2h', comment: '', createdBy: '' })}>
          New silence
        </button>
        <label className="inline">
          <input type="checkbox" checked={showExpired} onChange={(e) => setShowExpired(e.target.checked)} /> Show expired
        </label>
      </div>
      {err && <div className="error">{err}</div>}
      <table className="data" style={{ marginTop: 8 }}>
        <thead>
          <tr>
            <th>State</th>
            <th>Matchers</th>
            <th>Ends</th>
            <th>Comment</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.length === 0 && (
            <tr>
              <td colSpan={5} className="muted">
                No silences.
              </td>
            </tr>
          )}
          {list.map((s) => (
            <tr key={s.id} data-testid="silence" data-state={s.status.state} data-comment={s.comment}>
              <td>
                <span className={`badge ${s.status.state === 'active' ? 'ok' : s.status.state === 'pending' ? 'pending' : ''}`}>{s.status.state}</span>
              </td>
              <td className="mono small">{am.formatMatchers(s.matchers)}</td>
              <td className="small">{formatDateTime(Date.parse(s.endsAt))}</td>
              <td className="small">
                {s.comment} <span className="muted">— {s.createdBy}</span>
              </td>
              <td>
                {s.status.state !== 'expired' && (
                  <div className="row">
                    <button
                      className="btn small"
                      onClick={() =>
                        onEdit({
                          id: s.id,
                          matchers: am.formatMatchers(s.matchers),
                          duration: formatDurationMs(Math.max(60_000, Date.parse(s.endsAt) - Date.now())).replace(/\d+s$/, '') || '1h',
                          comment: s.comment,
                          createdBy: s.createdBy,
                        })
                      }
                    >
                      Edit
                    </button>
                    <button
                      className="btn small danger"
                      data-testid="expire-silence"
                      onClick={async () => {
                        try {
                          await am.expireSilence(s.id);
                          onChanged();
                        } catch (e) {
                          setErr(errorText(e));
                        }
                      }}
                    >
                      Expire
                    </button>
                  </div>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function SilenceForm({ draft, onDone }: { draft: SilenceDraft; onDone: () => void }) {
  const [d, setD] = useState(draft);
  const [err, setErr] = useState('');
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const matchers = am.parseMatchers(d.matchers);
    const dur = parseDuration(d.duration);
    if (!matchers.length) return setErr('Give at least one matcher, e.g. alertname="HighErrorRate"');
    if (!Number.isFinite(dur) || dur <= 0) return setErr('Duration like 2h or 30m');
    if (!d.createdBy.trim() || !d.comment.trim()) return setErr('Author and comment are required');
    const now = Date.now();
    try {
      await am.saveSilence({ id: d.id, matchers, startsAt: new Date(now).toISOString(), endsAt: new Date(now + dur).toISOString(), createdBy: d.createdBy, comment: d.comment });
      onDone();
    } catch (e2) {
      setErr(errorText(e2));
    }
  };
  return (
    <form className="card" onSubmit={submit} style={{ marginBottom: 12 }} aria-label="Silence" data-testid="silence-form">
      <h3 style={{ marginTop: 0 }}>{d.id ? 'Edit silence' : 'New silence'}</h3>
      <div className="toolbar">
        <label style={{ flex: 1 }}>
          Matchers
          <input value={d.matchers} onChange={(e) => setD({ ...d, matchers: e.target.value })} placeholder='alertname="X", severity=~"warn|critical"' aria-label="Matchers" />
        </label>
        <label>
          Duration
          <input value={d.duration} onChange={(e) => setD({ ...d, duration: e.target.value })} style={{ width: 80 }} aria-label="Duration" />
        </label>
      </div>
      <div className="toolbar">
        <label>
          Author
          <input value={d.createdBy} onChange={(e) => setD({ ...d, createdBy: e.target.value })} aria-label="Author" />
        </label>
        <label style={{ flex: 1 }}>
          Comment
          <input value={d.comment} onChange={(e) => setD({ ...d, comment: e.target.value })} aria-label="Comment" />
        </label>
        <button className="btn primary" type="submit">
          {d.id ? 'Update' : 'Create'}
        </button>
        <button className="btn" type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
      {err && <div className="error">{err}</div>}
    </form>
  );
}

function Receivers() {
  const st = useAsync(() => am.receivers(), []);
  if (st.error) return <div className="error">{st.error}</div>;
  if (!st.data) return <div className="muted">Loading…</div>;
  return (
    <ul data-testid="receivers">
      {st.data.map((r) => (
        <li key={r.name}>{r.name}</li>
      ))}
    </ul>
  );
}
