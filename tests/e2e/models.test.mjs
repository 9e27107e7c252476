// End-to-end tests of several models in one server: two models served at once,
// requests to both interleaved and each answered by its own model (as it
// answers alone), an unknown model refused in OpenAI's shape, /v1/models and
// /metrics per model; --max-loaded 1 unloads the least recently used model to
// load another, --idle-unload unloads an idle one, --models-dir names models
// by file and keeps to its folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, fixtures, request, assertError, sleep } from './helpers.mjs';

const LLAMA = path.join(fixtures, 'models/tiny-llama3.f32.gguf');
const QWEN = path.join(fixtures, 'models/tiny-qwen2.f32.gguf');

let srv;
before(async () => {
  srv = await startServer([], { models: ['-m', `llama=${LLAMA}`, '-m', `qwen=${QWEN}`] });
});
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

// A greedy completion of model: its text, and the model the reply names.
async function complete(url, model, prompt, stream = false) {
  const body = { model, prompt, max_tokens: 8, temperature: 0, stream };
  if (!stream) {
    const r = await request(url, '/v1/completions', { body });
    assert.equal(r.status, 200, r.text);
    return { text: r.json.choices[0].text, model: r.json.model };
  }
  const r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  let text = '', named = null;
  for (const line of (await r.text()).split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const c = JSON.parse(line.slice(6));
    named = c.model;
    text += c.choices[0]?.text ?? '';
  }
  return { text, model: named };
}

test('/v1/models lists both models; none is loaded before its first request', async () => {
  const r = await request(srv.url, '/v1/models', { method: 'GET' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.data.map((m) => m.id), ['llama', 'qwen']);
  assert.deepEqual(r.json.data.map((m) => m.root), ['tiny-llama3.f32.gguf', 'tiny-qwen2.f32.gguf']);
  assert.ok(r.json.data.every((m) => m.loaded === false));
  assert.equal((await request(srv.url, '/v1/models/qwen', { method: 'GET' })).json.id, 'qwen');
  assertError(await request(srv.url, '/v1/models/gpt-9', { method: 'GET' }), 404, 'model');
});

test('two models at once: interleaved requests, each answered by its own model', async () => {
  const prompts = ['Once upon a time', 'The cat sat on'];
  // each alone, one after the other
  const alone = {};
  for (const m of ['llama', 'qwen']) for (const p of prompts) alone[m + p] = (await complete(srv.url, m, p)).text;
  assert.notEqual(alone['llama' + prompts[0]], alone['qwen' + prompts[0]], 'the two models must answer differently');
  // then all at once, alternating models, streamed and not
  const jobs = [];
  for (let i = 0; i < 8; i++) {
    const m = i % 2 ? 'qwen' : 'llama', p = prompts[(i >> 1) % 2];
    jobs.push(complete(srv.url, m, p, i % 4 >= 2).then((r) => ({ ...r, want: alone[m + p], m })));
  }
  for (const r of await Promise.all(jobs)) {
    assert.equal(r.model, r.m);
    assert.equal(r.text, r.want, `${r.m}: interleaved answer differs from its answer alone`);
  }
  // no model field: the default, the first registered
  assert.equal((await request(srv.url, '/v1/completions',
    { body: { prompt: prompts[0], max_tokens: 8, temperature: 0 } })).json.choices[0].text, alone['llama' + prompts[0]]);
  const models = await request(srv.url, '/v1/models', { method: 'GET' });
  assert.ok(models.json.data.every((m) => m.loaded === true && m.max_model_len > 0));
});

test('an unknown model is a 404 in OpenAI\'s shape, on every endpoint', async () => {
  const messages = [{ role: 'user', content: 'hi' }];
  for (const [p, body] of [['/v1/chat/completions', { model: 'gpt-9', messages }],
    ['/v1/completions', { model: 'gpt-9', prompt: 'x' }], ['/tokenize', { model: 'gpt-9', content: 'x' }]]) {
    const r = await request(srv.url, p, { body });
    assert.deepEqual(r.json, { error: { message: "The model 'gpt-9' does not exist", type: 'invalid_request_error',
      param: 'model', code: 'model_not_found' } }, p);
    assert.equal(r.status, 404);
  }
  assertError(await request(srv.url, '/v1/chat/completions', { body: { model: 7, messages } }), 400, 'model');
});

test('/metrics: a series per model', async () => {
  const m = await (await fetch(srv.url + '/metrics')).text();
  for (const name of ['llama', 'qwen']) {
    assert.match(m, new RegExp(`^vllm:num_requests_running\\{model_name="${name}"\\} 0`, 'm'));
    assert.match(m, new RegExp(`^vllm:generation_tokens_total\\{model_name="${name}"\\} [1-9]`, 'm'));
  }
  assert.equal(m.match(/^# TYPE vllm:num_requests_running /mg).length, 1, 'one family, one sample per model');
});

test('--models-dir, --max-loaded 1 and --idle-unload', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-models-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-outside-'));
  fs.copyFileSync(LLAMA, path.join(dir, 'a.gguf'));
  fs.copyFileSync(QWEN, path.join(dir, 'b.gguf'));
  fs.copyFileSync(QWEN, path.join(outside, 'c.gguf'));
  fs.symlinkSync(path.join(outside, 'c.gguf'), path.join(dir, 'c.gguf')); // leads outside: not served
  fs.copyFileSync(QWEN, path.join(dir, 'bad name.gguf')); // not a sane name: not served
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a model');
  fs.writeFileSync(path.join(dir, 'broken.gguf'), 'GGUF but not really');
  const s = await startServer(['--max-loaded', '1', '--idle-unload', '1'], { models: ['--models-dir', dir] });
  try {
    const loaded = async () => Object.fromEntries((await request(s.url, '/v1/models', { method: 'GET' }))
      .json.data.map((m) => [m.id, m.loaded]));
    assert.deepEqual(await loaded(), { a: false, b: false, broken: false });
    const a1 = await complete(s.url, 'a', 'Once upon a time');
    assert.deepEqual(await loaded(), { a: true, b: false, broken: false });
    await complete(s.url, 'b', 'Once upon a time');
    assert.deepEqual(await loaded(), { a: false, b: true, broken: false }, 'b took a\'s room');
    assert.match(s.log(), /unloading 'a' to make room for 'b'/);
    assert.deepEqual(await complete(s.url, 'a', 'Once upon a time'), a1, 'a reloaded answers as before');
    assert.deepEqual(await loaded(), { a: true, b: false, broken: false });
    let state;
    for (let i = 0; i < 60 && (state = await loaded()).a; i++) await sleep(100);
    assert.deepEqual(state, { a: false, b: false, broken: false }, 'unloaded after a second idle');
    assert.match(s.log(), /unloading 'a' \(idle/);
    assert.deepEqual(await complete(s.url, 'a', 'Once upon a time'), a1);
    assert.equal((await fetch(s.url + '/health')).status, 200);
    // a file that does not load: 503, retried later, its path kept in the log
    for (let i = 0; i < 2; i++) {
      const r = await request(s.url, '/v1/completions', { body: { model: 'broken', prompt: 'x' } });
      assertError(r, 503, 'model');
      assert.equal(r.json.error.code, 'model_load_failed');
      assert.ok(r.headers.get('retry-after'));
      assert.ok(!r.text.includes(dir), 'no path in the reply');
    }
    assert.equal(s.log().match(/model 'broken' failed to load/g).length, 1, 'not loaded again at once');
    assert.equal((await complete(s.url, 'b', 'Once upon a time')).model, 'b');
  } finally {
    const { code } = await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
    assert.equal(code, 0, s.log());
  }
});
