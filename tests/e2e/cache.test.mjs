// Saved model state (/v1/cache): a state saved before a restart continues
// exactly as computing the prompt does; states belong to the API key that
// saved them (another key gets 404 for get, delete and use, and lists none);
// corrupt, truncated and other models' states are refused; the disk budget
// evicts the least recently used.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, assertError, fixtures } from './helpers.mjs';

const K1 = 'cache-key-one-0123456789';
const K2 = 'cache-key-two-0123456789';
const QWEN3 = path.join(fixtures, 'models/tiny-qwen3.f32.gguf');
const QWEN2 = path.join(fixtures, 'models/tiny-qwen2.f32.gguf');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-cache-'));
after(() => fs.rmSync(home, { recursive: true, force: true }));

const auth = (k) => ({ authorization: `Bearer ${k}` });
const SAVED = 'Once upon a time there was a little fox who lived in a big forest near the river';
const PROMPT = `${SAVED} and one day the fox`;

function serve(extra = [], models = ['-m', `q3=${QWEN3}`, '-m', `q2=${QWEN2}`]) {
  return startServer(['--api-key', K1, '--api-key', K2, ...extra], { models, env: { HEARTH_HOME: home } });
}

function complete(url, key, extra = {}) {
  return request(url, '/v1/completions', { headers: auth(key),
    body: { model: 'q3', prompt: PROMPT, max_tokens: 12, temperature: 0, ...extra } });
}

test('a state saved before a restart gives the same continuation; other keys cannot see it', async () => {
  let srv = await serve();
  try {
    const r = await request(srv.url, '/v1/cache', { headers: auth(K1), body: { model: 'q3', name: 'story', prompt: SAVED } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, 'story');
    assert.equal(r.json.model, 'q3');
    assert.ok(r.json.tokens > 16 && r.json.bytes > 0);
    // names are checked: no path characters
    assertError(await request(srv.url, '/v1/cache', { headers: auth(K1), body: { model: 'q3', name: '../x', prompt: SAVED } }), 400, 'name');
  } finally { await srv.stop(); }

  srv = await serve(); // a restart: only the disk remembers
  try {
    const saved = await request(srv.url, '/v1/cache/story', { method: 'GET', headers: auth(K1) });
    assert.equal(saved.status, 200, saved.text);
    const used = await complete(srv.url, K1, { cache: 'story' });
    assert.equal(used.status, 200, used.text);
    // its tokens came from the state, not from computing them (nothing else ran yet)
    assert.equal(used.json.usage.prompt_tokens_details.cached_tokens, saved.json.tokens);
    // the same request computed from scratch (another cache_salt: no in-memory prefix either)
    const plain = await complete(srv.url, K1, { cache_salt: 'fresh' });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.usage.prompt_tokens_details?.cached_tokens ?? 0, 0);
    assert.equal(used.json.choices[0].text, plain.json.choices[0].text);

    // the second key: 404 for get, delete and use; an empty list
    assertError(await request(srv.url, '/v1/cache/story', { method: 'GET', headers: auth(K2) }), 404);
    assertError(await request(srv.url, '/v1/cache/story', { method: 'DELETE', headers: auth(K2) }), 404);
    assertError(await complete(srv.url, K2, { cache: 'story' }), 404, 'cache');
    const l2 = await request(srv.url, '/v1/cache', { method: 'GET', headers: auth(K2) });
    assert.deepEqual(l2.json.data, []);
    const l1 = await request(srv.url, '/v1/cache', { method: 'GET', headers: auth(K1) });
    assert.deepEqual(l1.json.data.map((s) => s.name), ['story']);
    // without a key: 401 as every route
    assert.equal((await request(srv.url, '/v1/cache', { method: 'GET' })).status, 401);

    // a prompt that does not start with the state, and another model: 400 saying so
    const other = await request(srv.url, '/v1/completions', { headers: auth(K1),
      body: { model: 'q3', prompt: 'A different start', max_tokens: 2, cache: 'story' } });
    assertError(other, 400, 'cache');
    assert.match(other.json.error.message, /does not start with/);
    const foreign = await request(srv.url, '/v1/completions', { headers: auth(K1),
      body: { model: 'q2', prompt: PROMPT, max_tokens: 2, cache: 'story' } });
    assertError(foreign, 400, 'cache');
    assert.match(foreign.json.error.message, /saved with the model 'q3'/);

    // the owner deletes it; then it is gone
    const del = await request(srv.url, '/v1/cache/story', { method: 'DELETE', headers: auth(K1) });
    assert.equal(del.status, 200, del.text);
    assertError(await complete(srv.url, K1, { cache: 'story' }), 404, 'cache');
  } finally { await srv.stop(); }
});

