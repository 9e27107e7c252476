// End-to-end tests of LoRA serving (docs/API.md, "LoRA adapters"): adapters in
// llama.cpp's GGUF LoRA format given with --lora NAME=FILE[:SCALE], chosen per
// request ("lora": NAME or "model": "BASE+NAME"), listed in /v1/models, and
// loaded / unloaded at run time through /v1/lora behind the API key and
// --lora-dir. Raw HTTP only; the adapters are written here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, assertError, fixtures, runHearth } from './helpers.mjs';

const MODEL = path.join(fixtures, 'models/stories260K.f32.gguf');
const N_EMBD = 64, N_LAYER = 5, RANK = 4;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-lora-'));
const KEY = 'lora-test-key-0123456789';

// A LoRA adapter GGUF (v3) for stories260K: attn_q and attn_output of every
// layer (n_embd x n_embd), lora_a [n_embd, RANK] and lora_b [RANK, n_embd], f32.
function writeAdapter(file, seed, { arch = 'llama', alpha = 8 } = {}) {
  const parts = [];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s) => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  const f32 = (v) => { const b = Buffer.alloc(4); b.writeFloatLE(v); parts.push(b); };
  const tensors = [];
  for (let il = 0; il < N_LAYER; il++)
    for (const w of ['attn_q', 'attn_output']) {
      tensors.push({ name: `blk.${il}.${w}.weight.lora_a`, ne: [N_EMBD, RANK] });
      tensors.push({ name: `blk.${il}.${w}.weight.lora_b`, ne: [RANK, N_EMBD] });
    }
  parts.push(Buffer.from('GGUF'));
  u32(3); u64(tensors.length); u64(4);
  str('general.type'); u32(8); str('adapter');
  str('general.architecture'); u32(8); str(arch);
  str('adapter.type'); u32(8); str('lora');
  str('adapter.lora.alpha'); u32(6); f32(alpha);
  let off = 0;
  for (const t of tensors) {
    str(t.name); u32(2); u64(t.ne[0]); u64(t.ne[1]); u32(0); u64(off);
    off += Math.ceil(t.ne[0] * t.ne[1] * 4 / 32) * 32;
  }
  let head = Buffer.concat(parts);
  head = Buffer.concat([head, Buffer.alloc((32 - head.length % 32) % 32)]);
  let s = seed;
  const data = tensors.map((t) => {
    const n = t.ne[0] * t.ne[1];
    const b = Buffer.alloc(Math.ceil(n * 4 / 32) * 32);
    for (let j = 0; j < n; j++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      b.writeFloatLE((s / 2147483648 - 0.5) * 0.6, j * 4);
    }
    return b;
  });
  fs.writeFileSync(file, Buffer.concat([head, ...data]));
}

const adapters = path.join(dir, 'adapters');
fs.mkdirSync(adapters);
const fileA = path.join(dir, 'a.gguf'), fileB = path.join(dir, 'b.gguf');
writeAdapter(fileA, 1);
writeAdapter(fileB, 2);
writeAdapter(path.join(adapters, 'c.gguf'), 3);
writeAdapter(path.join(adapters, 'qwen.gguf'), 4, { arch: 'qwen2' });
writeAdapter(path.join(dir, 'outside.gguf'), 5);

