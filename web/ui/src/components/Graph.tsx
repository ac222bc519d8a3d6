// A time-series chart on uPlot: lines or stacked areas, a legend whose
// entries toggle their series and show the value under the cursor, and
// exemplars drawn as diamonds that open their trace on click.
import { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { colourAt } from '../lib/colours';
import { formatShort } from '../lib/format';

export interface GraphSeries {
  name: string;
  points: [number, number][]; // [epoch ms, value]
}

export interface GraphExemplar {
  ts: number; // epoch ms
  value: number;
  traceId?: string;
  labels: Record<string, string>;
}

interface Props {
  series: GraphSeries[];
  stacked?: boolean;
  exemplars?: GraphExemplar[];
  onExemplarClick?: (e: GraphExemplar) => void;
  height?: number;
  formatValue?: (v: number) => string;
  /** The x range to show (epoch ms), so the axis is the query's range, not the data's extent. */
  xRange?: [number, number];
  /** uPlot's own legend (on by default; dashboards draw theirs). */
  legend?: boolean;
  /** Fill under lines, 0–1 (dashboards' fillOpacity). */
  fillOpacity?: number;
  /** Horizontal lines drawn at threshold values (dashboards' thresholdsStyle). */
  thresholds?: { value: number; colour: string; dashed?: boolean }[];
  /** The y range: hard min/max, or soft ones the range always includes. */
  yMin?: number;
  yMax?: number;
  ySoftMin?: number;
  ySoftMax?: number;
}

/** Aligns series on the union of their timestamps (seconds), as uPlot wants, with nulls for gaps. */
export function alignSeries(series: GraphSeries[]): [number[], (number | null)[][]] {
  const ts = new Set<number>();
  for (const s of series) for (const [t] of s.points) ts.add(t);
  const xs = [...ts].sort((a, b) => a - b);
  const idx = new Map(xs.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, v] of s.points) col[idx.get(t)!] = Number.isFinite(v) ? v : null;
    return col;
  });
  return [xs.map((t) => t / 1000), ys];
}

/** Cumulative sums for stacking (a null counts as 0 below, stays null itself). */
export function stack(ys: (number | null)[][]): (number | null)[][] {
  const out: (number | null)[][] = [];
  let acc: number[] | null = null;
  for (const col of ys) {
    const a: number[] = acc ?? new Array(col.length).fill(0);
    const next = col.map((v, i) => (v === null ? null : a[i] + v));
    out.push(next);
    acc = col.map((v, i) => a[i] + (v ?? 0));
  }
  return out;
}

