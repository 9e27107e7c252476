// markdown.js - model output (untrusted) as DOM nodes: paragraphs, headings,
// lists, quotes, rules, pipe tables, fenced code (highlighted, with a copy
// button), inline code, emphasis, links and autolinks. Every piece of text
// goes in through textContent or text nodes, never as HTML, so markup in the
// text is shown as the text it is. Links keep only http:, https: and mailto:
// targets (others are shown as text); images are never loaded (shown as a
// link to their address, or as text).
import { highlight, langOf } from './highlight.js';

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

// The URL href names when it is an http(s) or mailto link, else null.
export function safeHref(href) {
  try {
    const u = new URL(String(href).trim());
    return SAFE_PROTOCOLS.has(u.protocol) ? u.href : null;
  } catch {
    return null;
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function link(text, href) {
  const url = safeHref(href);
  if (!url) return null;
  const a = el('a', '', text);
  a.href = url;
  a.rel = 'noopener noreferrer nofollow';
  a.target = '_blank';
  return a;
}

// ---- inline --------------------------------------------------------------------

// [text](url), ![alt](url), `code`, **strong**, *em*, _em_, ~~del~~, <http://...>, bare http(s) URLs.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|(!?)\[([^\]\n]{0,500})\]\(\s*<?([^)\s>]{0,2000})>?(?:\s+"[^"\n]*")?\s*\)|\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__|\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<![\w])_(?=\S)([\s\S]*?\S)_(?![\w])|~~(?=\S)([\s\S]*?\S)~~|<(https?:\/\/[^\s>]{1,2000})>|(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"])/;

export function renderInline(parent, text, depth = 0) {
  if (text.length > 20000) { // bounded work: a huge line is shown as it is
    parent.append(text);
    return;
  }
  while (text) {
    const m = depth > 8 ? null : INLINE.exec(text);
    if (!m) {
      parent.append(text);
      return;
    }
    if (m.index) parent.append(text.slice(0, m.index));
    if (m[1]) {
      parent.append(el('code', '', m[2].replace(/^ (.*) $/s, '$1')));
    } else if (m[4] !== undefined && m[5] !== undefined) {
      if (m[3]) { // an image: never loaded
        const a = link(`[image: ${m[4] || m[5]}]`, m[5]);
        parent.append(a || `[image: ${m[4]}] (${m[5]})`);
      } else {
        const a = link('', m[5]);
        if (a) {
          renderInline(a, m[4], depth + 1);
          parent.append(a);
        } else {
          parent.append(m[0]); // not a link we follow: the text as written
        }
      }
    } else if (m[6] !== undefined || m[7] !== undefined) {
      const s = el('strong');
      renderInline(s, m[6] ?? m[7], depth + 1);
      parent.append(s);
    } else if (m[8] !== undefined || m[9] !== undefined) {
      const s = el('em');
      renderInline(s, m[8] ?? m[9], depth + 1);
      parent.append(s);
    } else if (m[10] !== undefined) {
      const s = el('del');
      renderInline(s, m[10], depth + 1);
      parent.append(s);
    } else {
      const url = m[11] ?? m[12];
      parent.append(link(url, url) || url);
    }
    text = text.slice(m.index + m[0].length);
  }
}

// ---- blocks ------------------------------------------------------------------------

function codeBlock(code, info) {
  const wrap = el('div', 'code');
  const bar = el('div', 'code-bar');
  const lang = langOf(info);
  bar.append(el('span', 'code-lang', String(info || '').trim().split(/\s+/)[0] || 'text'));
  const copy = el('button', 'copy', 'Copy');
  copy.type = 'button';
  copy.dataset.copy = '1';
  bar.append(copy);
  const pre = el('pre');
  const c = el('code');
  highlight(c, code, lang);
  pre.append(c);
  wrap.append(bar, pre);
  return wrap;
}

const RE = {
  fence: /^ {0,3}(```+|~~~+)\s*([^`\s]*)?.*$/,
  heading: /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/,
  hr: /^ {0,3}([-*_])(\s*\1){2,}\s*$/,
  quote: /^ {0,3}> ?(.*)$/,
  ul: /^( {0,6})([-*+])\s+(.*)$/,
  ol: /^( {0,6})(\d{1,9})[.)]\s+(.*)$/,
  table: /^\s*\|?.*\|.*$/,
  tableSep: /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/,
};

