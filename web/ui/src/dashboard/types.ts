// The parts of Grafana's dashboard JSON (schemaVersion 36–41, as Grafana 10
// and 11 write it) that the renderer reads. Everything is optional: files
// written by hand or by older Grafanas leave fields out.
import type { FieldConfig } from './units';

export interface DataSourceRef {
  type?: string;
  uid?: string;
}

export interface Target {
  refId?: string;
  datasource?: DataSourceRef | string | null;
  expr?: string;
  query?: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  format?: string;
  queryType?: string;
  hide?: boolean;
  interval?: string;
  intervalFactor?: number;
  maxLines?: number;
  limit?: number;
}

export interface GridPos {
  x?: number;
  y?: number;
  w?: number;
  h?: number;
}

export interface Override {
  matcher: { id: string; options?: unknown };
  properties: { id: string; value: unknown }[];
}

export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  description?: string;
  gridPos?: GridPos;
  datasource?: DataSourceRef | string | null;
  targets?: Target[];
  fieldConfig?: { defaults?: FieldConfig; overrides?: Override[] };
  options?: Record<string, unknown>;
  transformations?: { id: string; options?: Record<string, unknown>; disabled?: boolean }[] | null;
  collapsed?: boolean;
  panels?: Panel[];
  interval?: string;
  maxDataPoints?: number;
  repeat?: string;
  // text panel, old style
  content?: string;
  mode?: string;
}

export interface Variable {
  name: string;
  type: string;
  label?: string;
  hide?: number;
  query?: unknown;
  definition?: string;
  datasource?: DataSourceRef | string | null;
  current?: { text?: string | string[]; value?: string | string[] };
  options?: { text: string; value: string; selected?: boolean }[];
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
  regex?: string;
  sort?: number;
  refresh?: number;
  auto?: boolean;
  auto_count?: number;
  auto_min?: string;
}

export interface DashboardLink {
  title?: string;
  type?: 'link' | 'dashboards' | string;
  url?: string;
  tags?: string[];
  asDropdown?: boolean;
  keepTime?: boolean;
  includeVars?: boolean;
  targetBlank?: boolean;
  tooltip?: string;
}

export interface Dashboard {
  links?: DashboardLink[];
  uid?: string;
  title?: string;
  tags?: string[];
  panels?: Panel[];
  rows?: { title?: string; collapse?: boolean; height?: number | string; panels?: Panel[] }[];
  templating?: { list?: Variable[] };
  time?: { from?: string; to?: string };
  refresh?: string | false;
  schemaVersion?: number;
  description?: string;
}
