// End-to-end tests of Ollama's API with the official `ollama` npm client, as
// tools built for Ollama use it: version, list, show, ps, chat (streamed and
// not, with format), generate (templated and raw), a model that loads on
// demand, errors in Ollama's shape, and the API key through the client's headers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startServer, fixtures, request } from './helpers.mjs';

const LLAMA = path.join(fixtures, 'models/tiny-llama3.f32.gguf');
const QWEN = path.join(fixtures, 'models/tiny-qwen2.f32.gguf');
const KEY = 'ollama-test-key-0123456789';

let srv, ollama;
before(async () => {
  srv = await startServer(['--api-key', KEY], { models: ['-m', `llama=${LLAMA}`, '-m', `qwen2:tiny=${QWEN}`] });
  ollama = new Ollama({ host: srv.url, headers: { Authorization: `Bearer ${KEY}` } });
});
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const greedy = { temperature: 0, num_predict: 8 };
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Why is the sky blue?' }];

test('version, list and show', async () => {
  assert.match((await ollama.version()).version, /^\d+\.\d+\.\d+$/);
  const { models } = await ollama.list();
  assert.deepEqual(models.map((m) => m.name), ['llama', 'qwen2:tiny']);
  const q = models[1];
  assert.equal(q.details.format, 'gguf');
  assert.equal(q.details.family, 'qwen2');
  assert.equal(q.details.quantization_level, 'F32');
  assert.match(q.details.parameter_size, /^[0-9.]+[KMB]$/);
  assert.ok(q.size > 0 && !Number.isNaN(Date.parse(q.modified_at)));
  const show = await ollama.show({ model: 'qwen2:tiny' });
  assert.equal(show.model_info['general.architecture'], 'qwen2');
  assert.ok(show.model_info['qwen2.context_length'] > 0);
  assert.equal(show.model_info['tokenizer.ggml.tokens'], null, 'arrays only when verbose');
  assert.match(show.template, /im_start/);
  assert.ok(show.capabilities.includes('completion'));
  assert.ok(Array.isArray((await ollama.show({ model: 'qwen2:tiny', verbose: true })).model_info['tokenizer.ggml.tokens']));
});

test('chat: streamed NDJSON ends with the counts, and says what the whole answer says', async () => {
  const whole = await ollama.chat({ model: 'qwen2:tiny', messages, options: greedy, stream: false });
  assert.equal(whole.done, true);
  assert.equal(whole.model, 'qwen2:tiny');
  assert.equal(whole.message.role, 'assistant');
  assert.equal(whole.eval_count, 8);
  assert.equal(whole.done_reason, 'length');
  let text = '', last, parts = 0;
  for await (const part of await ollama.chat({ model: 'qwen2:tiny', messages, options: greedy, stream: true })) {
    text += part.message.content;
    last = part;
    parts++;
  }
  assert.ok(parts >= 2);
  assert.equal(text, whole.message.content);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, 8);
  assert.ok(last.prompt_eval_count > 0 && last.total_duration > 0 && last.eval_duration >= 0);
  assert.ok(!Number.isNaN(Date.parse(last.created_at)));
});

test('chat with a JSON schema as format answers by the schema', async () => {
  const format = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false };
  const r = await ollama.chat({ model: 'qwen2:tiny', messages, format, options: { temperature: 0, num_predict: 64 },
    stream: false });
  assert.equal(typeof JSON.parse(r.message.content).ok, 'boolean', r.message.content);
});

test('generate: through the template, raw, and a model loaded on demand; ps lists the loaded', async () => {
  const before = (await ollama.ps()).models.map((m) => m.name);
  assert.ok(!before.includes('llama'));
  const g = await ollama.generate({ model: 'llama', prompt: 'Once upon a time', options: greedy, stream: false });
  assert.equal(g.done, true);
  assert.equal(typeof g.response, 'string');
  assert.ok(g.load_duration > 0, 'the first request loaded the model');
  let raw = '';
  for await (const part of await ollama.generate({ model: 'llama', prompt: 'Once upon a time', raw: true,
    options: greedy, stream: true })) raw += part.response;
  const v1 = await request(srv.url, '/v1/completions', { body: { model: 'llama', prompt: 'Once upon a time',
    max_tokens: 8, temperature: 0 }, headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(raw, v1.json.choices[0].text, 'raw generate is the plain completion');
  const ps = (await ollama.ps()).models;
  const l = ps.find((m) => m.name === 'llama');
  assert.ok(l && l.size > 0 && l.details.family === 'llama' && !Number.isNaN(Date.parse(l.expires_at)));
  // an empty prompt with keep_alive 0 unloads it (as `ollama stop` does)
  const stop = await ollama.generate({ model: 'llama', prompt: '', keep_alive: 0, stream: false });
  assert.equal(stop.done_reason, 'unload');
  let gone = false;
  for (let i = 0; i < 40 && !gone; i++) {
    gone = !(await ollama.ps()).models.some((m) => m.name === 'llama');
    if (!gone) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(gone, 'unloaded after keep_alive 0');
});

test('errors: Ollama\'s shape and status; unknown model, images, pull; the key is required', async () => {
  await assert.rejects(ollama.chat({ model: 'nope', messages }), (e) => e.status_code === 404 && /nope/.test(e.error));
  await assert.rejects(ollama.generate({ model: 'llama', prompt: 'x', images: ['aGk='] }),
    (e) => e.status_code === 400 && /images/.test(e.error));
  await assert.rejects(ollama.pull({ model: 'llama3' }), (e) => e.status_code === 403 && /--allow-pull/.test(e.error));
  await assert.rejects(new Ollama({ host: srv.url }).list(), (e) => e.status_code === 401 && typeof e.error === 'string');
  const r = await request(srv.url, '/api/chat', { body: { model: 'llama', messages, options: { num_predict: 'x' } },
    headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 400);
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.equal(typeof r.json.error, 'string');
});
