import { describe, expect, it } from 'vitest';
import { heightPx, layoutPanels, normalise } from './layout';
import type { Panel } from './types';

const p = (id: number, x: number, y: number, w: number, h: number, type = 'timeseries'): Panel => ({ id, type, gridPos: { x, y, w, h } });

describe('layoutPanels', () => {
  it('keeps panels before the first row in a section of their own', () => {
    const s = layoutPanels([p(1, 0, 0, 12, 4), p(2, 12, 0, 12, 4)]);
    expect(s).toHaveLength(1);
    expect(s[0].row).toBeUndefined();
    expect(s[0].items.map((i) => [i.x, i.y, i.w, i.h])).toEqual([
      [0, 0, 12, 4],
      [12, 0, 12, 4],
    ]);
    expect(s[0].height).toBe(4);
  });
  it('gives an open row the panels after it, relative to the row', () => {
    const s = layoutPanels([p(1, 0, 0, 24, 4), p(10, 0, 4, 24, 1, 'row'), p(2, 0, 5, 8, 6), p(3, 8, 5, 16, 6), p(20, 0, 11, 24, 1, 'row'), p(4, 0, 12, 24, 3)]);
    expect(s.map((x) => x.row?.id)).toEqual([undefined, 10, 20]);
    expect(s[1].items.map((i) => [i.panel.id, i.y])).toEqual([
      [2, 0],
      [3, 0],
    ]);
    expect(s[2].items[0].y).toBe(0);
  });
  it('reads a collapsed row’s own panels and lets the state be toggled', () => {
    const row: Panel = { ...p(10, 0, 0, 24, 1, 'row'), collapsed: true, panels: [p(2, 0, 1, 12, 8), p(3, 12, 1, 12, 8)] };
    let s = layoutPanels([row, p(4, 0, 1, 24, 4)]);
    expect(s[0].collapsed).toBe(true);
    expect(s[0].items.map((i) => i.panel.id)).toEqual([2, 3]);
    expect(s[0].items[0].y).toBe(0);
    // A loose panel after it stays visible in a section of its own.
    expect(s[1].row).toBeUndefined();
    expect(s[1].collapsed).toBe(false);
    expect(s[1].items.map((i) => i.panel.id)).toEqual([4]);
    s = layoutPanels([row], { '10': false });
    expect(s[0].collapsed).toBe(false);
  });
  it('clamps positions to the 24-column grid and defaults missing sizes', () => {
    const s = layoutPanels([{ id: 1, type: 'stat', gridPos: { x: 20, y: 0, w: 10, h: 3 } }, { id: 2, type: 'stat' }]);
    expect(s[0].items[0]).toMatchObject({ x: 14, w: 10 });
    expect(s[0].items[1]).toMatchObject({ x: 0, y: 3, w: 12, h: 8 });
  });
  it('turns units into pixels with gaps', () => {
    expect(heightPx(1)).toBe(30);
    expect(heightPx(8)).toBe(8 * 30 + 7 * 8);
  });
});

describe('normalise', () => {
  it('assigns missing and duplicate panel ids', () => {
    const d = normalise({ panels: [{ type: 'stat' }, { id: 1, type: 'stat' }, { id: 1, type: 'stat' }] });
    const ids = d.panels!.map((x) => x.id);
    expect(new Set(ids).size).toBe(3);
  });
  it('converts old-style rows to row panels on the grid', () => {
    const d = normalise({ rows: [{ title: 'R', height: 250, panels: [{ type: 'graph', span: 6 } as Panel, { type: 'graph', span: 6 } as Panel] }] });
    expect(d.panels!.map((x) => [x.type, x.gridPos?.x, x.gridPos?.w])).toEqual([
      ['row', 0, 24],
      ['graph', 0, 12],
      ['graph', 12, 12],
    ]);
  });
});
