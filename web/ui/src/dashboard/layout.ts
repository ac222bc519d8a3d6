// The 24-column grid: a dashboard's panels cut into sections at each row
// panel. A collapsed row carries its panels inside it (`panels`); an open
// row owns the panels that follow it up to the next row. Positions inside a
// section are relative to the section's top, so collapsing a row moves the
// sections below up, as Grafana does.
import type { Dashboard, Panel } from './types';

export const COLUMNS = 24;
export const ROW_UNIT_PX = 30; // one grid unit of height
export const GAP_PX = 8;

export interface GridItem {
  panel: Panel;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Section {
  row?: Panel;
  collapsed: boolean;
  items: GridItem[];
  height: number; // in grid units
}

/** Panel height in pixels for a height in grid units (units of 30 px with 8 px gaps). */
export function heightPx(h: number): number {
  return h * ROW_UNIT_PX + (h - 1) * GAP_PX;
}

function place(panels: Panel[], y0: number): GridItem[] {
  let bottom = 0;
  const items: GridItem[] = [];
  for (const p of panels) {
    const g = p.gridPos ?? {};
    const w = Math.max(1, Math.min(COLUMNS, Math.round(g.w ?? 12)));
    const x = Math.max(0, Math.min(COLUMNS - w, Math.round(g.x ?? 0)));
    const h = Math.max(1, Math.round(g.h ?? 8));
    const y = g.y === undefined ? bottom : Math.max(0, Math.round(g.y) - y0);
    items.push({ panel: p, x, y, w, h });
    bottom = Math.max(bottom, y + h);
  }
  return items;
}

function byPos(a: Panel, b: Panel): number {
  // Panels without a position keep their order after the placed ones.
  const ha = a.gridPos?.y !== undefined;
  const hb = b.gridPos?.y !== undefined;
  if (ha !== hb) return ha ? -1 : 1;
  if (!ha) return 0;
  const ay = a.gridPos?.y ?? 0;
  const by = b.gridPos?.y ?? 0;
  return ay - by || (a.gridPos?.x ?? 0) - (b.gridPos?.x ?? 0);
}

/** Cuts a dashboard's panels into sections; collapsed overrides the rows' saved state by row id. */
export function layoutPanels(panels: Panel[], collapsed: Record<string, boolean> = {}): Section[] {
  const sorted = [...panels].sort(byPos);
  const sections: Section[] = [];
  let cur: { row?: Panel; panels: Panel[]; y0: number } = { panels: [], y0: 0 };
  const flush = () => {
    if (!cur.row && cur.panels.length === 0) return;
    const key = rowKey(cur.row);
    const isCollapsed = cur.row ? (collapsed[key] ?? !!cur.row.collapsed) : false;
    let own = cur.panels;
    let y0 = cur.y0;
    if (cur.row?.collapsed) {
      // A saved-collapsed row carries its panels; positions are relative to the first.
      own = [...(cur.row.panels ?? [])].sort(byPos);
      y0 = Math.min(...own.map((p) => p.gridPos?.y ?? 0), Infinity);
      if (!Number.isFinite(y0)) y0 = 0;
    }
    const items = place(own, y0);
    sections.push({ row: cur.row, collapsed: isCollapsed, items, height: items.reduce((m, i) => Math.max(m, i.y + i.h), 0) });
    if (cur.row?.collapsed && cur.panels.length) {
      // Loose panels after a saved-collapsed row stay visible below it.
      const loose = place(cur.panels, cur.y0);
      sections.push({ collapsed: false, items: loose, height: loose.reduce((m, i) => Math.max(m, i.y + i.h), 0) });
    }
  };
  for (const p of sorted) {
    if (p.type === 'row') {
      flush();
      cur = { row: p, panels: [], y0: (p.gridPos?.y ?? 0) + 1 };
    } else {
      cur.panels.push(p);
    }
  }
  flush();
  return sections;
}

export function rowKey(row: Panel | undefined): string {
  return row ? String(row.id ?? row.title ?? '') : '';
}

/**
 * Normalises a dashboard for rendering: pre-schema-16 `rows` become row
 * panels with 24-column positions; every panel gets an id.
 */
export function normalise(d: Dashboard): Dashboard {
  let panels = d.panels ?? [];
  if (!panels.length && d.rows?.length) {
    panels = [];
    let y = 0;
    let id = 1000;
    for (const r of d.rows) {
      const h = Math.max(3, Math.round((parseInt(String(r.height ?? 250), 10) || 250) / 38));
      panels.push({ type: 'row', id: id++, title: r.title ?? '', collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 } });
      y++;
      let x = 0;
      for (const p of r.panels ?? []) {
        const w = Math.max(1, Math.min(24, Math.round(((p as { span?: number }).span ?? 12) * 2)));
        if (x + w > 24) {
          x = 0;
          y += h;
        }
        panels.push({ ...p, gridPos: { x, y, w, h } });
        x += w;
      }
      y += h;
    }
  }
  let next = 1;
  const used = new Set<number>();
  const fix = (ps: Panel[]): Panel[] =>
    ps.map((p) => {
      let id = p.id;
      if (id === undefined || used.has(id)) {
        while (used.has(next)) next++;
        id = next;
      }
      used.add(id);
      return p.panels ? { ...p, id, panels: fix(p.panels) } : { ...p, id };
    });
  return { ...d, panels: fix(panels) };
}
