// The service map's model: nodes and edges from the metrics-generator's
// traces_service_graph_* series, and a layered layout.

export interface Edge {
  client: string;
  server: string;
  rate: number; // requests/s
  errorRate: number; // failed requests/s
  p95?: number; // seconds
}

export interface Node {
  name: string;
  rate: number; // requests/s served
  errorRate: number;
  p95?: number;
  x: number;
  y: number;
}

export function serviceGraphQueries(windowSec: number): { total: string; failed: string; p95: string } {
  const w = `${Math.max(60, Math.round(windowSec))}s`;
  return {
    total: `sum by (client, server) (rate(traces_service_graph_request_total[${w}]))`,
    failed: `sum by (client, server) (rate(traces_service_graph_request_failed_total[${w}]))`,
    p95: `histogram_quantile(0.95, sum by (client, server, le) (rate(traces_service_graph_request_server_seconds_bucket[${w}])))`,
  };
}

type Vec = { metric: Record<string, string>; value: [number, string] }[];

export function buildEdges(total: Vec, failed: Vec, p95: Vec): Edge[] {
  const key = (m: Record<string, string>) => `${m.client}\u0000${m.server}`;
  const edges = new Map<string, Edge>();
  for (const s of total) {
    edges.set(key(s.metric), { client: s.metric.client ?? '?', server: s.metric.server ?? '?', rate: parseFloat(s.value[1]) || 0, errorRate: 0 });
  }
  for (const s of failed) {
    const e = edges.get(key(s.metric));
    if (e) e.errorRate = parseFloat(s.value[1]) || 0;
  }
  for (const s of p95) {
    const e = edges.get(key(s.metric));
    const v = parseFloat(s.value[1]);
    if (e && Number.isFinite(v)) e.p95 = v;
  }
  return [...edges.values()];
}

/** Places nodes in columns by their longest distance from a node nobody calls (cycles broken). */
export function layout(edges: Edge[], width: number, height: number): Node[] {
  const names = new Set<string>();
  for (const e of edges) {
    names.add(e.client);
    names.add(e.server);
  }
  const depth = new Map<string, number>([...names].map((n) => [n, 0]));
  // Bellman-Ford style relaxation bounded by the node count (cycles stop).
  for (let i = 0; i < names.size; i++) {
    let changed = false;
    for (const e of edges) {
      if (e.client === e.server) continue;
      const d = depth.get(e.client)! + 1;
      if (d > depth.get(e.server)! && d < names.size) {
        depth.set(e.server, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const cols = new Map<number, string[]>();
  for (const n of [...names].sort()) {
    const d = depth.get(n)!;
    cols.set(d, [...(cols.get(d) ?? []), n]);
  }
  const ncols = Math.max(1, ...[...cols.keys()].map((k) => k + 1));
  const nodes: Node[] = [];
  for (const [d, list] of cols) {
    list.forEach((name, i) => {
      const served = edges.filter((e) => e.server === name);
      const rate = served.reduce((a, e) => a + e.rate, 0);
      const errorRate = served.reduce((a, e) => a + e.errorRate, 0);
      const p95s = served.map((e) => e.p95).filter((v): v is number => v !== undefined);
      nodes.push({
        name,
        rate,
        errorRate,
        p95: p95s.length ? Math.max(...p95s) : undefined,
        x: ((d + 0.5) / ncols) * width,
        y: ((i + 0.5) / list.length) * height,
      });
    });
  }
  return nodes;
}
