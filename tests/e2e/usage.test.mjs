// End-to-end tests of usage per key (README "Usage, quotas and cost"; docs/API.md):
// traffic from two keys through every metered route and two model names, then
// the usage API's totals against the sums of the `usage` fields the clients
// received, per key and model, also after a restart and after a kill -9; a key
// that is not an admin sees only its own rows; quotas answer 429 exactly at the
// limit with Retry-After; /metrics has the counters labelled by key and model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, MODEL, hasPromtool, sleep } from './helpers.mjs';

const KEYS = { alice: 'sk-alice-0123456789abcdef', bob: 'sk-bob-0123456789abcdef', ops: 'sk-ops-0123456789abcdef' };
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-usage-'));
const keyFile = path.join(home, 'keys.txt');
const priceFile = path.join(home, 'prices.txt');
const T0 = Math.floor(Date.now() / 1000) - 1;
fs.writeFileSync(keyFile, `# usage test keys\nalice ${KEYS.alice}\nbob ${KEYS.bob}\nops ${KEYS.ops} admin\n`);
fs.writeFileSync(priceFile, 'a 2.00 1.00 8.00\n* 1.00 - 4.00\n');

const args = ['--api-key-file', keyFile, '--price', priceFile, '--cost-core-hour', '0.04', '--usage-sample-s', '0.2',
  '--parallel', '4', '-c', '512'];
const models = ['-m', `a=${MODEL}`, '-m', `b=${MODEL}`];
const env = { HEARTH_HOME: home };
let srv;
const start = () => startServer(args, { models, env });
before(async () => { srv = await start(); });
after(async () => {
  const { code } = await srv.stop();
  fs.rmSync(home, { recursive: true, force: true });
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const auth = (who) => ({ authorization: `Bearer ${KEYS[who]}` });
const post = (who, p, body) => request(srv.url, p, { body, headers: auth(who) });
const get = (who, p) => request(srv.url, p, { method: 'GET', headers: auth(who) });

// what each client was told, per "key/model"
const told = {};
function add(who, model, input, output, cached = 0) {
  const t = (told[`${who}/${model}`] ??= { input: 0, output: 0, cached: 0, requests: 0 });
  t.input += input;
  t.output += output;
  t.cached += cached;
  t.requests++;
}

async function sse(who, p, body) {
  const r = await fetch(srv.url + p, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(who) },
    body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  let usage = null;
  for (const line of (await r.text()).split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const j = JSON.parse(line.slice(6));
    if (j.usage) usage = j.usage;
  }
  return usage;
}

async function ndjson(who, p, body) {
  const r = await fetch(srv.url + p, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(who) },
    body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
  return lines.at(-1);
}

async function traffic(who, model, i) {
  const messages = [{ role: 'user', content: `Tell ${who} a fact number ${i}.` }];
  let r = await post(who, '/v1/chat/completions', { model, messages, max_tokens: 6 });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.usage.prompt_tokens, r.json.usage.completion_tokens, r.json.usage.prompt_tokens_details.cached_tokens);
  const u = await sse(who, '/v1/chat/completions', { model, messages, max_tokens: 5, stream: true,
    stream_options: { include_usage: true } });
  add(who, model, u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details?.cached_tokens ?? 0);
  r = await post(who, '/v1/completions', { model, prompt: `Once upon a time ${i}`, max_tokens: 4, n: 2 });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.usage.prompt_tokens, r.json.usage.completion_tokens, r.json.usage.prompt_tokens_details.cached_tokens);
  r = await post(who, '/api/chat', { model, messages, stream: false, options: { num_predict: 3 } });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.prompt_eval_count, r.json.eval_count);
  const last = await ndjson(who, '/api/generate', { model, prompt: `hello ${i}`, options: { num_predict: 4 } });
  add(who, model, last.prompt_eval_count, last.eval_count);
  r = await post(who, '/v1/embeddings', { model, input: ['one fish', `two fish ${i}`] });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.usage.prompt_tokens, 0);
  r = await post(who, '/v1/score', { model, prompt: 'The sky is', completion: ' blue' });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.usage.prompt_tokens, r.json.usage.completion_tokens);
  r = await post(who, '/v1/rerank', { model, query: 'fish', documents: ['a fish', 'a bird'] });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.usage.prompt_tokens, 0);
  r = await post(who, '/v1/cache', { model, name: `state-${i}`, prompt: `A saved prompt ${i}` });
  assert.equal(r.status, 200, r.text);
  add(who, model, r.json.tokens, 0);
}

