// hearth serve tried as an attacker would: port sharing, key files, connection
// exhaustion and trickling clients, browsers (content type, Host, Origin),
// route mapping without a key, oversized heads, TLS. Each test names the
// finding of the hardening issue it guards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startServer, sleep, sanitized, request, assertError, runHearth, MODEL, freePort } from './helpers.mjs';

const KEY = 'test-key-0123456789abcdef';

// One HTTP request on its own connection, any headers allowed (Host included).
function raw(port, method, p, headers = {}, body = undefined, localAddress = undefined) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false, localAddress }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    r.on('error', reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}

// Bytes a raw socket receives until the server closes it (or ms pass): { data, ms, closed }.
function collect(sock, ms) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('error', () => {});
    sock.on('close', () => resolve({ data, ms: Date.now() - t0, closed: true }));
    setTimeout(() => resolve({ data, ms: Date.now() - t0, closed: false }), ms);
  });
}

async function metric(s, name, localAddress = undefined) {
  const m = (await raw(s.port, 'GET', '/metrics', { authorization: `Bearer ${KEY}` }, undefined, localAddress)).text;
  const hit = new RegExp(`^${name}\\{[^}]*\\} (\\S+)`, 'm').exec(m);
  return hit ? Number(hit[1]) : NaN;
}

test('1. a busy port is an error at start-up that names it', async () => {
  const s = await startServer();
  try {
    const r = runHearth(['serve', '-m', MODEL, '--port', String(s.port)]);
    assert.notEqual(r.code, 0, 'a second server on the same port must not start');
    assert.match(r.stderr, new RegExp(`port ${s.port}.*in use`));
    // the first one still answers all requests
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${s.url}/health`)).status, 200);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('2. empty, blank or weak keys refuse to start; keys are trimmed', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-keys-'));
  const file = (name, text) => { const p = path.join(dir, name); fs.writeFileSync(p, text); return p; };
  const refuse = (args, why) => {
    const r = runHearth(['serve', '-m', MODEL, '--port', '0', ...args]);
    assert.notEqual(r.code, 0, `must refuse: ${args.join(' ')}`);
    assert.match(r.stderr, why);
  };
  refuse(['--api-key-file', file('empty', '')], /holds no API key/);
  refuse(['--api-key-file', file('blank', '\n   \n\t\n# only a comment\n')], /holds no API key/);
  refuse(['--api-key-file', file('short', 'abc123\n')], /line 1: the key is 6 bytes; keys need at least 16/);
  refuse(['--api-key', '   '], /--api-key: the key is empty/);
  refuse(['--api-key', 'short-key'], /at least 16/);
  refuse(['--api-key-file', path.join(dir, 'missing')], /missing: No such file/);
  refuse(['--api-key-file', file('bom-short', '\ufeffshort-key-123\n')], /the key is 13 bytes/);
  refuse(['--api-key-file', file('latin', 'caf\u00e9-0123456789abcdef\n')], /outside ASCII/);
  refuse(['--api-key-file', file('nul', `${KEY}\0x\nmore\n`)], /line 1 holds a NUL byte/);
  // trimmed, and weak keys allowed when asked
  const s = await startServer(['--api-key-file', file('ok', `\ufeff  ${KEY}  \r\n`), '--api-key', ' tiny ', '--allow-weak-key']);
  try {
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer tiny' } })).status, 200);
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}x` } })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: `Bearer ${KEY.slice(0, -1)}` } })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
  } finally {
    assert.equal((await s.stop()).code, 0);
    fs.rmSync(dir, { recursive: true });
  }
});

