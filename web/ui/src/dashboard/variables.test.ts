import { describe, expect, it } from 'vitest';
import {
  ALL,
  applyFormat,
  applyVarRegex,
  computeIntervals,
  formatInterval,
  globalScope,
  interpolate,
  intervalOptions,
  legend,
  parseCustom,
  parseLokiVarQuery,
  parsePromVarQuery,
  referencedVars,
  sortOptions,
  type Scope,
} from './variables';

const opts = (...v: string[]) => v.map((x) => ({ text: x, value: x }));

describe('interpolate', () => {
  const scope: Scope = {
    single: { values: ['nx-backend'] },
    multi: { values: ['a.b', 'c'], multi: true, includeAll: true, options: opts('a.b', 'c', 'd') },
    one: { values: ['x|y'], multi: true },
    all: { values: [ALL], multi: true, includeAll: true, allValue: '.*', options: opts('p', 'q') },
    allNoValue: { values: [ALL], multi: true, includeAll: true, options: opts('p', 'q.r') },
  };
  it('substitutes $var, ${var} and [[var]]', () => {
    expect(interpolate('ns="$single"', scope, 'prometheus')).toBe('ns="nx-backend"');
    expect(interpolate('ns="${single}"', scope, 'prometheus')).toBe('ns="nx-backend"');
    expect(interpolate('ns="[[single]]"', scope, 'prometheus')).toBe('ns="nx-backend"');
  });
  it('formats multi-value as an escaped regex for Prometheus', () => {
    expect(interpolate('x=~"$multi"', scope, 'prometheus')).toBe('x=~"(a\\\\.b|c)"');
    expect(interpolate('x=~"$one"', scope, 'prometheus')).toBe('x=~"x\\\\|y"');
  });
  it('uses allValue for All, and every option when there is none', () => {
    expect(interpolate('x=~"$all"', scope, 'prometheus')).toBe('x=~".*"');
    expect(interpolate('x=~"$allNoValue"', scope, 'prometheus')).toBe('x=~"(p|q\\\\.r)"');
  });
  it('leaves unknown variables and a lone $ alone', () => {
    expect(interpolate('$unknown cost $5', scope)).toBe('$unknown cost $5');
  });
  it('applies explicit formats', () => {
    expect(interpolate('${multi:csv}', scope)).toBe('a.b,c');
    expect(interpolate('${multi:pipe}', scope)).toBe('a.b|c');
    expect(interpolate('${multi:regex}', scope)).toBe('(a\\.b|c)');
    expect(interpolate('${multi:json}', scope)).toBe('["a.b","c"]');
    expect(interpolate('${multi:doublequote}', scope)).toBe('"a.b","c"');
    expect(interpolate('${multi:singlequote}', scope)).toBe("'a.b','c'");
    expect(interpolate('${multi:glob}', scope)).toBe('{a.b,c}');
    expect(interpolate('${multi:lucene}', scope)).toBe('("a.b" OR "c")');
    expect(interpolate('${multi:queryparam}', scope)).toBe('var-multi=a.b&var-multi=c');
    expect(interpolate('${multi:percentencode}', scope)).toBe('%7Ba.b%2Cc%7D');
    expect(interpolate('${multi:distributed}', scope)).toBe('a.b,multi=c');
    expect(interpolate('${single:raw}', scope)).toBe('nx-backend');
    expect(interpolate('${multi:text}', { multi: { values: ['1'], texts: ['One'] } })).toBe('One');
    expect(applyFormat('v', ["o'k"], ["o'k"], 'sqlstring')).toBe("'o''k'");
  });
  it('fills the global variables', () => {
    const g = globalScope(1_000_000, 1_000_000 + 3_600_000, { intervalMs: 15_000, rateIntervalMs: 60_000 });
    expect(interpolate('rate(x[$__rate_interval]) [$__interval] [$__range] $__from $__to ${__range_s}', g)).toBe('rate(x[1m]) [15s] [3600s] 1000000 4600000 3600');
    expect(interpolate('${__from:date:seconds}', g)).toBe('1000');
    expect(interpolate('${__to:date:iso}', g)).toBe(new Date(4_600_000).toISOString());
  });
  it('lists referenced variables', () => {
    expect(referencedVars('a $x ${y:csv} [[z]] $__interval').sort()).toEqual(['__interval', 'x', 'y', 'z']);
  });
});

