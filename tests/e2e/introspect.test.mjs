// End-to-end tests of issue 16's opt-in fields where they were missing:
// "hidden_states" with "stream": true (the streamed pieces, concatenated, are
// the non-streamed answer byte for byte), and logprobs / uncertainty on the
// Ollama routes (/api/generate, /api/chat; Ollama 0.12's "logprobs" shape),
// streamed and not, equal to what /v1/chat/completions reports. Raw HTTP only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, request, assertError, MODEL } from './helpers.mjs';

let srv;
before(async () => { srv = await startServer(['--parallel', '2', '-c', '256'], { models: ['-m', `tiny=${MODEL}`] }); });
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const post = (p, body) => request(srv.url, p, { body });

// The JSON events of a streamed reply (SSE "data: {...}" lines, or NDJSON lines).
async function events(p, body) {
  const r = await fetch(srv.url + p, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  const out = [];
  for (const line of (await r.text()).split('\n')) {
    if (line.startsWith('data: {')) out.push(JSON.parse(line.slice(6)));
    else if (line.startsWith('{')) out.push(JSON.parse(line));
  }
  return out;
}

// The hidden_states pieces of a streamed choice, joined along the positions.
function joinHidden(chunks) {
  const hs = chunks.map((c) => c.choices[0]?.hidden_states).filter(Boolean);
  assert.ok(hs.length > 0, 'no chunk carried hidden_states');
  const L = hs[0].shape[0], E = hs[0].shape[2], w = hs[0].dtype === 'f16' ? 2 : 4;
  let next = hs[0].first_position, n = 0;
  const layers = Array.from({ length: L }, () => []);
  const lens = hs[0].logit_lens ? Array.from({ length: L }, () => []) : null;
  for (const h of hs) {
    assert.equal(h.first_position, next, 'pieces follow each other');
    assert.equal(h.shape[0], L);
    assert.equal(h.shape[2], E);
    const b = Buffer.from(h.data, 'base64'), per = h.shape[1] * E * w;
    assert.equal(b.length, L * per);
    for (let k = 0; k < L; k++) {
      layers[k].push(b.subarray(k * per, (k + 1) * per));
      if (lens) lens[k].push(...h.logit_lens[k]);
    }
    next += h.shape[1];
    n += h.shape[1];
  }
  return { first: hs[0].first_position, shape: [L, n, E], data: Buffer.concat(layers.flat()).toString('base64'),
    lens, n_pieces: hs.length };
}

const HIDDEN_CASES = [
  { layers: [0, -1] },
  { layers: [-1], tokens: 'generated', dtype: 'f16' },
  { layers: [1], tokens: 'prompt' },
  { layers: [0, -1], logit_lens: 2 },
];

test('hidden_states streamed: the pieces joined are the non-streamed answer, byte for byte', async () => {
  for (const hidden_states of HIDDEN_CASES) {
    const body = { prompt: 'Once upon a time', max_tokens: 5, temperature: 0, ignore_eos: true, hidden_states };
    const whole = await post('/v1/completions', body);
    assert.equal(whole.status, 200, whole.text);
    const h = whole.json.choices[0].hidden_states;
    const chunks = await events('/v1/completions', { ...body, stream: true });
    const j = joinHidden(chunks);
    assert.equal(j.first, h.first_position, JSON.stringify(hidden_states));
    assert.deepEqual(j.shape, h.shape);
    assert.equal(j.data, h.data);
    if (hidden_states.logit_lens) assert.deepEqual(j.lens, h.logit_lens);
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), whole.json.choices[0].text);
    // the prompt comes with the first token; each later token brings one position
    if (!hidden_states.tokens) {
      const nP = whole.json.usage.prompt_tokens;
      const first = chunks.find((c) => c.choices[0]?.hidden_states).choices[0];
      assert.deepEqual(first.hidden_states.shape.slice(0, 2), [2, nP]);
      assert.equal(j.n_pieces, 1 + 4); // 5 tokens: the prompt, then one position for each of the 4 after the first
    }
  }
});

