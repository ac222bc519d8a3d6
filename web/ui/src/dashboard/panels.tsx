// The panel visualisations: timeseries, stat, gauge, bargauge, table, text,
// logs, heatmap, piechart, nodeGraph and traces, each drawn from a panel's
// data and field config. Layout sizes come from the panel body's measured
// size, so a panel fills its grid cell.
import { useEffect, useMemo, useRef, useState } from 'react';
import Graph, { type GraphSeries } from '../components/Graph';
import LogList, { toRows } from '../components/LogList';
import NodeGraph from '../components/NodeGraph';
import { colourAt } from '../lib/colours';
import { formatDateTime } from '../lib/time';
import { formatDurationMs } from '../lib/format';
import { idToHex } from '../api/tempo';
import { heatmapBuckets, panelTable, type PanelData, type Series } from './data';
import { markdownToHTML, sanitiseHTML, escapeHTML } from './markdown';
import type { Panel } from './types';
import { cssColour, display, fieldConfigFor, formatValue, reduce, thresholdColour, type FieldConfig } from './units';
import { interpolate, type Scope } from './variables';

export interface VizProps {
  panel: Panel;
  data: PanelData;
  width: number;
  height: number;
  range: { start: number; end: number };
  scope: Scope;
}

/** Panel types we draw; anything else gets the placeholder. Old Angular types map to their successors. */
export const SUPPORTED = new Set(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'text', 'logs', 'heatmap', 'piechart', 'nodeGraph', 'traces']);
export const ALIASES: Record<string, string> = { graph: 'timeseries', singlestat: 'stat', 'table-old': 'table', 'grafana-piechart-panel': 'piechart' };

export function panelKind(type: string | undefined): string {
  const t = type ?? 'timeseries';
  return ALIASES[t] ?? t;
}

