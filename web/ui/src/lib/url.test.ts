import { describe, expect, it } from 'vitest';
import { formatHash, parseHash, withParams } from './url';

describe('hash URL state', () => {
  it('parses path and params', () => {
    const l = parseHash('#/explore/metrics?query=up%7Bjob%3D%22a%22%7D&from=now-6h');
    expect(l.path).toBe('/explore/metrics');
    expect(l.params.get('query')).toBe('up{job="a"}');
    expect(l.params.get('from')).toBe('now-6h');
  });
  it('treats an empty hash as /', () => {
    expect(parseHash('').path).toBe('/');
    expect(parseHash('#').path).toBe('/');
    expect(parseHash('#explore/logs').path).toBe('/explore/logs');
  });
  it('round-trips queries with every awkward character', () => {
    const query = 'sum by (le) (rate(x{a=~"b|c", d!="e&f=g#h"}[5m])) / 2 + 1 % 3';
    const h = formatHash('/explore/metrics', { query, from: 'now-1h', to: 'now', step: undefined, empty: '' });
    expect(h).not.toContain('step');
    expect(h).not.toContain('empty');
    const l = parseHash(h);
    expect(l.params.get('query')).toBe(query);
    expect(formatHash(l.path, l.params)).toBe(h);
  });
  it('sets and deletes params without touching others', () => {
    const p = new URLSearchParams('query=up&from=now-1h&tab=x');
    const q = withParams(p, { tab: undefined, to: 'now', from: '' });
    expect(q.toString()).toBe('query=up&to=now');
    expect(p.toString()).toBe('query=up&from=now-1h&tab=x');
  });
});
