// A dashboard: toolbar (title, time picker, refresh), variables, and the
// grid of rows and panels. Time range, refresh and variables live in the URL
// as Grafana keeps them (from, to, refresh, var-<name>, viewPanel). When
// every panel in view has left "loading" the root gets data-rendered="true"
// and window.__nxDashboardRenderedMs.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import './dashboard.css';
import TimePicker from '../components/TimePicker';
import type { DataSource } from '../api/dashboards';
import { errorText } from '../api/http';
import { navigate, navigationStart, useLocation } from '../lib/url';
import { resolveRange, type TimeRange } from '../lib/time';
import { heightPx, layoutPanels, rowKey, type Section } from './layout';
import PanelView, { type PanelState } from './PanelView';
import DashboardLinks from './DashboardLinks';
import type { Dashboard, Panel } from './types';
import { evaluateVariables, scopeOf, type VarState } from './varstate';
import { ALL, interpolate, parseInterval } from './variables';

declare global {
  interface Window {
    __nxDashboardRenderedMs?: number;
  }
}

const REFRESH_CHOICES = ['', '5s', '10s', '30s', '1m', '5m', '15m', '30m', '1h'];

function urlVarValues(params: URLSearchParams): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of params) if (k.startsWith('var-')) (out[k.slice(4)] ??= []).push(v);
  return out;
}

function VariablePicker({ v, onChange }: { v: VarState; onChange: (values: string[]) => void }) {
  const label = v.def.label || v.def.name;
  const first = v.current[0] ?? '';
  const [draft, setDraft] = useState(first);
  useEffect(() => setDraft(first), [first]);
  if (v.def.type === 'textbox') {
    return (
      <label className="var" data-testid={`var-${v.def.name}`}>
        {label}
        <input value={draft} onChange={(e) => setDraft(e.target.value)} onBlur={() => onChange([draft])} onKeyDown={(e) => e.key === 'Enter' && onChange([draft])} />
      </label>
    );
  }
  const opts = [...(v.def.includeAll ? [{ text: 'All', value: ALL }] : []), ...v.options];
  if (v.def.multi) return <MultiPicker v={v} label={label} opts={opts} onChange={onChange} />;
  return (
    <label className="var" data-testid={`var-${v.def.name}`} title={v.error}>
      {label}
      <select value={v.current[0] ?? ''} onChange={(e) => onChange([e.target.value])} className={v.error ? 'invalid' : undefined}>
        {!opts.some((o) => o.value === v.current[0]) && v.current[0] !== undefined && <option value={v.current[0]}>{v.texts[0] ?? v.current[0]}</option>}
        {opts.map((o) => (
          <option key={o.value} value={o.value}>
            {o.text}
          </option>
        ))}
      </select>
      {v.error && <span className="error small">{v.error}</span>}
    </label>
  );
}

