// A small data-loading hook: runs fn when deps change, aborts the previous
// run, and reports loading / error / data.
import { useEffect, useState, type DependencyList } from 'react';
import { errorText } from '../api/http';

export interface AsyncState<T> {
  data?: T;
  error?: string;
  loading: boolean;
}

export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: DependencyList): AsyncState<T> {
  const [st, setSt] = useState<AsyncState<T>>({ loading: true });
  useEffect(() => {
    const ac = new AbortController();
    setSt((s) => ({ data: s.data, loading: true }));
    fn(ac.signal).then(
      (data) => !ac.signal.aborted && setSt({ data, loading: false }),
      (e) => !ac.signal.aborted && setSt({ error: errorText(e), loading: false }),
    );
    return () => ac.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return st;
}
