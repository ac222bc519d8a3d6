// Small LogQL helpers the logs page needs around a user's query.

/** The volume query of a log query: count per level per step, as Grafana's log volume panel asks. */
export function volumeQuery(logQuery: string, stepSec: number): string {
  return `sum by (detected_level) (count_over_time(${logQuery.trim()} [${Math.max(1, Math.round(stepSec))}s]))`;
}

/** True when the query is a metric query (the outer expression is not a log selector/pipeline). */
export function isMetricQuery(q: string): boolean {
  const s = q.trim();
  return s !== '' && !s.startsWith('{');
}

/** Decrements a nanosecond timestamp string by one (the end of "load older", which is inclusive). */
export function nsMinusOne(ns: string): string {
  return (BigInt(ns) - 1n).toString();
}