/** A multi-value variable: a button with the selection, opening a filterable list of checkboxes. */
function MultiPicker({ v, label, opts, onChange }: { v: VarState; label: string; opts: { text: string; value: string }[]; onChange: (values: string[]) => void }) {
  const [open, setOpen] = useState(false);
  const [filter, setFilter] = useState('');
  const current = v.current;
  const includeAll = !!v.def.includeAll;
  const [sel, setSel] = useState<string[]>(current);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => setSel(current), [current]);
  const commit = useCallback(() => {
    setOpen(false);
    const next = sel.length ? sel : includeAll ? [ALL] : current;
    if (JSON.stringify(next) !== JSON.stringify(current)) onChange(next);
  }, [sel, current, includeAll, onChange]);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent) => box.current && !box.current.contains(e.target as Node) && commit();
    document.addEventListener('mousedown', close);
    return () => document.removeEventListener('mousedown', close);
  }, [open, commit]);
  const toggle = (val: string) => {
    if (val === ALL) return setSel([ALL]);
    const cur = sel.filter((x) => x !== ALL);
    setSel(cur.includes(val) ? cur.filter((x) => x !== val) : [...cur, val]);
  };
  const shown = opts.filter((o) => !filter || o.text.toLowerCase().includes(filter.toLowerCase()));
  const summary = v.current.includes(ALL) ? 'All' : v.texts.join(' + ') || 'None';
  return (
    <div className="var" data-testid={`var-${v.def.name}`} ref={box} title={v.error}>
      <span className="var-label">{label}</span>
      <button type="button" className={`btn var-button${v.error ? ' invalid' : ''}`} aria-haspopup="listbox" aria-expanded={open} onClick={() => (open ? commit() : setOpen(true))}>
        <span className="var-summary">{summary}</span> ▾
      </button>
      {open && (
        <div className="var-pop" role="listbox" aria-multiselectable="true" aria-label={label} onKeyDown={(e) => e.key === 'Escape' && commit()}>
          <input autoFocus placeholder="Filter" value={filter} onChange={(e) => setFilter(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && commit()} aria-label={`Filter ${label}`} />
          <ul>
            {shown.map((o) => (
              <li key={o.value}>
                <label className="inline">
                  <input type="checkbox" checked={sel.includes(o.value)} onChange={() => toggle(o.value)} data-value={o.value} />
                  {o.text}
                </label>
              </li>
            ))}
          </ul>
          <div className="row">
            <button type="button" className="btn small primary" onClick={commit}>
              Apply
            </button>
          </div>
        </div>
      )}
      {v.error && <span className="error small">{v.error}</span>}
    </div>
  );
}

interface Props {
  dash: Dashboard;
  datasources: DataSource[];
  canDelete?: boolean;
  onDelete?: () => void;
}

