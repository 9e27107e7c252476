// The admin page at /admin in a real browser (Debian's chromium driven by
// puppeteer-core, as webchat.test.mjs): a server with an admin key, a plain
// key, prices and a sample every second; some chat traffic with both keys;
// then the page is given a plain key (it must say the key is not an admin's,
// from the 403) and the admin key, and must draw its charts from the usage
// API: bars per key, latency lines, samples, the cost, and totals equal to
// the API's own JSON. No console error, CSP violation, dialog or foreign
// request is allowed. Screenshots: build/e2e/admin/ (E2E_OUT).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MODEL, request, root, sleep, startServer } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
// CI sets HEARTH_E2E_BROWSER=required: there a missing browser fails instead of skipping
if (!haveChromium && process.env.HEARTH_E2E_BROWSER === 'required') throw new Error(`no browser at ${CHROMIUM}`);
const skip = haveChromium ? false : `no browser at ${CHROMIUM} (apt-get install chromium)`;
const out = path.resolve(root, process.env.E2E_OUT || 'build/e2e/admin');
const KEYS = { ops: 'sk-admin-test-ops-0123456789', alice: 'sk-admin-test-alice-0123456789' };
const WAIT = process.env.HEARTH_SAN ? 180000 : 60000;

let srv, browser, page, home;
const seen = { dialogs: [], errors: [], foreign: [] };

before(async () => {
  if (skip) return;
  fs.mkdirSync(out, { recursive: true });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-admin-'));
  const keyFile = path.join(home, 'keys.txt'), priceFile = path.join(home, 'prices.txt');
  fs.writeFileSync(keyFile, `ops ${KEYS.ops} admin\nalice ${KEYS.alice}\n`);
  fs.writeFileSync(priceFile, '* 1.00 0.50 4.00\n');
  srv = await startServer(['--api-key-file', keyFile, '--price', priceFile, '--cost-core-hour', '0.05',
    '--usage-sample-s', '1', '-c', '1024'], { models: ['-m', `q2=${MODEL}`], env: { HEARTH_HOME: home } });
  const { default: puppeteer } = await import('puppeteer-core');
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--lang=en-US'] });
  page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 900 });
  page.on('dialog', (d) => { seen.dialogs.push(d.message()); d.dismiss(); });
  page.on('pageerror', (e) => seen.errors.push('pageerror: ' + e.message));
  page.on('console', (m) => {
    // the plain key's refusal (403) is logged by the browser as a failed load: that one is expected
    if (m.type() === 'error' && !/status of 403/.test(m.text())) seen.errors.push(m.text());
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(srv.url + '/') && !u.startsWith('data:')) seen.foreign.push(u);
  });
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) {
    const { code } = await srv.stop();
    assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
  }
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: path.join(out, name + '.png'), fullPage: true });
const api = async (who, p) => {
  const r = await request(srv.url, p, { method: 'GET', headers: { authorization: 'Bearer ' + KEYS[who] } });
  assert.equal(r.status, 200, r.text);
  return r.json;
};

async function waitFor(fn, what, ms = WAIT) {
  let last = null;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(50)) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
  }
  await shot('timeout');
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}

async function show(key) {
  await page.$eval('#key', (e) => { e.value = ''; });
  await page.type('#key', key);
  await page.click('#load');
  await waitFor(async () => ['drawn', 'refused'].includes(await page.$eval('body', (b) => b.dataset.state)), 'the page to load');
}

test('the admin page is served like the chat page, without a key', { skip }, async () => {
  const r = await fetch(srv.url + '/admin');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'(;|$)/);
  assert.match(await r.text(), /<script type="module" src="\/ui\/admin.js">/);
  assert.equal((await fetch(srv.url + '/admin', { method: 'POST' })).status, 405);
  assert.equal((await fetch(srv.url + '/admin/')).status, 401);
});

test('before any traffic the page says so instead of drawing', { skip }, async () => {
  await page.goto(srv.url + '/admin');
  await page.waitForSelector('body[data-ready="1"]');
  await show(KEYS.ops);
  assert.equal(await page.$eval('body', (b) => b.dataset.state), 'drawn');
  assert.match(await page.$eval('#chart-tokens', (e) => e.textContent), /No traffic yet/);
  assert.equal(await page.$$eval('#chart-tokens rect', (l) => l.length), 0);
  await shot('0-empty');
});

