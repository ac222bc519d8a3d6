// Reading a dashboard to import, as Grafana's import page does.
import { errorText } from '../api/http';
import type { DataSource } from '../api/dashboards';
import type { Dashboard } from './types';

/**
 * Reads a pasted or uploaded dashboard: Grafana's export (with __inputs
 * such as ${DS_PROMETHEUS} resolved to our data sources by type), or the
 * {dashboard, meta} shape the API returns.
 */
export function parseImport(text: string, datasources: DataSource[]): Dashboard {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${errorText(e)}`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new Error('not a dashboard: expected a JSON object');
  let d = j as Record<string, unknown>;
  if (d.dashboard && typeof d.dashboard === 'object') d = d.dashboard as Record<string, unknown>;
  const inputs = (d.__inputs ?? []) as { name?: string; type?: string; pluginId?: string }[];
  if (inputs.length) {
    let s = JSON.stringify(d);
    for (const inp of inputs) {
      if (inp.type !== 'datasource' || !inp.name) continue;
      const ds = datasources.find((x) => x.type === inp.pluginId) ?? datasources[0];
      if (ds) s = s.split('${' + inp.name + '}').join(ds.uid);
    }
    d = JSON.parse(s) as Record<string, unknown>;
    delete d.__inputs;
    delete d.__requires;
    delete d.__elements;
  }
  if (typeof d.title !== 'string' || !d.title.trim()) throw new Error('not a dashboard: it has no title');
  delete d.id;
  return d as Dashboard;
}

