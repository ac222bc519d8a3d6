import { describe, expect, it } from 'vitest';
import { formatBytes, formatDurationMs, formatLabels, formatShort, formatUnit, seriesName, unitForMetric } from './format';

describe('formatShort', () => {
  it.each([
    [0, '0'],
    [1, '1'],
    [999, '999'],
    [1234, '1.23k'],
    [1_500_000, '1.5M'],
    [2e9, '2G'],
    [-1234, '-1.23k'],
    [0.5, '0.5'],
    [0.00012, '120µ'],
    [NaN, 'NaN'],
    [Infinity, '+Inf'],
    [-Infinity, '-Inf'],
  ])('%d → %s', (v, s) => expect(formatShort(v)).toBe(s));
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1536, '1.5 KiB'],
    [8 * 1024 ** 3, '8 GiB'],
    [-2048, '-2 KiB'],
  ])('%d → %s', (v, s) => expect(formatBytes(v)).toBe(s));
});

describe('formatDurationMs', () => {
  it.each([
    [0, '0s'],
    [0.0005, '500ns'],
    [0.0123, '12.3µs'],
    [1.5, '1.5ms'],
    [250, '250ms'],
    [1530, '1.53s'],
    [95_000, '1m35s'],
    [120_000, '2m'],
    [3_600_000 * 2 + 60_000 * 5, '2h5m'],
  ])('%d → %s', (v, s) => expect(formatDurationMs(v)).toBe(s));
});

describe('units', () => {
  it('formats by unit id', () => {
    expect(formatUnit(0.25, 'percentunit')).toBe('25%');
    expect(formatUnit(2048, 'bytes')).toBe('2 KiB');
    expect(formatUnit(0.2, 'seconds')).toBe('200ms');
    expect(formatUnit(1200, 'reqps')).toBe('1.2k req/s');
    expect(formatUnit(5, 'unknown-unit')).toBe('5');
  });
  it('guesses units from metric names', () => {
    expect(unitForMetric('process_resident_memory_bytes')).toBe('bytes');
    expect(unitForMetric('http_request_duration_seconds_bucket')).toBe('seconds');
    expect(unitForMetric('up')).toBe('short');
  });
});

describe('labels', () => {
  it('renders sorted, quoted label sets and series names', () => {
    expect(formatLabels({ b: '2', a: 'x"y' })).toBe('{a="x\\"y", b="2"}');
    expect(seriesName({ __name__: 'up', job: 'a' })).toBe('up{job="a"}');
    expect(seriesName({ __name__: 'up' })).toBe('up');
    expect(seriesName({ job: 'a' })).toBe('{job="a"}');
  });
});
