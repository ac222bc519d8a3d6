// The trace view: a waterfall with service colours, collapsible spans, the
// critical path, span details, and links to the trace's logs and its
// service's metrics.
import { useMemo, useRef, useState } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import * as tempo from '../api/tempo';
import { useAsync } from '../lib/useAsync';
import { buildTree, criticalPath, traceBounds, visibleSpans } from '../lib/trace';
import { colourFor } from '../lib/colours';
import { formatDurationMs } from '../lib/format';
import { formatDateTimeMs } from '../lib/time';
import { traceToLogsHref, traceToMetricsHref } from '../lib/links';

function KV({ title, m }: { title: string; m: Record<string, string> }) {
  const keys = Object.keys(m).sort();
  if (!keys.length) return null;
  return (
    <>
      <h3>{title}</h3>
      <table className="data small">
        <tbody>
          {keys.map((k) => (
            <tr key={k}>
              <td>{k}</td>
              <td className="mono" style={{ wordBreak: 'break-all' }}>
                {m[k]}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export default function TraceView({ traceId }: { traceId: string }) {
  const st = useAsync((signal) => tempo.traceByID(traceId, signal), [traceId]);
  return (
    <div className="page" data-testid="trace-view">
      <div className="row">
        <a href="#/explore/traces">← Traces</a>
        <h2 style={{ margin: 0 }}>
          Trace <span className="mono">{traceId}</span>
        </h2>
      </div>
      {st.loading && <div className="muted">Loading…</div>}
      {st.error && (
        <div className="card error" role="alert">
          {st.error.startsWith('404') ? `Trace ${traceId} not found.` : st.error}
        </div>
      )}
      {st.data && <Waterfall spans={st.data} traceId={traceId} />}
    </div>
  );
}

export function Waterfall({ spans, traceId }: { spans: tempo.Span[]; traceId: string }) {
  const roots = useMemo(() => buildTree(spans), [spans]);
  const cp = useMemo(() => criticalPath(roots), [roots]);
  const bounds = useMemo(() => traceBounds(spans), [spans]);
  const services = useMemo(() => [...new Set(spans.map((s) => s.service))].sort(), [spans]);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState<string | undefined>();
  const [showCP, setShowCP] = useState(true);
  const rows = useMemo(() => visibleSpans(roots, collapsed), [roots, collapsed]);
  const parent = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({ count: rows.length, getScrollElement: () => parent.current, estimateSize: () => 24, overscan: 15 });
  const total = Math.max(bounds.end - bounds.start, 1e-6);
  const sel = spans.find((s) => s.spanId === selected);
  const rootSvc = roots[0]?.span.service;

  const toggle = (id: string) =>
    setCollapsed((c) => {
      const n = new Set(c);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  return (
    <>
      <div className="row small" style={{ margin: '8px 0' }}>
        <span>
          {formatDateTimeMs(bounds.start)} · duration <b>{formatDurationMs(bounds.end - bounds.start)}</b> · <span data-testid="span-count">{spans.length}</span> spans ·{' '}
          {services.length} services
        </span>
        {services.map((s) => (
          <span key={s} className="row" style={{ gap: 3 }}>
            <span style={{ width: 10, height: 10, background: colourFor(s), display: 'inline-block', borderRadius: 2 }} />
            {s}
          </span>
        ))}
        <div className="spacer" />
        <label className="inline">
          <input type="checkbox" checked={showCP} onChange={(e) => setShowCP(e.target.checked)} /> Critical path
        </label>
        <button className="btn small" onClick={() => setCollapsed(new Set())}>
          Expand all
        </button>
        <button className="btn small" onClick={() => setCollapsed(new Set(spans.filter((s) => spans.some((c) => c.parentId === s.spanId)).map((s) => s.spanId)))}>
          Collapse all
        </button>
        <a className="btn small" href={traceToLogsHref(traceId, rootSvc, bounds.start, bounds.end)} data-testid="trace-to-logs">
          Logs for this trace
        </a>
        {rootSvc && (
          <a className="btn small" href={traceToMetricsHref(rootSvc, bounds.start, bounds.end)} data-testid="trace-to-metrics">
            Metrics of {rootSvc}
          </a>
        )}
      </div>
      <div style={{ display: 'flex', gap: 8 }}>
        <div className="waterfall" ref={parent} style={{ flex: 2 }} data-testid="waterfall">
          <div style={{ height: v.getTotalSize(), position: 'relative' }}>
            {v.getVirtualItems().map((it) => {
              const n = rows[it.index];
              const s = n.span;
              const left = ((s.start - bounds.start) / total) * 100;
              const width = Math.max(((s.end - s.start) / total) * 100, 0.1);
              const onCP = showCP && cp.has(s.spanId);
              return (
                <div
                  key={s.spanId}
                  className={`span-row${selected === s.spanId ? ' selected' : ''}`}
                  style={{ position: 'absolute', top: 0, left: 0, right: 0, transform: `translateY(${it.start}px)` }}
                  onClick={() => setSelected(s.spanId === selected ? undefined : s.spanId)}
                  onKeyDown={(e) => {
                    if (e.key === 'Enter' || e.key === ' ') {
                      e.preventDefault();
                      setSelected(s.spanId === selected ? undefined : s.spanId);
                    } else if ((e.key === 'ArrowLeft' || e.key === 'ArrowRight') && n.hasChildren) {
                      const isCollapsed = collapsed.has(s.spanId);
                      if ((e.key === 'ArrowLeft') !== isCollapsed) toggle(s.spanId);
                    }
                  }}
                  tabIndex={0}
                  data-testid="span-row"
                  data-span-name={s.name}
                  role="row"
                  aria-selected={selected === s.spanId}
                >
                  <div className="span-name" style={{ paddingLeft: 4 + n.depth * 14 }}>
                    <span
                      className="toggle"
                      role={n.hasChildren ? 'button' : undefined}
                      aria-label={n.hasChildren ? (collapsed.has(s.spanId) ? 'Expand' : 'Collapse') : undefined}
                      onClick={(e) => {
                        e.stopPropagation();
                        if (n.hasChildren) toggle(s.spanId);
                      }}
                    >
                      {n.hasChildren ? (collapsed.has(s.spanId) ? '▸' : '▾') : ''}
                    </span>
                    <span style={{ width: 4, height: 14, background: colourFor(s.service), display: 'inline-block' }} />
                    <span className="svc">{s.service}</span>
                    <span>{s.name}</span>
                    {s.statusCode === 'ERROR' && <span className="badge error">error</span>}
                  </div>
                  <div className="span-bar-wrap">
                    <div className={`span-bar${onCP ? ' critical' : ''}`} style={{ left: `${left}%`, width: `${width}%`, background: colourFor(s.service) }} />
                    <span className="span-bar-label" style={left > 70 ? { right: `${100 - left + 0.5}%` } : { left: `calc(${left + width}% + 4px)` }}>
                      {formatDurationMs(s.end - s.start)}
                    </span>
                  </div>
                </div>
              );
            })}
          </div>
        </div>
        {sel && (
          <div className="card" style={{ flex: 1, maxHeight: 'calc(100vh - 240px)', overflow: 'auto' }} data-testid="span-detail">
            <div className="row">
              <b>{sel.name}</b>
              <span className="muted small">{sel.service}</span>
              <div className="spacer" />
              <button className="btn small" onClick={() => setSelected(undefined)} aria-label="Close">
                ✕
              </button>
            </div>
            <table className="data small">
              <tbody>
                <tr><td>Span ID</td><td className="mono">{sel.spanId}</td></tr>
                <tr><td>Parent</td><td className="mono">{sel.parentId || '—'}</td></tr>
                <tr><td>Kind</td><td>{sel.kind}</td></tr>
                <tr><td>Start</td><td>{formatDateTimeMs(sel.start)} (+{formatDurationMs(sel.start - bounds.start)})</td></tr>
                <tr><td>Duration</td><td>{formatDurationMs(sel.end - sel.start)}</td></tr>
                <tr><td>Status</td><td>{sel.statusCode}{sel.statusMessage && `: ${sel.statusMessage}`}</td></tr>
                {sel.scope && <tr><td>Scope</td><td>{sel.scope}</td></tr>}
              </tbody>
            </table>
            <div className="row small" style={{ marginTop: 8 }}>
              <a href={traceToLogsHref(traceId, sel.service, sel.start, sel.end)}>Logs of {sel.service}</a>
              <a href={traceToMetricsHref(sel.service, sel.start, sel.end, sel.name)}>Metrics of this operation</a>
            </div>
            <KV title="Attributes" m={sel.attributes} />
            <KV title="Resource" m={sel.resource} />
            {sel.events.length > 0 && (
              <>
                <h3>Events</h3>
                {sel.events.map((e, i) => (
                  <div key={i} className="small">
                    +{formatDurationMs(e.time - sel.start)} <b>{e.name}</b>
                    <div className="labels">
                      {Object.entries(e.attributes).map(([k, val]) => (
                        <span key={k} className="label-chip">
                          {k}={val}
                        </span>
                      ))}
                    </div>
                  </div>
                ))}
              </>
            )}
            {sel.links.length > 0 && (
              <>
                <h3>Links</h3>
                {sel.links.map((l, i) => (
                  <div key={i} className="small mono">
                    <a href={`#/explore/traces/${l.traceId}`}>{l.traceId}</a> / {l.spanId}
                  </div>
                ))}
              </>
            )}
          </div>
        )}
      </div>
    </>
  );
}