function cells(line) {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((s) => s.trim());
}

function table(lines) {
  const t = el('table');
  const head = el('thead'), body = el('tbody');
  const hr = el('tr');
  for (const c of cells(lines[0])) { const th = el('th'); renderInline(th, c); hr.append(th); }
  head.append(hr);
  for (const line of lines.slice(2)) {
    const tr = el('tr');
    for (const c of cells(line)) { const td = el('td'); renderInline(td, c); tr.append(td); }
    body.append(tr);
  }
  t.append(head, body);
  const wrap = el('div', 'table-wrap');
  wrap.append(t);
  return wrap;
}

function list(lines, ordered) {
  const l = el(ordered ? 'ol' : 'ul');
  const re = ordered ? RE.ol : RE.ul;
  let item = null, itemLines = [];
  const close = () => {
    if (!item) return;
    renderBlocks(item, itemLines, 1);
    if (item.childNodes.length === 1 && item.firstChild.tagName === 'P') item.replaceChildren(...item.firstChild.childNodes);
    l.append(item);
  };
  for (const line of lines) {
    const m = re.exec(line);
    if (m && m[1].length < 2) {
      close();
      item = el('li');
      itemLines = [m[3]];
      if (ordered && l.children.length === 0 && m[2] !== '1') l.start = Math.min(parseInt(m[2], 10), 1e9);
    } else {
      itemLines.push(line.replace(/^ {1,4}/, ''));
    }
  }
  close();
  return l;
}

// The lines of one list starting at lines[i]: [lines, next index].
function listLines(lines, i, re) {
  const out = [];
  while (i < lines.length) {
    const line = lines[i];
    if (re.test(line) || (/^\s+\S/.test(line) && out.length)) out.push(line);
    else if (line.trim() === '' && i + 1 < lines.length && (re.test(lines[i + 1]) || /^\s+\S/.test(lines[i + 1]))) out.push('');
    else break;
    i++;
  }
  return [out, i];
}

function isBlockStart(line) {
  return RE.fence.test(line) || RE.heading.test(line) || RE.hr.test(line) || RE.quote.test(line) ||
    RE.ul.test(line) || RE.ol.test(line);
}

function renderBlocks(parent, lines, depth) {
  for (let i = 0; i < lines.length;) {
    const line = lines[i];
    let m;
    if (line.trim() === '') { i++; continue; }
    if ((m = RE.fence.exec(line)) && depth < 12) {
      const fence = m[1], body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence); i++) body.push(lines[i]);
      i++;
      parent.append(codeBlock(body.join('\n'), m[2]));
    } else if ((m = RE.heading.exec(line))) {
      const h = el('h' + Math.min(m[1].length + 2, 6));
      renderInline(h, m[2]);
      parent.append(h);
      i++;
    } else if (RE.hr.test(line)) {
      parent.append(el('hr'));
      i++;
    } else if (RE.quote.test(line) && depth < 12) {
      const body = [];
      for (; i < lines.length && (m = RE.quote.exec(lines[i])); i++) body.push(m[1]);
      const q = el('blockquote');
      renderBlocks(q, body, depth + 1);
      parent.append(q);
    } else if ((RE.ul.test(line) || RE.ol.test(line)) && depth < 12) {
      const ordered = !RE.ul.test(line);
      const [body, next] = listLines(lines, i, ordered ? RE.ol : RE.ul);
      i = next;
      parent.append(list(body, ordered));
    } else if (RE.table.test(line) && i + 1 < lines.length && RE.tableSep.test(lines[i + 1])) {
      const body = [line, lines[i + 1]];
      for (i += 2; i < lines.length && lines[i].includes('|') && lines[i].trim(); i++) body.push(lines[i]);
      parent.append(table(body));
    } else {
      const body = [];
      for (; i < lines.length && lines[i].trim() !== '' && (body.length === 0 || !isBlockStart(lines[i])); i++) body.push(lines[i]);
      const p = el('p');
      body.forEach((l, k) => {
        if (k) p.append(el('br'));
        renderInline(p, l.replace(/^\s+/, ''));
      });
      parent.append(p);
    }
  }
}

// text (markdown) as a fragment of DOM nodes.
export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  renderBlocks(frag, String(text).replace(/\r\n?/g, '\n').split('\n'), 0);
  return frag;
}