test('chat messages saved as a prefix of a later conversation', async () => {
  const srv = await serve();
  try {
    const system = { role: 'system', content: 'You are a terse assistant who answers in one word.' };
    const r = await request(srv.url, '/v1/cache', { headers: auth(K1), body: { model: 'q3', name: 'sys', messages: [system] } });
    assert.equal(r.status, 200, r.text);
    const body = { model: 'q3', messages: [system, { role: 'user', content: 'Name a colour.' }], max_tokens: 8, temperature: 0 };
    const used = await request(srv.url, '/v1/chat/completions', { headers: auth(K1), body: { ...body, cache: 'sys' } });
    assert.equal(used.status, 200, used.text);
    const plain = await request(srv.url, '/v1/chat/completions', { headers: auth(K1), body: { ...body, cache_salt: 'other' } });
    assert.equal(used.json.choices[0].message.content, plain.json.choices[0].message.content);
  } finally { await srv.stop(); }
});

test('corrupt and truncated state files are refused with a clear error', async () => {
  const srv = await serve();
  try {
    for (const name of ['flip', 'cut']) {
      const r = await request(srv.url, '/v1/cache', { headers: auth(K1), body: { model: 'q3', name, prompt: SAVED } });
      assert.equal(r.status, 200, r.text);
    }
    const dir = path.join(home, 'states');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.state')).map((f) => path.join(dir, f))
      .sort((a, b) => parseInt(path.basename(a)) - parseInt(path.basename(b)));
    const [flip, cut] = files.slice(-2);
    const bytes = fs.readFileSync(flip);
    bytes[bytes.length >> 1] ^= 0x40;
    fs.writeFileSync(flip, bytes);
    fs.truncateSync(cut, fs.statSync(cut).size - 7);
    const a = await complete(srv.url, K1, { cache: 'flip' });
    assertError(a, 409, 'cache');
    assert.match(a.json.error.message, /corrupt/);
    const b = await complete(srv.url, K1, { cache: 'cut' });
    assertError(b, 409, 'cache');
    assert.match(b.json.error.message, /truncated/);
    assert.doesNotMatch(b.json.error.message, new RegExp(home)); // no server paths in replies
  } finally { await srv.stop(); }
});

test('the disk budget evicts the least recently used state', async () => {
  const ids = Array.from({ length: 40 }, (_, i) => 100 + i);
  let srv = await serve();
  let bytes;
  try {
    const r = await request(srv.url, '/v1/cache', { headers: auth(K2), body: { model: 'q3', name: 'probe', prompt: ids } });
    assert.equal(r.status, 200, r.text);
    bytes = r.json.bytes;
    await request(srv.url, '/v1/cache/probe', { method: 'DELETE', headers: auth(K2) });
  } finally { await srv.stop(); }
  // room for two states of this size (K1's earlier states are evicted first: oldest)
  srv = await serve(['--cache-budget', String(Math.floor(bytes * 2.5))]);
  try {
    for (const name of ['a', 'b', 'c']) {
      const r = await request(srv.url, '/v1/cache', { headers: auth(K2), body: { model: 'q3', name, prompt: ids } });
      assert.equal(r.status, 200, r.text);
    }
    const l = await request(srv.url, '/v1/cache', { method: 'GET', headers: auth(K2) });
    assert.deepEqual(l.json.data.map((s) => s.name), ['b', 'c']);
    // one state larger than the whole budget: 413
    const big = Array.from({ length: 200 }, (_, i) => 100 + i);
    assertError(await request(srv.url, '/v1/cache', { headers: auth(K2), body: { model: 'q3', name: 'big', prompt: big } }), 413);
  } finally { await srv.stop(); }
});
