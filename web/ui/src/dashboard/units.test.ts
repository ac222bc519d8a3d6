import { describe, expect, it } from 'vitest';
import { display, fieldConfigFor, formatValue, mapValue, reduce, thresholdColour, cssColour, type ValueMapping } from './units';

describe('formatValue', () => {
  it.each([
    [1234, 'short', undefined, '1.23 K'],
    [999, 'short', undefined, '999'],
    [2_500_000, 'short', undefined, '2.5 Mil'],
    [12.345, 'percent', 1, '12.3%'],
    [0.0512, 'percentunit', 2, '5.12%'],
    [1536, 'bytes', undefined, '1.5 KiB'],
    [1536, 'decbytes', undefined, '1.54 kB'],
    [0.25, 's', undefined, '250 ms'],
    [90, 's', undefined, '1.5 min'],
    [1500, 'ms', undefined, '1.5 s'],
    [12.5, 'reqps', undefined, '12.5 req/s'],
    [3, 'ops', undefined, '3 ops/s'],
    [42, 'none', undefined, '42'],
    [5, 'suffix: pods', undefined, '5 pods'],
  ])('%s %s → %s', (v, unit, dec, want) => {
    expect(formatValue(v, unit, dec)).toBe(want);
  });
  it('handles null and infinities', () => {
    expect(formatValue(null)).toBe('No data');
    expect(formatValue(Infinity)).toBe('+Inf');
  });
});

describe('thresholds', () => {
  const th = { mode: 'absolute' as const, steps: [{ value: null, color: 'green' }, { value: 0.01, color: 'orange' }, { value: 0.05, color: 'red' }] };
  it('picks the last step at or below the value', () => {
    expect(thresholdColour(0, th)).toBe(cssColour('green'));
    expect(thresholdColour(0.01, th)).toBe(cssColour('orange'));
    expect(thresholdColour(0.2, th)).toBe(cssColour('red'));
  });
  it('reads percentage thresholds against min/max', () => {
    const pct = { mode: 'percentage' as const, steps: [{ value: null, color: 'green' }, { value: 80, color: '#ff0000' }] };
    expect(thresholdColour(70, pct, 0, 200)).toBe(cssColour('green'));
    expect(thresholdColour(170, pct, 0, 200)).toBe('#ff0000');
  });
});

describe('value mappings', () => {
  const mappings: ValueMapping[] = [
    { type: 'value', options: { '0': { text: 'down', color: 'red' }, '1': { text: 'up', color: 'green' } } },
    { type: 'range', options: { from: 2, to: 10, result: { text: 'several' } } },
    { type: 'regex', options: { pattern: '^err', result: { text: 'error' } } },
    { type: 'special', options: { match: 'null', result: { text: 'N/A' } } },
  ];
  it('maps values, ranges, regexes and specials', () => {
    expect(mapValue(1, mappings)?.text).toBe('up');
    expect(mapValue(5, mappings)?.text).toBe('several');
    expect(mapValue('error: x', mappings)?.text).toBe('error');
    expect(mapValue(null, mappings)?.text).toBe('N/A');
    expect(mapValue(42, mappings)).toBeUndefined();
  });
  it('display prefers the mapping colour and text', () => {
    expect(display(0, { mappings, unit: 'short' })).toEqual({ text: 'down', colour: cssColour('red') });
    expect(display(0.5, { unit: 'percentunit', decimals: 0, thresholds: { steps: [{ value: null, color: 'green' }] } })).toEqual({ text: '50%', colour: cssColour('green') });
  });
});

describe('overrides and reducers', () => {
  it('merges matching overrides', () => {
    const fc = fieldConfigFor({ unit: 'short' }, [{ matcher: { id: 'byName', options: 'mem' }, properties: [{ id: 'unit', value: 'bytes' }, { id: 'custom.fillOpacity', value: 10 }] }], 'mem', 'A');
    expect(fc.unit).toBe('bytes');
    expect(fc.custom).toEqual({ fillOpacity: 10 });
    expect(fieldConfigFor({ unit: 'short' }, [{ matcher: { id: 'byRegexp', options: '^c' }, properties: [{ id: 'unit', value: 's' }] }], 'mem', 'A').unit).toBe('short');
  });
  it('reduces', () => {
    const v = [1, null, 3, 2];
    expect(reduce(v, 'lastNotNull')).toBe(2);
    expect(reduce(v, 'mean')).toBe(2);
    expect(reduce(v, 'max')).toBe(3);
    expect(reduce(v, 'min')).toBe(1);
    expect(reduce(v, 'sum')).toBe(6);
    expect(reduce([5, 7, 2, 4], 'delta')).toBe(6);
    expect(reduce([], 'lastNotNull')).toBeNull();
  });
});
