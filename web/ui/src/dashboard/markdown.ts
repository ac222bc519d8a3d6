// The text panel: a small Markdown renderer whose output is safe by
// construction (every character of the input is HTML-escaped first; only
// the tags this code writes appear), and an allow-list sanitiser for the
// panel's HTML mode.

export function escapeHTML(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Only http(s), mailto, in-page and relative links survive; anything else (javascript:, data:) becomes "#". */
export function safeURL(u: string): string {
  const s = u.trim();
  if (/^(https?:|mailto:)/i.test(s)) return s;
  // Any other scheme (javascript:, data:, vbscript:) is refused; relative links pass.
  const squeezed = [...s].filter((c) => c.charCodeAt(0) > 0x20).join('');
  if (/^[a-z][a-z0-9+.-]*:/i.test(squeezed)) return '#';
  return s;
}

function inline(escaped: string): string {
  return escaped
    .replace(/`([^`]+)`/g, (_w, c: string) => `<code>${c}</code>`)
    .replace(/!\[([^\]]*)\]\(([^)\s]+)\)/g, (_w, alt: string) => alt) // images: alt text only
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_w, t: string, u: string) => {
      // u is already escaped: unescape for the check, escape again for the attribute.
      const raw = u.replace(/&amp;/g, '&').replace(/&#39;/g, "'").replace(/&quot;/g, '"');
      const href = escapeHTML(safeURL(raw));
      const ext = /^https?:/i.test(raw) ? ' target="_blank" rel="noopener noreferrer"' : '';
      return `<a href="${href}"${ext}>${t}</a>`;
    })
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/__([^_]+)__/g, '<strong>$1</strong>')
    .replace(/(^|[^*\w])\*([^*\s][^*]*)\*/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_([^_\s][^_]*)_(?!\w)/g, '$1<em>$2</em>');
}

/** Markdown (headings, paragraphs, lists, code, emphasis, links, rules) to safe HTML. */
export function markdownToHTML(md: string): string {
  const lines = md.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  let para: string[] = [];
  let list: { tag: 'ul' | 'ol'; items: string[] } | null = null;
  const flushPara = () => {
    if (para.length) out.push(`<p>${inline(escapeHTML(para.join(' ')))}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(escapeHTML(i))}</li>`).join('')}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      flushPara();
      flushList();
      const code: string[] = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
      out.push(`<pre><code>${escapeHTML(code.join('\n'))}</code></pre>`);
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    if (h) {
      flushPara();
      flushList();
      out.push(`<h${h[1].length}>${inline(escapeHTML(h[2].replace(/\s*#+\s*$/, '')))}</h${h[1].length}>`);
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flushPara();
      flushList();
      out.push('<hr>');
      continue;
    }
    const li = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (li) {
      flushPara();
      const tag = /\d/.test(li[1]) ? 'ol' : 'ul';
      if (!list || list.tag !== tag) {
        flushList();
        list = { tag, items: [] };
      }
      list.items.push(li[2]);
      continue;
    }
    if (line.trim() === '') {
      flushPara();
      flushList();
      continue;
    }
    if (list && /^\s{2,}/.test(line)) {
      (list as { items: string[] }).items[(list as { items: string[] }).items.length - 1] += ' ' + line.trim();
      continue;
    }
    flushList();
    para.push(line.trim());
  }
  flushPara();
  flushList();
  return out.join('\n');
}

const ALLOWED = new Set(['p', 'br', 'b', 'strong', 'i', 'em', 'u', 'ul', 'ol', 'li', 'a', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'code', 'pre', 'span', 'div', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'hr', 'blockquote', 'small', 'sub', 'sup']);

/** Keeps only allowed tags and the href/title attributes (links made safe); needs a DOM. */
export function sanitiseHTML(html: string): string {
  const doc = new DOMParser().parseFromString(`<div>${html}</div>`, 'text/html');
  const walk = (el: Element): string => {
    let s = '';
    for (const n of Array.from(el.childNodes)) {
      if (n.nodeType === Node.TEXT_NODE) s += escapeHTML(n.textContent ?? '');
      else if (n.nodeType === Node.ELEMENT_NODE) {
        const c = n as Element;
        const tag = c.tagName.toLowerCase();
        if (tag === 'script' || tag === 'style' || tag === 'iframe' || tag === 'object') continue;
        if (!ALLOWED.has(tag)) {
          s += walk(c);
          continue;
        }
        let attrs = '';
        const href = c.getAttribute('href');
        if (tag === 'a' && href) attrs += ` href="${escapeHTML(safeURL(href))}" rel="noopener noreferrer"`;
        const title = c.getAttribute('title');
        if (title) attrs += ` title="${escapeHTML(title)}"`;
        s += tag === 'br' || tag === 'hr' ? `<${tag}>` : `<${tag}${attrs}>${walk(c)}</${tag}>`;
      }
    }
    return s;
  };
  return walk(doc.body.firstElementChild ?? doc.body);
}
