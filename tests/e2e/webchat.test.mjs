// The web chat page at / in a real browser: Debian's chromium driven by
// puppeteer-core against `hearth serve` with two fixture models. The page is
// used as a person would (typing, Enter, buttons, the settings dialog); the
// server's /metrics shows that Stop ends the work there. Hostile markup in a
// model's answer comes from the model itself, forced through a grammar (the
// page's "more request fields"), and from an imported conversation; a
// dialog, console, CSP-violation and request listener proves nothing ran and
// nothing was fetched from elsewhere. Screenshots: build/e2e/webchat/ (E2E_OUT).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fixtures, root, sleep, startServer } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
// CI sets HEARTH_E2E_BROWSER=required: there a missing browser fails instead of skipping
if (!haveChromium && process.env.HEARTH_E2E_BROWSER === 'required') throw new Error(`no browser at ${CHROMIUM}`);
const skip = haveChromium ? false : `no browser at ${CHROMIUM} (apt-get install chromium)`;
const out = path.resolve(root, process.env.E2E_OUT || 'build/e2e/webchat');
const KEY = 'webchat-test-key-0123456789';
const Q2 = path.join(fixtures, 'models/tiny-qwen2.f32.gguf');
const Q3 = path.join(fixtures, 'models/tiny-qwen3.f32.gguf');
const WAIT = process.env.HEARTH_SAN ? 180000 : 60000; // generous: a loaded machine is slow, a bug still fails

let srv, browser, page, home;
const seen = { dialogs: [], errors: [], csp: [], foreign: [] };

before(async () => {
  if (skip) return;
  fs.mkdirSync(out, { recursive: true });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-webchat-'));
  // HEARTH_CPU=scalar: the reference kernels, so that these tiny models write at a pace a person (and
  // this test) can watch, stop and compare (about 80 tokens/s instead of thousands)
  srv = await startServer(['--api-key', KEY, '-c', '4096', '-t', '1'], { models: ['-m', `q2=${Q2}`, '-m', `q3=${Q3}`],
    env: { HEARTH_HOME: home, HEARTH_CPU: 'scalar' } });
  const { default: puppeteer } = await import('puppeteer-core');
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--lang=en-US'] });
  page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 760 });
  page.on('dialog', (d) => { seen.dialogs.push(d.message()); d.dismiss(); });
  page.on('pageerror', (e) => seen.errors.push('pageerror: ' + e.message));
  page.on('console', (m) => {
    // the page's first model list is refused (401) until the key is entered: the browser logs that load
    if (m.type() === 'error' && !/status of 401/.test(m.text())) seen.errors.push(m.text());
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(srv.url + '/') && !u.startsWith('data:') && !u.startsWith('blob:')) seen.foreign.push(u);
  });
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

// ---- helpers ----

async function metric(re) {
  const m = await (await fetch(srv.url + '/metrics', { headers: { authorization: 'Bearer ' + KEY } })).text();
  const x = re.exec(m);
  return x ? Number(x[1]) : 0;
}
const aborted = (model) => metric(new RegExp(`^vllm:request_success_total\\{finished_reason="abort",model_name="${model}"\\} (\\S+)`, 'm'));
const running = (model) => metric(new RegExp(`^vllm:num_requests_running\\{model_name="${model}"\\} (\\S+)`, 'm'));

// Polls fn until it holds; an exception (an element not there yet) counts as not yet.
async function waitFor(fn, what, ms = WAIT) {
  let last = null;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(25)) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
  }
  await shot('timeout');
  const st = await page.evaluate(() => [document.getElementById('status').textContent,
    document.querySelector('#messages .msg:last-child')?.textContent.slice(-300)]);
  throw new Error(`timed out waiting for ${what} (status ${JSON.stringify(st)}${last ? '; last: ' + last.message : ''})`);
}

const nMessages = () => page.$$eval('#messages .msg', (l) => l.length);
const lastAssistant = () => page.$eval('#messages .msg.assistant:last-child', (d) => ({
  text: d.querySelector('.body').textContent, stats: d.querySelector('.stats')?.textContent || '',
  stopped: !!d.querySelector('.stopped-note'), who: d.querySelector('.who').textContent,
  error: d.querySelector('.error')?.textContent || '', index: Number(d.dataset.index),
  reasoning: d.querySelector('details.reasoning .text')?.textContent || '', reasoningOpen: !!d.querySelector('details.reasoning[open]'),
}));
const idle = async () => page.$eval('#stop', (b) => b.hidden);

