// admin.js - the admin page at /admin: asks for an admin key (kept in this
// browser's localStorage, as the chat page keeps its key) and a time range,
// reads the usage API (docs/API.md "Usage per key") and draws its charts:
// tokens per bucket per key, latency percentiles, the prefix-cache hit rate,
// queue length and KV-cache use over time (the samples) and the cost at the
// API's price against the cost here, with a totals row. Only the key and the
// theme are stored; every number shown comes from the server's JSON.
import { empty, fmtNum, lines, pairedBars, stackedBars } from './admin-chart.js';

const $ = (id) => document.getElementById(id);
const RANGES = { // bucket width, buckets (the API's limit), seconds per bucket
  hour: { width: '1m', n: 60, unit: 60 },
  day: { width: '1h', n: 24, unit: 3600 },
  week: { width: '1d', n: 7, unit: 86400 },
  month: { width: '1d', n: 30, unit: 86400 },
};
const SAMPLES_MAX = 100000, POINTS_MAX = 600, PAGES_MAX = 8;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- theme (the chat page's choice, shared through localStorage) ----
function applyTheme() {
  const t = localStorage.getItem('hearth.theme');
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}
function toggleTheme() {
  const dark = document.documentElement.dataset.theme === 'dark' ||
    (!document.documentElement.dataset.theme && matchMedia('(prefers-color-scheme: dark)').matches);
  localStorage.setItem('hearth.theme', dark ? 'light' : 'dark');
  applyTheme();
}

// ---- the API ----
async function get(key, path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const r = await fetch(`${path}?${q}`, { headers: key ? { authorization: 'Bearer ' + key } : {} });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const j = await r.json();
      if (j?.error?.message) msg = j.error.message;
    } catch { /* not JSON */ }
    throw new HttpError(r.status, msg);
  }
  return r.json();
}

