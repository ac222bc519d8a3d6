// Trace tree building, collapsing and the critical path.
import type { Span } from '../api/tempo';

export interface TreeSpan {
  span: Span;
  depth: number;
  children: TreeSpan[];
  hasChildren: boolean;
}

/** Builds the span tree; spans whose parent is missing become roots. Children sorted by start. */
export function buildTree(spans: Span[]): TreeSpan[] {
  const nodes = new Map<string, TreeSpan>();
  for (const s of spans) nodes.set(s.spanId, { span: s, depth: 0, children: [], hasChildren: false });
  const roots: TreeSpan[] = [];
  for (const n of nodes.values()) {
    const p = n.span.parentId ? nodes.get(n.span.parentId) : undefined;
    if (p && p !== n) p.children.push(n);
    else roots.push(n);
  }
  const byStart = (a: TreeSpan, b: TreeSpan) => a.span.start - b.span.start;
  roots.sort(byStart);
  // Iterative depth assignment (a deep trace must not overflow the stack).
  const stack = roots.map((r) => r);
  while (stack.length) {
    const n = stack.pop()!;
    n.children.sort(byStart);
    n.hasChildren = n.children.length > 0;
    for (const c of n.children) {
      c.depth = n.depth + 1;
      stack.push(c);
    }
  }
  return roots;
}

/** The spans shown in order (depth first), skipping the descendants of collapsed spans. */
export function visibleSpans(roots: TreeSpan[], collapsed: Set<string>): TreeSpan[] {
  const out: TreeSpan[] = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const n = stack.pop()!;
    out.push(n);
    if (!collapsed.has(n.span.spanId)) for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
  }
  return out;
}

/**
 * The critical path: from each root, the child that finished last before
 * the parent's end (or before the previous critical child started) is on the
 * path, recursively — the chain that decided the trace's duration.
 */
export function criticalPath(roots: TreeSpan[]): Set<string> {
  const cp = new Set<string>();
  const work: { n: TreeSpan; limit: number }[] = roots.map((r) => ({ n: r, limit: r.span.end }));
  while (work.length) {
    const { n, limit } = work.pop()!;
    cp.add(n.span.spanId);
    let t = Math.min(n.span.end, limit);
    const kids = [...n.children].sort((a, b) => b.span.end - a.span.end);
    for (const c of kids) {
      if (c.span.start >= t) continue;
      work.push({ n: c, limit: t });
      t = c.span.start;
    }
  }
  return cp;
}

export function traceBounds(spans: Span[]): { start: number; end: number } {
  let start = Infinity;
  let end = -Infinity;
  for (const s of spans) {
    start = Math.min(start, s.start);
    end = Math.max(end, s.end);
  }
  return { start, end };
}

/** The service of the root span (the first root), or the most common service. */
export function rootService(roots: TreeSpan[]): string | undefined {
  return roots[0]?.span.service;
}