// Sets fields of the settings dialog and saves.
async function settings(fields) {
  await page.click('#open-settings');
  await page.waitForSelector('#settings[open]');
  for (const [id, v] of Object.entries(fields)) {
    await page.$eval('#' + id, (e, val) => { e.value = val; }, String(v));
  }
  await page.click('#s-save');
  await waitFor(async () => !(await page.$('#settings[open]')), 'the settings dialog to close');
}

// Types text and presses Enter; returns once the message and its (empty) answer are shown.
async function sendMessage(text) {
  const n0 = await nMessages();
  await page.focus('#input');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  await waitFor(async () => (await nMessages()) === n0 + 2 && (await lastAssistant()).index === n0 + 1, 'the message to be sent');
}

// The status line and headers of GET path, sent byte for byte (fetch would normalize it).
function rawGet(p) {
  return new Promise((resolve, reject) => {
    const c = net.connect(srv.port, '127.0.0.1', () => c.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    let got = '';
    c.on('data', (d) => { got += d; });
    c.on('end', () => resolve(got));
    c.on('error', reject);
  });
}

async function shot(name) {
  await page.screenshot({ path: path.join(out, name + '.png') });
}

// ---- the tests, in order on one page ----

test('the page and its files are served with a strict policy, without a key', { skip }, async () => {
  const r = await fetch(srv.url + '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  const etag = r.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  assert.match(await r.text(), /<script type="module" src="\/ui\/app.js">/);
  const again = await fetch(srv.url + '/', { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  const head = await fetch(srv.url + '/ui/app.js', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.match(head.headers.get('content-type'), /^text\/javascript/);
  assert.ok(Number(head.headers.get('content-length')) > 1000);
  assert.equal(await head.text(), '');
  for (const p of ['/ui/nope.js', '/ui/..%2f..%2fMakefile', '/ui/app.js/', '/ui/APP.JS'])
    assert.equal((await fetch(srv.url + p)).status, 404, p);
  for (const p of ['/ui/', '/index.html', '/ui']) // not routes: the key comes first
    assert.equal((await fetch(srv.url + p)).status, 401, p);
  // paths a browser would normalize, sent as they are: never a file outside the table
  for (const p of ['/ui/../Makefile', '/ui/../../server/web.c', '/ui//etc/passwd', '/ui/%00app.js']) {
    const head = await rawGet(p);
    assert.match(head, /^HTTP\/1\.1 (401|404) /, p);
  }
  // the API still needs the key
  assert.equal((await fetch(srv.url + '/v1/models')).status, 401);
  assert.equal((await fetch(srv.url + '/', { method: 'POST' })).status, 405, 'only GET and HEAD');
});

test('a 401 asks for the API key, which is kept in the browser', { skip }, async () => {
  await page.goto(srv.url + '/');
  await page.waitForSelector('body[data-ready="1"]');
  await page.waitForSelector('#settings[open]');
  assert.equal(await page.$eval('#key-note', (e) => e.hidden), false);
  await page.type('#s-key', KEY);
  await page.click('#s-save');
  await waitFor(async () => (await page.$$eval('#model option', (o) => o.length)) === 2, 'the model list');
  assert.deepEqual(await page.$$eval('#model option', (o) => o.map((x) => x.value)), ['q2', 'q3']);
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('hearth.settings')).key), KEY);
});

test('a message is sent with Enter; the answer ends with its token count and speed', { skip }, async () => {
  // answers of a known length (ignore_eos through the page's extra request fields)
  await settings({ 's-max_tokens': 100, 's-extra': '{"ignore_eos": true}' });
  await sendMessage('Hello there');
  await waitFor(async () => idle(), 'the answer to end');
  const a = await lastAssistant();
  assert.match(a.stats, /^100 tokens, [\d.]+ tokens\/s/);
  assert.equal(a.who, 'q2');
  assert.ok(a.text.length > 50, a.text);
  await shot('1-answer');
});

test('the answer streams in; Stop ends it in the page and the work on the server', { skip }, async () => {
  await settings({ 's-max_tokens': 2500 }); // long (within the context with the first answer): Stop comes mid-stream
  const before0 = await aborted('q2');
  await sendMessage('Tell me more');
  let first = 0;
  await waitFor(async () => (first = (await lastAssistant()).text.length) > 0, 'the first text');
  await waitFor(async () => (await lastAssistant()).text.length > first && !(await idle()), 'more text while it streams');
  await page.click('#stop');
  await waitFor(async () => idle(), 'the stop');
  const a = await lastAssistant();
  assert.ok(a.stopped, 'marked stopped: ' + JSON.stringify(a).slice(0, 400));
  const n = Number(/^(\d+) tokens/.exec(a.stats)?.[1] ?? -1);
  assert.ok(n >= 0 && n < 2500, `stopped early (${a.stats})`);
  await waitFor(async () => (await aborted('q2')) > before0, 'the server to count an aborted request');
  await waitFor(async () => (await running('q2')) === 0, 'no request running');
  await shot('2-stopped');
});

test('regenerate replaces the last answer, with the sampling settings', { skip }, async () => {
  await settings({ 's-max_tokens': 40, 's-temperature': 0 });
  const n0 = await nMessages();
  await page.click('#messages .msg.assistant:last-child button.regen');
  await waitFor(async () => (await idle()) && !(await lastAssistant()).stopped && /tokens/.test((await lastAssistant()).stats), 'the new answer');
  assert.equal(await nMessages(), n0);
  const a = await lastAssistant();
  assert.equal(a.stopped, false);
  assert.match(a.stats, /^40 tokens/);
});

test('edit and resend cuts the conversation there', { skip }, async () => {
  await page.click('#messages .msg.user:first-child button.edit-btn');
  await page.waitForSelector('#messages textarea.edit');
  await page.$eval('#messages textarea.edit', (t) => { t.value = 'Hello again'; });
  await page.click('#messages .msg.user:first-child .actions button.primary');
  await waitFor(async () => (await nMessages()) === 2 && (await idle()) && /tokens/.test((await lastAssistant()).stats), 'the edited turn');
  assert.equal(await page.$eval('#messages .msg.user .body', (b) => b.textContent), 'Hello again');
});

test('reload: the conversation is kept in the browser and found by search', { skip }, async () => {
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  assert.equal(await nMessages(), 2);
  assert.deepEqual(await page.$$eval('#conv-list li button.open', (b) => b.map((x) => x.textContent)), ['Hello there']);
  await page.click('#new-chat');
  assert.equal(await nMessages(), 0);
  await page.type('#search', 'hello AGAIN');
  await waitFor(async () => (await page.$$eval('#conv-list li', (l) => l.length)) === 1, 'the search');
  await page.$eval('#search', (s) => { s.value = 'no such words'; s.dispatchEvent(new Event('input')); });
  await waitFor(async () => (await page.$$eval('#conv-list li', (l) => l.length)) === 0, 'an empty search');
  await page.$eval('#search', (s) => { s.value = ''; s.dispatchEvent(new Event('input')); });
  await waitFor(async () => (await page.$$eval('#conv-list li', (l) => l.length)) === 1, 'the whole list');
  await page.click('#conv-list li button.open');
  await waitFor(async () => (await nMessages()) === 2, 'the conversation');
});

test('switching the model: the next answer comes from it', { skip }, async () => {
  await page.select('#model', 'q3');
  const before3 = await metric(/^vllm:request_success_total\{finished_reason="length",model_name="q3"\} (\S+)/m);
  await sendMessage('And you?');
  await waitFor(async () => (await nMessages()) === 4 && (await idle()), 'the answer');
  assert.equal((await lastAssistant()).who, 'q3');
  assert.ok(await metric(/^vllm:request_success_total\{finished_reason="length",model_name="q3"\} (\S+)/m) > before3);
});

test('Stop during reasoning ends the work on the server; the reasoning is folded', { skip }, async () => {
  await settings({ 's-max_tokens': 3000, 's-temperature': '',
    's-extra': JSON.stringify({ ignore_eos: true, grammar: 'root ::= "<think>" [a-z ]+' }) });
  const before3 = await aborted('q3');
  await sendMessage('Think hard');
  await waitFor(async () => (await lastAssistant()).reasoning.length > 0, 'reasoning text');
  assert.equal((await lastAssistant()).reasoningOpen, true, 'open while it streams');
  await page.click('#stop');
  await waitFor(async () => idle(), 'the stop');
  const a = await lastAssistant();
  assert.ok(a.stopped, JSON.stringify(a).slice(0, 600));
  assert.equal(a.text.replace(a.reasoning, '').replace(/Reasoning|Stopped\./g, '').trim(), '', 'no answer text');
  assert.equal(a.reasoningOpen, false, 'folded once stopped');
  await waitFor(async () => (await aborted('q3')) > before3, 'the server to count an aborted request');
  await waitFor(async () => (await running('q3')) === 0, 'no request running');
  await page.$eval('#messages .msg.assistant:last-child details.reasoning', (d) => { d.open = true; });
  await shot('3-reasoning-stopped');
});

const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

test('a tool call is shown; Stop while one is being written (nothing sent yet) ends the work', { skip }, async () => {
  await page.select('#model', 'q2');
  const call = '<tool_call>\n' + JSON.stringify({ name: 'get_weather', arguments: { city: 'Paris' } }) + '\n</tool_call>';
  await settings({ 's-max_tokens': 200, 's-extra': JSON.stringify({ tools: TOOLS, grammar: `root ::= ${JSON.stringify(call)}` }) });
  await sendMessage('Weather in Paris?');
  await waitFor(async () => (await idle()) && /tokens/.test((await lastAssistant()).stats), 'the answer');
  const shown = await page.$eval('#messages .msg.assistant:last-child details.tool', (d) => [d.querySelector('summary').textContent, d.querySelector('pre').textContent]);
  assert.equal(shown[0], 'Tool call: get_weather');
  assert.deepEqual(JSON.parse(shown[1]), { city: 'Paris' });
  // a call that never closes: the server holds its text back, so only the closed connection tells it to stop
  await settings({ 's-max_tokens': 3000,
    's-extra': JSON.stringify({ tools: TOOLS, ignore_eos: true, grammar: 'root ::= "<tool_call>" [a-z ]+' }) });
  const abort0 = await aborted('q2');
  const length0 = await metric(/^vllm:request_success_total\{finished_reason="length",model_name="q2"\} (\S+)/m);
  await sendMessage('Call it again');
  await waitFor(async () => (await running('q2')) === 1, 'the request to run');
  await page.click('#stop');
  await waitFor(async () => (await aborted('q2')) > abort0, 'the server to count an aborted request');
  await waitFor(async () => (await running('q2')) === 0, 'no request running');
  assert.equal(await metric(/^vllm:request_success_total\{finished_reason="length",model_name="q2"\} (\S+)/m), length0,
    'cancelled, not run to its length');
});

const HOSTILE = '<img src=x onerror=alert(1)> <script>alert(2)</script> [click](javascript:alert(3)) ![pic](http://198.51.100.7/x.png)';

async function assertInert(where, shown = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>', '[click](javascript:alert(3))']) {
  const r = await page.evaluate(() => {
    const m = document.getElementById('messages');
    return { imgs: m.querySelectorAll('img').length, scripts: m.querySelectorAll('script').length,
      js: [...m.querySelectorAll('a')].filter((a) => !/^(https?|mailto):/.test(a.href)).length,
      handlers: [...m.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      text: m.textContent, csp: window.__csp };
  });
  assert.equal(r.imgs, 0, where + ': no image element');
  assert.equal(r.scripts, 0, where + ': no script element');
  assert.equal(r.js, 0, where + ': no link but http(s)/mailto');
  assert.equal(r.handlers, 0, where + ': no event handler attribute');
  for (const s of shown) assert.ok(r.text.includes(s), `${where}: ${s} shown as text`);
  assert.deepEqual(r.csp, [], where + ': no CSP violation');
  await sleep(200);
  assert.deepEqual(seen.dialogs, [], where + ': no dialog');
  assert.deepEqual(seen.foreign, [], where + ': nothing fetched from elsewhere');
}

test('a hostile answer from the model is shown as text and nothing runs', { skip }, async () => {
  const grammar = `root ::= ${JSON.stringify(HOSTILE)}`;
  await settings({ 's-max_tokens': 200, 's-extra': JSON.stringify({ grammar }) });
  await page.select('#model', 'q2');
  await page.click('#new-chat');
  await sendMessage('Say something nasty');
  await waitFor(async () => (await idle()) && /tokens/.test((await lastAssistant()).stats), 'the answer');
  const a = await lastAssistant();
  assert.ok(a.text.includes('<script>alert(2)</script>'), a.text);
  assert.equal(await page.$$eval('#messages a', (l) => l.map((x) => x.href).join(' ')), 'http://198.51.100.7/x.png');
  await assertInert('streamed answer');
  await shot('4-hostile');
});

test('a hostile imported conversation is shown as text and nothing runs', { skip }, async () => {
  const file = path.join(home, 'import.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'hearth-chat', version: 1, conversations: [{
    id: 'evil-1', title: '<img src=x onerror=alert(4)>', created: 1, updated: Date.now() + 1000, model: 'q2',
    messages: [{ role: 'user', content: '<b onmouseover=alert(5)>hi</b>' },
      { role: 'assistant', content: HOSTILE + '\n\n```html\n<script>alert(6)</script>\n```\n<iframe src="javascript:alert(7)"></iframe>',
        reasoning: '<img src=y onerror=alert(8)>', tool_calls: [{ name: '<svg onload=alert(9)>', arguments: '{}' }],
        tokens: [{ t: '<img src=z onerror=alert(10)>', lp: -1, h: 2 }] }] }] }));
  const input = await page.$('#import-file');
  await input.uploadFile(file);
  await waitFor(async () => /Imported 1 conversation/.test(await page.$eval('#status', (s) => s.textContent)) &&
    !!(await page.$('#conv-list li[data-id="evil-1"]')), 'the import');
  await page.click('#conv-list li[data-id="evil-1"] button.open');
  // the conversation shown before may also have two messages: wait for this one's own text
  await waitFor(async () => (await nMessages()) === 2 && (await page.$eval('#messages .msg.user .body',
    (b) => b.textContent)) === '<b onmouseover=alert(5)>hi</b>' && !!(await page.$('details.reasoning')),
  'the imported conversation');
  await page.$eval('details.reasoning', (d) => { d.open = true; });
  await assertInert('imported conversation');
  await page.click('#heatmap');
  assert.equal(await page.$$eval('.heat span', (s) => s.length), 1);
  await assertInert('heat map', ['<img src=z onerror=alert(10)>', '<b onmouseover=alert(5)>hi</b>']);
  await page.click('#heatmap');
  assert.equal(await page.$$eval('#messages iframe', (l) => l.length), 0);
});