test('after traffic with two keys the charts are drawn from the usage API', { skip }, async () => {
  for (const who of ['ops', 'alice', 'alice']) {
    const r = await request(srv.url, '/v1/chat/completions', { headers: { authorization: 'Bearer ' + KEYS[who] },
      body: { model: 'q2', messages: [{ role: 'user', content: `hello from ${who}` }], max_tokens: 12, ignore_eos: true } });
    assert.equal(r.status, 200, r.text);
  }
  await sleep(2500); // a sample or two after the traffic
  await page.select('#range', 'hour');
  await show(KEYS.ops);
  assert.equal(await page.$eval('body', (b) => b.dataset.state), 'drawn', await page.$eval('#notice', (e) => e.textContent));
  // tokens: stacked bars of both keys, with a legend
  const bars = await page.$$eval('#chart-tokens svg rect[data-series]', (l) => l.map((r) => r.dataset.series));
  assert.ok(bars.includes('ops') && bars.includes('alice'), JSON.stringify(bars));
  assert.deepEqual(await page.$$eval('#chart-tokens .legend li', (l) => l.map((e) => e.textContent)), ['alice', 'ops']);
  // latency: TTFT and inter-token percentiles as paths or points
  const lat = await page.$$eval('#chart-latency svg [data-series]', (l) => l.map((e) => e.dataset.series));
  assert.ok(lat.includes('TTFT p50') && lat.includes('inter-token p99'), JSON.stringify(lat));
  assert.ok(await page.$('#chart-cache svg [data-series]'));
  // samples: queue length and KV use over time, as lines
  assert.ok(await page.$('#chart-queue svg path.series'), 'a queue line');
  assert.ok(await page.$('#chart-kv svg path.series'), 'a KV line');
  // cost: a pair of bars per key and model
  assert.equal(await page.$$eval('#chart-cost svg rect[data-series]', (l) => l.length), 4);
  // totals equal the API's JSON for the same start
  const start = await page.$eval('#totals', (t) => t.dataset.start);
  const cost = await api('ops', `/v1/hearth/usage/cost?start_time=${start}`);
  const sum = (f) => cost.data.reduce((s, r) => s + r[f], 0);
  const shown = await page.$$eval('#totals td', (l) => Object.fromEntries(l.map((td) => [td.dataset.total, Number(td.textContent)])));
  assert.equal(shown.requests, 3);
  assert.equal(shown.requests, sum('num_model_requests'));
  assert.equal(shown.input, sum('input_tokens'));
  assert.equal(shown.cached, sum('input_cached_tokens'));
  assert.equal(shown.output, sum('output_tokens'));
  assert.equal(shown.output, 36);
  assert.ok(Math.abs(shown.cpu - sum('cpu_seconds')) < 0.001);
  // and the bars add up to the completions API's tokens
  const u = await api('ops', `/v1/organization/usage/completions?start_time=${start}&bucket_width=1m&limit=60&group_by=api_key_id`);
  let tokens = 0;
  for (const b of u.data) for (const r of b.results) tokens += r.input_tokens + r.output_tokens;
  const drawn = await page.$$eval('#chart-tokens svg rect[data-series]', (l) => l.reduce((s, r) => s + Number(r.dataset.value), 0));
  assert.equal(drawn, tokens);
  assert.equal(await page.evaluate(() => localStorage.getItem('hearth.adminKey')), KEYS.ops);
  await shot('1-charts');
  await page.click('#theme');
  await shot('2-charts-other-theme');
  await page.click('#theme');
});

test('a key that is not an admin key is told so, and nothing is drawn', { skip }, async () => {
  await show(KEYS.alice);
  assert.equal(await page.$eval('body', (b) => b.dataset.state), 'refused');
  assert.match(await page.$eval('#notice', (e) => e.textContent), /not an admin key.*403/);
  assert.equal(await page.$$eval('#report svg', (l) => l.length), 0);
  await shot('3-refused');
});

test('no console error, CSP violation, dialog or foreign request', { skip }, async () => {
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.foreign, []);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
});