export default function DashboardView({ dash, datasources, canDelete, onDelete }: Props) {
  const [loc] = useLocation();
  const params = loc.params;
  const from = params.get('from') ?? dash.time?.from ?? 'now-1h';
  const to = params.get('to') ?? dash.time?.to ?? 'now';
  const range: TimeRange = useMemo(() => ({ from, to }), [from, to]);
  const refresh = params.get('refresh') ?? (typeof dash.refresh === 'string' ? dash.refresh : '');
  const viewPanel = params.get('viewPanel');
  const varKey = JSON.stringify(urlVarValues(params));
  const [tick, setTick] = useState(0);

  const setParams = useCallback((set: Record<string, string | string[] | undefined>) => {
    const cur = new URLSearchParams(window.location.hash.split('?')[1] ?? '');
    for (const [k, v] of Object.entries(set)) {
      cur.delete(k);
      if (v === undefined) continue;
      for (const x of Array.isArray(v) ? v : [v]) cur.append(k, x);
    }
    navigate(window.location.hash.slice(1).split('?')[0], cur);
  }, []);

  // The resolved range: recomputed on a refresh tick for relative ranges.
  const resolved = useMemo(() => resolveRange(range, Date.now()), [range, tick]); // eslint-disable-line react-hooks/exhaustive-deps

  // Auto-refresh.
  useEffect(() => {
    const ms = parseInterval(refresh);
    if (!refresh || Number.isNaN(ms) || ms < 1000) return;
    const t = window.setInterval(() => setTick((x) => x + 1), ms);
    return () => window.clearInterval(t);
  }, [refresh]);

  // Variables: evaluated in order whenever the dashboard, range or URL values change.
  const [vars, setVars] = useState<VarState[] | null>(null);
  const [varError, setVarError] = useState('');
  const defs = dash.templating?.list;
  useEffect(() => {
    const ac = new AbortController();
    const r = resolveRange(range, Date.now());
    evaluateVariables(defs ?? [], JSON.parse(varKey) as Record<string, string[]>, { datasources, startMs: r.start, endMs: r.end, signal: ac.signal }).then(
      (v) => !ac.signal.aborted && setVars(v),
      (e) => !ac.signal.aborted && setVarError(errorText(e)),
    );
    return () => ac.abort();
  }, [defs, datasources, range, varKey]);
  const scope = useMemo(() => scopeOf(vars ?? []), [vars]);
  const scopeKey = useMemo(() => JSON.stringify((vars ?? []).map((v) => [v.def.name, v.current])), [vars]);

  // Rows: collapsed state per row, starting from the saved one.
  const [collapsed, setCollapsed] = useState<Record<string, boolean>>({});
  const sections: Section[] = useMemo(() => layoutPanels(dash.panels ?? [], collapsed), [dash.panels, collapsed]);

  // Repeated panels (panel.repeat = a variable): one copy per selected value.
  // Computed once per layout and selection, so a copy keeps its identity
  // across renders (a new object would run its queries again).
  const copiesOf = useMemo(() => {
    const m = new Map<Panel, { panel: Panel; scope: typeof scope; key: string }[]>();
    for (const sec of sections)
      for (const it of sec.items) {
        const p = it.panel;
        if (!p.repeat || !scope[p.repeat]) {
          m.set(p, [{ panel: p, scope, key: String(p.id) }]);
          continue;
        }
        const v = scope[p.repeat];
        const values = v.values.includes(ALL) ? (v.options ?? []).map((o) => o.value) : v.values;
        m.set(
          p,
          values.map((val, i) => ({
            panel: i === 0 ? p : { ...p, id: (p.id ?? 0) * 1000 + i },
            scope: { ...scope, [p.repeat!]: { ...v, values: [val], texts: [val], multi: false, includeAll: false } },
            key: `${p.id}-${val}`,
          })),
        );
      }
    return m;
  }, [sections, scope]);
  const expand = useCallback((p: Panel) => copiesOf.get(p) ?? [{ panel: p, scope, key: String(p.id) }], [copiesOf, scope]);

  // Render tracking: which panels are in view, and their states.
  const states = useRef(new Map<number, PanelState>());
  const [stateVersion, setStateVersion] = useState(0);
  const onState = useCallback((id: number, s: PanelState) => {
    if (states.current.get(id) === s) return;
    states.current.set(id, s);
    setStateVersion((x) => x + 1);
  }, []);
  const visibleIds = useMemo(() => {
    const ids: number[] = [];
    for (const sec of sections) {
      if (sec.collapsed) continue;
      for (const it of sec.items) for (const e of expand(it.panel)) ids.push(e.panel.id ?? 0);
    }
    if (viewPanel) return ids.filter((i) => String(i) === viewPanel);
    return ids;
  }, [sections, expand, viewPanel]);
  const rendered = vars !== null && visibleIds.every((id) => {
    const s = states.current.get(id);
    return s !== undefined && s !== 'loading';
  });
  // Measured from the navigation that opened the dashboard: the page load, or the hash change.
  const navStart = useRef(navigationStart());
  useEffect(() => {
    if (rendered && window.__nxDashboardRenderedMs === undefined) window.__nxDashboardRenderedMs = Math.round(performance.now() - navStart.current);
  }, [rendered, stateVersion]);
  useEffect(
    () => () => {
      delete window.__nxDashboardRenderedMs;
    },
    [],
  );

  // Esc leaves the panel view.
  useEffect(() => {
    if (!viewPanel) return;
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setParams({ viewPanel: undefined });
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [viewPanel, setParams]);

  const onView = useCallback((id: number | undefined) => setParams({ viewPanel: id === undefined ? undefined : String(id) }), [setParams]);

  const panelProps = {
    start: resolved.start,
    end: resolved.end,
    from: range.from,
    to: range.to,
    tick,
    datasources,
    dashboardTitle: dash.title ?? '',
    onView,
    onState,
  };

  const title = dash.title ?? dash.uid ?? 'Dashboard';
  const visibleVars = (vars ?? []).filter((v) => v.def.hide !== 2 && v.def.type !== 'constant');

  return (
    <div className="page dashboard" data-testid="dashboard" data-uid={dash.uid} data-rendered={rendered ? 'true' : undefined}>
      <div className="toolbar dash-toolbar">
        <h2 style={{ margin: 0 }}>
          <a href="#/dashboards" className="muted">
            Dashboards
          </a>{' '}
          / {title}
        </h2>
        {(dash.tags ?? []).map((t) => (
          <span key={t} className="badge">
            {t}
          </span>
        ))}
        <div className="spacer" />
        {canDelete && onDelete && (
          <button type="button" className="btn danger" onClick={onDelete} data-testid="dashboard-delete">
            Delete
          </button>
        )}
        <TimePicker range={range} onChange={(r) => setParams({ from: r.from, to: r.to })} onRefresh={() => setTick((x) => x + 1)} />
        <label className="inline">
          <span className="sr-only">Auto-refresh</span>
          <select value={refresh} onChange={(e) => setParams({ refresh: e.target.value || undefined })} aria-label="Auto-refresh" data-testid="dashboard-refresh">
            {(REFRESH_CHOICES.includes(refresh) ? REFRESH_CHOICES : [...REFRESH_CHOICES, refresh]).map((r) => (
              <option key={r} value={r}>
                {r === '' ? 'Off' : r}
              </option>
            ))}
          </select>
        </label>
      </div>
      {(dash.links?.length ?? 0) > 0 && (
        <DashboardLinks
          links={dash.links ?? []}
          uid={dash.uid}
          scope={scope}
          from={from}
          to={to}
          varParams={(vars ?? [])
            .flatMap((v) => v.current.map((x) => `var-${encodeURIComponent(v.def.name)}=${encodeURIComponent(x === ALL ? 'All' : x)}`))
            .join('&')}
        />
      )}
      {varError && <div className="error">{varError}</div>}
      {visibleVars.length > 0 && (
        <div className="dash-vars">
          {visibleVars.map((v) => (
            <VariablePicker key={v.def.name} v={v} onChange={(vals) => setParams({ [`var-${v.def.name}`]: vals.map((x) => (x === ALL ? 'All' : x)) })} />
          ))}
        </div>
      )}
      {vars === null && <div className="muted">Loading variables…</div>}
      {vars !== null &&
        (viewPanel ? (
          <div className="dash-view">
            {sections
              .flatMap((s) => s.items)
              .flatMap((it) => expand(it.panel))
              .filter((e) => String(e.panel.id) === viewPanel)
              .slice(0, 1)
              .map((e) => (
                <PanelView key={e.key} panel={e.panel} scope={e.scope} scopeKey={scopeKey} viewing {...panelProps} />
              ))}
          </div>
        ) : (
          sections.map((sec, si) => (
            <div key={si} className="dash-section">
              {sec.row && (
                <div className="dash-row" data-testid="row" data-collapsed={sec.collapsed ? 'true' : 'false'}>
                  <button
                    type="button"
                    className="dash-row-title"
                    aria-expanded={!sec.collapsed}
                    onClick={() => setCollapsed((c) => ({ ...c, [rowKey(sec.row)]: !sec.collapsed }))}
                  >
                    {sec.collapsed ? '▸' : '▾'} {interpolate(sec.row.title ?? '', scope, 'raw')}
                    {sec.collapsed && <span className="muted small"> ({sec.items.length} panels)</span>}
                  </button>
                </div>
              )}
              {!sec.collapsed && sec.items.length > 0 && (
                <div className="dash-grid" style={{ gridTemplateRows: `repeat(${sec.height}, 30px)` }}>
                  {sec.items.flatMap((it) => {
                    const copies = expand(it.panel);
                    const w = Math.max(1, Math.floor(it.w / copies.length));
                    return copies.map((e, i) => (
                      <div
                        key={e.key}
                        className="dash-cell"
                        style={{ gridColumn: `${Math.min(24, it.x + 1 + i * w)} / span ${copies.length > 1 ? w : it.w}`, gridRow: `${it.y + 1} / span ${it.h}`, height: heightPx(it.h) }}
                      >
                        <PanelView panel={e.panel} scope={e.scope} scopeKey={scopeKey} viewing={false} {...panelProps} />
                      </div>
                    ));
                  })}
                </div>
              )}
            </div>
          ))
        ))}
    </div>
  );
}
