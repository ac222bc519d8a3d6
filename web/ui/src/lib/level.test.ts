import { describe, expect, it } from 'vitest';
import { detectLevel, normaliseLevel } from './level';

describe('detectLevel', () => {
  it('prefers labels and structured metadata over the line', () => {
    expect(detectLevel('level=warn something', { detected_level: 'debug' })).toBe('debug');
    expect(detectLevel('all fine', { level: 'ERROR' })).toBe('error');
    expect(detectLevel('x', { severity_text: 'Warning' })).toBe('warn');
  });
  it('reads logfmt and JSON level fields', () => {
    expect(detectLevel('ts=1 level=warn msg="disk almost full"')).toBe('warn');
    expect(detectLevel('{"ts":1,"level":"error","msg":"boom"}')).toBe('error');
    expect(detectLevel('{"severity": "INFO", "msg": "ok"}')).toBe('info');
    expect(detectLevel('lvl=dbg msg=x')).toBe('debug');
  });
  it('falls back to the first level word', () => {
    expect(detectLevel('2026-01-01 12:00:00 ERROR failed to connect')).toBe('error');
    expect(detectLevel('[WARNING] slow query')).toBe('warn');
    expect(detectLevel('panic: runtime error')).toBe('critical');
    expect(detectLevel('FATAL out of memory')).toBe('critical');
  });
  it('does not take words inside other words', () => {
    expect(detectLevel('informational terror')).toBe('unknown');
    expect(detectLevel('GET /debugger 200')).toBe('unknown');
  });
  it('is unknown when nothing says a level', () => {
    expect(detectLevel('GET /health 200')).toBe('unknown');
    expect(detectLevel('', { level: 'bogus' })).toBe('unknown');
  });
});

describe('normaliseLevel', () => {
  it.each([
    ['WARN', 'warn'],
    ['warning', 'warn'],
    ['Err', 'error'],
    ['crit', 'critical'],
    ['E', 'error'],
    ['notice', 'info'],
    ['x', undefined],
    [undefined, undefined],
  ])('%s → %s', (s, l) => expect(normaliseLevel(s)).toBe(l));
});
