// A node graph of service-graph edges (request rate, error rate, p95 on
// nodes and edges), laid out in columns by call depth. Used by the service
// map page and by dashboards' nodeGraph panels.
import { useMemo } from 'react';
import { layout, type Edge } from '../lib/servicegraph';
import { formatDurationMs, formatShort } from '../lib/format';
import { colourFor } from '../lib/colours';

interface Props {
  edges: Edge[];
  nodeHref?: (service: string) => string;
  width?: number;
  height?: number;
  className?: string;
}

export default function NodeGraph({ edges, nodeHref, width = 1200, height = 640, className = 'svcmap' }: Props) {
  const nodes = useMemo(() => layout(edges, width, height), [edges, width, height]);
  const pos = new Map(nodes.map((n) => [n.name, n]));
  return (
    <svg className={className} viewBox={`0 0 ${width} ${height}`} role="img" aria-label="Service map">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" className="muted" />
        </marker>
      </defs>
      {edges.map((e) => {
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
        const body = (
          <>
            <circle cx={n.x} cy={n.y} r={30} fill={colourFor(n.name)} fillOpacity={0.25} stroke={errFrac > 0 ? 'var(--error)' : colourFor(n.name)} strokeWidth={errFrac > 0 ? 3 : 2} />
            <text x={n.x} y={n.y + 4} textAnchor="middle" fontWeight={600}>
              {n.name}
            </text>
            <text x={n.x} y={n.y + 46} textAnchor="middle" className="edge-label">
              {n.rate > 0 ? `${formatShort(n.rate)} req/s · ${formatShort(errFrac * 100)}% err${n.p95 !== undefined ? ` · p95 ${formatDurationMs(n.p95 * 1000)}` : ''}` : 'client'}
            </text>
          </>
        );
        return nodeHref ? (
          <a key={n.name} href={nodeHref(n.name)} className="node" data-testid="svc-node" data-name={n.name}>
            {body}
          </a>
        ) : (
          <g key={n.name} className="node" data-testid="svc-node" data-name={n.name}>
            {body}
          </g>
        );
      })}
    </svg>
  );
}
