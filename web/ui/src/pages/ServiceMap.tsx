// Service map: a node graph from traces_service_graph_* (request rate, error
// rate, p95 on nodes and edges); clicking a node opens its traces.
import { useMemo } from 'react';
import TimePicker from '../components/TimePicker';
import * as prom from '../api/prometheus';
import { useAsync } from '../lib/useAsync';
import { useRange } from '../lib/useRange';
import { resolveRange } from '../lib/time';
import { buildEdges, layout, serviceGraphQueries } from '../lib/servicegraph';
import { formatDurationMs, formatShort } from '../lib/format';
import { serviceTracesHref } from '../lib/links';
import { colourFor } from '../lib/colours';

const W = 1200;
const H = 640;

type Vec = { metric: Record<string, string>; value: [number, string] }[];
const vec = (d: prom.QueryData): Vec => (d.resultType === 'vector' ? d.result : []);

export default function ServiceMap() {
  const [range, setRange] = useRange();
  const st = useAsync(
    async (signal) => {
      const r = resolveRange(range, Date.now());
      const q = serviceGraphQueries((r.end - r.start) / 1000);
      const [t, f, p] = await Promise.all([
        prom.queryInstant(q.total, r.end, signal),
        prom.queryInstant(q.failed, r.end, signal),
        prom.queryInstant(q.p95, r.end, signal),
      ]);
      return buildEdges(vec(t), vec(f), vec(p));
    },
    [range.from, range.to],
  );
  const nodes = useMemo(() => layout(st.data ?? [], W, H), [st.data]);
  const pos = new Map(nodes.map((n) => [n.name, n]));

  return (
    <div className="page" data-testid="service-map">
      <div className="toolbar">
        <h2 style={{ margin: 0 }}>Service map</h2>
        <span className="muted small">from traces_service_graph_* · click a service to see its traces</span>
        <div className="spacer" />
        <TimePicker range={range} onChange={setRange} />
      </div>
      {st.error && <div className="error">{st.error}</div>}
      {st.data && st.data.length === 0 && <p className="muted">No service-graph series in this range. The metrics-generator writes them when spans with client/server pairs arrive.</p>}
      {nodes.length > 0 && (
        <svg className="svcmap" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Service map">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" className="muted" />
            </marker>
          </defs>
          {(st.data ?? []).map((e) => {
            const a = pos.get(e.client)!;
            const b = pos.get(e.server)!;
            const dx = b.x - a.x;
            const dy = b.y - a.y;
            const len = Math.hypot(dx, dy) || 1;
            const r = 34;
            const x1 = a.x + (dx / len) * r;
            const y1 = a.y + (dy / len) * r;
            const x2 = b.x - (dx / len) * r;
            const y2 = b.y - (dy / len) * r;
            return (
              <g key={`${e.client}->${e.server}`} data-testid="svc-edge" data-client={e.client} data-server={e.server}>
                <line className="edge" x1={x1} y1={y1} x2={x2} y2={y2} markerEnd="url(#arrow)" strokeWidth={1 + Math.min(4, Math.log10(1 + e.rate))} stroke={e.errorRate > 0 ? 'var(--error)' : undefined} />
                <text className="edge-label" x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 4} textAnchor="middle">
                  {formatShort(e.rate)} req/s{e.errorRate > 0 ? ` · ${formatShort((e.errorRate / e.rate) * 100)}% err` : ''}
                  {e.p95 !== undefined ? ` · p95 ${formatDurationMs(e.p95 * 1000)}` : ''}
                </text>
              </g>
            );
          })}
          {nodes.map((n) => {
            const errFrac = n.rate > 0 ? n.errorRate / n.rate : 0;
            return (
              <a key={n.name} href={serviceTracesHref(n.name, range)} className="node" data-testid="svc-node" data-name={n.name}>
                <circle cx={n.x} cy={n.y} r={30} fill={colourFor(n.name)} fillOpacity={0.25} stroke={errFrac > 0 ? 'var(--error)' : colourFor(n.name)} strokeWidth={errFrac > 0 ? 3 : 2} />
                <text x={n.x} y={n.y + 4} textAnchor="middle" fontWeight={600}>
                  {n.name}
                </text>
                <text x={n.x} y={n.y + 46} textAnchor="middle" className="edge-label">
                  {n.rate > 0 ? `${formatShort(n.rate)} req/s · ${formatShort(errFrac * 100)}% err${n.p95 !== undefined ? ` · p95 ${formatDurationMs(n.p95 * 1000)}` : ''}` : 'client'}
                </text>
              </a>
            );
          })}
        </svg>
      )}
    </div>
  );
}
