// End-to-end tests of POST /v1/attribute (docs/API.md): the completion's log-probability against
// /v1/score's, strings against token ids, integrated gradients, chat messages, the errors (fields, length,
// steps, the key), gemma and a mixture of experts, and attributions beside other requests. Raw HTTP only.
// That the scores are the library's hearth_attribute is tests/unit/test-attribute-http.c's job.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, assertError, fixtures, MODEL, sleep } from './helpers.mjs';

const KEY = 'attribute-e2e-key-0123456789';
const LLAMA = path.join(fixtures, 'models/tiny-llama-spm.f32.gguf');
const GEMMA = path.join(fixtures, 'models/tiny-gemma3.f32.gguf');
const MOE = path.join(fixtures, 'models/tiny-qwen3moe.f32.gguf');
const CTX = 256;
// the trainer's pass (f32, its own kernels) against the decoding path's log-softmax: measured 2.5e-5
// (qwen) and 3.6e-5 (llama) relative on these models; the bound leaves room
const LP_TOL = 1e-4;

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-attribute-')); // the usage record's
const T0 = Math.floor(Date.now() / 1000) - 1;
let srv;
before(async () => {
  srv = await startServer(['--api-key', KEY, '-c', String(CTX), '--parallel', '2'],
    { models: ['-m', `qwen=${MODEL}`, '-m', `llama=${LLAMA}`, '-m', `gemma=${GEMMA}`, '-m', `moe=${MOE}`,
      '-m', `metered=${MODEL}`], env: { HEARTH_HOME: home } });
});
after(async () => {
  const { code } = await srv.stop();
  fs.rmSync(home, { recursive: true, force: true });
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const auth = { authorization: `Bearer ${KEY}` };
const post = (p, body, headers = auth) => request(srv.url, p, { body, headers });
const near = (a, b, tol) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
const PROMPT = 'Once upon a time, there was a little';
const COMPLETION = ' girl named Lily.';

function checkShape(j, model, method, nPrompt) {
  assert.equal(j.object, 'attribution');
  assert.equal(j.model, model);
  assert.equal(j.method, method);
  assert.equal(j.tokens.length, nPrompt);
  for (const t of j.tokens) {
    assert.ok(Number.isInteger(t.id) && typeof t.token === 'string' && Number.isFinite(t.score), JSON.stringify(t));
  }
  assert.ok(Number.isFinite(j.completion_logprob) && j.completion_logprob < 0);
  assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
}

for (const model of ['qwen', 'llama']) {
  test(`${model}: completion_logprob is /v1/score's total_logprob; ids give what strings give`, async () => {
    const a = await post('/v1/attribute', { model, prompt: PROMPT, completion: COMPLETION });
    assert.equal(a.status, 200, a.text);
    const s = await post('/v1/score', { model, prompt: PROMPT, completion: COMPLETION });
    assert.equal(s.status, 200, s.text);
    checkShape(a.json, model, 'gradient_x_input', s.json.usage.prompt_tokens);
    assert.deepEqual(a.json.usage, s.json.usage);
    const rel = Math.abs(a.json.completion_logprob - s.json.total_logprob) / Math.abs(s.json.total_logprob);
    console.log(`    ${model}: completion_logprob ${a.json.completion_logprob}, total_logprob ${s.json.total_logprob}, ` +
      `relative difference ${rel.toExponential(2)}`);
    assert.ok(near(a.json.completion_logprob, s.json.total_logprob, LP_TOL));
    assert.ok(a.json.tokens.some((t) => t.score !== 0));
    // the same tokens as arrays of ids: the same numbers
    const ids = await post('/v1/attribute', { model, prompt: a.json.tokens.map((t) => t.id),
      completion: s.json.tokens.map((t) => t.id) });
    assert.equal(ids.status, 200, ids.text);
    assert.deepEqual(ids.json, a.json);
  });
}

test('integrated gradients: steps default to 16, change the scores, keep the log-probability', async () => {
  const g = (await post('/v1/attribute', { model: 'qwen', prompt: PROMPT, completion: COMPLETION })).json;
  const d = await post('/v1/attribute', { model: 'qwen', prompt: PROMPT, completion: COMPLETION,
    method: 'integrated_gradients' });
  assert.equal(d.status, 200, d.text);
  checkShape(d.json, 'qwen', 'integrated_gradients', g.tokens.length);
  assert.equal(d.json.steps, 16);
  assert.equal(d.json.completion_logprob, g.completion_logprob);
  assert.notDeepEqual(d.json.tokens.map((t) => t.score), g.tokens.map((t) => t.score));
  const one = await post('/v1/attribute', { model: 'qwen', prompt: PROMPT, completion: COMPLETION,
    method: 'integrated_gradients', steps: 1 });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.steps, 1);
  assert.notDeepEqual(one.json.tokens, d.json.tokens);
  assert.ok(!('steps' in g));
});

test('messages: the chat prompt with its generation prompt, as /v1/chat/completions reads it', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story' }];
  const a = await post('/v1/attribute', { model: 'qwen', messages, completion: 'Once upon a time' });
  assert.equal(a.status, 200, a.text);
  const c = await post('/v1/chat/completions', { model: 'qwen', messages, max_tokens: 1 });
  assert.equal(c.status, 200, c.text);
  assert.equal(a.json.usage.prompt_tokens, c.json.usage.prompt_tokens);
  checkShape(a.json, 'qwen', 'gradient_x_input', c.json.usage.prompt_tokens);
  // the same prompt as ids: the same numbers
  const ids = await post('/v1/attribute', { model: 'qwen', prompt: a.json.tokens.map((t) => t.id),
    completion: 'Once upon a time' });
  assert.equal(ids.status, 200, ids.text);
  assert.deepEqual(ids.json.tokens, a.json.tokens);
  assert.equal(ids.json.completion_logprob, a.json.completion_logprob);
});