describe('intervals', () => {
  it('rounds range/maxDataPoints up, not below the scrape interval', () => {
    expect(computeIntervals(3_600_000, 1000).intervalMs).toBe(15_000);
    expect(computeIntervals(24 * 3_600_000, 1000).intervalMs).toBe(120_000);
    expect(computeIntervals(3_600_000, 1000, '1m').intervalMs).toBe(60_000);
  });
  it('computes $__rate_interval as max(interval + scrape, 4 × scrape)', () => {
    expect(computeIntervals(3_600_000, 1000).rateIntervalMs).toBe(60_000);
    expect(computeIntervals(24 * 3_600_000, 1000).rateIntervalMs).toBe(135_000);
  });
  it('formats one unit', () => {
    expect(formatInterval(15_000)).toBe('15s');
    expect(formatInterval(120_000)).toBe('2m');
    expect(formatInterval(3_600_000)).toBe('1h');
    expect(formatInterval(500)).toBe('500ms');
  });
  it('gives interval variables an auto option', () => {
    expect(intervalOptions('1m,10m,1h', true, 30, '10s', 3_600_000)).toEqual([
      { text: 'auto', value: '2m' },
      ...opts('1m', '10m', '1h'),
    ]);
  });
});

describe('variable queries', () => {
  it('parses Prometheus forms', () => {
    expect(parsePromVarQuery('label_values(kube_pod_info{namespace="$ns", a=~"x,y"}, pod)')).toEqual({ kind: 'label_values', match: 'kube_pod_info{namespace="$ns", a=~"x,y"}', label: 'pod' });
    expect(parsePromVarQuery('label_values(job)')).toEqual({ kind: 'label_values', label: 'job' });
    expect(parsePromVarQuery('label_names()')).toEqual({ kind: 'label_names', match: undefined });
    expect(parsePromVarQuery('metrics(node_.*)')).toEqual({ kind: 'metrics', regex: 'node_.*' });
    expect(parsePromVarQuery('query_result(topk(3, up))')).toEqual({ kind: 'query_result', expr: 'topk(3, up)' });
  });
  it('parses Loki forms', () => {
    expect(parseLokiVarQuery({ type: 1, label: 'service_name', stream: '{env="x"}' })).toEqual({ kind: 'label_values', label: 'service_name', stream: '{env="x"}' });
    expect(parseLokiVarQuery('label_values({env="x"}, pod)')).toEqual({ kind: 'label_values', label: 'pod', stream: '{env="x"}' });
    expect(parseLokiVarQuery({ type: 0 })).toEqual({ kind: 'label_names', stream: undefined });
  });
  it('applies the regex with groups', () => {
    expect(applyVarRegex(['up{instance="a:9100"} 1 1', 'up{instance="b:9100"} 1 1'], '/instance="([^:]+)/')).toEqual(opts('a', 'b'));
    expect(applyVarRegex(['k1=v1', 'k2=v2'], '/(?<text>k\\d)=(?<value>v\\d)/')).toEqual([
      { text: 'k1', value: 'v1' },
      { text: 'k2', value: 'v2' },
    ]);
    expect(applyVarRegex(['a', 'a', 'b'], undefined)).toEqual(opts('a', 'b'));
  });
  it('parses custom values', () => {
    expect(parseCustom('a, b\\,c, Prod : prod-1')).toEqual([...opts('a', 'b,c'), { text: 'Prod', value: 'prod-1' }]);
  });
  it('sorts', () => {
    expect(sortOptions(opts('b10', 'a2', 'c1'), 1).map((o) => o.value)).toEqual(['a2', 'b10', 'c1']);
    expect(sortOptions(opts('b10', 'a2', 'c1'), 4).map((o) => o.value)).toEqual(['b10', 'a2', 'c1']);
    expect(sortOptions(opts('x10', 'x2', 'x1'), 7).map((o) => o.value)).toEqual(['x1', 'x2', 'x10']);
  });
  it('fills legend formats', () => {
    expect(legend('{{pod}} on {{ node }}', { pod: 'p1', node: 'n1' })).toBe('p1 on n1');
    expect(legend('__auto', { a: '1' })).toBeUndefined();
  });
});