test('markdown: headings, lists, tables, emphasis, safe links, highlighted code with a copy button', { skip }, async () => {
  const md = '## Plan\n\n1. first **bold** and *em*\n2. second `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n' +
    '> quoted\n\nSee [docs](https://example.org/d?x=1) and <https://example.org/auto> or [bad](data:text/html,x).\n\n' +
    '```js\nconst x = "s"; // note\nreturn 42;\n```\n';
  const file = path.join(home, 'md.json');
  fs.writeFileSync(file, JSON.stringify({ conversations: [{ id: 'md-1', title: 'Markdown', updated: Date.now() + 2000,
    messages: [{ role: 'user', content: 'show me' }, { role: 'assistant', content: md }] }] }));
  await (await page.$('#import-file')).uploadFile(file);
  await waitFor(async () => !!(await page.$('#conv-list li[data-id="md-1"]')), 'the import');
  await page.click('#conv-list li[data-id="md-1"] button.open');
  await waitFor(async () => (await page.$eval('#messages .msg.user .body', (b) => b.textContent)) === 'show me', 'the conversation');
  const r = await page.$eval('#messages .msg.assistant .body', (b) => ({
    h: b.querySelector('h4')?.textContent, ol: [...b.querySelectorAll('ol > li')].map((l) => l.textContent),
    strong: b.querySelector('strong')?.textContent, em: b.querySelector('em')?.textContent,
    td: [...b.querySelectorAll('td')].map((t) => t.textContent), quote: b.querySelector('blockquote')?.textContent.trim(),
    links: [...b.querySelectorAll('a')].map((a) => [a.textContent, a.href, a.rel]),
    kw: [...b.querySelectorAll('.hl-kw')].map((e) => e.textContent), str: b.querySelector('.hl-str')?.textContent,
    com: b.querySelector('.hl-com')?.textContent, num: b.querySelector('.hl-num')?.textContent,
    text: b.textContent }));
  assert.equal(r.h, 'Plan');
  assert.deepEqual(r.ol, ['first bold and em', 'second code']);
  assert.equal(r.strong, 'bold');
  assert.equal(r.em, 'em');
  assert.deepEqual(r.td, ['1', '2']);
  assert.equal(r.quote, 'quoted');
  assert.deepEqual(r.links, [['docs', 'https://example.org/d?x=1', 'noopener noreferrer nofollow'],
    ['https://example.org/auto', 'https://example.org/auto', 'noopener noreferrer nofollow']]);
  assert.ok(r.text.includes('[bad](data:text/html,x)'), 'a data: link stays text');
  assert.deepEqual(r.kw, ['const', 'return']);
  assert.equal(r.str, '"s"');
  assert.equal(r.com, '// note');
  assert.equal(r.num, '42');
  await browser.defaultBrowserContext().overridePermissions(srv.url, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  await page.click('#messages .code button.copy');
  await waitFor(async () => (await page.evaluate(() => navigator.clipboard.readText().catch(() => ''))) ===
    'const x = "s"; // note\nreturn 42;', 'the code on the clipboard');
  await shot('8-markdown');
});

test('an IME composition: its Enter does not send, a plain Enter does', { skip }, async () => {
  await page.click('#new-chat');
  await settings({ 's-max_tokens': 8, 's-extra': '{"ignore_eos": true}' });
  await page.focus('#input');
  const before0 = await nMessages();
  await page.evaluate(() => {
    const t = document.getElementById('input');
    const key = (init) => t.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', code: 'Enter', bubbles: true, cancelable: true, ...init }));
    // Chrome's order: the Enter that picks the candidate comes while composing
    t.dispatchEvent(new CompositionEvent('compositionstart', { data: '' }));
    t.value = 'nihao';
    t.dispatchEvent(new CompositionEvent('compositionupdate', { data: 'nihao' }));
    key({ isComposing: true, keyCode: 229 });
    t.value = '你好';
    t.dispatchEvent(new CompositionEvent('compositionend', { data: '你好' }));
    // Safari's order: compositionend first, then the Enter (keyCode 229)
    t.dispatchEvent(new CompositionEvent('compositionstart', { data: '' }));
    t.value = '你好世界';
    t.dispatchEvent(new CompositionEvent('compositionend', { data: '世界' }));
    key({ keyCode: 229 });
  });
  await sleep(300);
  assert.equal(await nMessages(), before0, 'nothing sent');
  assert.equal(await page.$eval('#input', (t) => t.value), '你好世界');
  await page.keyboard.press('Enter');
  await waitFor(async () => (await nMessages()) === 2 && (await idle()), 'the message sent by a plain Enter');
  assert.equal(await page.$eval('#messages .msg.user .body', (b) => b.textContent), '你好世界');
});

test('the uncertainty heat map colors each streamed token', { skip }, async () => {
  await page.click('#heatmap');
  const spans = await page.$$eval('#messages .msg.assistant .heat span', (l) => l.map((s) => [s.textContent, s.style.backgroundColor, s.title]));
  assert.equal(spans.length, 8);
  for (const [, bg, title] of spans) {
    assert.match(bg, /^rgba\(230, 80, 30, [\d.]+\)$/);
    assert.match(title, /logprob -?[\d.]+ {2}entropy [\d.]+/);
  }
  await shot('5-heatmap');
  await page.click('#heatmap');
});

// Scrolls the conversation list to its end; how many it lists.
async function listAll() {
  let n = -1, same = 0;
  for (let i = 0; i < 400 && same < 10; i++) {
    const m = await page.$$eval('#conv-list li', (l) => l.length);
    same = m === n ? same + 1 : 0;
    n = m;
    await page.$eval('#conv-scroll', (s) => { s.scrollTop = s.scrollHeight; });
    await sleep(50);
  }
  return n;
}

test('hundreds of conversations: listed a page at a time, quickly; export holds them all', { skip }, async () => {
  const had = await page.evaluate(async () => (await import('/ui/store.js')).count());
  const conversations = [];
  for (let i = 0; i < 600; i++)
    conversations.push({ id: `bulk-${i}`, title: `Bulk conversation ${i}`, created: i, updated: 1000 + i,
      messages: [{ role: 'user', content: `question number ${i} about topic ${i % 7 === 0 ? 'zebra' : 'other'}` },
        { role: 'assistant', content: 'An answer with `code` and **bold** text. '.repeat(20) }] });
  const file = path.join(home, 'bulk.json');
  fs.writeFileSync(file, JSON.stringify({ conversations }));
  await (await page.$('#import-file')).uploadFile(file);
  await waitFor(async () => /Imported 600/.test(await page.$eval('#status', (s) => s.textContent)), 'the import');
  const t0 = Date.now();
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  const ms = Date.now() - t0;
  console.log(`# 600 conversations: reload to ready in ${ms} ms`);
  const shown = await page.$$eval('#conv-list li', (l) => l.length);
  assert.ok(shown >= 50 && shown < 300, `a page or a few listed, not all (${shown})`);
  assert.ok(ms < 5000, `ready in ${ms} ms`);
  assert.equal(await listAll(), had + 600, 'scrolling lists the rest');
  await page.type('#search', 'zebra');
  await sleep(300);
  assert.equal(await listAll(), 86, 'the search over text');
  const exported = await page.evaluate(async () => (await import('/ui/store.js')).exportAll());
  assert.equal(exported.conversations.length, had + 600);
  assert.equal(exported.format, 'hearth-chat');
  await page.$eval('#search', (s) => { s.value = ''; s.dispatchEvent(new Event('input')); });
});

test('light and dark', { skip }, async () => {
  await page.evaluate(() => localStorage.setItem('hearth.theme', 'light'));
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.click('#conv-list li button.open');
  await waitFor(async () => (await nMessages()) > 0, 'a conversation');
  const light = await page.$eval('body', (b) => getComputedStyle(b).backgroundColor);
  await shot('6-light');
  await page.click('#theme');
  const dark = await page.$eval('body', (b) => getComputedStyle(b).backgroundColor);
  assert.notEqual(light, dark);
  assert.equal(await page.evaluate(() => localStorage.getItem('hearth.theme')), 'dark');
  await shot('7-dark');
});

test('no errors, no dialogs, no CSP violations, no request elsewhere, all along', { skip }, async () => {
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.foreign, []);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
});

