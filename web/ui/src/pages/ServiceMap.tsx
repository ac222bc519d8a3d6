// Service map: a node graph from traces_service_graph_* (request rate, error
// rate, p95 on nodes and edges); clicking a node opens its traces.
import TimePicker from '../components/TimePicker';
import * as prom from '../api/prometheus';
import { useAsync } from '../lib/useAsync';
import { useRange } from '../lib/useRange';
import { resolveRange } from '../lib/time';
import { buildEdges, serviceGraphQueries } from '../lib/servicegraph';
import NodeGraph from '../components/NodeGraph';
import { serviceTracesHref } from '../lib/links';

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
      {(st.data ?? []).length > 0 && <NodeGraph edges={st.data ?? []} nodeHref={(n) => serviceTracesHref(n, range)} />}
    </div>
  );
}