let srv, plain, admin, base;
const auth = { authorization: `Bearer ${KEY}` };
before(async () => {
  srv = await startServer(['--parallel', '3', '-c', '128', '--lora', `a=${fileA}`, '--lora', `b=${fileB}:0.5`],
    { models: ['-m', MODEL] });
  plain = await startServer(['--parallel', '3', '-c', '128'], { models: ['-m', MODEL] });
  admin = await startServer(['--parallel', '2', '-c', '128', '--api-key', KEY, '--lora-dir', adapters],
    { models: ['-m', MODEL] });
  base = (await request(srv.url, '/v1/models', { method: 'GET' })).json.data[0].id;
});
after(async () => {
  for (const s of [srv, plain, admin]) {
    const { code } = await s.stop();
    assert.equal(code, 0, `server exit code ${code}\n${s.log()}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const body = (extra) => ({ prompt: 'Once upon a time, there was a', max_tokens: 12, temperature: 0, logprobs: 1,
  ...extra });
const complete = async (s, extra = {}, headers = {}) => {
  const r = await request(s.url, '/v1/completions', { body: body(extra), headers });
  assert.equal(r.status, 200, r.text);
  const c = r.json.choices[0];
  return { text: c.text, lps: c.logprobs.token_logprobs };
};

test('/v1/models lists BASE+NAME for each adapter', async () => {
  const r = await request(srv.url, '/v1/models', { method: 'GET' });
  assert.equal(r.status, 200);
  const ids = r.json.data.map((m) => m.id);
  assert.deepEqual(ids, [base, `${base}+a`, `${base}+b`]);
  const a = r.json.data[1];
  assert.equal(a.parent, base);
  assert.equal(a.root, 'a');
  assert.equal(a.loaded, true);
  assert.ok(!JSON.stringify(r.json).includes(dir), 'paths are not shown');
  const l = await request(srv.url, '/v1/lora', { method: 'GET' });
  assert.equal(l.status, 200);
  assert.deepEqual(l.json.data.map((x) => [x.name, x.scale, x.pairs]), [['a', 1, 10], ['b', 0.5, 10]]);
});

test('an adapter changes only the requests that name it', async () => {
  const none = await complete(plain);
  assert.deepEqual(await complete(srv), none, 'no adapter: the base model, bit for bit');
  const a = await complete(srv, { lora: 'a' });
  assert.notDeepEqual(a, none);
  assert.deepEqual(await complete(srv, { model: `${base}+a` }), a, 'the model id selects it too');
  assert.deepEqual(await complete(srv, { model: `${base}+a`, lora: 'a' }), a);
  const b = await complete(srv, { lora: 'b' });
  assert.notDeepEqual(b, a);
  assert.notDeepEqual(b, none);
  // together, at once: each its own answer
  const [x, y, z] = await Promise.all([complete(srv, { lora: 'a' }), complete(srv, { lora: 'b' }), complete(srv)]);
  assert.deepEqual(x, a);
  assert.deepEqual(y, b);
  assert.deepEqual(z, none);
  // chat and Ollama's routes too
  const msgs = [{ role: 'user', content: 'Hello' }];
  const chat = async (extra) => (await request(srv.url, '/v1/chat/completions',
    { body: { messages: msgs, max_tokens: 8, temperature: 0, ...extra } })).json.choices[0].message.content;
  assert.notEqual(await chat({ lora: 'a' }), await chat({}));
  assert.equal(await chat({ model: `${base}+a` }), await chat({ lora: 'a' }));
  const gen = async (model, extra = {}) => (await request(srv.url, '/api/generate',
    { body: { model, prompt: 'Once upon a time', stream: false, options: { temperature: 0, num_predict: 8 }, ...extra } })).json.response;
  assert.notEqual(await gen(`${base}+a`), await gen(base));
  assert.equal(await gen(`${base}+a`), await gen(base, { lora: 'a' }));
  assert.notEqual(await gen(`${base}+b`), await gen(`${base}+a`));
});

test('unknown adapters and bad fields are refused', async () => {
  assertError(await request(srv.url, '/v1/completions', { body: body({ lora: 'zzz' }) }), 404, 'lora');
  assertError(await request(srv.url, '/v1/completions', { body: body({ model: `${base}+zzz` }) }), 404, 'model');
  assertError(await request(srv.url, '/v1/completions', { body: body({ lora: 3 }) }), 400, 'lora');
  assertError(await request(srv.url, '/v1/completions', { body: body({ lora: 'b', model: `${base}+a` }) }), 400, 'lora');
});

test('routes that do not apply adapters refuse them instead of answering with the base', async () => {
  const post = (p, body) => request(srv.url, p, { body });
  for (const [route, body] of [
    ['/v1/score', { prompt: 'Once upon', completion: ' a time' }],
    ['/v1/embeddings', { input: 'Once upon a time' }],
    ['/v1/rerank', { query: 'a cat', documents: ['a cat sat', 'a dog ran'] }],
    ['/v1/cache', { name: 'tale', prompt: 'Once upon a time' }],
  ]) {
    assertError(await post(route, { ...body, model: `${base}+a` }), 400, 'model');
    assertError(await post(route, { ...body, model: base, lora: 'a' }), 400, 'lora');
  }
  // a saved state holds the base's rows: it cannot start a request with an adapter
  const saved = await post('/v1/cache', { model: base, name: 'tale', prompt: 'Once upon a time' });
  assert.equal(saved.status, 200, saved.text);
  assertError(await post('/v1/completions', { model: `${base}+a`, prompt: 'Once upon a time there', cache: 'tale',
    max_tokens: 4 }), 400, 'cache');
  const ok = await post('/v1/completions', { model: base, prompt: 'Once upon a time there', cache: 'tale', max_tokens: 4 });
  assert.equal(ok.status, 200, ok.text);
});

test('admin: load and unload at run time, behind the key and --lora-dir', async () => {
  const load = (b, headers = auth) => request(admin.url, '/v1/lora', { body: b, headers });
  assert.equal((await load({ name: 'c', path: 'c.gguf' }, {})).status, 401);
  assertError(await request(srv.url, '/v1/lora', { body: { name: 'c', path: 'c.gguf' } }), 403); // no --lora-dir
  assertError(await load({ name: 'c', path: '../outside.gguf' }), 400, 'path');
  assertError(await load({ name: 'c', path: path.join(dir, 'outside.gguf') }), 400, 'path');
  assertError(await load({ name: 'c', path: 'missing.gguf' }), 404, 'path');
  assertError(await load({ name: 'c/x', path: 'c.gguf' }), 400, 'name');
  const wrong = await load({ name: 'q', path: 'qwen.gguf' });
  assertError(wrong, 400, 'path');
  assert.match(wrong.json.error.message, /general.architecture is 'qwen2', expected 'llama'/);
  assert.ok(!wrong.text.includes(dir), 'the server path is not shown');

  const none = await complete(admin, {}, auth);
  const r = await load({ name: 'c', path: 'c.gguf', scale: 2 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.pairs, 10);
  assertError(await load({ name: 'c', path: 'c.gguf' }), 409, 'name');
  const ids = (await request(admin.url, '/v1/models', { method: 'GET', headers: auth })).json.data.map((m) => m.id);
  assert.deepEqual(ids, [base, `${base}+c`]);
  const c = await complete(admin, { lora: 'c' }, auth);
  assert.notDeepEqual(c, none);
  assert.deepEqual(await complete(admin, {}, auth), none);

  assert.equal((await request(admin.url, '/v1/lora/c', { method: 'DELETE' })).status, 401);
  const d = await request(admin.url, '/v1/lora/c', { method: 'DELETE', headers: auth });
  assert.equal(d.status, 200, d.text);
  assertError(await request(admin.url, '/v1/completions', { body: body({ lora: 'c' }), headers: auth }), 404, 'lora');
  assertError(await request(admin.url, '/v1/lora/c', { method: 'DELETE', headers: auth }), 404);
  assert.deepEqual((await request(admin.url, '/v1/lora', { method: 'GET', headers: auth })).json.data, []);
});

test('hearth run --lora and export-lora agree', () => {
  const out = path.join(dir, 'merged.gguf');
  const args = ['-p', 'Once upon a time', '-n', '10', '--temp', '0', '-t', '2'];
  const withLora = runHearth(['run', '-m', MODEL, '--lora', `${fileA}:1.5`, ...args]);
  assert.equal(withLora.code, 0, withLora.stderr);
  const plainRun = runHearth(['run', '-m', MODEL, ...args]);
  assert.notEqual(withLora.stdout, plainRun.stdout);
  const ex = runHearth(['export-lora', '-m', MODEL, '--lora', `${fileA}:1.5`, '-o', out]);
  assert.equal(ex.code, 0, ex.stderr);
  const merged = runHearth(['run', '-m', out, ...args]);
  assert.equal(merged.code, 0, merged.stderr);
  assert.equal(merged.stdout, withLora.stdout);
  const bad = runHearth(['run', '-m', MODEL, '--lora', path.join(adapters, 'qwen.gguf'), ...args]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /general.architecture is 'qwen2', expected 'llama'/);
});

test('--lora takes a stored adapter by its name, as -m takes a stored model', () => {
  const home = path.join(dir, 'home');
  const stored = path.join(home, 'models/url/example.com');
  fs.mkdirSync(stored, { recursive: true });
  fs.copyFileSync(fileA, path.join(stored, 'story-adapter.gguf'));
  const env = { ...process.env, HEARTH_HOME: home };
  const args = ['-p', 'Once upon a time', '-n', '10', '--temp', '0', '-t', '2'];
  const byFile = runHearth(['run', '-m', MODEL, '--lora', `${fileA}:1.5`, ...args]);
  const byName = runHearth(['run', '-m', MODEL, '--lora', 'story-adapter:1.5', ...args], { env });
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(byName.stdout, byFile.stdout);
  const missing = runHearth(['run', '-m', MODEL, '--lora', 'no-such-adapter', ...args], { env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no-such-adapter: no such file \(nor a stored model's name/);
});