// Every bucket of a paged usage answer (following next_page, a few pages at most).
async function buckets(key, path, params) {
  const out = [];
  let page;
  for (let i = 0; i < PAGES_MAX; i++) {
    const j = await get(key, path, { ...params, page });
    out.push(...(Array.isArray(j.data) ? j.data : []));
    if (!j.has_more || !j.next_page) break;
    page = j.next_page;
  }
  return out;
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

// ---- the charts ----
function drawTokens(span, data) {
  const keys = new Set();
  const bs = data.map((b) => {
    const values = {};
    for (const r of b.results || []) {
      const k = String(r.api_key_id ?? '(none)');
      keys.add(k);
      values[k] = (values[k] || 0) + num(r.input_tokens) + num(r.output_tokens);
    }
    return { t0: num(b.start_time), t1: num(b.end_time), values };
  });
  if (!keys.size) return empty($('chart-tokens'), 'No traffic yet in this range.');
  stackedBars($('chart-tokens'), { ...span, buckets: bs, series: [...keys].sort() });
}

function drawLatency(span, data) {
  const mid = (b) => (num(b.start_time) + num(b.end_time)) / 2;
  const series = [];
  for (const [field, label] of [['ttft_s', 'TTFT'], ['inter_token_s', 'inter-token']])
    for (const p of ['p50', 'p90', 'p99'])
      series.push({ name: `${label} ${p}`, points: data.map((b) => [mid(b), b[field]?.[p] ?? null]) });
  if (!series.some((s) => s.points.some(([, v]) => v != null)))
    return empty($('chart-latency'), 'No traffic yet in this range.');
  lines($('chart-latency'), { ...span, series, fmtY: (v) => fmtNum(v) + 's' });
  const hit = data.map((b) => [mid(b), b.prefix_cache_hit_rate ?? null]);
  if (!hit.some(([, v]) => v != null)) return empty($('chart-cache'), 'No prompts in this range.');
  lines($('chart-cache'), { ...span, yMax: 1, series: [{ name: 'prompt tokens found in the prefix cache', points: hit }],
    fmtY: (v) => Math.round(v * 100) + '%' });
}

// The samples of each model, thinned to at most POINTS_MAX points (the largest of each stretch).
function perModel(rows, field) {
  const by = new Map();
  for (const r of rows) {
    const m = String(r.model ?? '');
    if (!by.has(m)) by.set(m, []);
    by.get(m).push([num(r.t), typeof r[field] === 'number' ? r[field] : null]);
  }
  return [...by.keys()].sort().map((m) => {
    const pts = by.get(m), step = Math.ceil(pts.length / POINTS_MAX);
    const thin = [];
    for (let i = 0; i < pts.length; i += step) {
      const part = pts.slice(i, i + step).filter(([, v]) => v != null);
      thin.push(part.length ? part.reduce((a, b) => (b[1] > a[1] ? b : a)) : [pts[i][0], null]);
    }
    return { name: m, points: thin };
  });
}

function drawSamples(span, rows) {
  if (!rows.length) {
    empty($('chart-queue'), 'No samples yet in this range.');
    empty($('chart-kv'), 'No samples yet in this range.');
    return;
  }
  lines($('chart-queue'), { ...span, series: perModel(rows, 'waiting').map((s) => ({ ...s, name: s.name + ' waiting' })) });
  lines($('chart-kv'), { ...span, yMax: 1, series: perModel(rows, 'kv_use'), fmtY: (v) => Math.round(v * 100) + '%' });
}

function cell(tr, text, name) {
  const td = document.createElement('td');
  td.textContent = text;
  if (name) td.className = 'name';
  tr.appendChild(td);
  return td;
}

const money = (v) => (typeof v === 'number' ? (v === 0 ? '0' : v < 0.01 ? v.toPrecision(2) : v.toFixed(2)) : 'no price');

function drawCost(cost) {
  const rows = Array.isArray(cost.data) ? cost.data : [];
  const tb = $('cost').tBodies[0];
  tb.replaceChildren();
  const tot = { requests: 0, input: 0, cached: 0, output: 0, cpu: 0 };
  for (const r of rows) {
    tot.requests += num(r.num_model_requests);
    tot.input += num(r.input_tokens);
    tot.cached += num(r.input_cached_tokens);
    tot.output += num(r.output_tokens);
    tot.cpu += num(r.cpu_seconds);
    const tr = document.createElement('tr');
    cell(tr, String(r.api_key_id ?? ''), true);
    cell(tr, String(r.model ?? ''), true);
    cell(tr, String(num(r.num_model_requests)));
    cell(tr, money(r.api_cost));
    cell(tr, money(r.here_cost));
    tb.appendChild(tr);
  }
  const totals = $('totals').tBodies[0];
  totals.replaceChildren();
  const tr = document.createElement('tr');
  for (const [k, v] of [['requests', tot.requests], ['input', tot.input], ['cached', tot.cached], ['output', tot.output],
    ['cpu', +tot.cpu.toFixed(3)]])
    cell(tr, String(v)).dataset.total = k;
  totals.appendChild(tr);
  if (!rows.length) {
    empty($('chart-cost'), 'No traffic yet in this range.');
    $('cost-note').textContent = '';
    return;
  }
  const sum = document.createElement('tr');
  cell(sum, 'all', true);
  cell(sum, '', true);
  cell(sum, String(tot.requests));
  cell(sum, money(cost.api_cost) + (cost.api_priced_all === false ? ' (some models have no price)' : ''));
  cell(sum, money(cost.here_cost));
  tb.appendChild(sum);
  pairedBars($('chart-cost'), { names: ['API price', 'cost here'], fmtV: money,
    rows: rows.map((r) => ({ label: `${r.api_key_id ?? ''} · ${r.model ?? ''}`,
      values: [typeof r.api_cost === 'number' ? r.api_cost : null, num(r.here_cost)] })) });
  const basis = { cpu_core_hour: `CPU seconds at ${cost.cost_core_hour} per core-hour`,
    power: `${cost.power_watts} W at ${cost.kwh_price} per kWh`, none: 'no cost set (--cost-core-hour or --power-watts)' };
  $('cost-note').textContent = `Cost here: ${basis[cost.here_basis] || String(cost.here_basis)}.` +
    (typeof cost.saved === 'number' ? ` Saved: ${money(cost.saved)}.` : '');
}

// ---- the page ----
function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

function clearAll(why) {
  for (const id of ['chart-tokens', 'chart-latency', 'chart-cache', 'chart-queue', 'chart-kv', 'chart-cost'])
    empty($(id), why);
  $('totals').tBodies[0].replaceChildren();
  $('cost').tBodies[0].replaceChildren();
  $('cost-note').textContent = '';
}

let loading = 0;

async function load() {
  const key = $('key').value.trim();
  const range = RANGES[$('range').value] || RANGES.day;
  const mine = ++loading;
  document.body.dataset.state = 'loading';
  if (!key) {
    notice('Enter an admin API key (a key-file line "NAME KEY admin"), or none on a server without keys.');
  }
  localStorage.setItem('hearth.adminKey', key);
  const now = Math.floor(Date.now() / 1000);
  const last = Math.floor(now / range.unit) * range.unit;
  const start = last - (range.n - 1) * range.unit, span = { x0: start, x1: last + range.unit };
  $('status').textContent = 'Loading…';
  try {
    // the samples need an admin key: asked first, so that another key is told so before anything is drawn
    const samples = await get(key, '/v1/hearth/usage/samples', { start_time: start, limit: SAMPLES_MAX });
    const q = { start_time: start, bucket_width: range.width, limit: range.n };
    const [usage, latency, cost] = await Promise.all([
      buckets(key, '/v1/organization/usage/completions', { ...q, group_by: 'api_key_id' }),
      buckets(key, '/v1/hearth/usage/latency', q),
      get(key, '/v1/hearth/usage/cost', { start_time: start }),
    ]);
    if (mine !== loading) return;
    notice('');
    $('totals').dataset.start = String(start);
    drawCost(cost);
    drawTokens(span, usage);
    drawLatency(span, latency);
    const rows = Array.isArray(samples.data) ? samples.data : [];
    drawSamples(span, rows);
    $('status').textContent = `Updated ${new Date().toLocaleTimeString()}` +
      (rows.length >= SAMPLES_MAX ? ` (the first ${SAMPLES_MAX} samples only)` : '');
    document.body.dataset.state = 'drawn';
  } catch (e) {
    if (mine !== loading) return;
    const why = e.status === 403 ? `This key is not an admin key: the server refused it (403: ${e.message}).`
      : e.status === 401 ? `The server refused this key (401: ${e.message}).`
      : e.status === 503 ? `This server does not record usage (503: ${e.message}).`
      : `The usage could not be read: ${e.message}`;
    notice(why);
    clearAll('Nothing to show.');
    $('status').textContent = '';
    document.body.dataset.state = 'refused';
  }
}

function init() {
  applyTheme();
  $('theme').addEventListener('click', toggleTheme);
  $('key').value = localStorage.getItem('hearth.adminKey') || '';
  $('key-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
  $('range').addEventListener('change', () => load());
  document.body.dataset.ready = '1';
  if ($('key').value) load();
  else notice('Enter an admin API key (a key-file line "NAME KEY admin") to see the usage of every key.');
}

init();
