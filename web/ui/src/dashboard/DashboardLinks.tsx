// A dashboard's links: plain links (URL interpolated, only safe schemes) and
// "dashboards" links listing the dashboards with given tags, as a dropdown
// or inline, keeping the time range and variables when asked.
import { useEffect, useRef, useState } from 'react';
import { searchDashboards, type DashboardHit } from '../api/dashboards';
import { safeURL } from './markdown';
import type { DashboardLink } from './types';
import { interpolate, type Scope } from './variables';

interface Props {
  links: DashboardLink[];
  uid?: string;
  scope: Scope;
  from: string;
  to: string;
  varParams: string; // "var-a=1&var-b=2"
}

function suffix(l: DashboardLink, from: string, to: string, varParams: string): string {
  const q: string[] = [];
  if (l.keepTime) q.push(`from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  if (l.includeVars && varParams) q.push(varParams);
  return q.join('&');
}

function TagLinks({ link, uid, extra }: { link: DashboardLink; uid?: string; extra: string }) {
  const [hits, setHits] = useState<DashboardHit[] | null>(null);
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const tags = (link.tags ?? []).join(',');
  useEffect(() => {
    const ac = new AbortController();
    const list = tags ? tags.split(',') : [''];
    // The search takes one tag per request here; a hit must carry every tag.
    searchDashboards('', list[0] || undefined, ac.signal).then(
      (h) => setHits(h.filter((x) => x.uid !== uid && !x.error && list.every((t) => !t || (x.tags ?? []).includes(t)))),
      () => !ac.signal.aborted && setHits([]),
    );
    return () => ac.abort();
  }, [tags, uid]);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent) => box.current && !box.current.contains(e.target as Node) && setOpen(false);
    document.addEventListener('mousedown', close);
    return () => document.removeEventListener('mousedown', close);
  }, [open]);
  const href = (h: DashboardHit) => `#/dashboards/${encodeURIComponent(h.uid)}${extra ? `?${extra}` : ''}`;
  if (!link.asDropdown) {
    return (
      <>
        {(hits ?? []).map((h) => (
          <a key={h.uid} className="btn small" href={href(h)}>
            {h.title}
          </a>
        ))}
      </>
    );
  }
  return (
    <div className="dash-link-menu" ref={box}>
      <button type="button" className="btn small" aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen(!open)} title={link.tooltip || undefined}>
        {link.title || 'Dashboards'} ▾
      </button>
      {open && (
        <ul className="var-pop" role="menu">
          {(hits ?? []).map((h) => (
            <li key={h.uid} role="none">
              <a role="menuitem" href={href(h)} onClick={() => setOpen(false)}>
                {h.title}
              </a>
            </li>
          ))}
          {hits?.length === 0 && <li className="muted small">No other dashboards</li>}
        </ul>
      )}
    </div>
  );
}

export default function DashboardLinks({ links, uid, scope, from, to, varParams }: Props) {
  if (!links.length) return null;
  return (
    <div className="dash-links" data-testid="dashboard-links">
      {links.map((l, i) => {
        const extra = suffix(l, from, to, varParams);
        if (l.type === 'dashboards') return <TagLinks key={i} link={l} uid={uid} extra={extra} />;
        const raw = interpolate(l.url ?? '', scope, 'raw');
        const url = safeURL(raw);
        const full = extra && url !== '#' ? `${url}${url.includes('?') ? '&' : '?'}${extra}` : url;
        return (
          <a key={i} className="btn small" href={full} title={l.tooltip || undefined} target={l.targetBlank ? '_blank' : undefined} rel={l.targetBlank ? 'noopener noreferrer' : undefined}>
            {interpolate(l.title ?? raw, scope, 'raw')}
          </a>
        );
      })}
    </div>
  );
}