function opt<T>(panel: Panel, path: string, def: T): T {
  let cur: unknown = panel.options;
  for (const k of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return def;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur === undefined || cur === null ? def : (cur as T);
}

function fcFor(panel: Panel, s: Series): FieldConfig {
  return fieldConfigFor(panel.fieldConfig?.defaults, panel.fieldConfig?.overrides, s.name, s.refId);
}

interface Reduced {
  name: string;
  value: number | null;
  fc: FieldConfig;
  series: Series;
}

function reduced(panel: Panel, data: PanelData): Reduced[] {
  const calc = opt<string[]>(panel, 'reduceOptions.calcs', ['lastNotNull'])[0] ?? 'lastNotNull';
  const limit = opt<number>(panel, 'reduceOptions.limit', 0);
  const out = data.series.map((s) => {
    const fc = fcFor(panel, s);
    return { name: fc.displayName ? interpolate(fc.displayName, { __series: { values: [s.name], raw: true } }) : s.name, value: reduce(s.points.map((p) => p[1]), calc), fc, series: s };
  });
  return limit > 0 ? out.slice(0, limit) : out;
}

// ---- timeseries ----

const LEGEND_CALCS: Record<string, string> = { mean: 'Mean', max: 'Max', min: 'Min', lastNotNull: 'Last *', last: 'Last', sum: 'Total', first: 'First', firstNotNull: 'First *', count: 'Count', range: 'Range', delta: 'Delta' };

export function TimeseriesViz({ panel, data, width, height, range }: VizProps) {
  const defaults = panel.fieldConfig?.defaults ?? {};
  const custom = (defaults.custom ?? {}) as { stacking?: { mode?: string }; fillOpacity?: number; drawStyle?: string; thresholdsStyle?: { mode?: string }; axisSoftMin?: number; axisSoftMax?: number };
  const thMode = custom.thresholdsStyle?.mode ?? 'off';
  const thLines = useMemo(
    () =>
      thMode === 'line' || thMode === 'dashed' || thMode === 'line+area' || thMode === 'dashed+area'
        ? (defaults.thresholds?.steps ?? [])
            .filter((s) => s.value !== null && s.value !== undefined && defaults.thresholds?.mode !== 'percentage')
            .map((s) => ({ value: s.value as number, colour: cssColour(s.color), dashed: thMode.startsWith('dashed') }))
        : undefined,
    [thMode, defaults.thresholds],
  );
  const mode = opt<string>(panel, 'legend.displayMode', 'list');
  const showLegend = opt<boolean>(panel, 'legend.showLegend', true) && mode !== 'hidden';
  const calcs = opt<string[]>(panel, 'legend.calcs', []);
  const series: GraphSeries[] = useMemo(
    () => data.series.map((s) => ({ name: s.name, points: s.points.filter((p): p is [number, number] => p[1] !== null) })),
    [data.series],
  );
  const unit = defaults.unit;
  const dec = defaults.decimals;
  const fmt = useMemo(() => (v: number) => formatValue(v, unit ?? 'short', dec), [unit, dec]);
  const xRange = useMemo(() => [range.start, range.end] as [number, number], [range.start, range.end]);
  const legendRows = showLegend ? data.series.length : 0;
  const legendH = !showLegend ? 0 : mode === 'table' ? Math.min(height * 0.45, 22 + legendRows * 20) : Math.min(height * 0.3, 22 * Math.ceil(legendRows / Math.max(1, Math.floor(width / 220))));
  const gh = Math.max(60, height - legendH - 4);
  return (
    <div className="ts-viz">
      <Graph
        series={series}
        height={gh}
        formatValue={fmt}
        xRange={xRange}
        legend={false}
        stacked={custom.stacking?.mode === 'normal'}
        fillOpacity={(custom.fillOpacity ?? 0) / 100}
        thresholds={thLines}
        yMin={defaults.min ?? undefined}
        yMax={defaults.max ?? undefined}
        ySoftMin={custom.axisSoftMin}
        ySoftMax={custom.axisSoftMax}
      />
      {showLegend && (
        <div className="panel-legend" style={{ maxHeight: legendH }} data-testid="panel-legend">
          {mode === 'table' ? (
            <table className="legend-table">
              <thead>
                <tr>
                  <th>Name</th>
                  {calcs.map((c) => (
                    <th key={c}>{LEGEND_CALCS[c] ?? c}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {data.series.map((s, i) => (
                  <tr key={i}>
                    <td>
                      <span className="swatch" style={{ background: colourAt(i) }} />
                      {s.name}
                    </td>
                    {calcs.map((c) => (
                      <td key={c}>{formatValue(reduce(s.points.map((p) => p[1]), c), unit ?? 'short', dec)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            data.series.map((s, i) => (
              <span className="legend-item" key={i}>
                <span className="swatch" style={{ background: colourAt(i) }} />
                {s.name}
                {calcs.map((c) => ` ${LEGEND_CALCS[c] ?? c}: ${formatValue(reduce(s.points.map((p) => p[1]), c), unit ?? 'short', dec)}`).join('')}
              </span>
            ))
          )}
        </div>
      )}
    </div>
  );
}

// ---- stat ----

function Sparkline({ s, colour, w, h }: { s: Series; colour: string; w: number; h: number }) {
  const pts = s.points.filter((p): p is [number, number] => p[1] !== null);
  if (pts.length < 2) return null;
  const x0 = pts[0][0];
  const x1 = pts[pts.length - 1][0];
  let lo = Infinity;
  let hi = -Infinity;
  for (const [, v] of pts) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const sx = (t: number) => ((t - x0) / (x1 - x0 || 1)) * w;
  const sy = (v: number) => h - ((v - lo) / (hi - lo || 1)) * h * 0.9;
  const d = pts.map(([t, v], i) => `${i ? 'L' : 'M'}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`).join('');
  return (
    <svg className="sparkline" width={w} height={h} viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" aria-hidden>
      <path d={`${d}L${w},${h}L0,${h}Z`} fill={colour} fillOpacity={0.2} stroke="none" />
      <path d={d} fill="none" stroke={colour} strokeWidth={1.5} />
    </svg>
  );
}

export function StatViz({ panel, data, width, height }: VizProps) {
  const items = reduced(panel, data);
  const colorMode = opt<string>(panel, 'colorMode', 'value');
  const graphMode = opt<string>(panel, 'graphMode', 'area');
  const textMode = opt<string>(panel, 'textMode', 'auto');
  const n = Math.max(1, items.length);
  const horizontal = width >= height;
  const cols = horizontal ? Math.min(n, Math.max(1, Math.floor(width / 120))) : 1;
  const rows = Math.ceil(n / cols);
  const tw = width / cols;
  const th = height / rows;
  const showName = textMode === 'value_and_name' || textMode === 'name' || (textMode === 'auto' && n > 1);
  // As large as the tile allows: bounded by its height and by the text's width (≈ 0.62 em a character).
  const fontFor = (text: string) => Math.max(10, Math.min(th * (showName ? 0.38 : 0.5), (tw - 12) / (0.62 * Math.max(3, text.length))));
  return (
    <div className="stat-viz" style={{ gridTemplateColumns: `repeat(${cols}, 1fr)` }}>
      {items.map((it, i) => {
        const d = display(it.value, it.fc);
        const colour = d.colour ?? cssColour('green');
        const bg = colorMode === 'background' || colorMode === 'background_solid';
        return (
          <div key={i} className="stat-tile" style={{ background: bg ? colour : undefined, color: bg ? '#fff' : colorMode === 'value' ? colour : undefined }} data-testid="stat-value">
            {graphMode === 'area' && <Sparkline s={it.series} colour={bg ? '#ffffff' : colour} w={Math.max(10, tw - 8)} h={Math.max(10, th * 0.35)} />}
            {showName && <div className="stat-name">{it.name}</div>}
            {textMode !== 'name' && textMode !== 'none' && (
              <div className="stat-text" style={{ fontSize: fontFor(d.text) }}>
                {d.text}
              </div>
            )}
          </div>
        );
      })}
    </div>
  );
}

// ---- gauge ----

function arc(cx: number, cy: number, r: number, a0: number, a1: number): string {
  const p = (a: number) => [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  const [x0, y0] = p(a0);
  const [x1, y1] = p(a1);
  return `M${x0},${y0} A${r},${r} 0 ${a1 - a0 > Math.PI ? 1 : 0} 1 ${x1},${y1}`;
}

function bounds(fc: FieldConfig, values: (number | null)[]): [number, number] {
  const lo = fc.min ?? 0;
  // Unset max: 100% for percentages, else the largest value shown (as Grafana's global min/max).
  let hi = fc.max ?? (fc.unit === 'percentunit' ? 1 : fc.unit === 'percent' ? 100 : Math.max(lo, ...values.filter((v): v is number => v !== null && Number.isFinite(v))));
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

export function GaugeViz({ panel, data, width, height }: VizProps) {
  const items = reduced(panel, data);
  const markers = opt<boolean>(panel, 'showThresholdMarkers', true);
  const n = Math.max(1, items.length);
  const w = width / n;
  const size = Math.min(w, height * 1.25);
  return (
    <div className="gauge-viz">
      {items.map((it, i) => {
        const [lo, hi] = bounds(it.fc, items.map((x) => x.value));
        const d = display(it.value, it.fc);
        const frac = it.value === null ? 0 : Math.max(0, Math.min(1, (it.value - lo) / (hi - lo)));
        const a0 = Math.PI * 0.75;
        const span = Math.PI * 1.5;
        const cx = 100;
        const cy = 100;
        const steps = it.fc.thresholds?.steps ?? [];
        const pct = it.fc.thresholds?.mode === 'percentage';
        const bands = markers
          ? steps.map((s, k) => {
              const toFrac = (v: number | null) => (v === null ? 0 : Math.max(0, Math.min(1, pct ? v / 100 : (v - lo) / (hi - lo))));
              const f0 = toFrac(s.value);
              const f1 = k + 1 < steps.length ? toFrac(steps[k + 1].value) : 1;
              return f1 > f0 ? <path key={k} d={arc(cx, cy, 86, a0 + span * f0, a0 + span * f1)} stroke={cssColour(s.color)} strokeWidth={5} fill="none" /> : null;
            })
          : null;
        return (
          <div key={i} className="gauge" style={{ width: w }} data-testid="gauge">
            <svg width={size} height={Math.min(height - 18, size * 0.85)} viewBox="0 0 200 175" role="img" aria-label={`${it.name}: ${d.text}`}>
              {bands}
              <path d={arc(cx, cy, 72, a0, a0 + span)} stroke="var(--grid)" strokeWidth={16} fill="none" />
              {frac > 0 && <path d={arc(cx, cy, 72, a0, a0 + span * Math.max(frac, 0.001))} stroke={d.colour ?? cssColour('green')} strokeWidth={16} fill="none" />}
              <text x={cx} y={cy + 10} textAnchor="middle" fontSize={Math.max(14, Math.min(34, 200 / Math.max(4, d.text.length)))} fontWeight={600} fill={d.colour ?? 'var(--fg)'}>
                {d.text}
              </text>
            </svg>
            {n > 1 && <div className="stat-name">{it.name}</div>}
          </div>
        );
      })}
    </div>
  );
}

// ---- bargauge ----

export function BarGaugeViz({ panel, data, height }: VizProps) {
  const items = reduced(panel, data);
  const mode = opt<string>(panel, 'displayMode', 'gradient');
  const vertical = opt<string>(panel, 'orientation', 'auto') === 'vertical';
  const showUnfilled = opt<boolean>(panel, 'showUnfilled', true);
  const rowH = Math.max(16, Math.min(40, height / Math.max(1, items.length) - 6));
  return (
    <div className={vertical ? 'bargauge-viz vertical' : 'bargauge-viz'}>
      {items.map((it, i) => {
        const [lo, hi] = bounds(it.fc, items.map((x) => x.value));
        const d = display(it.value, it.fc);
        const frac = it.value === null ? 0 : Math.max(0, Math.min(1, (it.value - lo) / (hi - lo)));
        const colour = d.colour ?? cssColour('green');
        const low = thresholdColour(lo, it.fc.thresholds, it.fc.min, it.fc.max) ?? colour;
        const fill = mode === 'gradient' ? `linear-gradient(${vertical ? 'to top' : 'to right'}, ${low}, ${colour})` : mode === 'lcd' ? `repeating-linear-gradient(${vertical ? 'to top' : 'to right'}, ${colour} 0 6px, transparent 6px 8px)` : colour;
        return (
          <div key={i} className="bargauge-row" data-testid="bargauge-row" style={vertical ? undefined : { height: rowH }}>
            <div className="bargauge-name" title={it.name}>
              {it.name}
            </div>
            <div className="bargauge-track" style={{ background: showUnfilled ? 'var(--bg-hover)' : undefined }}>
              <div className="bargauge-bar" style={vertical ? { height: `${frac * 100}%`, background: fill } : { width: `${frac * 100}%`, background: fill }} />
            </div>
            <div className="bargauge-value" style={{ color: colour }}>
              {d.text}
            </div>
          </div>
        );
      })}
    </div>
  );
}

// ---- table ----

export function TableViz({ panel, data }: VizProps) {
  const t = useMemo(() => panelTable(panel, data.series), [panel, data.series]);
  const [sort, setSort] = useState<{ col: number; desc: boolean } | null>(null);
  const rows = useMemo(() => {
    if (!sort) return t.rows;
    const r = [...t.rows];
    r.sort((a, b) => {
      const x = a[sort.col];
      const y = b[sort.col];
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
      return sort.desc ? -c : c;
    });
    return r;
  }, [t, sort]);
  const showHeader = opt<boolean>(panel, 'showHeader', true);
  const cellType = (panel.fieldConfig?.defaults?.custom as { cellOptions?: { type?: string }; displayMode?: string } | undefined)?.cellOptions?.type ?? (panel.fieldConfig?.defaults?.custom as { displayMode?: string } | undefined)?.displayMode ?? 'auto';
  return (
    <div className="table-viz">
      <table className="data" data-testid="panel-table">
        {showHeader && (
          <thead>
            <tr>
              {t.columns.map((c, i) => (
                <th key={i} aria-sort={sort?.col === i ? (sort.desc ? 'descending' : 'ascending') : undefined}>
                  <button type="button" className="link" onClick={() => setSort(sort?.col === i ? { col: i, desc: !sort.desc } : { col: i, desc: false })}>
                    {c}
                    {sort?.col === i ? (sort.desc ? ' ▾' : ' ▴') : ''}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
        )}
        <tbody>
          {rows.map((r, ri) => (
            <tr key={ri}>
              {r.map((v, ci) => {
                const col = t.columns[ci];
                if (col === 'Time' && typeof v === 'number') return <td key={ci}>{formatDateTime(v)}</td>;
                if (typeof v === 'number' || v === null) {
                  const fc = fieldConfigFor(panel.fieldConfig?.defaults, panel.fieldConfig?.overrides, col, '');
                  const d = display(v, fc);
                  const bg = cellType === 'color-background' || cellType === 'color-background-solid';
                  const fg = cellType === 'color-text';
                  return (
                    <td key={ci} className="num" style={{ background: bg ? d.colour : undefined, color: fg ? d.colour : undefined }}>
                      {d.text}
                    </td>
                  );
                }
                const fc = fieldConfigFor(panel.fieldConfig?.defaults, panel.fieldConfig?.overrides, col, '');
                const d = display(null, { ...fc, mappings: fc.mappings });
                const m = fc.mappings?.length ? d : undefined;
                return <td key={ci}>{m && m.text !== 'No data' ? m.text : v}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// ---- text ----

export function TextViz({ panel, scope }: VizProps) {
  const content = interpolate(opt<string>(panel, 'content', panel.content ?? ''), scope, 'raw');
  const mode = opt<string>(panel, 'mode', panel.mode ?? 'markdown');
  const html = useMemo(() => {
    if (mode === 'html') return sanitiseHTML(content);
    if (mode === 'code') return `<pre><code>${escapeHTML(content)}</code></pre>`;
    return markdownToHTML(content);
  }, [content, mode]);
  return <div className="text-viz" data-testid="panel-text" dangerouslySetInnerHTML={{ __html: html }} />;
}

// ---- logs ----

export function LogsViz({ data, panel }: VizProps) {
  const rows = useMemo(() => toRows(data.logs ?? []), [data.logs]);
  const sortAsc = opt<string>(panel, 'sortOrder', 'Descending') === 'Ascending';
  const shown = useMemo(() => (sortAsc ? [...rows].reverse() : rows), [rows, sortAsc]);
  return (
    <div className="logs-viz">
      <LogList rows={shown} showFields={opt<boolean>(panel, 'showLabels', false)} />
    </div>
  );
}

// ---- heatmap ----

export function HeatmapViz({ data, width, height, range }: VizProps) {
  const ref = useRef<HTMLCanvasElement>(null);
  const hm = useMemo(() => heatmapBuckets(data.series), [data.series]);
  const labelW = 56;
  const w = Math.max(10, width - labelW);
  const h = Math.max(10, height - 18);
  useEffect(() => {
    const c = ref.current;
    if (!c) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = w * dpr;
    c.height = h * dpr;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, w, h);
    let max = 0;
    for (const row of hm.cells) for (const v of row) max = Math.max(max, v);
    const ny = Math.max(1, hm.cells.length);
    const ch = h / ny;
    // x is time across the panel's range; a cell is as wide as the step between samples.
    const span = Math.max(1, range.end - range.start);
    const step = hm.times.length > 1 ? (hm.times[hm.times.length - 1] - hm.times[0]) / (hm.times.length - 1) : span;
    const cw = Math.max(1, (step / span) * w);
    const xOf = (t: number) => ((t - range.start) / span) * w - cw;
    hm.cells.forEach((row, yi) =>
      row.forEach((v, xi) => {
        if (v <= 0 || max <= 0) return;
        const f = Math.sqrt(v / max);
        ctx.fillStyle = `rgba(250, 100, 0, ${(0.15 + 0.85 * f).toFixed(3)})`;
        ctx.fillRect(xOf(hm.times[xi]), h - (yi + 1) * ch, Math.ceil(cw), Math.ceil(ch));
      }),
    );
  }, [hm, w, h, range.start, range.end]);
  const step = Math.max(1, Math.ceil(hm.labels.length / Math.max(1, Math.floor(h / 14))));
  return (
    <div className="heatmap-viz" data-testid="heatmap">
      <div className="heatmap-labels" style={{ width: labelW, height: h }}>
        {hm.labels.map((l, i) => (i % step === 0 ? <span key={i} style={{ bottom: (i / Math.max(1, hm.labels.length)) * h }}>{l}</span> : null))}
      </div>
      <canvas ref={ref} style={{ width: w, height: h }} />
      <div className="heatmap-axis muted small" style={{ marginLeft: labelW }}>
        <span>{formatDateTime(range.start)}</span>
        <span>{formatDateTime(range.end)}</span>
      </div>
    </div>
  );
}

// ---- piechart ----

export function PieViz({ panel, data, width, height }: VizProps) {
  const items = reduced(panel, data).filter((it) => (it.value ?? 0) > 0);
  const donut = opt<string>(panel, 'pieType', 'pie') === 'donut';
  const legendValues = opt<string[]>(panel, 'legend.values', []);
  const total = items.reduce((a, it) => a + (it.value ?? 0), 0);
  const legendW = Math.min(width * 0.5, 280);
  const size = Math.max(40, Math.min(width - legendW - 8, height - 4));
  let a = -Math.PI / 2;
  const r = 48;
  return (
    <div className="pie-viz">
      <svg width={size} height={size} viewBox="-50 -50 100 100" role="img" aria-label="Pie chart">
        {items.map((it, i) => {
          const f = (it.value ?? 0) / (total || 1);
          const a0 = a;
          const a1 = a + f * Math.PI * 2;
          a = a1;
          const colour = it.fc.color?.mode === 'fixed' ? cssColour(it.fc.color.fixedColor) : colourAt(i);
          if (f >= 0.9999) return <circle key={i} r={r} fill={colour} data-testid="pie-slice" />;
          const large = a1 - a0 > Math.PI ? 1 : 0;
          const d = `M0,0 L${r * Math.cos(a0)},${r * Math.sin(a0)} A${r},${r} 0 ${large} 1 ${r * Math.cos(a1)},${r * Math.sin(a1)} Z`;
          return <path key={i} d={d} fill={colour} stroke="var(--bg-card)" strokeWidth={0.5} data-testid="pie-slice" />;
        })}
        {donut && <circle r={26} fill="var(--bg-card)" />}
      </svg>
      <div className="pie-legend" style={{ width: legendW }}>
        {items.map((it, i) => (
          <div key={i} className="legend-item">
            <span className="swatch" style={{ background: it.fc.color?.mode === 'fixed' ? cssColour(it.fc.color.fixedColor) : colourAt(i) }} />
            {it.name}
            {legendValues.includes('value') && ` ${display(it.value, it.fc).text}`}
            {legendValues.includes('percent') && ` ${(((it.value ?? 0) / (total || 1)) * 100).toFixed(1)}%`}
          </div>
        ))}
      </div>
    </div>
  );
}

// ---- nodeGraph ----

export function NodeGraphViz({ data, width, height, range }: VizProps) {
  const from = String(Math.floor(range.start));
  const to = String(Math.ceil(range.end));
  return (
    <NodeGraph
      edges={data.edges ?? []}
      width={Math.max(300, width)}
      height={Math.max(200, height)}
      className="svcmap panel-svcmap"
      nodeHref={(svc) => `#/explore/traces?${new URLSearchParams({ q: `{ resource.service.name = "${svc.replace(/"/g, '\\"')}" }`, from, to })}`}
    />
  );
}

// ---- traces ----

export function TracesViz({ data }: VizProps) {
  if (data.spans?.length) {
    const traceId = data.spans[0].traceId;
    return (
      <div className="table-viz">
        <p>
          <a href={`#/explore/traces/${traceId}`}>Open trace {traceId}</a> · {data.spans.length} spans
        </p>
        <table className="data">
          <tbody>
            {data.spans.slice(0, 200).map((s) => (
              <tr key={s.spanId}>
                <td>{s.service}</td>
                <td>{s.name}</td>
                <td className="num">{formatDurationMs(s.end - s.start)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    );
  }
  return (
    <div className="table-viz">
      <table className="data" data-testid="panel-traces">
        <thead>
          <tr>
            <th>Trace</th>
            <th>Service</th>
            <th>Name</th>
            <th>Start</th>
            <th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {(data.traces ?? []).map((t) => {
            const id = idToHex(t.traceID) || t.traceID;
            return (
              <tr key={t.traceID}>
                <td>
                  <a href={`#/explore/traces/${id}`} className="mono">
                    {id.slice(0, 16)}
                  </a>
                </td>
                <td>{t.rootServiceName ?? ''}</td>
                <td>{t.rootTraceName ?? ''}</td>
                <td>{formatDateTime(Number(BigInt(t.startTimeUnixNano || '0') / 1000000n))}</td>
                <td className="num">{t.durationMs !== undefined ? formatDurationMs(t.durationMs) : ''}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export const VIZ: Record<string, (p: VizProps) => React.ReactElement | null> = {
  timeseries: TimeseriesViz,
  stat: StatViz,
  gauge: GaugeViz,
  bargauge: BarGaugeViz,
  table: TableViz,
  text: TextViz,
  logs: LogsViz,
  heatmap: HeatmapViz,
  piechart: PieViz,
  nodeGraph: NodeGraphViz,
  traces: TracesViz,
};
