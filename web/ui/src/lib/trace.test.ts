import { describe, expect, it } from 'vitest';
import { buildTree, criticalPath, visibleSpans } from './trace';
import type { Span } from '../api/tempo';
import { idToHex, flattenTrace } from '../api/tempo';
import { parseMatchers, formatMatchers } from '../api/alertmanager';
import { buildEdges, layout } from './servicegraph';

function span(id: string, parent: string, start: number, end: number): Span {
  return { spanId: id, parentId: parent, traceId: 't', name: id, service: 's', kind: 'SERVER', start, end, attributes: {}, resource: {}, events: [], links: [], statusCode: 'UNSET', statusMessage: '', scope: '' };
}

describe('trace tree', () => {
  const spans = [span('c', 'a', 10, 50), span('a', '', 0, 100), span('b', 'a', 5, 90), span('d', 'b', 20, 85), span('orphan', 'missing', 1, 2)];
  it('builds a tree with orphans as roots and depths', () => {
    const roots = buildTree(spans);
    expect(roots.map((r) => r.span.spanId)).toEqual(['a', 'orphan']);
    expect(visibleSpans(roots, new Set()).map((n) => `${n.span.spanId}:${n.depth}`)).toEqual(['a:0', 'b:1', 'd:2', 'c:1', 'orphan:0']);
  });
  it('hides the descendants of collapsed spans', () => {
    const roots = buildTree(spans);
    expect(visibleSpans(roots, new Set(['b'])).map((n) => n.span.spanId)).toEqual(['a', 'b', 'c', 'orphan']);
  });
  it('marks the chain that decided the duration as critical', () => {
    const cp = criticalPath(buildTree(spans));
    expect(cp.has('a')).toBe(true);
    expect(cp.has('b')).toBe(true); // ends last (90)
    expect(cp.has('d')).toBe(true);
    expect(cp.has('c')).toBe(false); // c (10–50) runs while b (5–90) does: it did not decide the end
  });
  it('handles a 10,000-deep chain without recursion', () => {
    const deep: Span[] = [];
    for (let i = 0; i < 10000; i++) deep.push(span(`s${i}`, i ? `s${i - 1}` : '', i, 20000 - i));
    const roots = buildTree(deep);
    expect(visibleSpans(roots, new Set()).length).toBe(10000);
    expect(criticalPath(roots).size).toBe(10000);
  });
});

describe('OTLP JSON', () => {
  it('reads base64 and hex IDs', () => {
    expect(idToHex('AAAAAAAAAAE=')).toBe('0000000000000001');
    expect(idToHex('0AF7651916CD43DD')).toBe('0af7651916cd43dd');
  });
  it('flattens batches with resource, status and kind', () => {
    const spans = flattenTrace({
      batches: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'api' } }] },
          scopeSpans: [
            {
              scope: { name: 'lib' },
              spans: [
                {
                  traceId: '0af7651916cd43dd8448eb211c80319c',
                  spanId: 'b7ad6b7169203331',
                  name: 'GET /',
                  kind: 'SPAN_KIND_SERVER',
                  startTimeUnixNano: '1700000000000000000',
                  endTimeUnixNano: '1700000000250000000',
                  attributes: [{ key: 'http.status_code', value: { intValue: '500' } }],
                  status: { code: 'STATUS_CODE_ERROR', message: 'boom' },
                },
              ],
            },
          ],
        },
      ],
    });
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({ service: 'api', kind: 'SERVER', statusCode: 'ERROR', scope: 'lib', start: 1_700_000_000_000, end: 1_700_000_000_250 });
    expect(spans[0].attributes['http.status_code']).toBe('500');
  });
});

describe('silence matchers', () => {
  it('parses and formats every operator', () => {
    const ms = parseMatchers('alertname="High, Errors", severity=~"warn|crit", env!=dev, team!~"a.*"');
    expect(ms).toEqual([
      { name: 'alertname', value: 'High, Errors', isRegex: false, isEqual: true },
      { name: 'severity', value: 'warn|crit', isRegex: true, isEqual: true },
      { name: 'env', value: 'dev', isRegex: false, isEqual: false },
      { name: 'team', value: 'a.*', isRegex: true, isEqual: false },
    ]);
    expect(parseMatchers(formatMatchers(ms))).toEqual(ms);
  });
  it('accepts braces and gives nothing for empty input', () => {
    expect(parseMatchers('{a="b"}')).toHaveLength(1);
    expect(parseMatchers('')).toEqual([]);
  });
});

describe('service graph', () => {
  it('joins rate, failures and p95 per edge and lays out callers left of callees', () => {
    const v = (client: string, server: string, value: string) => ({ metric: { client, server }, value: [0, value] as [number, string] });
    const edges = buildEdges([v('user', 'api', '10'), v('api', 'db', '4')], [v('api', 'db', '1')], [v('api', 'db', '0.05')]);
    expect(edges).toEqual([
      { client: 'user', server: 'api', rate: 10, errorRate: 0 },
      { client: 'api', server: 'db', rate: 4, errorRate: 1, p95: 0.05 },
    ]);
    const nodes = layout(edges, 300, 100);
    const x = Object.fromEntries(nodes.map((n) => [n.name, n.x]));
    expect(x.user).toBeLessThan(x.api);
    expect(x.api).toBeLessThan(x.db);
    expect(nodes.find((n) => n.name === 'db')?.errorRate).toBe(1);
  });
  it('terminates on cycles', () => {
    const v = (client: string, server: string) => ({ metric: { client, server }, value: [0, '1'] as [number, string] });
    expect(layout(buildEdges([v('a', 'b'), v('b', 'a')], [], []), 100, 100)).toHaveLength(2);
  });
});
