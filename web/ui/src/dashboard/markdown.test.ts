import { describe, expect, it } from 'vitest';
import { markdownToHTML, safeURL } from './markdown';

describe('markdownToHTML', () => {
  it('renders headings, emphasis, code, lists and links', () => {
    const h = markdownToHTML('# Title\n\nSome **bold** and *it* and `code`.\n\n- one\n- [two](https://example.com/x?a=1&b=2)\n\n1. first\n2. second');
    expect(h).toContain('<h1>Title</h1>');
    expect(h).toContain('<strong>bold</strong>');
    expect(h).toContain('<em>it</em>');
    expect(h).toContain('<code>code</code>');
    expect(h).toContain('<ul><li>one</li><li><a href="https://example.com/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">two</a></li></ul>');
    expect(h).toContain('<ol><li>first</li><li>second</li></ol>');
  });
  it('escapes HTML and neutralises script links', () => {
    const h = markdownToHTML('<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) [y]( java\tscript:alert(1))');
    expect(h).not.toContain('<script');
    expect(h).not.toContain('<img');
    expect(h).toContain('&lt;script&gt;');
    expect(h).not.toMatch(/href="javascript/i);
  });
  it('keeps code blocks verbatim', () => {
    expect(markdownToHTML('```\n<b>x</b> **y**\n```')).toBe('<pre><code>&lt;b&gt;x&lt;/b&gt; **y**</code></pre>');
  });
  it('allows only safe URLs', () => {
    expect(safeURL('https://a')).toBe('https://a');
    expect(safeURL('#/dashboards/x')).toBe('#/dashboards/x');
    expect(safeURL('/d/abc')).toBe('/d/abc');
    expect(safeURL('javascript:alert(1)')).toBe('#');
    expect(safeURL('data:text/html,x')).toBe('#');
    expect(safeURL('JaVa\nScRiPt:x')).toBe('#');
  });
});
