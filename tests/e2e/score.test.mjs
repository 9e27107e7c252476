// End-to-end tests of per-token uncertainty (entropy, rank), /v1/score and
// echo with logprobs on /v1/completions (docs/API.md). Raw HTTP only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, request, assertError, fixtures } from './helpers.mjs';

let srv;
const CTX = 256;
before(async () => { srv = await startServer(['--parallel', '2', '-c', String(CTX)]); });
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const post = (p, body) => request(srv.url, p, { body });
const close = (a, b, tol = 1e-4) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
const N_VOCAB_MAX = 1 << 20;

// The choices of a streamed reply, gathered: text, chat logprobs entries, completions logprobs arrays, uncertainty.
async function streamed(p, body) {
  const r = await fetch(srv.url + p, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(r.status, 200);
  const text = await r.text();
  const out = { text: '', content: [], unc: [], tokens: [], lps: [], ents: [], ranks: [] };
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    for (const c of JSON.parse(line.slice(6)).choices) {
      out.text += c.delta?.content ?? c.text ?? '';
      if (c.logprobs?.content) out.content.push(...c.logprobs.content);
      if (c.logprobs?.tokens) {
        out.tokens.push(...c.logprobs.tokens);
        out.lps.push(...c.logprobs.token_logprobs);
        out.ents.push(...(c.logprobs.token_entropies ?? []));
        out.ranks.push(...(c.logprobs.token_ranks ?? []));
      }
      if (c.uncertainty?.content) out.unc.push(...c.uncertainty.content);
    }
  }
  return out;
}

const chatBody = (extra = {}) => ({ messages: [{ role: 'user', content: 'Tell me a story' }], temperature: 0,
  max_tokens: 8, ...extra });

test('uncertainty is absent unless asked', async () => {
  const c = (await post('/v1/chat/completions', chatBody({ logprobs: true, top_logprobs: 2 }))).json;
  for (const e of c.choices[0].logprobs.content) {
    assert.ok(!('entropy' in e) && !('rank' in e));
  }
  assert.ok(!('uncertainty' in c.choices[0]));
  const d = (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 4, temperature: 0, logprobs: 1 })).json;
  assert.ok(!('token_entropies' in d.choices[0].logprobs) && !('token_ranks' in d.choices[0].logprobs));
  const e = (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 4, temperature: 0 })).json;
  assert.equal(e.choices[0].logprobs, null);
  assert.ok(!('uncertainty' in e.choices[0]));
  assertError(await post('/v1/chat/completions', chatBody({ uncertainty: 'yes' })), 400, 'uncertainty');
});

test('greedy tokens have rank 1; entropy bounded by what top_logprobs show', async () => {
  const c = (await post('/v1/chat/completions', chatBody({ logprobs: true, top_logprobs: 20, uncertainty: true }))).json;
  const content = c.choices[0].logprobs.content;
  assert.equal(content.length, 8);
  for (const e of content) {
    assert.equal(e.rank, 1);
    assert.ok(close(e.logprob, e.top_logprobs[0].logprob));
    // H = -sum p ln p: at least the top 20's share of the sum, at least -ln p_max, at most ln |V|
    const partial = e.top_logprobs.reduce((s, t) => s - Math.exp(t.logprob) * t.logprob, 0);
    assert.ok(e.entropy >= partial - 1e-4, `${e.entropy} >= ${partial}`);
    assert.ok(e.entropy >= -e.top_logprobs[0].logprob - 1e-4);
    assert.ok(e.entropy > 0 && e.entropy <= Math.log(N_VOCAB_MAX));
  }
  // without logprobs: the same numbers beside
  const u = (await post('/v1/chat/completions', chatBody({ uncertainty: true }))).json;
  assert.equal(u.choices[0].logprobs, null);
  const unc = u.choices[0].uncertainty.content;
  assert.deepEqual(unc.map((e) => [e.token, e.entropy, e.rank]), content.map((e) => [e.token, e.entropy, e.rank]));
});

test('sampled tokens: rank is the place in top_logprobs', async () => {
  const c = (await post('/v1/chat/completions', chatBody({ temperature: 1.5, seed: 7, top_k: 0, top_p: 1, max_tokens: 16,
    logprobs: true, top_logprobs: 20, uncertainty: true }))).json;
  let above1 = 0;
  for (const e of c.choices[0].logprobs.content) {
    const k = e.top_logprobs.findIndex((t) => t.token === e.token && t.logprob === e.logprob &&
      JSON.stringify(t.bytes) === JSON.stringify(e.bytes));
    if (k >= 0) assert.equal(e.rank, k + 1);
    else assert.ok(e.rank > 20, `rank ${e.rank} of a token outside the top 20`);
    assert.ok(e.rank >= 1);
    above1 += e.rank > 1;
  }
  assert.ok(above1 > 0, 'a hot sampler picks some token that is not the most likely');
});

