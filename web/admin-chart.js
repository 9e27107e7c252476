// admin-chart.js - the admin page's charts as inline SVG built with DOM calls
// (no library, no markup from data: every label is a text node). A chart is
// drawn into an empty container; time runs along x from x0 to x1 (Unix
// seconds, labelled in UTC as the API's buckets are aligned), values along
// y from 0 to a rounded maximum. Series colors are a fixed palette readable
// on the light and the dark theme.

const NS = 'http://www.w3.org/2000/svg';
const W = 800, H = 220, L = 56, R = 12, T = 10, B = 26; // the plot: x in [L, W-R], y in [T, H-B]
export const PALETTE = ['#d9730d', '#2f7fd6', '#3a9e5c', '#b54ac9', '#c9a227', '#d6455c', '#2bb5b0', '#7a6cf0'];

export const color = (i) => PALETTE[i % PALETTE.length];

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.appendChild(document.createTextNode(String(text)));
  return e;
}

function clear(box) {
  while (box.firstChild) box.removeChild(box.firstChild);
}

// "No traffic yet" (or why) in place of a chart.
export function empty(box, why) {
  clear(box);
  const p = document.createElement('p');
  p.className = 'empty-chart';
  p.textContent = why;
  box.appendChild(p);
  box.dataset.drawn = '0';
}

// A round top for the y axis at or above max (1, 2, 2.5, 5 times a power of ten).
function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

export function fmtNum(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return +(v / 1e3).toFixed(1) + 'k';
  if (a >= 1) return String(+v.toFixed(2));
  return String(+v.toPrecision(2));
}

function fmtTime(t, span) {
  const d = new Date(t * 1000);
  const p2 = (n) => String(n).padStart(2, '0');
  if (span > 2 * 86400) return `${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`;
  return `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`;
}

// The frame: axes, y grid with labels, x tick labels; returns { svg, x(t), y(v) }.
function frame(x0, x1, yMax, fmtY) {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const x = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const y = (v) => H - B - (v / yMax) * (H - B - T);
  const m = yMax / 10 ** Math.floor(Math.log10(yMax)), n = m === 2.5 || m === 5 ? 5 : 4; // round steps
  for (let i = 0; i <= n; i++) {
    const v = (yMax * i) / n, yy = y(v);
    svg.appendChild(el('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: i ? 'grid' : 'axis' }));
    svg.appendChild(el('text', { x: L - 6, y: yy + 4, 'text-anchor': 'end' }, fmtY(v)));
  }
  svg.appendChild(el('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  for (let i = 0; i <= 5; i++) {
    const t = x0 + ((x1 - x0) * i) / 5;
    svg.appendChild(el('text', { x: x(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 5 ? 'end' : 'middle' },
      fmtTime(t, x1 - x0)));
  }
  return { svg, x, y };
}

function legend(names) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  names.forEach((n, i) => {
    const li = document.createElement('li');
    const sw = el('svg', { viewBox: '0 0 12 12' });
    sw.appendChild(el('rect', { width: 12, height: 12, rx: 2, fill: color(i) }));
    li.appendChild(sw);
    li.appendChild(document.createTextNode(n));
    ul.appendChild(li);
  });
  return ul;
}

// Stacked bars: buckets [{ t0, t1, values: { series: n } }], series: names in legend order.
export function stackedBars(box, { x0, x1, buckets, series, fmtY = fmtNum }) {
  clear(box);
  let max = 0;
  for (const b of buckets) max = Math.max(max, series.reduce((s, n) => s + (b.values[n] || 0), 0));
  const { svg, x, y } = frame(x0, x1, niceMax(max), fmtY);
  const g = el('g', { class: 'bars' });
  for (const b of buckets) {
    const left = x(b.t0), w = Math.max(1, x(b.t1) - left - 1);
    let base = 0;
    series.forEach((n, i) => {
      const v = b.values[n] || 0;
      if (v <= 0) return;
      const r = el('rect', { x: left + 0.5, y: y(base + v), width: w, height: Math.max(0.5, y(base) - y(base + v)),
        fill: color(i), 'data-series': n, 'data-value': v });
      r.appendChild(el('title', {}, `${n}: ${v} (${fmtTime(b.t0, x1 - x0)})`));
      g.appendChild(r);
      base += v;
    });
  }
  svg.appendChild(g);
  box.appendChild(svg);
  box.appendChild(legend(series));
  box.dataset.drawn = '1';
}

// Lines: series [{ name, points: [[t, v], ...] }] (v null: a gap), dots where a point stands alone.
export function lines(box, { x0, x1, series, fmtY = fmtNum, yMax }) {
  clear(box);
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (v != null) max = Math.max(max, v);
  const { svg, x, y } = frame(x0, x1, yMax ?? niceMax(max), fmtY);
  series.forEach((s, i) => {
    let d = '', open = false;
    const pts = s.points;
    pts.forEach(([t, v], k) => {
      if (v == null) { open = false; return; }
      d += `${open ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      const alone = !open && (k + 1 >= pts.length || pts[k + 1][1] == null);
      if (alone) svg.appendChild(el('circle', { cx: x(t), cy: y(v), r: 3, fill: color(i), 'data-series': s.name }));
      open = true;
    });
    if (d) svg.appendChild(el('path', { d, class: 'series', stroke: color(i), 'data-series': s.name }));
  });
  box.appendChild(svg);
  box.appendChild(legend(series.map((s) => s.name)));
  box.dataset.drawn = '1';
}

// Horizontal pairs of bars: rows [{ label, values: [a, b] }], names of the two values.
export function pairedBars(box, { rows, names, fmtV = fmtNum }) {
  clear(box);
  const rowH = 34, h = T + rows.length * rowH + 6, lw = 220;
  const svg = el('svg', { viewBox: `0 0 ${W} ${h}`, role: 'img' });
  let max = 0;
  for (const r of rows) for (const v of r.values) if (v != null) max = Math.max(max, v);
  const scale = (v) => (max > 0 ? (v / max) * (W - lw - R - 70) : 0);
  rows.forEach((r, k) => {
    const top = T + k * rowH;
    svg.appendChild(el('text', { x: lw - 8, y: top + 17, 'text-anchor': 'end' }, r.label));
    r.values.forEach((v, j) => {
      const yy = top + j * 13 + 2;
      if (v == null) {
        svg.appendChild(el('text', { x: lw + 4, y: yy + 10 }, `${names[j]}: no price`));
        return;
      }
      const rect = el('rect', { x: lw, y: yy, width: Math.max(1, scale(v)), height: 11, fill: color(j),
        'data-series': names[j], 'data-value': v });
      rect.appendChild(el('title', {}, `${r.label} ${names[j]}: ${v}`));
      svg.appendChild(rect);
      svg.appendChild(el('text', { x: lw + Math.max(1, scale(v)) + 4, y: yy + 10 }, fmtV(v)));
    });
  });
  box.appendChild(svg);
  box.appendChild(legend(names));
  box.dataset.drawn = '1';
}