export default function Graph({
  series,
  stacked,
  exemplars,
  onExemplarClick,
  height = 300,
  formatValue = formatShort,
  xRange,
  legend = true,
  fillOpacity = 0,
  thresholds,
  yMin,
  yMax,
  ySoftMin,
  ySoftMax,
}: Props) {
  const host = useRef<HTMLDivElement>(null);
  const [xs, raw] = useMemo(() => alignSeries(series), [series]);
  const tipRef = useRef<HTMLDivElement>(null);
  const exRef = useRef({ exemplars, onExemplarClick, thresholds });
  exRef.current = { exemplars, onExemplarClick, thresholds };

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const ys = stacked ? stack(raw) : raw;
    // uPlot draws on a canvas, which takes no CSS variables: resolve the theme's.
    const css = getComputedStyle(document.documentElement);
    const grid = css.getPropertyValue('--grid').trim() || '#e6e9ee';
    const muted = css.getPropertyValue('--fg-muted').trim() || '#5f6b7a';
    const opts: uPlot.Options = {
      width: el.clientWidth || 800,
      height,
      cursor: { drag: { x: true, y: false } },
      legend: { show: legend, live: true },
      scales: {
        x: xRange ? { time: true, range: [xRange[0] / 1000, xRange[1] / 1000] } : { time: true },
        ...(yMin !== undefined || yMax !== undefined || ySoftMin !== undefined || ySoftMax !== undefined
          ? {
              y: {
                range: (_u: uPlot, lo: number | null, hi: number | null): uPlot.Range.MinMax => {
                  const a0 = Math.min(lo ?? 0, ySoftMin ?? Infinity);
                  const b0 = Math.max(hi ?? 1, ySoftMax ?? -Infinity);
                  const [ra, rb] = uPlot.rangeNum(a0, b0, 0.1, true);
                  const a = ra ?? a0;
                  const b = rb ?? b0;
                  // Padding must not push the axis below a soft minimum the data stays above.
                  return [yMin ?? (ySoftMin !== undefined && a < ySoftMin && (lo ?? 0) >= ySoftMin ? ySoftMin : a), yMax ?? b];
                },
              },
            }
          : {}),
      },
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        {
          stroke: muted,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          values: (_u, vals) => vals.map((v) => formatValue(v)),
          // Wide enough for the longest label (about 7 px a character at 12 px).
          size: (_u, vals) => Math.max(40, 14 + 7 * Math.max(0, ...(vals ?? []).map((v) => String(v).length))),
        },
      ],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.name,
          stroke: colourAt(i),
          width: 1.5,
          fill: stacked ? colourAt(i) + '55' : fillOpacity > 0 ? colourAt(i) + Math.round(Math.min(1, fillOpacity) * 255).toString(16).padStart(2, '0') : undefined,
          spanGaps: false,
          points: { show: false },
          value: (_u: uPlot, _v: number | null, si: number, di: number | null) => {
            const r = di === null ? null : raw[si - 1]?.[di];
            return r === null || r === undefined ? '—' : formatValue(r);
          },
        })),
      ],
      hooks: {
        // Without the legend, a tooltip shows the values under the cursor.
        setCursor: legend
          ? []
          : [
              (u) => {
                const tip = tipRef.current;
                const idx = u.cursor.idx;
                if (!tip) return;
                if (idx === null || idx === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
                  tip.style.display = 'none';
                  return;
                }
                const rows: [string, string, number][] = [];
                series.forEach((s, i) => {
                  const v = raw[i]?.[idx];
                  if (v !== null && v !== undefined) rows.push([s.name, formatValue(v), i]);
                });
                rows.sort((a, b) => (raw[b[2]]?.[idx] ?? 0) - (raw[a[2]]?.[idx] ?? 0));
                const t = new Date((xs[idx] ?? 0) * 1000);
                tip.replaceChildren();
                const head = document.createElement('div');
                head.className = 'graph-tip-time';
                head.textContent = t.toLocaleString();
                tip.append(head);
                for (const [name, val, i] of rows.slice(0, 12)) {
                  const row = document.createElement('div');
                  const sw = document.createElement('span');
                  sw.className = 'graph-tip-swatch';
                  sw.style.background = colourAt(i);
                  const label = document.createElement('span');
                  label.className = 'graph-tip-name';
                  label.textContent = name;
                  const value = document.createElement('b');
                  value.textContent = val;
                  row.append(sw, label, value);
                  tip.append(row);
                }
                if (rows.length > 12) tip.append(Object.assign(document.createElement('div'), { textContent: `… ${rows.length - 12} more` }));
                tip.style.display = rows.length ? 'block' : 'none';
                const left = u.cursor.left + u.bbox.left / devicePixelRatio;
                const flip = left > u.over.clientWidth / 2;
                tip.style.left = flip ? '' : `${left + 12}px`;
                tip.style.right = flip ? `${el.clientWidth - left + 12}px` : '';
                tip.style.top = `${Math.max(0, (u.cursor.top ?? 0) - 10)}px`;
              },
            ],
        draw: [
          (u) => {
            const th = exRef.current.thresholds;
            if (!th?.length) return;
            const ctx = u.ctx;
            ctx.save();
            ctx.lineWidth = 1 * devicePixelRatio;
            for (const t of th) {
              const y = u.valToPos(t.value, 'y', true);
              if (!Number.isFinite(y) || y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
              ctx.strokeStyle = t.colour;
              ctx.setLineDash(t.dashed ? [6 * devicePixelRatio, 4 * devicePixelRatio] : []);
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
            }
            ctx.restore();
          },
          (u) => {
            const ex = exRef.current.exemplars;
            if (!ex?.length) return;
            const ctx = u.ctx;
            ctx.save();
            ctx.fillStyle = '#b42ee0';
            for (const e of ex) {
              const x = u.valToPos(e.ts / 1000, 'x', true);
              const y = u.valToPos(e.value, 'y', true);
              if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
              const r = 5 * devicePixelRatio;
              ctx.beginPath();
              ctx.moveTo(x, y - r);
              ctx.lineTo(x + r, y);
              ctx.lineTo(x, y + r);
              ctx.lineTo(x - r, y);
              ctx.closePath();
              ctx.fill();
            }
            ctx.restore();
          },
        ],
      },
    };
    const u = new uPlot(opts, [xs, ...ys] as uPlot.AlignedData, el);
    const onClick = (ev: MouseEvent) => {
      const { exemplars: ex, onExemplarClick: cb } = exRef.current;
      if (!ex?.length || !cb) return;
      const rect = u.over.getBoundingClientRect();
      const px = ev.clientX - rect.left;
      const py = ev.clientY - rect.top;
      let best: GraphExemplar | undefined;
      let bestD = 64;
      for (const e of ex) {
        const dx = u.valToPos(e.ts / 1000, 'x') - px;
        const dy = u.valToPos(e.value, 'y') - py;
        const d = dx * dx + dy * dy;
        if (d < bestD) {
          bestD = d;
          best = e;
        }
      }
      if (best) cb(best);
    };
    u.over.addEventListener('click', onClick);
    // Redraw on a real width change only (the observer also fires once on observe).
    let lastWidth = el.clientWidth;
    const ro = new ResizeObserver(() => {
      if (el.clientWidth === lastWidth) return;
      lastWidth = el.clientWidth;
      u.setSize({ width: lastWidth, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.over.removeEventListener('click', onClick);
      u.destroy();
    };
  }, [xs, raw, series, stacked, height, formatValue, xRange, legend, fillOpacity, yMin, yMax, ySoftMin, ySoftMax]);

  return (
    <div className="graph-wrap">
      <div className="graph" ref={host} data-testid="graph" data-series={series.length} />
      {!legend && <div className="graph-tip" ref={tipRef} role="tooltip" />}
    </div>
  );
}