test('errors: fields, length, steps', async () => {
  const base = { model: 'qwen', prompt: PROMPT, completion: COMPLETION };
  assertError(await post('/v1/attribute', { model: 'qwen', completion: COMPLETION }), 400, 'prompt');
  assertError(await post('/v1/attribute', { model: 'qwen', prompt: PROMPT }), 400, 'completion');
  assertError(await post('/v1/attribute', { ...base, completion: '' }), 400, 'completion');
  assertError(await post('/v1/attribute', { ...base, prompt: [] }), 400, 'prompt');
  assertError(await post('/v1/attribute', { ...base, prompt: 7 }), 400, 'prompt');
  assertError(await post('/v1/attribute', { ...base, completion: [1, -1] }), 400, 'completion');
  assertError(await post('/v1/attribute', { ...base, messages: [{ role: 'user', content: 'x' }] }), 400, 'messages');
  assertError(await post('/v1/attribute', { ...base, method: 'saliency' }), 400, 'method');
  assertError(await post('/v1/attribute', { ...base, steps: 8 }), 400, 'steps'); // steps without integrated gradients
  for (const steps of [0, 65, 2.5, '8']) {
    assertError(await post('/v1/attribute', { ...base, method: 'integrated_gradients', steps }), 400, 'steps');
  }
  assert.equal((await post('/v1/attribute', { ...base, method: 'integrated_gradients', steps: 64,
    prompt: [1, 2], completion: [3] })).status, 200);
  // CTX - 1 tokens together pass (as on /v1/score), one more does not, and the message names the limit
  const prompt = Array.from({ length: CTX - 4 }, (_, i) => 100 + i);
  assert.equal((await post('/v1/attribute', { model: 'qwen', prompt, completion: [5, 6, 7] })).status, 200);
  const long = await post('/v1/attribute', { model: 'qwen', prompt, completion: [5, 6, 7, 8] });
  assertError(long, 400, 'completion');
  assert.equal(long.json.error.code, 'context_length_exceeded');
  assert.match(long.json.error.message, new RegExp(`at most ${CTX - 1} tokens`));
});

test('gemma (GeGLU, post-norms, windows) and a mixture of experts: the log-probability is /v1/score\'s', async () => {
  for (const model of ['gemma', 'moe']) {
    const a = await post('/v1/attribute', { model, prompt: PROMPT, completion: COMPLETION });
    assert.equal(a.status, 200, a.text);
    const s = await post('/v1/score', { model, prompt: PROMPT, completion: COMPLETION });
    assert.equal(s.status, 200, s.text);
    checkShape(a.json, model, 'gradient_x_input', s.json.usage.prompt_tokens);
    assert.ok(near(a.json.completion_logprob, s.json.total_logprob, LP_TOL),
      `${model}: ${a.json.completion_logprob} vs ${s.json.total_logprob}`);
  }
});

test('the API key is checked', async () => {
  const body = { model: 'qwen', prompt: PROMPT, completion: COMPLETION };
  assertError(await post('/v1/attribute', body, {}), 401);
  assertError(await post('/v1/attribute', body, { authorization: 'Bearer wrong-key-0123456789' }), 401);
});

test('attributions beside each other and beside generation', async () => {
  const body = { model: 'qwen', prompt: PROMPT, completion: COMPLETION, method: 'integrated_gradients', steps: 4 };
  const [a, b, c, d] = await Promise.all([
    post('/v1/attribute', body), post('/v1/attribute', body), post('/v1/attribute', { ...body, model: 'llama' }),
    post('/v1/completions', { model: 'qwen', prompt: 'Once', max_tokens: 4, temperature: 0 })]);
  for (const r of [a, b, c, d]) assert.equal(r.status, 200, r.text);
  assert.deepEqual(a.json, b.json);
});

test('attributions are recorded in the usage per key, as their replies count them', async () => {
  let input = 0, output = 0;
  for (const body of [{ prompt: PROMPT, completion: COMPLETION }, { prompt: [1, 2, 3], completion: [4, 5] }]) {
    const r = await post('/v1/attribute', { model: 'metered', ...body });
    assert.equal(r.status, 200, r.text);
    input += r.json.usage.prompt_tokens;
    output += r.json.usage.completion_tokens;
  }
  assertError(await post('/v1/attribute', { model: 'metered', prompt: PROMPT }), 400); // not recorded
  let got = null;
  for (let i = 0; i < 100; i++) { // rows reach the record a moment after the reply
    const r = await request(srv.url, `/v1/organization/usage/completions?start_time=${T0}&bucket_width=1d&group_by=model`,
      { method: 'GET', headers: auth });
    assert.equal(r.status, 200, r.text);
    got = r.json.data.flatMap((b) => b.results).find((x) => x.model === 'metered');
    if (got?.num_model_requests >= 2) break;
    await sleep(50);
  }
  assert.ok(got, 'a row for the model');
  assert.equal(got.num_model_requests, 2);
  assert.equal(got.input_tokens, input);
  assert.equal(got.output_tokens, output);
});