// The usage API's results summed per "key/model" (over every bucket).
async function recorded(who, query = 'group_by=api_key_id&group_by=model') {
  const r = await get(who, `/v1/organization/usage/completions?start_time=${T0}&bucket_width=1d&limit=2&${query}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'page');
  const sums = {};
  for (const b of r.json.data) {
    assert.equal(b.object, 'bucket');
    assert.equal(b.end_time - b.start_time, 86400);
    for (const x of b.results) {
      assert.equal(x.object, 'organization.usage.completions.result');
      assert.ok(x.cpu_seconds >= 0);
      const s = (sums[`${x.api_key_id}/${x.model}`] ??= { input: 0, output: 0, cached: 0, requests: 0 });
      s.input += x.input_tokens;
      s.output += x.output_tokens;
      s.cached += x.input_cached_tokens;
      s.requests += x.num_model_requests;
    }
  }
  return sums;
}

// Rows reach the database a moment after the reply: wait until they are all in.
async function settled(who, want) {
  let got;
  for (let i = 0; i < 100; i++) {
    got = await recorded(who);
    const n = Object.values(got).reduce((a, s) => a + s.requests, 0);
    if (n >= want) break;
    await sleep(50);
  }
  return got;
}

function assertTotals(got, keys) {
  const want = Object.fromEntries(Object.entries(told).filter(([k]) => keys.includes(k.split('/')[0])));
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
  for (const [k, w] of Object.entries(want)) {
    assert.equal(got[k].input, w.input, `${k} input`);
    assert.equal(got[k].output, w.output, `${k} output`);
    assert.equal(got[k].requests, w.requests, `${k} requests`);
    // Ollama's replies do not say what was cached: at least what OpenAI's did
    assert.ok(got[k].cached >= w.cached && got[k].cached <= got[k].input, `${k} cached`);
  }
}

const nRequests = () => Object.values(told).reduce((a, s) => a + s.requests, 0);

test('totals equal what the clients were told, per key and model; after a restart and a kill -9 too', async () => {
  await Promise.all([traffic('alice', 'a', 0), traffic('bob', 'b', 0)]);
  await traffic('alice', 'b', 1);
  await traffic('bob', 'a', 1);
  assertTotals(await settled('ops', nRequests()), ['alice', 'bob']);

  // a key that is not an admin sees its own rows only, whatever it asks
  const mine = await recorded('alice');
  assertTotals(mine, ['alice']);
  const onlyBob = await recorded('alice', 'group_by=api_key_id&api_key_ids=bob');
  assert.deepEqual(onlyBob, {});
  const s = await get('alice', '/v1/hearth/usage/samples');
  assert.equal(s.status, 403);

  // /metrics: the same totals, labelled by key and model
  const m = (await get('ops', '/metrics')).text;
  for (const [k, w] of Object.entries(told)) {
    const [key, model] = k.split('/');
    const line = (name) => Number(m.match(new RegExp(`^${name}\\{key="${key}",model="${model}"\\} (\\S+)$`, 'm'))?.[1]);
    assert.equal(line('hearth_usage_prompt_tokens_total'), w.input, k);
    assert.equal(line('hearth_usage_completion_tokens_total'), w.output, k);
    assert.equal(line('hearth_usage_requests_total'), w.requests, k);
  }
  if (hasPromtool()) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' });
    // exit 1 is a parse error; 3 lint findings, which may only be the colons of vLLM's names
    assert.ok(r.status === 0 || r.status === 3, `promtool exit ${r.status}: ${r.stderr}${r.stdout}`);
    const problems = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() && !l.includes("should not contain ':'"));
    assert.deepEqual(problems, []);
  }

  // a restart: the same totals from the database
  const stopped = await srv.stop();
  assert.equal(stopped.code, 0, srv.log());
  srv = await start();
  assertTotals(await recorded('ops'), ['alice', 'bob']);

  // more traffic, read back (so committed), then kill -9: nothing committed is lost
  await traffic('bob', 'b', 2);
  assertTotals(await settled('ops', nRequests()), ['alice', 'bob']);
  srv.proc.kill('SIGKILL');
  await srv.exited;
  srv = await start();
  assertTotals(await recorded('ops'), ['alice', 'bob']);
});

const hasSqlite = spawnSync('sqlite3', ['-version']).status === 0;
test('a request the client abandons is recorded with what it computed', { skip: !hasSqlite && 'sqlite3 not installed' }, async () => {
  const ac = new AbortController();
  const r = await fetch(srv.url + '/v1/completions', { method: 'POST', signal: ac.signal,
    headers: { 'content-type': 'application/json', ...auth('bob') },
    body: JSON.stringify({ model: 'a', prompt: 'abandoned story', max_tokens: 400, ignore_eos: true, stream: true }) });
  const reader = r.body.getReader();
  for (let got = 0; got < 3;) got += (await reader.read()).value ? 1 : 0; // a few chunks in
  ac.abort();
  const q = (sql) => spawnSync('sqlite3', [path.join(home, 'usage.db'), sql], { encoding: 'utf8' }).stdout.trim();
  let row = '';
  for (let i = 0; i < 100 && !row; i++, await sleep(50))
    row = q("SELECT finish, completion, route FROM requests WHERE key = 'bob' AND finish = 'abort'");
  const [finish, completion, route] = row.split('|');
  assert.equal(finish, 'abort');
  assert.ok(Number(completion) >= 1 && Number(completion) < 400, `completion ${completion}`);
  assert.equal(route, 'completions');
  // the key itself is nowhere in the file, only its name
  assert.ok(!fs.readFileSync(path.join(home, 'usage.db')).includes(KEYS.bob));
});

test('cost, latency and samples for the admin page', async () => {
  const c = await get('ops', `/v1/hearth/usage/cost?start_time=${T0}`);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.here_basis, 'cpu_core_hour');
  const a = c.json.data.find((r) => r.api_key_id === 'alice' && r.model === 'a');
  const b = c.json.data.find((r) => r.api_key_id === 'alice' && r.model === 'b');
  const apiA = ((a.input_tokens - a.input_cached_tokens) * 2 + a.input_cached_tokens * 1 + a.output_tokens * 8) / 1e6;
  const apiB = ((b.input_tokens - b.input_cached_tokens) * 1 + b.input_cached_tokens * 1 + b.output_tokens * 4) / 1e6;
  assert.ok(Math.abs(a.api_cost - apiA) < 1e-12 && Math.abs(b.api_cost - apiB) < 1e-12);
  assert.ok(Math.abs(a.here_cost - a.cpu_seconds / 3600 * 0.04) < 1e-12);
  assert.ok(c.json.api_cost > 0 && c.json.api_priced_all === true);

  const l = await get('ops', `/v1/hearth/usage/latency?start_time=${T0}&bucket_width=1h&limit=2`);
  assert.equal(l.status, 200, l.text);
  const busy = l.json.data.filter((x) => x.requests > 0);
  assert.ok(busy.length >= 1);
  assert.ok(busy[0].ttft_s.p50 > 0 && busy[0].ttft_s.p99 >= busy[0].ttft_s.p50);
  assert.ok(busy[0].inter_token_s.p50 > 0);

  await sleep(500); // a few samples of the loaded models
  const s = await get('ops', `/v1/hearth/usage/samples?start_time=${T0}`);
  assert.equal(s.status, 200, s.text);
  assert.ok(s.json.data.length >= 1);
  assert.ok(s.json.data.every((x) => ['a', 'b'].includes(x.model) && x.kv_use >= 0 && x.kv_use <= 1));

  const bad = await get('ops', '/v1/organization/usage/completions?bucket_width=1w');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'bucket_width');
});

test('quotas: 429 exactly at the limit, with Retry-After and the limit named', async () => {
  const qhome = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-quota-'));
  const qkeys = path.join(qhome, 'keys.txt');
  fs.writeFileSync(qkeys, `minute sk-minute-0123456789 rpm=3\nday16 sk-day16-0123456789 tpd=16\n` +
    `day17 sk-day17-0123456789 tpd=17\n`);
  const q = await startServer(['--api-key-file', qkeys], { env: { HEARTH_HOME: qhome } });
  const call = (key, p = '/v1/completions', body = { prompt: [1, 2, 3], max_tokens: 5, ignore_eos: true }) =>
    request(q.url, p, { body, headers: { authorization: `Bearer ${key}` } });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await call('sk-minute-0123456789')).status, 200);
    let r = await call('sk-minute-0123456789', '/api/generate', { prompt: 'x', stream: false, options: { num_predict: 1 } });
    assert.equal(r.status, 429, r.text);
    assert.match(r.json.error, /3 requests per minute/);
    r = await call('sk-minute-0123456789');
    assert.equal(r.status, 429);
    assert.match(r.json.error.message, /'minute'.*rpm/);
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
    assert.equal((await request(q.url, '/v1/models', { method: 'GET', headers: { authorization: 'Bearer sk-minute-0123456789' } })).status,
      200, 'only metered routes count');

    // 8 tokens a request (3 prompt ids + 5 generated): at 16 the limit is reached, at 17 not yet
    for (const key of ['sk-day16-0123456789', 'sk-day17-0123456789'])
      for (let i = 0; i < 2; i++) {
        r = await call(key);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.usage.total_tokens, 8);
      }
    r = await call('sk-day16-0123456789');
    assert.equal(r.status, 429);
    assert.equal(r.json.error.code, 'tokens_per_day_exceeded');
    assert.match(r.json.error.message, /16 tokens per day/);
    assert.ok(Number(r.headers.get('retry-after')) >= 1 && Number(r.headers.get('retry-after')) <= 86400);
    assert.equal((await call('sk-day17-0123456789')).status, 200);
    assert.equal((await call('sk-day17-0123456789')).status, 429);

    const m = (await request(q.url, '/metrics', { method: 'GET', headers: { authorization: 'Bearer sk-day16-0123456789' } })).text;
    assert.match(m, /^hearth_usage_quota_refusals_total\{limit="rpm"\} 2$/m);
    assert.match(m, /^hearth_usage_quota_refusals_total\{limit="tpd"\} 2$/m);
  } finally {
    const { code } = await q.stop();
    fs.rmSync(qhome, { recursive: true, force: true });
    assert.equal(code, 0, `server exit code ${code}\n${q.log()}`);
  }
});