test('streamed logprobs: one entry per token, also where the text waits for the rest of a character', { skip }, async () => {
  let partial = 0;
  for (let seed = 1; seed <= 10; seed++) {
    const r = await fetch(srv.url + '/v1/chat/completions', { method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ' + KEY },
      body: JSON.stringify({ model: 'q2', messages: [{ role: 'user', content: '你好世界' }], max_tokens: 16, seed,
        ignore_eos: true, stream: true, logprobs: true, uncertainty: true }) });
    let n = 0, text = '';
    for (const line of (await r.text()).split('\n')) {
      if (!line.startsWith('data: {')) continue;
      const c = JSON.parse(line.slice(6)).choices[0];
      n += c.logprobs?.content?.length ?? 0;
      text += c.delta.content ?? '';
    }
    assert.equal(n, 16, `seed ${seed}: ${JSON.stringify(text)}`);
    if (text.includes('\ufffd')) partial++;
  }
  assert.ok(partial > 0, 'some answer had a token that is part of a character');
});

test('the server stops clean (under the sanitizers: no error, no leak)', { skip }, async () => {
  await browser.close();
  browser = null;
  const { code } = await srv.stop();
  const log = srv.log();
  srv = null;
  assert.equal(code, 0, `server exit code ${code}\n${log}`);
});
