// Explore logs: a LogQL query as a volume histogram by level and
// virtualised lines; newest/oldest first, load older, live tail.
import { useCallback, useEffect, useRef, useState } from 'react';
import QueryEditor from '../components/QueryEditor';
import TimePicker from '../components/TimePicker';
import LogList, { toRows, type Row } from '../components/LogList';
import VolumeHistogram, { type VolumeSeries } from '../components/VolumeHistogram';
import * as loki from '../api/loki';
import { errorText } from '../api/http';
import { useLocation } from '../lib/url';
import { useRange } from '../lib/useRange';
import { autoStep, resolveRange } from '../lib/time';
import { isMetricQuery, nsMinusOne, volumeQuery } from '../lib/logql';

const DEFAULT_LIMIT = 1000;
const TAIL_CAP = 5000;

export default function ExploreLogs() {
  const [loc, setParams] = useLocation();
  const [range, setRange] = useRange();
  const query = loc.params.get('query') ?? '';
  const direction = loc.params.get('dir') === 'forward' ? 'forward' : 'backward';
  const showFields = loc.params.get('fields') === '1';
  const limit = Math.max(1, Math.min(100000, parseInt(loc.params.get('limit') ?? '', 10) || DEFAULT_LIMIT));
  const [draft, setDraft] = useState(query);
  const [run, setRun] = useState(0);
  const [rows, setRows] = useState<Row[]>([]);
  const [more, setMore] = useState(false);
  const [volume, setVolume] = useState<{ series: VolumeSeries[]; start: number; end: number; step: number } | undefined>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);
  const [live, setLive] = useState(false);
  const [liveInfo, setLiveInfo] = useState('');
  const ws = useRef<WebSocket | null>(null);
  const window_ = useRef({ start: 0, end: 0 });

  useEffect(() => setDraft(query), [query]);

  const execute = useCallback(() => {
    if (draft !== query) setParams({ query: draft });
    else setRun((n) => n + 1);
  }, [draft, query, setParams]);

  useEffect(() => {
    if (!query.trim() || live) return;
    if (isMetricQuery(query)) {
      setError('This is a metric query; Explore logs shows log lines. Open it in Explore metrics or use a {selector} query.');
      setRows([]);
      setVolume(undefined);
      return;
    }
    const ac = new AbortController();
    const r = resolveRange(range, Date.now());
    window_.current = r;
    const step = autoStep(r, 60);
    setLoading(true);
    setError('');
    Promise.all([
      loki.queryLogs(query, r.start, r.end, limit, direction, ac.signal),
      loki.queryMatrix(volumeQuery(query, step), r.start, r.end, step, ac.signal).catch(() => null),
    ]).then(
      ([entries, vol]) => {
        if (ac.signal.aborted) return;
        setRows(toRows(entries));
        setMore(direction === 'backward' && entries.length >= limit);
        setVolume(
          vol
            ? {
                series: vol.map((s) => ({ level: s.metric.detected_level ?? s.metric.level ?? 'unknown', points: s.values.map(([t, v]) => [t * 1000, parseFloat(v)]) })),
                start: r.start,
                end: r.end,
                step: step * 1000,
              }
            : undefined,
        );
        setLoading(false);
      },
      (e) => {
        if (ac.signal.aborted) return;
        setError(errorText(e));
        setRows([]);
        setVolume(undefined);
        setLoading(false);
      },
    );
    return () => ac.abort();
  }, [query, range, direction, limit, run, live]);

  const loadOlder = useCallback(async () => {
    const oldest = rows[rows.length - 1];
    if (!oldest) return;
    try {
      const entries = await loki.queryLogs(query, window_.current.start, 0, limit, 'backward', undefined, nsMinusOne(oldest.entry.ts));
      setRows((cur) => [...cur, ...toRows(entries, cur.length)]);
      setMore(entries.length >= limit);
    } catch (e) {
      setError(errorText(e));
    }
  }, [rows, query, limit]);

  // Live tail over Loki's WebSocket; newest lines on top.
  useEffect(() => {
    if (!live || !query.trim()) return;
    const startNs = `${Date.now() - 60_000}000000`;
    const sock = new WebSocket(loki.tailURL(query, startNs));
    ws.current = sock;
    setRows([]);
    setVolume(undefined);
    setLiveInfo('connecting…');
    sock.onopen = () => setLiveInfo('live');
    sock.onerror = () => setLiveInfo('connection error');
    sock.onclose = (ev) => setLiveInfo(ev.reason ? `closed: ${ev.reason}` : 'closed');
    sock.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data)) as loki.TailMessage;
      const entries: loki.LogEntry[] = [];
      for (const s of msg.streams ?? []) for (const [ts, line] of s.values) entries.push({ ts, line, stream: s.stream, metadata: {}, parsed: {} });
      entries.sort((a, b) => loki.compareTs(b.ts, a.ts));
      setRows((cur) => [...toRows(entries, Date.now()), ...cur].slice(0, TAIL_CAP));
    };
    return () => {
      sock.close();
      ws.current = null;
    };
  }, [live, query]);

  return (
    <div className="page" data-testid="explore-logs">
      <div className="query-row">
        <div className="editor-wrap">
          <QueryEditor language="logql" value={draft} onChange={setDraft} onRun={execute} placeholder='LogQL, e.g. {service_name="api"} |= "error"' />
        </div>
        <button className="btn primary" onClick={execute} data-testid="run-query">
          Run query
        </button>
      </div>
      <div className="toolbar">
        <label>
          Order
          <select value={direction} onChange={(e) => setParams({ dir: e.target.value === 'forward' ? 'forward' : undefined })} disabled={live} aria-label="Order">
            <option value="backward">Newest first</option>
            <option value="forward">Oldest first</option>
          </select>
        </label>
        <label>
          Limit
          <input type="number" style={{ width: 90 }} defaultValue={limit} key={limit} min={1} max={100000} onBlur={(e) => setParams({ limit: e.target.value === String(DEFAULT_LIMIT) ? undefined : e.target.value })} aria-label="Limit" />
        </label>
        <label className="inline">
          <input type="checkbox" checked={showFields} onChange={(e) => setParams({ fields: e.target.checked ? '1' : undefined })} />
          Labels &amp; fields
        </label>
        <button className={live ? 'btn primary' : 'btn'} onClick={() => setLive(!live)} disabled={!query.trim()} data-testid="live-tail">
          {live ? '■ Stop live' : '▶ Live'}
        </button>
        {live && (
          <span className="small muted" data-testid="live-status">
            {liveInfo}
          </span>
        )}
        <div className="spacer" />
        <TimePicker range={range} onChange={setRange} onRefresh={() => setRun((n) => n + 1)} />
      </div>
      {error && (
        <div className="card error" role="alert">
          {error}
        </div>
      )}
      {volume && (
        <VolumeHistogram
          series={volume.series}
          start={volume.start}
          end={volume.end}
          step={volume.step}
          onSelect={(f, t) => setRange({ from: String(Math.floor(f)), to: String(Math.ceil(t)) })}
        />
      )}
      <div className="row small muted" style={{ margin: '6px 0' }}>
        <span data-testid="log-count">{rows.length} lines</span>
        {loading && <span>Loading…</span>}
      </div>
      {query.trim() ? <LogList rows={rows} onLoadOlder={loadOlder} canLoadOlder={more && !live} showFields={showFields} /> : <p className="muted">Type a LogQL query and press Enter.</p>}
    </div>
  );
}
