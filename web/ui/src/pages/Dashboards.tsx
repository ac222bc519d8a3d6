// The dashboards slot: issue 12 renders Grafana dashboard JSON here
// (#/dashboards and #/dashboards/<uid>). Until then, a pointer to Explore.
export default function Dashboards() {
  return (
    <div className="page" data-testid="dashboards">
      <h2>Dashboards</h2>
      <p className="muted">
        Dashboards arrive with the next release (Grafana dashboard JSON rendered here). Meanwhile, use{' '}
        <a href="#/explore/metrics">Explore metrics</a>, <a href="#/explore/logs">logs</a> and <a href="#/explore/traces">traces</a>.
      </p>
    </div>
  );
}
