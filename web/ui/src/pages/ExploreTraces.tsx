// Explore traces: a TraceQL editor fed by a search form (service, span name,
// duration, tags from /api/v2/search/tags), a result list, and a box to open
// a trace by ID.
import { useCallback, useEffect, useState } from 'react';
import QueryEditor from '../components/QueryEditor';
import TimePicker from '../components/TimePicker';
import * as tempo from '../api/tempo';
import { errorText } from '../api/http';
import { useLocation, navigate } from '../lib/url';
import { useRange } from '../lib/useRange';
import { useAsync } from '../lib/useAsync';
import { formatDateTime, resolveRange } from '../lib/time';
import { formatDurationMs } from '../lib/format';
import { buildTraceQL, traceHref } from '../lib/links';
import { colourFor } from '../lib/colours';

export default function ExploreTraces() {
  const [loc, setParams] = useLocation();
  const [range, setRange] = useRange();
  const q = loc.params.get('q') ?? '';
  const limit = parseInt(loc.params.get('limit') ?? '', 10) || 20;
  const [draft, setDraft] = useState(q);
  const [service, setService] = useState('');
  const [spanName, setSpanName] = useState('');
  const [minDur, setMinDur] = useState('');
  const [maxDur, setMaxDur] = useState('');
  const [tagKey, setTagKey] = useState('');
  const [tagValue, setTagValue] = useState('');
  const [traceId, setTraceId] = useState('');
  const [run, setRun] = useState(0);
  const [results, setResults] = useState<tempo.SearchTrace[] | undefined>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);

  const tags = useAsync(() => tempo.searchTags(), []);
  const services = useAsync(() => tempo.tagValues('resource.service.name').catch(() => tempo.tagValues('service.name')), []);
  const names = useAsync(() => tempo.tagValues('name').catch(() => []), []);
  const tagValues = useAsync(() => (tagKey ? tempo.tagValues(tagKey).catch(() => []) : Promise.resolve([])), [tagKey]);

  useEffect(() => setDraft(q), [q]);

  const fromForm = () =>
    buildTraceQL({ service, spanName, minDuration: minDur, maxDuration: maxDur, tags: tagKey ? [{ key: tagKey, value: tagValue }] : [] });

  const execute = useCallback(
    (query: string) => {
      if (query !== q) setParams({ q: query });
      else setRun((n) => n + 1);
    },
    [q, setParams],
  );

  useEffect(() => {
    if (!q.trim()) {
      setResults(undefined);
      return;
    }
    const ac = new AbortController();
    const r = resolveRange(range, Date.now());
    setLoading(true);
    setError('');
    tempo.search(q, r.start, r.end, limit, ac.signal).then(
      (t) => {
        if (ac.signal.aborted) return;
        setResults(t);
        setLoading(false);
      },
      (e) => {
        if (ac.signal.aborted) return;
        setError(errorText(e));
        setResults(undefined);
        setLoading(false);
      },
    );
    return () => ac.abort();
  }, [q, range, limit, run]);

  const allTags = (tags.data ?? []).flatMap((s) => s.tags.map((t) => (s.scope === 'intrinsic' ? t : `${s.scope}.${t}`)));

  return (
    <div className="page" data-testid="explore-traces">
      <form
        className="row"
        style={{ marginBottom: 8 }}
        onSubmit={(e) => {
          e.preventDefault();
          const id = traceId.trim().toLowerCase();
          if (/^[0-9a-f]{1,32}$/.test(id)) navigate(`/explore/traces/${id.padStart(32, '0')}`, { from: range.from, to: range.to });
        }}
      >
        <input placeholder="Trace ID" value={traceId} onChange={(e) => setTraceId(e.target.value)} style={{ width: 320 }} aria-label="Trace ID" data-testid="trace-id-input" />
        <button className="btn" type="submit">
          Open trace
        </button>
        <div className="spacer" />
        <TimePicker range={range} onChange={setRange} onRefresh={() => setRun((n) => n + 1)} />
      </form>
      <div className="card" style={{ marginBottom: 8 }}>
        <form
          className="toolbar"
          onSubmit={(e) => {
            e.preventDefault();
            const tq = fromForm();
            setDraft(tq);
            execute(tq);
          }}
        >
          <label>
            Service
            <select value={service} onChange={(e) => setService(e.target.value)} aria-label="Service">
              <option value="">any</option>
              {(services.data ?? []).map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            Span name
            <input list="span-names" value={spanName} onChange={(e) => setSpanName(e.target.value)} aria-label="Span name" />
            <datalist id="span-names">
              {(names.data ?? []).slice(0, 500).map((n) => (
                <option key={n} value={n} />
              ))}
            </datalist>
          </label>
          <label>
            Min duration
            <input placeholder="100ms" value={minDur} onChange={(e) => setMinDur(e.target.value)} style={{ width: 90 }} aria-label="Min duration" />
          </label>
          <label>
            Max duration
            <input placeholder="5s" value={maxDur} onChange={(e) => setMaxDur(e.target.value)} style={{ width: 90 }} aria-label="Max duration" />
          </label>
          <label>
            Tag
            <select value={tagKey} onChange={(e) => setTagKey(e.target.value)} aria-label="Tag">
              <option value="">—</option>
              {allTags.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </label>
          <label>
            Value
            <input list="tag-values" value={tagValue} onChange={(e) => setTagValue(e.target.value)} aria-label="Tag value" />
            <datalist id="tag-values">
              {(tagValues.data ?? []).slice(0, 500).map((n) => (
                <option key={n} value={n} />
              ))}
            </datalist>
          </label>
          <button className="btn primary" type="submit">
            Search
          </button>
        </form>
        <div className="query-row">
          <div className="editor-wrap">
            <QueryEditor language="traceql" value={draft} onChange={setDraft} onRun={() => execute(draft)} placeholder='TraceQL, e.g. { resource.service.name = "api" && duration > 200ms }' />
          </div>
          <button className="btn primary" onClick={() => execute(draft)} data-testid="run-query">
            Run query
          </button>
        </div>
      </div>
      {error && (
        <div className="card error" role="alert">
          {error}
        </div>
      )}
      {loading && <div className="muted small">Loading…</div>}
      {results && (
        <table className="data" data-testid="trace-results">
          <thead>
            <tr>
              <th>Trace</th>
              <th>Root service</th>
              <th>Root span</th>
              <th>Start</th>
              <th>Duration</th>
              <th>Matched spans</th>
            </tr>
          </thead>
          <tbody>
            {results.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  No traces match in this range.
                </td>
              </tr>
            )}
            {results.map((t) => (
              <tr key={t.traceID}>
                <td className="mono">
                  <a href={traceHref(t.traceID, range)}>{t.traceID}</a>
                </td>
                <td>
                  <span style={{ width: 8, height: 8, background: colourFor(t.rootServiceName ?? ''), display: 'inline-block', marginRight: 4 }} />
                  {t.rootServiceName ?? '<root span not yet received>'}
                </td>
                <td>{t.rootTraceName ?? ''}</td>
                <td>{formatDateTime(Number(BigInt(t.startTimeUnixNano) / 1_000_000n))}</td>
                <td>{t.durationMs !== undefined ? formatDurationMs(t.durationMs) : '<1ms'}</td>
                <td>{(t.spanSets ?? []).reduce((a, s) => a + s.matched, 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