test('streaming gives the same entropy and rank as not streaming', async () => {
  const body = chatBody({ logprobs: true, top_logprobs: 1, uncertainty: true });
  const whole = (await post('/v1/chat/completions', body)).json.choices[0].logprobs.content;
  const s = await streamed('/v1/chat/completions', body);
  assert.deepEqual(s.content.map((e) => [e.token, e.logprob, e.entropy, e.rank]),
    whole.map((e) => [e.token, e.logprob, e.entropy, e.rank]));
  const s2 = await streamed('/v1/chat/completions', chatBody({ uncertainty: true }));
  assert.deepEqual(s2.unc.map((e) => [e.entropy, e.rank]), whole.map((e) => [e.entropy, e.rank]));
  const cb = { prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logprobs: 0, uncertainty: true };
  const cw = (await post('/v1/completions', cb)).json.choices[0].logprobs;
  const cs = await streamed('/v1/completions', cb);
  assert.deepEqual(cs.tokens, cw.tokens);
  assert.deepEqual(cs.ents, cw.token_entropies);
  assert.deepEqual(cs.ranks, cw.token_ranks);
  assert.ok(cw.token_ranks.every((r) => r === 1));
});

test('/v1/score: total is the sum, and equals a greedy generation\'s logprobs', async () => {
  const prompt = (await post('/tokenize', { content: 'Once upon a time' })).json.tokens;
  const gen = (await post('/v1/completions', { prompt, max_tokens: 6, temperature: 0, logprobs: 0,
    uncertainty: true })).json.choices[0];
  const ids = (await post('/tokenize', { content: gen.text, add_special: false })).json.tokens;
  const sc = await post('/v1/score', { prompt, completion: ids, uncertainty: true });
  assert.equal(sc.status, 200, sc.text);
  const s = sc.json;
  assert.equal(s.object, 'score');
  assert.deepEqual(s.usage, { prompt_tokens: prompt.length, completion_tokens: ids.length,
    total_tokens: prompt.length + ids.length });
  assert.deepEqual(s.tokens.map((t) => t.id), ids);
  const sum = s.tokens.reduce((a, t) => a + t.logprob, 0);
  assert.ok(close(s.total_logprob, sum, 1e-6));
  // the generated text re-tokenizes into the generated tokens here, so the scores are the generation's
  assert.deepEqual(s.tokens.map((t) => t.token), gen.logprobs.tokens);
  s.tokens.forEach((t, i) => {
    assert.ok(close(t.logprob, gen.logprobs.token_logprobs[i]), `${t.logprob} vs ${gen.logprobs.token_logprobs[i]}`);
    assert.ok(close(t.entropy, gen.logprobs.token_entropies[i]));
    assert.equal(t.rank, gen.logprobs.token_ranks[i]);
  });
  const genTotal = gen.logprobs.token_logprobs.reduce((a, b) => a + b, 0);
  assert.ok(close(s.total_logprob, genTotal));
  // strings work too, and the same text scores the same
  const st = (await post('/v1/score', { prompt: 'Once upon a time', completion: gen.text })).json;
  assert.ok(close(st.total_logprob, s.total_logprob));
  assert.ok(!('entropy' in st.tokens[0]));
});

test('echo with logprobs: the prompt\'s logprobs, first null, equal /v1/score\'s', async () => {
  const prompt = (await post('/tokenize', { content: 'The quick brown fox jumps over the lazy dog' })).json.tokens;
  const r = (await post('/v1/completions', { prompt, max_tokens: 0, echo: true, logprobs: 2 })).json.choices[0];
  assert.equal(r.finish_reason, 'length');
  const lp = r.logprobs;
  assert.equal(lp.tokens.length, prompt.length);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  assert.equal(lp.text_offset[0], 0);
  const s = (await post('/v1/score', { prompt: prompt.slice(0, 1), completion: prompt.slice(1) })).json;
  s.tokens.forEach((t, i) => assert.ok(close(t.logprob, lp.token_logprobs[i + 1])));
  // then generated tokens follow the echoed ones, with the same text as without echo
  const g = (await post('/v1/completions', { prompt, max_tokens: 3, temperature: 0, echo: true, logprobs: 0 })).json.choices[0];
  const plain = (await post('/v1/completions', { prompt, max_tokens: 3, temperature: 0, logprobs: 0 })).json.choices[0];
  assert.equal(g.logprobs.tokens.length, prompt.length + 3);
  assert.deepEqual(g.logprobs.token_logprobs.slice(prompt.length), plain.logprobs.token_logprobs);
  assert.ok(g.text.endsWith(plain.text));
  // streamed: the same entries
  const st = await streamed('/v1/completions', { prompt, max_tokens: 3, temperature: 0, echo: true, logprobs: 0 });
  assert.deepEqual(st.lps, g.logprobs.token_logprobs);
  assert.equal(st.text, g.text);
});

