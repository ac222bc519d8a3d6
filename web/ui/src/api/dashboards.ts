// The dashboards API the server offers (Grafana's own HTTP API shapes where
// Grafana has the endpoint): search, get by uid, save/import, delete, and
// the data sources dashboards refer to.
import { request } from './http';
import type { Dashboard } from '../dashboard/types';

export interface DashboardHit {
  uid: string;
  title: string;
  tags?: string[];
  type?: string;
  url?: string;
  source?: 'embedded' | 'folder' | 'imported' | string;
  /** A folder file that failed to load: its name and why (uid and url are empty). */
  file?: string;
  error?: string;
}

export interface DashboardMeta {
  slug?: string;
  url?: string;
  provisioned?: boolean;
  canSave?: boolean;
  canEdit?: boolean;
  canDelete?: boolean;
  created?: string;
  updated?: string;
  version?: number;
  folderTitle?: string;
}

export interface DataSource {
  id?: number;
  uid: string;
  name: string;
  type: string;
  url?: string;
  access?: string;
  isDefault?: boolean;
}

export function searchDashboards(query: string, tag?: string, signal?: AbortSignal) {
  return request<DashboardHit[] | null>('api/ui/dashboards', { params: { query, tag }, signal }).then((r) => r ?? []);
}

export function getDashboard(uid: string, signal?: AbortSignal) {
  return request<{ dashboard: Dashboard; meta: DashboardMeta }>(`api/dashboards/uid/${encodeURIComponent(uid)}`, { signal });
}

export interface SaveResult {
  id?: number;
  uid: string;
  url?: string;
  status: string;
  version?: number;
  slug?: string;
}

export function saveDashboard(dashboard: Dashboard, overwrite: boolean, message = 'imported from the UI') {
  return request<SaveResult>('api/dashboards/db', { method: 'POST', body: { dashboard, overwrite, message, folderUid: '' } });
}

export function deleteDashboard(uid: string) {
  return request<unknown>(`api/dashboards/uid/${encodeURIComponent(uid)}`, { method: 'DELETE' });
}

/** The three data sources with the UIDs and names deploy/grafana provisions, used if /api/datasources is missing. */
export const BUILTIN_DATASOURCES: DataSource[] = [
  { uid: 'prometheus', name: 'Prometheus', type: 'prometheus', isDefault: true },
  { uid: 'loki', name: 'Loki', type: 'loki' },
  { uid: 'tempo', name: 'Tempo', type: 'tempo' },
];

export async function listDataSources(signal?: AbortSignal): Promise<DataSource[]> {
  try {
    const r = await request<DataSource[] | null>('api/datasources', { signal });
    return r && r.length ? r : BUILTIN_DATASOURCES;
  } catch (e) {
    if (signal?.aborted) throw e;
    return BUILTIN_DATASOURCES;
  }
}
