import { describe, expect, it } from 'vitest';
import { exploreHref, heatmapBuckets, leValue, mergeRows, organize, panelTable, resolveDataSource, seriesToTable, type Series } from './data';
import { BUILTIN_DATASOURCES } from '../api/dashboards';
import { parseImport } from './importjson';

const ds = BUILTIN_DATASOURCES;

describe('resolveDataSource', () => {
  it('finds by uid, by name, through a variable, and the default', () => {
    expect(resolveDataSource({ type: 'loki', uid: 'loki' }, ds, {})).toMatchObject({ uid: 'loki' });
    expect(resolveDataSource('Tempo', ds, {})).toMatchObject({ uid: 'tempo' });
    expect(resolveDataSource('${ds}', ds, { ds: { values: ['Loki'] } })).toMatchObject({ uid: 'loki' });
    expect(resolveDataSource({ uid: '$ds' }, ds, { ds: { values: ['tempo'] } })).toMatchObject({ uid: 'tempo' });
    expect(resolveDataSource(null, ds, {})).toMatchObject({ uid: 'prometheus' });
    expect(resolveDataSource({ type: 'datasource', uid: '-- Mixed --' }, ds, {})).toBe('mixed');
    expect(resolveDataSource({ type: 'loki', uid: 'some-other-uid' }, ds, {})).toBeUndefined();
    expect(resolveDataSource({ type: 'prometheus', uid: '${DS_PROMETHEUS}' }, ds, {})).toMatchObject({ uid: 'prometheus' });
    expect(resolveDataSource({ type: 'prometheus' }, ds, {})).toMatchObject({ uid: 'prometheus' });
  });
});

const s = (refId: string, labels: Record<string, string>, v: number): Series => ({ refId, name: '', labels, points: [[1000, v]] });

describe('tables', () => {
  it('makes one row per series with its labels and value', () => {
    const t = seriesToTable([s('A', { pod: 'a', node: 'n1' }, 1), s('A', { pod: 'b', node: 'n2' }, 2)], false);
    expect(t.columns).toEqual(['Time', 'node', 'pod', 'Value']);
    expect(t.rows).toEqual([
      [1000, 'n1', 'a', 1],
      [1000, 'n2', 'b', 2],
    ]);
  });
  it('merges several queries by their labels and organizes columns', () => {
    const series = [s('A', { queue: 'q1' }, 5), s('A', { queue: 'q2' }, 6), s('B', { queue: 'q1' }, 1), s('C', { queue: 'q2' }, 9)];
    const t = panelTable(
      {
        transformations: [
          { id: 'merge', options: {} },
          { id: 'organize', options: { excludeByName: { Time: true }, renameByName: { 'Value #A': 'waiting', 'Value #B': 'active', 'Value #C': 'failed' } } },
        ],
      },
      series,
    );
    expect(t.columns).toEqual(['queue', 'waiting', 'active', 'failed']);
    expect(t.rows).toEqual([
      ['q1', 5, 1, null],
      ['q2', 6, null, 9],
    ]);
  });
  it('orders columns by indexByName', () => {
    const t = organize(mergeRows(seriesToTable([s('A', { a: '1', b: '2' }, 3)], false)), { indexByName: { Value: 0, b: 1, a: 2, Time: 3 } });
    expect(t.columns).toEqual(['Value', 'b', 'a', 'Time']);
  });
});

describe('exploreHref', () => {
  it('opens the matching Explore page with the query and range', () => {
    expect(exploreHref({ ds: ds[0], expr: 'up{job="x"}' }, 'now-6h', 'now')).toBe('#/explore/metrics?query=up%7Bjob%3D%22x%22%7D&from=now-6h&to=now');
    expect(exploreHref({ ds: ds[1], expr: '{a="b"}' }, '1', '2')).toBe('#/explore/logs?query=%7Ba%3D%22b%22%7D&from=1&to=2');
    expect(exploreHref({ ds: ds[2], expr: '4bf92f3577b34da6a3ce929d0e0e4736' }, '1', '2')).toBe('#/explore/traces/4bf92f3577b34da6a3ce929d0e0e4736');
  });
});

describe('parseImport', () => {
  it('resolves ${DS_*} inputs by plugin type and drops the id', () => {
    const d = parseImport(
      JSON.stringify({
        __inputs: [{ name: 'DS_PROM', type: 'datasource', pluginId: 'prometheus' }],
        id: 7,
        title: 'T',
        panels: [{ datasource: { type: 'prometheus', uid: '${DS_PROM}' } }],
      }),
      ds,
    );
    expect(d.panels?.[0].datasource).toEqual({ type: 'prometheus', uid: 'prometheus' });
    expect((d as { id?: number }).id).toBeUndefined();
    expect((d as { __inputs?: unknown }).__inputs).toBeUndefined();
  });
  it('unwraps {dashboard, meta} and refuses what is not a dashboard', () => {
    expect(parseImport('{"dashboard": {"title": "X"}, "meta": {}}', ds).title).toBe('X');
    expect(() => parseImport('[1]', ds)).toThrow(/not a dashboard/);
    expect(() => parseImport('{"panels": []}', ds)).toThrow(/no title/);
    expect(() => parseImport('{', ds)).toThrow(/not JSON/);
  });
});

describe('heatmapBuckets', () => {
  it('orders buckets by le (+Inf last) and de-accumulates them', () => {
    const b = (le: string, v: number[]): Series => ({ refId: 'A', name: le, labels: { le }, points: v.map((x, i) => [i * 1000, x]) });
    const hm = heatmapBuckets([b('+Inf', [10, 12]), b('0.3', [6, 6]), b('0.1', [2, 5]), b('1.2', [9, 6])]);
    expect(hm.labels).toEqual(['0.1', '0.3', '1.2', '+Inf']);
    expect(hm.times).toEqual([0, 1000]);
    expect(hm.cells).toEqual([
      [2, 5],
      [4, 1],
      [3, 0],
      [1, 6],
    ]);
    expect(leValue('+Inf')).toBe(Infinity);
    // "5" and "5.0" are one bucket.
    const merged = heatmapBuckets([b('5', [1, 0]), b('5.0', [0, 2]), b('+Inf', [1, 3])]);
    expect(merged.labels).toEqual(['5', '+Inf']);
    expect(merged.cells).toEqual([
      [1, 2],
      [0, 1],
    ]);
    expect(leValue('0.25')).toBe(0.25);
  });
});
