// Explore metrics: a PromQL query as a graph (range) or a table (instant),
// with the step, stacking and exemplars; everything in the URL.
import { lazy, Suspense, useCallback, useEffect, useMemo, useState } from 'react';
import QueryEditor from '../components/QueryEditor';
import TimePicker from '../components/TimePicker';
import * as prom from '../api/prometheus';
import { errorText } from '../api/http';
import { useLocation } from '../lib/url';
import { useRange } from '../lib/useRange';
import { autoStep, formatDateTimeMs, formatPromDuration, parseDuration, resolveRange } from '../lib/time';
import { formatShort, seriesName } from '../lib/format';
import { findTraceId, traceHref } from '../lib/links';
import type { GraphExemplar, GraphSeries } from '../components/Graph';

const Graph = lazy(() => import('../components/Graph'));

interface Result {
  series: GraphSeries[];
  xRange: [number, number];
  table?: prom.QueryData;
  exemplars: GraphExemplar[];
  step: number;
  tookMs: number;
}

export default function ExploreMetrics() {
  const [loc, setParams] = useLocation();
  const [range, setRange] = useRange();
  const query = loc.params.get('query') ?? '';
  const mode = loc.params.get('mode') === 'instant' ? 'instant' : 'range';
  const stepParam = loc.params.get('step') ?? '';
  const stacked = loc.params.get('stacked') === '1';
  const showExemplars = loc.params.get('exemplars') !== '0';
  const [draft, setDraft] = useState(query);
  const [run, setRun] = useState(0);
  const [res, setRes] = useState<Result | undefined>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);

  useEffect(() => setDraft(query), [query]);

  const execute = useCallback(() => {
    if (draft !== query) setParams({ query: draft });
    else setRun((n) => n + 1);
  }, [draft, query, setParams]);

  useEffect(() => {
    if (!query.trim()) {
      setRes(undefined);
      setError('');
      return;
    }
    const ac = new AbortController();
    const r = resolveRange(range, Date.now());
    const stepMs = parseDuration(stepParam);
    const step = Number.isFinite(stepMs) && stepMs > 0 ? stepMs / 1000 : autoStep(r);
    const t0 = performance.now();
    setLoading(true);
    setError('');
    (async () => {
      if (mode === 'instant') {
        const data = await prom.queryInstant(query, r.end, ac.signal);
        return { series: [], xRange: [r.start, r.end] as [number, number], table: data, exemplars: [], step, tookMs: performance.now() - t0 };
      }
      const [m, ex] = await Promise.all([
        prom.queryRange(query, r.start, r.end, step, ac.signal),
        showExemplars ? prom.queryExemplars(query, r.start, r.end, ac.signal).catch(() => []) : Promise.resolve([]),
      ]);
      const series = m.result.map((s) => ({
        name: seriesName(s.metric),
        points: (s.values ?? []).map(([t, v]) => [t * 1000, parseFloat(v)] as [number, number]),
      }));
      const exemplars: GraphExemplar[] = [];
      for (const es of ex ?? []) {
        for (const e of es.exemplars) {
          exemplars.push({ ts: e.timestamp * 1000, value: parseFloat(e.value), labels: e.labels, traceId: findTraceId('', e.labels) });
        }
      }
      return { series, xRange: [r.start, r.end] as [number, number], exemplars, step, tookMs: performance.now() - t0 };
    })().then(
      (v) => {
        if (ac.signal.aborted) return;
        setRes(v);
        setLoading(false);
      },
      (e) => {
        if (ac.signal.aborted) return;
        setError(errorText(e));
        setRes(undefined);
        setLoading(false);
      },
    );
    return () => ac.abort();
  }, [query, range, mode, stepParam, showExemplars, run]);

  const onExemplar = useCallback(
    (e: GraphExemplar) => {
      if (e.traceId) window.location.hash = traceHref(e.traceId, range).slice(1);
    },
    [range],
  );

  const rows = useMemo(() => tableRows(res?.table), [res?.table]);

  return (
    <div className="page" data-testid="explore-metrics">
      <div className="query-row">
        <div className="editor-wrap">
          <QueryEditor language="promql" value={draft} onChange={setDraft} onRun={execute} placeholder="PromQL, e.g. rate(http_requests_total[5m])" />
        </div>
        <button className="btn primary" onClick={execute} data-testid="run-query">
          Run query
        </button>
      </div>
      <div className="toolbar">
        <div className="tabs" role="tablist">
          <button role="tab" aria-selected={mode === 'range'} className={mode === 'range' ? 'active' : ''} onClick={() => setParams({ mode: undefined })}>
            Graph
          </button>
          <button role="tab" aria-selected={mode === 'instant'} className={mode === 'instant' ? 'active' : ''} onClick={() => setParams({ mode: 'instant' })}>
            Table
          </button>
        </div>
        {mode === 'range' && (
          <>
            <label>
              Step
              <input
                style={{ width: 80 }}
                placeholder={res ? formatPromDuration(res.step * 1000) : 'auto'}
                defaultValue={stepParam}
                key={stepParam}
                onBlur={(e) => setParams({ step: e.target.value.trim() })}
                onKeyDown={(e) => e.key === 'Enter' && setParams({ step: (e.target as HTMLInputElement).value.trim() })}
                aria-label="Step"
              />
            </label>
            <label className="inline">
              <input type="checkbox" checked={stacked} onChange={(e) => setParams({ stacked: e.target.checked ? '1' : undefined })} />
              Stacked
            </label>
            <label className="inline">
              <input type="checkbox" checked={showExemplars} onChange={(e) => setParams({ exemplars: e.target.checked ? undefined : '0' })} />
              Exemplars
            </label>
          </>
        )}
        <div className="spacer" />
        <TimePicker range={range} onChange={setRange} onRefresh={() => setRun((n) => n + 1)} />
      </div>
      {error && (
        <div className="card error" role="alert">
          {error}
        </div>
      )}
      {loading && <div className="muted small">Loading…</div>}
      {res && mode === 'range' && (
        <div className="card">
          <div className="muted small" data-testid="result-stats">
            {res.series.length} series · step {formatPromDuration(res.step * 1000)} · {Math.round(res.tookMs)} ms
            {res.exemplars.length > 0 && ` · ${res.exemplars.length} exemplars (click a diamond to open its trace)`}
          </div>
          {res.series.length === 0 ? (
            <p className="muted">No data in this range.</p>
          ) : (
            <Suspense fallback={<div style={{ height: 300 }} />}>
              <Graph series={res.series} stacked={stacked} exemplars={res.exemplars} onExemplarClick={onExemplar} xRange={res.xRange} />
            </Suspense>
          )}
          {res.exemplars.some((e) => e.traceId) && (
            <details data-testid="exemplars">
              <summary className="small">Exemplars</summary>
              <ul className="small">
                {res.exemplars
                  .filter((e) => e.traceId)
                  .slice(0, 50)
                  .map((e, i) => (
                    <li key={i}>
                      {formatDateTimeMs(e.ts)} value {formatShort(e.value)} → <a href={traceHref(e.traceId!, range)}>trace {e.traceId}</a>
                    </li>
                  ))}
              </ul>
            </details>
          )}
        </div>
      )}
      {res && mode === 'instant' && (
        <table className="data" data-testid="result-table">
          <thead>
            <tr>
              <th>Series</th>
              <th>Value</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && (
              <tr>
                <td colSpan={2} className="muted">
                  Empty result
                </td>
              </tr>
            )}
            {rows.map((r, i) => (
              <tr key={i}>
                <td className="mono">{r.name}</td>
                <td className="mono">{r.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!query && <p className="muted">Type a PromQL query and press Enter. Completion offers metric names, labels and functions from this server.</p>}
    </div>
  );
}

function tableRows(d: prom.QueryData | undefined): { name: string; value: string }[] {
  if (!d) return [];
  switch (d.resultType) {
    case 'vector':
      return d.result.map((s) => ({ name: seriesName(s.metric), value: s.value[1] }));
    case 'matrix':
      return d.result.map((s) => ({ name: seriesName(s.metric), value: (s.values ?? []).map((v) => `${v[1]} @${v[0]}`).join('\n') }));
    case 'scalar':
    case 'string':
      return [{ name: d.resultType, value: d.result[1] }];
  }
}