test('3. 5000 idle connections and trickling clients: a normal client is answered within a second', async () => {
  const s = await startServer(['--api-key', KEY, '--timeout', '10']);
  const socks = [];
  const timers = [];
  try {
    let connected = 0;
    const open = () => new Promise((resolve) => {
      const so = net.connect(s.port, '127.0.0.1');
      so.on('connect', () => { connected++; resolve(); });
      so.on('error', resolve);
      so.on('close', resolve);
      socks.push(so);
    });
    for (let i = 0; i < 5000; i += 250) await Promise.all(Array.from({ length: 250 }, open));
    // tricklers: a request one byte every 200 ms, never complete within the test
    const req = `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n';
    for (let i = 0; i < 50; i++) {
      const so = net.connect(s.port, '127.0.0.1');
      so.on('error', () => {});
      socks.push(so);
      let at = 0;
      timers.push(setInterval(() => { if (!so.destroyed) so.write(at < req.length ? req[at++] : 'x'); }, 200));
    }
    await sleep(500);
    const t0 = performance.now();
    const health = await fetch(`${s.url}/health`);
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const r = await c.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: 'Hello', max_tokens: 4, temperature: 0 });
    const ms = performance.now() - t0;
    assert.equal(health.status, 200);
    assert.equal(r.choices.length, 1);
    assert.ok(ms < (sanitized ? 3000 : 1000), `answered in ${ms.toFixed(0)} ms`);
    assert.ok(connected > 4000, `${connected} of 5000 connected (the client's descriptor limit?)`);
    // every connection beyond the address's 256 (the tricklers' included) gave way, or was refused
    // while too many were still closing, once all are accepted
    let gone = 0;
    for (let i = 0; i < 50 && gone < connected - 256 - 60; i++) {
      gone = await metric(s, 'hearth_http_connections_evicted_total') + await metric(s, 'hearth_http_connections_refused_total');
      if (gone < connected - 256 - 60) await sleep(100);
    }
    assert.ok(gone >= connected - 256 - 60, `${gone} of ${connected} idle connections gave way`);
    assert.ok(await metric(s, 'hearth_http_connections') <= 1024);
  } finally {
    timers.forEach(clearInterval);
    socks.forEach((so) => so.destroy());
    assert.equal((await s.stop()).code, 0);
  }
});

test('3. a trickling client is cut at its deadline with a 408, though it keeps sending', async () => {
  const s = await startServer(['--timeout', '2']);
  try {
    const so = net.connect(s.port, '127.0.0.1');
    const req = 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      'Content-Length: 5000\r\n\r\n' + 'x'.repeat(5000);
    let at = 0;
    const t = setInterval(() => { if (!so.destroyed && at < req.length) so.write(req[at++]); }, 100);
    const got = await collect(so, 8000);
    clearInterval(t);
    so.destroy();
    assert.ok(got.closed, 'the server closes it');
    assert.ok(got.ms >= 1800 && got.ms < 4500, `closed after ${got.ms} ms (deadline 2 s)`);
    assert.match(got.data, /^HTTP\/1\.1 408 /);
    assert.match(got.data, /"code":"request_timeout"/);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('3. beyond the per-address limit, with every connection busy: 503 and Retry-After', async () => {
  const s = await startServer(['--max-connections-per-ip', '2', '--parallel', '2']);
  const busy = [];
  try {
    // two streams that have started answering: both connections are busy for a while (from an
    // address of their own: the harness's own connections from 127.0.0.1 play no part)
    const from = { port: s.port, host: '127.0.0.1', localAddress: '127.0.0.3' };
    const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 480, ignore_eos: true, temperature: 0, stream: true });
    const started = [0, 1].map(() => new Promise((resolve, reject) => {
      const so = net.connect(from, () => so.write('POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
      let seen = '';
      so.on('data', (d) => { seen += d; if (seen.includes('data: ')) resolve(); });
      so.on('error', () => {});
      so.on('close', () => reject(new Error(`a stream closed before answering: ${seen.slice(0, 200)}`)));
      setTimeout(() => reject(new Error('a stream did not start within 20 s')), 20000);
      busy.push(so);
    }));
    await Promise.all(started);
    const so = net.connect(from, () => so.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    const got = await collect(so, 5000);
    so.destroy();
    assert.match(got.data, /^HTTP\/1\.1 503 /, got.data);
    assert.match(got.data, /\r\nRetry-After: 1\r\n/);
    assert.match(got.data, /"code":"too_many_connections"/);
    busy.forEach((b) => b.destroy());
    await sleep(100);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  } finally {
    busy.forEach((b) => b.destroy());
    assert.equal((await s.stop()).code, 0);
  }
});

test('3. a client that does not read its replies is cut at the deadline and gives way', async () => {
  const s = await startServer(['--timeout', '2', '--max-connections-per-ip', '2', '--api-key', KEY]);
  const socks = [];
  try {
    // pipelined requests whose replies (25 MB, more than socket buffers hold) are read slowly
    // (40 s for all): always some progress, so no inactivity timer ever fires
    const many = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(150000);
    for (let i = 0; i < 2; i++) { // from an address of their own, as the client below
      const so = net.connect({ port: s.port, host: '127.0.0.1', localAddress: '127.0.0.4' }, () => { so.pause(); so.write(many); });
      so.on('error', () => {});
      const t = setInterval(() => { if (!so.destroyed) so.read(65536); }, 100);
      so.on('close', () => clearInterval(t));
      socks.push(so);
    }
    await sleep(500);
    // the address's two connections are taken: a client that reads gets in once a slow one gives way
    const t0 = Date.now();
    let r = null;
    while (Date.now() - t0 < 15000) {
      r = await raw(s.port, 'GET', '/v1/models', { authorization: `Bearer ${KEY}` }, undefined, '127.0.0.4')
        .catch((e) => ({ status: e.code }));
      if (r.status === 200) break;
      await sleep(250);
    }
    assert.equal(r.status, 200, `still refused after ${Date.now() - t0} ms: ${r.text}`);
    assert.ok(Date.now() - t0 < (sanitized ? 6000 : 4500), `answered after ${Date.now() - t0} ms`);
    const gone = await metric(s, 'hearth_http_connections_evicted_total', '127.0.0.2') +
      await metric(s, 'hearth_http_request_timeouts_total', '127.0.0.2');
    assert.ok(gone >= 1, 'a slow reader was cut');
  } finally {
    socks.forEach((so) => so.destroy());
    assert.equal((await s.stop()).code, 0);
  }
});

test('3. request bodies share a memory budget; bodies refused early are still read so their client sees why', async () => {
  const s = await startServer(['--max-body', '65536', '--max-body-total', '100000']);
  try {
    // one body under way holds most of the budget: the next one is told to come back
    const first = net.connect(s.port, '127.0.0.1');
    first.on('error', () => {});
    const body = JSON.stringify({ prompt: 'x'.repeat(59000), max_tokens: 1 });
    first.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\n\r\n${body.slice(0, -1)}`);
    await sleep(300);
    const second = await raw(s.port, 'POST', '/v1/completions', { 'content-type': 'application/json' }, body);
    assertError(second, 503);
    assert.equal(second.json.error.code, 'server_busy');
    assert.equal(second.headers['retry-after'], '1');
    const done = collect(first, 10000);
    first.write(body.slice(-1));
    assert.match((await done).data, /^HTTP\/1\.1 (200|400) /);
    // a body over the limit, sent at once without asking: the client still gets the JSON 413
    const big = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'y'.repeat(100000) }) });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, 'request_too_large');
    const plain = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' },
      body: 'z'.repeat(60000) });
    assert.equal(plain.status, 415);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('4. browsers: JSON content type, loopback Host names, no CORS unless asked', async () => {
  const s = await startServer(['--allowed-host', 'hearth.internal', '--cors-origin', 'https://app.example']);
  const t = await startServer();
  try {
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ prompt: 'hi', max_tokens: 1 });
    // a page can POST text/plain without a preflight: refused
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      assertError(await raw(t.port, 'POST', '/v1/completions', { 'content-type': ct }, body), 415);
    }
    assertError(await raw(t.port, 'POST', '/v1/completions', {}, body), 415);
    assert.equal((await raw(t.port, 'POST', '/v1/completions', { 'content-type': 'Application/JSON; charset=utf-8' }, body)).status, 200);
    // DNS rebinding: a loopback server answers loopback names only
    for (const host of ['localhost', 'localhost:1234', '127.0.0.1', '127.0.0.9:80', '[::1]:8080']) {
      assert.equal((await raw(t.port, 'GET', '/health', { host })).status, 200, host);
    }
    for (const host of ['evil.example', 'evil.example:80', 'localhost.evil.example', '127.0.0.1.evil.example', '[::1']) {
      assertError(await raw(t.port, 'GET', '/health', { host }), 403);
    }
    assertError(await raw(t.port, 'POST', '/v1/completions', { ...json, host: 'evil.example' }, body), 403);
    assert.equal((await raw(s.port, 'GET', '/health', { host: 'hearth.internal:8080' })).status, 200);
    assertError(await raw(s.port, 'GET', '/health', { host: 'other.internal' }), 403);
    // no CORS headers by default; a foreign page's request is refused
    const plain = await raw(t.port, 'POST', '/v1/completions', { ...json, origin: 'https://app.example' }, body);
    assertError(plain, 403);
    assert.equal(plain.headers['access-control-allow-origin'], undefined);
    const pre = await raw(t.port, 'OPTIONS', '/v1/completions', { origin: 'https://app.example', 'access-control-request-method': 'POST' });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    assert.notEqual(pre.status, 204);
    // --cors-origin: preflight and replies carry the headers for that origin only
    const ok = await raw(s.port, 'OPTIONS', '/v1/chat/completions', { origin: 'https://app.example',
      'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(ok.headers['access-control-allow-headers'], /x-stainless-os/);
    const r = await raw(s.port, 'POST', '/v1/completions', { ...json, origin: 'https://app.example' }, body);
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assertError(await raw(s.port, 'POST', '/v1/completions', { ...json, origin: 'https://evil.example' }, body), 403);
    // a page the server itself serves is not foreign
    assert.equal((await raw(t.port, 'POST', '/v1/completions', { ...json, origin: `http://127.0.0.1:${t.port}`,
      host: `127.0.0.1:${t.port}` }, body)).status, 200);
  } finally {
    assert.equal((await s.stop()).code, 0);
    assert.equal((await t.stop()).code, 0);
  }
});

test('5. cached prompts are shared within an API key (and cache_salt), never across', async () => {
  const other = 'other-key-0123456789abcdef';
  const s = await startServer(['--api-key', KEY, '--api-key', other]);
  try {
    const prompt = 'A long shared system prompt that fills several cache blocks of sixteen tokens. '.repeat(6);
    const ask = async (key, extra = {}) => {
      const r = await request(s.url, '/v1/completions', { headers: { authorization: `Bearer ${key}` },
        body: { prompt, max_tokens: 1, temperature: 0, ...extra } });
      assert.equal(r.status, 200, r.text);
      return r.json.usage.prompt_tokens_details.cached_tokens;
    };
    assert.equal(await ask(KEY), 0);
    assert.ok(await ask(KEY) > 64, 'the same key finds its cached prompt');
    assert.equal(await ask(other), 0, 'another key does not');
    assert.equal(await ask(KEY, { cache_salt: 'user-1' }), 0, 'nor another cache_salt');
    assert.ok(await ask(KEY, { cache_salt: 'user-1' }) > 64);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('7. keys are checked before routes; errors are JSON; HEAD, NUL, model root, --port 0', async () => {
  const s = await startServer(['--api-key', KEY, '--max-body', '4096']);
  try {
    const auth = { authorization: `Bearer ${KEY}` };
    // without a key nothing tells routes apart
    for (const [m, p] of [['GET', '/nothing'], ['GET', '/v1/chat/completions'], ['POST', '/v1/models'],
      ['GET', '/v1/models/x'], ['DELETE', '/health']]) {
      const r = await raw(s.port, m, p, { 'content-type': 'application/json' }, m === 'POST' ? '{}' : undefined);
      assertError(r, m === 'DELETE' ? 405 : 401);
    }
    assertError(await raw(s.port, 'GET', '/nothing', auth), 404);
    const mna = await raw(s.port, 'GET', '/v1/chat/completions', auth);
    assertError(mna, 405);
    assert.equal(mna.headers.allow, 'POST');
    // oversized URL, headers and body: OpenAI-shaped JSON
    assertError(await raw(s.port, 'GET', '/' + 'a'.repeat(9000), auth), 414);
    assertError(await raw(s.port, 'GET', '/health', { 'x-big': 'b'.repeat(40000) }), 431);
    assertError(await raw(s.port, 'POST', '/v1/completions', { ...auth, 'content-type': 'application/json' },
      JSON.stringify({ prompt: 'x'.repeat(5000) })), 413);
    assertError(await raw(s.port, 'GET', '/v1/models', { ...auth, 'content-length': '10' }, '0123456789'), 413);
    // HEAD /health
    const head = await raw(s.port, 'HEAD', '/health');
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    // \u0000 is a character like any other
    const nul = await request(s.url, '/tokenize', { body: '{"content":"a\\u0000b"}', headers: auth });
    assert.equal(nul.status, 200, nul.text);
    const back = await request(s.url, '/detokenize', { body: { tokens: nul.json.tokens }, headers: auth });
    assert.equal(back.json.content, 'a\u0000b');
    const chat = await request(s.url, '/v1/chat/completions', { headers: auth,
      body: '{"messages":[{"role":"user","content":"x\\u0000y"}],"max_tokens":2}' });
    assert.equal(chat.status, 200, chat.text);
    assertError(await request(s.url, '/v1/chat/completions', { headers: auth,
      body: '{"messages":[{"role":"user\\u0000x","content":"y"}],"max_tokens":2}' }), 400, 'messages');
    assertError(await request(s.url, '/v1/completions', { headers: auth,
      body: '{"prompt":"y","stop":"a\\u0000","max_tokens":2}' }), 400, 'stop');
    assertError(await request(s.url, '/v1/completions', { headers: auth,
      body: { prompt: 'y', stop: ['s'.repeat(1025)], max_tokens: 2 } }), 400, 'stop');
    // the model's root is its file name, not where it lies
    const models = await request(s.url, '/v1/models', { method: 'GET', headers: auth });
    assert.equal(models.json.data[0].root, 'tiny-qwen2.f32.gguf');
    assert.ok(!models.text.includes(path.dirname(MODEL)));
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
  // --port 0 logs the port it got
  const z = await startServer([], { port: 0, wait: false });
  try {
    let port = null;
    for (let i = 0; i < 100 && !port; i++) {
      port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(z.log())?.[1];
      await sleep(50);
    }
    assert.ok(port && port !== '0', z.log());
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  } finally {
    await z.stop();
  }
});

test('8. TLS: --ssl-cert and --ssl-key serve HTTPS that a verifying client accepts', async (t) => {
  if (spawnSync('openssl', ['version']).status !== 0) return t.skip('openssl is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-tls-'));
  const cert = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  const ca = fs.readFileSync(cert);
  const get = (url, opts = {}) => new Promise((resolve, reject) => {
    https.get(url, { ca, agent: false, ...opts }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    }).on('error', reject);
  });
  const s = await startServer(['--ssl-cert', cert, '--ssl-key', key, '--api-key', KEY],
    { scheme: 'https', health: (u) => get(`${u}/health`).then((r) => r.status) });
  try {
    assert.match(s.log(), /listening on https:/);
    assert.equal((await get(`${s.url}/health`)).status, 200);
    const m = await get(`${s.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(m.status, 200);
    assert.equal(JSON.parse(m.text).data[0].id, 'tiny-qwen2.f32.gguf');
    // a client that does not trust the certificate refuses it; plain HTTP gets nothing
    await assert.rejects(get(`${s.url}/health`, { ca: undefined }), /self[- ]signed|unable to verify/i);
    await assert.rejects(fetch(`http://127.0.0.1:${s.port}/health`));
  } finally {
    assert.equal((await s.stop()).code, 0);
    fs.rmSync(dir, { recursive: true });
  }
  // a pair that does not go together, or a missing half, stops it at start-up
  assert.notEqual(runHearth(['serve', '-m', MODEL, '--port', '0', '--ssl-cert', MODEL, '--ssl-key', MODEL]).code, 0);
  assert.equal(runHearth(['serve', '-m', MODEL, '--port', '0', '--ssl-cert', '/nonexistent']).code, 2);
});

test('8. a server bound beyond loopback without a key or TLS warns loudly', async () => {
  const port = await freePort();
  const s = await startServer(['--host', '0.0.0.0'], { port });
  try {
    assert.match(s.log(), /WARNING: 0\.0\.0\.0:\d+ is reachable from other machines with NO API KEY/);
    // every bind checks Host: IP addresses and localhost pass, names only when allowed
    assert.equal((await raw(s.port, 'GET', '/health', { host: `127.0.0.1:${s.port}` })).status, 200);
    assert.equal((await raw(s.port, 'GET', '/health', { host: '192.168.1.20' })).status, 200);
    assertError(await raw(s.port, 'GET', '/health', { host: 'my-server.lan' }), 403);
    assertError(await raw(s.port, 'GET', '/health', { host: 'localhost:evil' }), 403);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
  const q = await startServer();
  try {
    assert.doesNotMatch(q.log(), /WARNING/);
  } finally {
    await q.stop();
  }
});
