// Virtualised log lines: only the rows on screen are in the DOM, so 100k
// lines scroll as fast as 100. A row expands to its labels, structured
// metadata and parsed fields; a trace ID anywhere links to the trace.
import { memo, useRef, useState } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { LogEntry } from '../api/loki';
import { LEVEL_COLOURS, detectLevel, type Level } from '../lib/level';
import { findTraceId, traceHref } from '../lib/links';
import { formatDateTimeMs } from '../lib/time';

export interface Row {
  key: string;
  entry: LogEntry;
}

export function toRows(entries: LogEntry[], offset = 0): Row[] {
  // Level and trace ID are worked out per row as it scrolls into view
  // (rowInfo), not for all 50k lines up front.
  return entries.map((e, i) => ({ key: `${e.ts}:${offset + i}`, entry: e }));
}

interface RowInfo {
  level: Level;
  traceId?: string;
  tsMs: number;
}

const infoCache = new WeakMap<LogEntry, RowInfo>();

/** Level, trace ID and millisecond time of an entry, computed once. */
export function rowInfo(e: LogEntry): RowInfo {
  let info = infoCache.get(e);
  if (!info) {
    const all = { ...e.stream, ...e.metadata, ...e.parsed };
    info = {
      level: detectLevel(e.line, all),
      traceId: findTraceId(e.line, all),
      tsMs: e.ts.length > 6 ? Number(e.ts.slice(0, -6)) + Number(e.ts.slice(-6)) / 1e6 : 0,
    };
    infoCache.set(e, info);
  }
  return info;
}

function Fields({ title, m }: { title: string; m: Record<string, string> }) {
  const keys = Object.keys(m).sort();
  if (!keys.length) return null;
  return (
    <div>
      <div className="muted small">{title}</div>
      <div className="labels">
        {keys.map((k) => (
          <span className="label-chip" key={k}>
            {k}={m[k]}
          </span>
        ))}
      </div>
    </div>
  );
}

function inlineFields(e: LogEntry): string {
  const m = { ...e.stream, ...e.parsed };
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${m[k]}`)
    .join(' ');
}

const LogRow = memo(function LogRow({ row: r, open, toggle, showFields }: { row: Row; open: boolean; toggle: () => void; showFields: boolean }) {
  const row = { ...r, ...rowInfo(r.entry) };
  return (
    <div data-testid="log-line" data-level={row.level}>
      <div
        className="log-row"
        style={{ borderLeftColor: LEVEL_COLOURS[row.level] }}
        onClick={toggle}
        role="button"
        tabIndex={0}
        aria-expanded={open}
        onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && toggle()}
      >
        <span className="ts">{formatDateTimeMs(row.tsMs)}</span>
        <span className="lvl" style={{ color: LEVEL_COLOURS[row.level] }}>
          {row.level === 'unknown' ? '' : row.level}
        </span>
        {row.traceId && (
          <a href={traceHref(row.traceId)} onClick={(e) => e.stopPropagation()} data-testid="log-trace-link" title={`Trace ${row.traceId}`}>
            trace
          </a>
        )}
        {showFields && (
          <span className="fields" data-testid="log-fields">
            {inlineFields(row.entry)}
          </span>
        )}
        <span className="line">{row.entry.line}</span>
      </div>
      {open && (
        <div className="log-details">
          <pre style={{ whiteSpace: 'pre-wrap', margin: '0 0 6px' }}>{row.entry.line}</pre>
          <Fields title="Stream labels" m={row.entry.stream} />
          <Fields title="Structured metadata" m={row.entry.metadata} />
          <Fields title="Parsed fields" m={row.entry.parsed} />
          {row.traceId && (
            <div>
              <a href={traceHref(row.traceId)}>Open trace {row.traceId}</a>
            </div>
          )}
        </div>
      )}
    </div>
  );
});

export default function LogList({
  rows,
  onLoadOlder,
  canLoadOlder,
  showFields = false,
}: {
  rows: Row[];
  onLoadOlder?: () => void;
  canLoadOlder?: boolean;
  showFields?: boolean;
}) {
  const parent = useRef<HTMLDivElement>(null);
  const [open, setOpen] = useState<Set<string>>(new Set());
  const v = useVirtualizer({
    count: rows.length,
    getScrollElement: () => parent.current,
    estimateSize: () => 20,
    overscan: 20,
    getItemKey: (i) => rows[i].key,
  });
  return (
    <div className="logs" ref={parent} data-testid="log-list" data-count={rows.length}>
      <div style={{ height: v.getTotalSize(), position: 'relative', width: '100%' }}>
        {v.getVirtualItems().map((it) => {
          const row = rows[it.index];
          return (
            <div key={it.key} data-index={it.index} ref={v.measureElement} style={{ position: 'absolute', top: 0, left: 0, width: '100%', transform: `translateY(${it.start}px)` }}>
              <LogRow
                showFields={showFields}
                row={row}
                open={open.has(row.key)}
                toggle={() =>
                  setOpen((s) => {
                    const n = new Set(s);
                    if (n.has(row.key)) n.delete(row.key);
                    else n.add(row.key);
                    return n;
                  })
                }
              />
            </div>
          );
        })}
      </div>
      {canLoadOlder && onLoadOlder && (
        <div style={{ padding: 8 }}>
          <button className="btn" onClick={onLoadOlder} data-testid="load-older">
            Load older
          </button>
        </div>
      )}
    </div>
  );
}