test('scores of long prompts: the same whatever the split into steps', async () => {
  const text = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen '.repeat(5);
  const ids = (await post('/tokenize', { content: text })).json.tokens;
  assert.ok(ids.length > 70, `${ids.length} tokens`); // more than one step's score rows
  const all = (await post('/v1/score', { prompt: ids.slice(0, 1), completion: ids.slice(1) })).json;
  assert.equal(all.tokens.length, ids.length - 1);
  const tail = (await post('/v1/score', { prompt: ids.slice(0, 40), completion: ids.slice(40) })).json;
  tail.tokens.forEach((t, i) => assert.ok(close(t.logprob, all.tokens[39 + i].logprob), `token ${40 + i}`));
  // several at once
  const many = await Promise.all([1, 20, 40].map((k) => post('/v1/score', { prompt: ids.slice(0, k),
    completion: ids.slice(k) })));
  many.forEach((m, j) => {
    const k = [1, 20, 40][j];
    m.json.tokens.forEach((t, i) => assert.ok(close(t.logprob, all.tokens[k - 1 + i].logprob)));
  });
});

test('/v1/score and echo: bad input is a 400 in OpenAI\'s shape', async () => {
  assertError(await post('/v1/score', { prompt: 'Hi', completion: '' }), 400, 'completion');
  assertError(await post('/v1/score', { prompt: 'Hi', completion: [] }), 400, 'completion');
  assertError(await post('/v1/score', { prompt: 'Hi' }), 400, 'completion');
  assertError(await post('/v1/score', { completion: 'Hi' }), 400, 'prompt');
  assertError(await post('/v1/score', { prompt: [], completion: 'Hi' }), 400, 'prompt');
  assertError(await post('/v1/score', { prompt: 'Hi', completion: 5 }), 400, 'completion');
  assertError(await post('/v1/score', { prompt: 'Hi', completion: [1, 'a'] }), 400, 'completion');
  assertError(await post('/v1/score', { prompt: 'Hi', completion: [-1] }), 400, 'completion');
  assertError(await post('/v1/score', { prompt: 'Hi', completion: [1 << 30] }), 400, 'completion');
  assertError(await post('/v1/score', { prompt: { a: 1 }, completion: 'x' }), 400, 'prompt');
  assertError(await post('/v1/score', { prompt: 'Hi', completion: 'x', uncertainty: 1 }), 400, 'uncertainty');
  const long = await post('/v1/score', { prompt: 'Hi', completion: new Array(CTX).fill(100) });
  assertError(long, 400, 'completion');
  assert.equal(long.json.error.code, 'context_length_exceeded');
  const long2 = await post('/v1/score', { prompt: new Array(CTX - 10).fill(100), completion: new Array(10).fill(100) });
  assertError(long2, 400, 'completion');
  assert.equal(long2.json.error.code, 'context_length_exceeded');
  assertError(await post('/v1/score', { model: 'nope', prompt: 'Hi', completion: 'x' }), 404, 'model');
  assertError(await post('/v1/completions', { prompt: 'Hi', max_tokens: 0 }), 400, 'max_tokens');
  assertError(await post('/v1/chat/completions', chatBody({ max_tokens: 0, echo: true })), 400, 'max_tokens');
  // the server still answers
  assert.equal((await post('/v1/score', { prompt: 'Hi', completion: ' there' })).status, 200);
});

test('SentencePiece: a completion string is read as the continuation of the prompt; echo\'s text offsets', async () => {
  const spm = await startServer([], { models: ['-m', path.join(fixtures, 'models/stories260K.f32.gguf')] });
  try {
    const q = (p, body) => request(spm.url, p, { body });
    const joined = (await q('/tokenize', { content: 'Once upon a time, there was a little girl named Lily.' })).json.tokens;
    const prompt = (await q('/tokenize', { content: 'Once upon a time, there was a little' })).json.tokens;
    assert.deepEqual(joined.slice(0, prompt.length), prompt);
    const s = (await q('/v1/score', { prompt: 'Once upon a time, there was a little', completion: ' girl named Lily.' })).json;
    // the joined text's tokens, not the completion's alone (which would start with a space token of its own)
    assert.deepEqual(s.tokens.map((t) => t.id), joined.slice(prompt.length));
    assert.equal(s.usage.prompt_tokens, prompt.length);
    const byIds = (await q('/v1/score', { prompt, completion: joined.slice(prompt.length) })).json;
    assert.ok(close(byIds.total_logprob, s.total_logprob));
    // offsets point into the echoed text, whose leading space SentencePiece drops
    const e = (await q('/v1/completions', { prompt: 'Lily saw a big dog', max_tokens: 0, echo: true, logprobs: 0 })).json.choices[0];
    assert.equal(e.text, 'Lily saw a big dog');
    const lp = e.logprobs;
    for (let i = 1; i < lp.tokens.length; i++) {
      const piece = lp.tokens[i].replace(/^ /, i === 1 ? '' : ' ');
      assert.equal(e.text.slice(lp.text_offset[i], lp.text_offset[i] + piece.length), piece, `token ${i}`);
    }
  } finally {
    const { code } = await spm.stop();
    assert.equal(code, 0);
  }
});