test('hidden_states streamed on chat, with a stop string and several choices', async () => {
  const body = { messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 6, temperature: 0, n: 2,
    hidden_states: { layers: [-1] } };
  const whole = await post('/v1/chat/completions', body);
  assert.equal(whole.status, 200, whole.text);
  const chunks = await events('/v1/chat/completions', { ...body, stream: true });
  for (const i of [0, 1]) {
    const mine = chunks.map((c) => ({ choices: c.choices.filter((x) => x.index === i) }));
    const j = joinHidden(mine);
    const h = whole.json.choices[i].hidden_states;
    assert.deepEqual(j.shape, h.shape);
    assert.equal(j.data, h.data);
  }
  // a stop string cutting the text: the states are those the request computed, as without streaming
  const text = whole.json.choices[0].message.content;
  if (text.length > 2) {
    const stop = { ...body, n: 1, stop: [text.slice(1, 3)] };
    const w2 = (await post('/v1/chat/completions', stop)).json.choices[0].hidden_states;
    const j2 = joinHidden(await events('/v1/chat/completions', { ...stop, stream: true }));
    assert.deepEqual(j2.shape, w2.shape);
    assert.equal(j2.data, w2.data);
  }
  assertError(await post('/v1/completions', { prompt: 'x', stream: true, hidden_states: { layers: [99] } }), 400,
    'hidden_states');
});

// ---- Ollama: logprobs and uncertainty ----

const msgs = [{ role: 'user', content: 'Tell me a story' }];

// What /v1/chat/completions reports for the same conversation (the reference).
async function openaiEntries(extra) {
  const r = await post('/v1/chat/completions', { messages: msgs, temperature: 0, max_tokens: 8, ...extra });
  assert.equal(r.status, 200, r.text);
  return { text: r.json.choices[0].message.content, lp: r.json.choices[0].logprobs?.content,
    unc: r.json.choices[0].uncertainty?.content };
}

test('ollama chat: logprobs and top_logprobs in Ollama\'s shape, streamed and not, as OpenAI\'s', async () => {
  const ref = await openaiEntries({ logprobs: true, top_logprobs: 3, uncertainty: true });
  const body = { model: 'tiny', messages: msgs, options: { temperature: 0, num_predict: 8 }, logprobs: true, top_logprobs: 3,
    uncertainty: true };
  const one = await post('/api/chat', { ...body, stream: false });
  assert.equal(one.status, 200, one.text);
  const lps = one.json.logprobs;
  assert.equal(one.json.message.content, ref.text);
  assert.equal(lps.length, ref.lp.length);
  for (let i = 0; i < lps.length; i++) {
    assert.equal(lps[i].token, ref.lp[i].token);
    assert.equal(lps[i].logprob, ref.lp[i].logprob);
    assert.deepEqual(lps[i].bytes, ref.lp[i].bytes);
    assert.deepEqual(lps[i].top_logprobs, ref.lp[i].top_logprobs);
    assert.equal(lps[i].entropy, ref.lp[i].entropy);
    assert.equal(lps[i].rank, ref.lp[i].rank);
  }
  const lines = await events('/api/chat', body);
  assert.equal(lines.at(-1).done, true);
  const streamed = lines.flatMap((l) => l.logprobs ?? []);
  assert.deepEqual(streamed, lps);
  assert.equal(lines.map((l) => l.message?.content ?? '').join(''), ref.text);
  // logprobs without top_logprobs: no alternatives; without uncertainty: no entropy
  const plain = (await post('/api/chat', { ...body, stream: false, top_logprobs: undefined, uncertainty: undefined })).json;
  assert.ok(plain.logprobs.every((e) => !('entropy' in e) && !('top_logprobs' in e)), JSON.stringify(plain.logprobs));
  assert.deepEqual(plain.logprobs.map((e) => e.logprob), lps.map((e) => e.logprob));
  // not asked: absent
  const none = (await post('/api/chat', { ...body, stream: false, logprobs: undefined, top_logprobs: undefined,
    uncertainty: undefined })).json;
  assert.ok(!('logprobs' in none) && !('uncertainty' in none));
});

test('ollama generate: uncertainty alone, streamed and not; bad fields are 400s', async () => {
  const ref = await openaiEntries({ uncertainty: true });
  const body = { model: 'tiny', prompt: 'Tell me a story', options: { temperature: 0, num_predict: 8 }, uncertainty: true };
  const one = await post('/api/generate', { ...body, stream: false });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.response, ref.text);
  assert.deepEqual(one.json.uncertainty, ref.unc);
  assert.ok(!('logprobs' in one.json));
  const lines = await events('/api/generate', body);
  assert.deepEqual(lines.flatMap((l) => l.uncertainty ?? []), ref.unc);
  const gl = await post('/api/generate', { ...body, stream: false, logprobs: true, uncertainty: false });
  assert.equal(gl.json.logprobs.length, ref.unc.length);
  for (const [f, v] of [['logprobs', 'yes'], ['top_logprobs', 21], ['uncertainty', 1]]) {
    const r = await post('/api/generate', { ...body, stream: false, ...(f === 'top_logprobs' ? { logprobs: true } : {}),
      [f]: v });
    assert.equal(r.status, 400, `${f}: ${r.text}`);
    assert.equal(typeof r.json.error, 'string');
  }
});
