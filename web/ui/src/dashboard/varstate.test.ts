import { describe, expect, it } from 'vitest';
import { pickCurrent, scopeOf } from './varstate';
import { ALL, interpolate } from './variables';
import type { Variable } from './types';

const o = (...v: string[]) => v.map((x) => ({ text: x, value: x }));

describe('pickCurrent', () => {
  const multi: Variable = { name: 'svc', type: 'query', multi: true, includeAll: true, allValue: '.*', current: { text: 'All', value: '$__all' } };
  it('takes URL values that are options, else the saved selection', () => {
    expect(pickCurrent(multi, o('a', 'b', 'c'), ['b', 'c', 'zzz']).current).toEqual(['b', 'c']);
    expect(pickCurrent(multi, o('a', 'b'), undefined).current).toEqual([ALL]);
    expect(pickCurrent(multi, o('a', 'b'), ['All']).current).toEqual([ALL]);
  });
  it('falls back to the first option', () => {
    const single: Variable = { name: 'ns', type: 'query', current: { value: 'gone' } };
    expect(pickCurrent(single, o('x', 'y'), undefined).current).toEqual(['x']);
    expect(pickCurrent(single, o('x', 'y'), ['y', 'x']).current).toEqual(['y']);
  });
  it('matches a datasource selection by name or uid', () => {
    const v: Variable = { name: 'ds', type: 'datasource', current: { value: 'Loki' } };
    expect(pickCurrent(v, [{ text: 'Loki', value: 'loki' }], undefined).current).toEqual(['loki']);
  });
  it('keeps textbox and constant values', () => {
    expect(pickCurrent({ name: 't', type: 'textbox', query: 'def' }, [], undefined).current).toEqual(['def']);
    expect(pickCurrent({ name: 't', type: 'textbox', query: 'def' }, [], ['typed']).current).toEqual(['typed']);
    expect(pickCurrent({ name: 'c', type: 'constant', query: 'k' }, [], ['other']).current).toEqual(['k']);
  });
  it('chains: a later query sees the earlier selection', () => {
    const scope = scopeOf([
      { def: { name: 'namespace', type: 'query' }, options: o('nx-backend'), current: ['nx-backend'], texts: ['nx-backend'] },
      { def: multi, options: o('api', 'worker'), current: [ALL], texts: ['All'] },
    ]);
    expect(interpolate('label_values(kube_pod_info{namespace="$namespace", service=~"$svc"}, pod)', scope, 'prometheus')).toBe(
      'label_values(kube_pod_info{namespace="nx-backend", service=~".*"}, pod)',
    );
  });
});
