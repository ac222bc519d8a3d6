// The time-range picker: quick relative ranges and an absolute from/to, all
// written to the URL (from, to) so a link carries the range.
import { useEffect, useRef, useState } from 'react';
import { QUICK_RANGES, describeRange, formatDateTime, parseTime, type TimeRange } from '../lib/time';

interface Props {
  range: TimeRange;
  onChange: (r: TimeRange) => void;
  onRefresh?: () => void;
}

export default function TimePicker({ range, onChange, onRefresh }: Props) {
  const [open, setOpen] = useState(false);
  const [from, setFrom] = useState(range.from);
  const [to, setTo] = useState(range.to);
  const [err, setErr] = useState('');
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    setFrom(range.from);
    setTo(range.to);
  }, [range.from, range.to]);

  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('mousedown', close);
    return () => document.removeEventListener('mousedown', close);
  }, [open]);

  const apply = () => {
    const now = Date.now();
    const f = parseTime(from, now);
    const t = parseTime(to, now);
    if (Number.isNaN(f) || Number.isNaN(t)) {
      setErr('Use now, now-15m, an ISO date (2026-01-31 12:00) or epoch ms');
      return;
    }
    if (f >= t) {
      setErr('"From" must be before "To"');
      return;
    }
    const norm = (s: string, v: number) => (s.trim().startsWith('now') || /^\d+$/.test(s.trim()) ? s.trim() : String(v));
    setErr('');
    setOpen(false);
    onChange({ from: norm(from, f), to: norm(to, t) });
  };

  return (
    <div className="timepicker" ref={box}>
      <button type="button" className="btn" aria-haspopup="dialog" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="timepicker">
        {describeRange(range)} ▾
      </button>
      {onRefresh && (
        <button type="button" className="btn" onClick={onRefresh} title="Run again" aria-label="Refresh">
          ⟳
        </button>
      )}
      {open && (
        <div className="timepicker-pop" role="dialog" aria-label="Time range">
          <form
            className="timepicker-abs"
            onSubmit={(e) => {
              e.preventDefault();
              apply();
            }}
          >
            <label>
              From
              <input value={from} onChange={(e) => setFrom(e.target.value)} aria-label="From" />
            </label>
            <label>
              To
              <input value={to} onChange={(e) => setTo(e.target.value)} aria-label="To" />
            </label>
            <div className="muted small">
              Absolute: {formatDateTime(Date.now() - 3_600_000)} · relative: now-6h
            </div>
            {err && <div className="error small">{err}</div>}
            <button className="btn primary" type="submit">
              Apply
            </button>
          </form>
          <ul className="timepicker-quick">
            {QUICK_RANGES.map((q) => (
              <li key={q.from}>
                <button
                  type="button"
                  className={q.from === range.from && q.to === range.to ? 'link active' : 'link'}
                  onClick={() => {
                    setOpen(false);
                    onChange({ from: q.from, to: q.to });
                  }}
                >
                  {q.label}
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
