// The page's time range from the URL (from, to), with the default when absent.
import { useMemo } from 'react';
import { DEFAULT_RANGE, type TimeRange } from './time';
import { useLocation } from './url';

export function useRange(): [TimeRange, (r: TimeRange) => void] {
  const [loc, setParams] = useLocation();
  const from = loc.params.get('from') ?? DEFAULT_RANGE.from;
  const to = loc.params.get('to') ?? DEFAULT_RANGE.to;
  const range = useMemo(() => ({ from, to }), [from, to]);
  return [range, (r: TimeRange) => setParams({ from: r.from, to: r.to })];
}
