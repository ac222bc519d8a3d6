import { describe, expect, it } from 'vitest';
import { buildTraceQL, findTraceId, pageHref, quote, serviceTracesHref, traceToLogsHref, traceToLogsQuery, traceToMetricsQueries, traceWindow } from './links';
import { parseHash } from './url';
import { volumeQuery, isMetricQuery, nsMinusOne } from './logql';

const TID = '0af7651916cd43dd8448eb211c80319c';

describe('trace IDs in log entries', () => {
  it('finds them in fields under any common spelling', () => {
    expect(findTraceId('x', { trace_id: TID })).toBe(TID);
    expect(findTraceId('x', { traceID: TID.toUpperCase() })).toBe(TID);
    expect(findTraceId('x', { traceId: TID })).toBe(TID);
    expect(findTraceId('x', { 'trace-id': TID })).toBe(TID);
  });
  it('finds them in logfmt and JSON lines', () => {
    expect(findTraceId(`level=info trace_id=${TID} msg=ok`)).toBe(TID);
    expect(findTraceId(`{"msg":"ok","traceID":"${TID}"}`)).toBe(TID);
    expect(findTraceId(`traceid: ${TID.slice(0, 16)}`)).toBe(TID.slice(0, 16));
  });
  it('ignores values that are not IDs', () => {
    expect(findTraceId('trace_id=nothex', { trace_id: 'abc' })).toBeUndefined();
    expect(findTraceId('no id here')).toBeUndefined();
  });
});

describe('traces → logs', () => {
  it('filters the service streams by the trace ID', () => {
    expect(traceToLogsQuery(TID, 'api')).toBe(`{service_name="api"} |= "${TID}"`);
    expect(traceToLogsQuery(TID)).toBe(`{service_name=~".+"} |= "${TID}"`);
    expect(traceToLogsQuery(TID, 'we"ird')).toBe(`{service_name="we\\"ird"} |= "${TID}"`);
  });
  it('links to Explore logs over the trace time range widened by a minute', () => {
    const l = parseHash(traceToLogsHref(TID, 'api', 1_000_000, 1_002_000));
    expect(l.path).toBe('/explore/logs');
    expect(l.params.get('query')).toBe(`{service_name="api"} |= "${TID}"`);
    expect(l.params.get('from')).toBe('940000');
    expect(l.params.get('to')).toBe('1062000');
  });
  it('widens windows outwards to whole milliseconds', () => {
    expect(traceWindow(10.4, 20.2, 0)).toEqual({ from: '10', to: '21' });
  });
});

describe('traces → metrics', () => {
  it('asks the span metrics for rate, errors and p95', () => {
    const [rate, errors, p95] = traceToMetricsQueries('api', 'GET /x');
    expect(rate.query).toBe('sum(rate(traces_spanmetrics_calls_total{service="api", span_name="GET /x"}[5m]))');
    expect(errors.query).toContain('status_code="STATUS_CODE_ERROR"');
    expect(p95.query).toBe('histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{service="api", span_name="GET /x"}[5m])))');
  });
});

describe('TraceQL from the search form', () => {
  it('joins conditions with &&', () => {
    expect(buildTraceQL({ service: 'api', spanName: 'GET /', minDuration: '100ms', tags: [{ key: 'http.status_code', value: '500' }] })).toBe(
      '{ resource.service.name = "api" && name = "GET /" && duration >= 100ms && .http.status_code = "500" }',
    );
    expect(buildTraceQL({ tags: [{ key: 'span.db.system', value: 'redis' }] })).toBe('{ span.db.system = "redis" }');
  });
  it('gives {} for an empty form', () => expect(buildTraceQL({})).toBe('{}'));
  it('links a service map node to its traces', () => {
    const l = parseHash(serviceTracesHref('db', { from: 'now-1h', to: 'now' }));
    expect(l.params.get('q')).toBe('{ resource.service.name = "db" }');
  });
});

describe('helpers', () => {
  it('quotes', () => expect(quote('a"b\\c\nd')).toBe('"a\\"b\\\\c\\nd"'));
  it('drops empty params from hrefs', () => expect(pageHref('/x', { a: '1', b: '', c: undefined })).toBe('#/x?a=1'));
  it('builds the volume query', () => {
    expect(volumeQuery('{app="a"} |= "x"', 60)).toBe('sum by (detected_level) (count_over_time({app="a"} |= "x" [60s]))');
  });
  it('tells metric from log queries', () => {
    expect(isMetricQuery('{a="b"}')).toBe(false);
    expect(isMetricQuery('rate({a="b"}[1m])')).toBe(true);
  });
  it('steps nanosecond strings back without losing precision', () => expect(nsMinusOne('1700000000000000000')).toBe('1699999999999999999'));
});
