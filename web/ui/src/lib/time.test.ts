import { describe, expect, it } from 'vitest';
import { autoStep, describeRange, formatPromDuration, parseDuration, parseTime, resolveRange, zoomOut } from './time';

const NOW = Date.UTC(2030, 0, 15, 12, 0, 0); // a fixed instant: no test depends on today's date

describe('parseDuration', () => {
  it.each([
    ['15s', 15_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['2d', 172_800_000],
    ['500ms', 500],
    ['1w', 604_800_000],
    ['30', 30_000],
    ['1.5h', 5_400_000],
  ])('%s', (s, ms) => expect(parseDuration(s)).toBe(ms));
  it.each(['', 'abc', '5x', 'h1', '1h-2m', '1h 2m'])('rejects %j', (s) => expect(parseDuration(s)).toBeNaN());
});

describe('formatPromDuration', () => {
  it('round-trips through parseDuration', () => {
    for (const ms of [1000, 90_000, 3_600_000, 5_430_000, 86_400_000 + 1000, 250]) {
      expect(parseDuration(formatPromDuration(ms))).toBe(ms);
    }
  });
  it('formats zero and negatives as 0s', () => {
    expect(formatPromDuration(0)).toBe('0s');
    expect(formatPromDuration(-5)).toBe('0s');
  });
});

describe('parseTime', () => {
  it('reads relative times against now', () => {
    expect(parseTime('now', NOW)).toBe(NOW);
    expect(parseTime('now-1h', NOW)).toBe(NOW - 3_600_000);
    expect(parseTime('now+5m', NOW)).toBe(NOW + 300_000);
    expect(parseTime('now-1h30m', NOW)).toBe(NOW - 5_400_000);
  });
  it('reads epoch seconds (≤10 digits, as Loki does) and milliseconds', () => {
    expect(parseTime('1700000000', NOW)).toBe(1_700_000_000_000);
    expect(parseTime('1700000000123', NOW)).toBe(1_700_000_000_123);
  });
  it('reads ISO dates', () => {
    expect(parseTime('2030-01-15T11:00:00Z', NOW)).toBe(NOW - 3_600_000);
  });
  it('rejects rubbish', () => {
    expect(parseTime('yesterday', NOW)).toBeNaN();
    expect(parseTime('now-x', NOW)).toBeNaN();
  });
});

describe('resolveRange', () => {
  it('resolves relative and absolute ends', () => {
    expect(resolveRange({ from: 'now-6h', to: 'now' }, NOW)).toEqual({ start: NOW - 6 * 3_600_000, end: NOW });
    expect(resolveRange({ from: String(NOW - 1000), to: String(NOW) }, NOW)).toEqual({ start: NOW - 1000, end: NOW });
  });
  it('falls back to the last hour for reversed or unreadable ranges', () => {
    expect(resolveRange({ from: 'now', to: 'now-1h' }, NOW)).toEqual({ start: NOW - 3_600_000, end: NOW });
    expect(resolveRange({ from: 'bogus', to: 'now' }, NOW)).toEqual({ start: NOW - 3_600_000, end: NOW });
  });
});

describe('autoStep', () => {
  it('gives at most ~300 points with a familiar step', () => {
    expect(autoStep({ start: NOW - 3_600_000, end: NOW })).toBe(15);
    expect(autoStep({ start: NOW - 5 * 60_000, end: NOW })).toBe(1);
    expect(autoStep({ start: NOW - 7 * 86_400_000, end: NOW })).toBe(3600);
    expect(autoStep({ start: NOW - 3_600_000, end: NOW }, 60)).toBe(60);
  });
});

describe('describeRange and zoomOut', () => {
  it('names quick ranges', () => expect(describeRange({ from: 'now-1h', to: 'now' })).toBe('Last 1 hour'));
  it('zooms out around the middle', () => {
    expect(zoomOut({ start: 1000, end: 3000 })).toEqual({ from: '0', to: '4000' });
  });
});
