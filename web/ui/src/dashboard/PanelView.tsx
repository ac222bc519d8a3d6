// One panel: header (title, description, errors, view and explore), its
// queries run through our APIs, and the visualisation for its type. The
// root carries data-state (loading|ready|nodata|error|unsupported) for tests
// and the render-time measurement.
import { memo, useEffect, useRef, useState } from 'react';
import { errorText } from '../api/http';
import type { DataSource } from '../api/dashboards';
import { exploreHref, hasData, runPanel, type PanelData } from './data';
import { panelKind, SUPPORTED, VIZ } from './panels';
import type { Panel } from './types';
import { interpolate, type Scope } from './variables';
import { useSize } from './useSize';

export type PanelState = 'loading' | 'ready' | 'nodata' | 'error' | 'unsupported';

interface Props {
  panel: Panel;
  scope: Scope;
  scopeKey: string;
  start: number;
  end: number;
  from: string;
  to: string;
  tick: number;
  datasources: DataSource[];
  dashboardTitle: string;
  viewing: boolean;
  onView: (id: number | undefined) => void;
  onState: (id: number, s: PanelState) => void;
}

const NO_QUERY = new Set(['text']);

function PanelView({ panel, scope, scopeKey, start, end, from, to, tick, datasources, dashboardTitle, viewing, onView, onState }: Props) {
  const kind = panelKind(panel.type);
  const supported = SUPPORTED.has(kind);
  const [body, size] = useSize<HTMLDivElement>();
  const [st, setSt] = useState<{ state: PanelState; data?: PanelData; error?: string }>(() => ({
    state: !supported ? 'unsupported' : NO_QUERY.has(kind) ? 'ready' : 'loading',
  }));
  const id = panel.id ?? 0;
  // The width sets max data points, read when a query starts: a resize (a
  // scrollbar appearing as panels fill the page) does not query again.
  const widthRef = useRef(0);
  widthRef.current = size.width;
  const measured = size.width > 0;

  useEffect(() => {
    const width = widthRef.current;
    if (!supported || NO_QUERY.has(kind) || width === 0) return;
    const ac = new AbortController();
    setSt((s) => ({ ...s, state: 'loading' }));
    runPanel(panel, {
      startMs: start,
      endMs: end,
      maxDataPoints: Math.max(100, Math.min(width, 2000)),
      datasources,
      scope,
      dashboardTitle,
      signal: ac.signal,
    }).then(
      (data) => !ac.signal.aborted && setSt({ state: hasData(data) ? 'ready' : 'nodata', data }),
      (e) => !ac.signal.aborted && setSt((s) => ({ state: 'error', data: s.data, error: errorText(e) })),
    );
    return () => ac.abort();
    // scopeKey stands for scope.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [panel, scopeKey, start, end, tick, datasources, supported, kind, measured]);

  useEffect(() => onState(id, st.state), [id, st.state, onState]);

  const title = interpolate(panel.title ?? '', scope, 'raw');
  const explore = st.data?.queries[0] ? exploreHref(st.data.queries[0], from, to) : undefined;
  const Viz = VIZ[kind];
  return (
    <section className={`panel${viewing ? ' viewing' : ''}`} data-testid="panel" data-panel-id={id} data-panel-type={panel.type ?? 'timeseries'} data-state={st.state} aria-label={title || `panel ${id}`}>
      <header className="panel-header">
        <h3 className="panel-title" title={panel.description || title}>
          {title}
          {panel.description && (
            <span className="panel-info" aria-hidden>
              i
            </span>
          )}
        </h3>
        {st.state === 'loading' && <span className="panel-loading" aria-label="loading" />}
        <div className="spacer" />
        {explore && (
          <a className="panel-action" href={explore} title="Explore this query" data-testid="panel-explore">
            Explore
          </a>
        )}
        <button type="button" className="panel-action link" onClick={() => onView(viewing ? undefined : id)} title={viewing ? 'Back to the dashboard (Esc)' : 'View this panel'} data-testid="panel-view">
          {viewing ? 'Close' : 'View'}
        </button>
      </header>
      <div className="panel-body" ref={body}>
        {st.state === 'unsupported' && (
          <div className="panel-placeholder" data-testid="panel-unsupported">
            Panel type <code>{panel.type}</code> is not supported by nx-watcher&apos;s dashboard renderer.
          </div>
        )}
        {st.state === 'error' && (
          <div className="panel-error error" data-testid="panel-error" role="alert">
            {st.error}
          </div>
        )}
        {st.state === 'nodata' && <div className="panel-nodata muted">No data</div>}
        {supported && Viz && size.width > 0 && (st.state === 'ready' || (st.state === 'loading' && st.data) || NO_QUERY.has(kind)) && (
          <Viz panel={panel} data={st.data ?? { series: [], queries: [] }} width={size.width} height={size.height} range={{ start, end }} scope={scope} />
        )}
      </div>
    </section>
  );
}

export default memo(PanelView);
