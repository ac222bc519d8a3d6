// The log volume above the lines: stacked bars per level, one bar per step.
// Clicking a bar narrows the range to it.
import { useMemo } from 'react';
import { LEVELS, LEVEL_COLOURS, normaliseLevel, type Level } from '../lib/level';
import { formatDateTime } from '../lib/time';

export interface VolumeSeries {
  level: string;
  points: [number, number][]; // [epoch ms, count]
}

export default function VolumeHistogram({
  series,
  start,
  end,
  step,
  onSelect,
}: {
  series: VolumeSeries[];
  start: number;
  end: number;
  step: number; // ms
  onSelect?: (from: number, to: number) => void;
}) {
  const { buckets, max, levels } = useMemo(() => {
    const b = new Map<number, Partial<Record<Level, number>>>();
    const seen = new Set<Level>();
    for (const s of series) {
      const lvl = normaliseLevel(s.level) ?? 'unknown';
      seen.add(lvl);
      for (const [t, v] of s.points) {
        const m = b.get(t) ?? {};
        m[lvl] = (m[lvl] ?? 0) + v;
        b.set(t, m);
      }
    }
    let mx = 0;
    for (const m of b.values()) mx = Math.max(mx, Object.values(m).reduce((a, x) => a + (x ?? 0), 0));
    return { buckets: b, max: mx, levels: LEVELS.filter((l) => seen.has(l)) };
  }, [series]);

  const W = 1000;
  const H = 80;
  const span = Math.max(1, end - start);
  const bw = Math.max(1, (step / span) * W - 1);
  return (
    <div className="card volume-card" data-testid="volume" data-levels={levels.join(',')}>
      <div className="row small">
        <span className="muted">Log volume</span>
        {levels.map((l) => (
          <span key={l} className="row" style={{ gap: 3 }}>
            <span style={{ width: 10, height: 10, background: LEVEL_COLOURS[l], display: 'inline-block', borderRadius: 2 }} />
            {l}
          </span>
        ))}
      </div>
      <svg className="volume" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" width="100%" role="img" aria-label="Log volume by level">
        {[...buckets.entries()].map(([t, m]) => {
          let y = H;
          const x = ((t - step - start) / span) * W;
          return (
            <g key={t} onClick={() => onSelect?.(t - step, t)} style={{ cursor: onSelect ? 'pointer' : undefined }}>
              <title>
                {formatDateTime(t)}: {levels.map((l) => `${l} ${m[l] ?? 0}`).join(', ')}
              </title>
              {levels.map((l) => {
                const v = m[l] ?? 0;
                if (!v || !max) return null;
                const h = (v / max) * (H - 2);
                y -= h;
                return <rect key={l} x={x} y={y} width={bw} height={h} fill={LEVEL_COLOURS[l]} data-testid="volume-bar" />;
              })}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
