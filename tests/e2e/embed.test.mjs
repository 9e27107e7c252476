// End-to-end tests of /v1/embeddings and /v1/rerank (docs/API.md). Raw HTTP only.
// The per-token vectors behind a pooled embedding are checked through causality: a
// token's state depends only on the tokens before it, so "last" pooling of the
// prefix that ends at token k is token k's vector, and "cls" of an input is "last"
// of its first token alone; "mean" of an input must be the mean of those.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, request, assertError } from './helpers.mjs';

let srv;
before(async () => { srv = await startServer(['--parallel', '4', '-c', '512']); });
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const post = (p, body) => request(srv.url, p, { body });
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const near = (a, b, tol = 1e-5) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};
async function embed(body) {
  const r = await post('/v1/embeddings', body);
  assert.equal(r.status, 200, r.text);
  return r.json;
}
const vec = async (input, extra = {}) => (await embed({ input, ...extra })).data[0].embedding;
const TEXTS = ['Once upon a time there was a little dog.', 'The cat sat on the mat.', 'Lily liked to play in the park.',
  'Tom ate an apple'];

test('embeddings: OpenAI shape, unit length, one input or several', async () => {
  const r = await embed({ input: TEXTS[0] });
  assert.equal(r.object, 'list');
  assert.equal(r.data.length, 1);
  assert.equal(r.data[0].object, 'embedding');
  assert.equal(r.data[0].index, 0);
  assert.ok(r.data[0].embedding.length > 0);
  assert.ok(Math.abs(norm(r.data[0].embedding) - 1) < 1e-5);
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens);
  // many inputs in one request = one at a time
  const all = await embed({ input: TEXTS });
  assert.equal(all.data.length, TEXTS.length);
  for (let i = 0; i < TEXTS.length; i++) {
    assert.equal(all.data[i].index, i);
    near(all.data[i].embedding, await vec(TEXTS[i]));
  }
  // different texts, different vectors
  assert.ok(dot(all.data[0].embedding, all.data[1].embedding) < 0.9999);
});

test('embeddings: token arrays are inputs as strings are', async () => {
  const tok = (await post('/tokenize', { content: TEXTS[1], add_special: true })).json.tokens;
  assert.ok(Array.isArray(tok) && tok.length > 2);
  const fromIds = await vec(tok);
  const two = await embed({ input: [tok, tok.slice(0, 3)] });
  near(two.data[0].embedding, fromIds);
  near(fromIds, await vec(TEXTS[1]));
  assert.equal(two.usage.prompt_tokens, tok.length + 3);
});

test('embeddings: mean, cls and last pool the per-token vectors', async () => {
  const tok = (await post('/tokenize', { content: TEXTS[2], add_special: true })).json.tokens;
  for (const layer of [undefined, 0, -2]) {
    const o = { normalize: false, ...(layer === undefined ? {} : { layer }) };
    const prefixes = tok.map((_, k) => tok.slice(0, k + 1));
    const perToken = (await embed({ input: prefixes, pooling: 'last', ...o })).data.map((d) => d.embedding);
    const mean = perToken[0].map((_, j) => perToken.reduce((s, v) => s + v[j], 0) / perToken.length);
    near(await vec(tok, { pooling: 'mean', ...o }), mean, 1e-4);
    near(await vec(tok, { pooling: 'cls', ...o }), perToken[0]);
    near(await vec(tok, { pooling: 'last', ...o }), perToken[tok.length - 1]);
  }
  // a layer's raw state is not the final-normed output
  const a = await vec(tok, { normalize: false }), b = await vec(tok, { normalize: false, layer: -1 });
  assert.ok(a.some((x, j) => Math.abs(x - b[j]) > 1e-3));
});

test('embeddings: pooling "none" returns the hidden states that mean, cls and last pool', async () => {
  const tok = (await post('/tokenize', { content: TEXTS[0], add_special: true })).json.tokens;
  for (const layer of [undefined, 1, -1]) {
    const o = { normalize: false, ...(layer === undefined ? {} : { layer }) };
    const r = await embed({ input: [tok, tok.slice(0, 2)], pooling: 'none', ...o });
    const rows = r.data[0].embedding;
    assert.equal(rows.length, tok.length);
    assert.deepEqual(r.data[0].shape, [tok.length, rows[0].length]);
    assert.equal(r.data[1].embedding.length, 2);
    near(r.data[1].embedding[1], rows[1]); // causal: the same tokens, the same states
    const mean = rows[0].map((_, j) => rows.reduce((s, v) => s + v[j], 0) / rows.length);
    near(await vec(tok, { pooling: 'mean', ...o }), mean, 1e-4);
    near(await vec(tok, { pooling: 'cls', ...o }), rows[0]);
    near(await vec(tok, { pooling: 'last', ...o }), rows[rows.length - 1]);
    // base64: all rows, row after row
    const b = Buffer.from((await embed({ input: tok, pooling: 'none', encoding_format: 'base64', ...o })).data[0].embedding, 'base64');
    assert.equal(b.length, 4 * tok.length * rows[0].length);
    near(Array.from({ length: rows[0].length }, (_, j) => b.readFloatLE(4 * (rows[0].length + j))), rows[1], 1e-6);
  }
  // normalized by default, each token's vector
  const unit = (await embed({ input: tok, pooling: 'none' })).data[0].embedding;
  for (const v of unit) assert.ok(Math.abs(norm(v) - 1) < 1e-5);
  assertError(await post('/v1/rerank', { query: 'x', documents: ['y'], pooling: 'none' }), 400, 'pooling');
});

test('embeddings: base64 and dimensions', async () => {
  const f = await vec(TEXTS[3]);
  const b = await vec(TEXTS[3], { encoding_format: 'base64' });
  assert.equal(typeof b, 'string');
  const buf = Buffer.from(b, 'base64');
  const dec = Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(4 * i));
  near(dec, f, 1e-6);
  const d = await vec(TEXTS[3], { dimensions: 8 });
  assert.equal(d.length, 8);
  const n8 = norm(f.slice(0, 8));
  near(d, f.slice(0, 8).map((x) => x / n8), 1e-5);
});

test('embeddings: bad requests are refused', async () => {
  assertError(await post('/v1/embeddings', {}), 400, 'input');
  assertError(await post('/v1/embeddings', { input: '' }), 400, 'input');
  assertError(await post('/v1/embeddings', { input: [] }), 400, 'input');
  assertError(await post('/v1/embeddings', { input: [[1, 2], [-1]] }), 400, 'input');
  assertError(await post('/v1/embeddings', { input: 'x', pooling: 'max' }), 400, 'pooling');
  assertError(await post('/v1/embeddings', { input: 'x', layer: 1000 }), 400, 'layer');
  assertError(await post('/v1/embeddings', { input: 'x', dimensions: 0 }), 400, 'dimensions');
  assertError(await post('/v1/embeddings', { input: 'x', encoding_format: 'int8' }), 400, 'encoding_format');
  assertError(await post('/v1/embeddings', { input: 'y'.repeat(4000) }), 400, 'input');
});

test('rerank: documents ordered by the cosine of their embeddings with the query', async () => {
  const query = 'A dog played in the park.';
  const r = await post('/v1/rerank', { query, documents: TEXTS });
  assert.equal(r.status, 200, r.text);
  const e = (await embed({ input: [query, ...TEXTS] })).data.map((d) => d.embedding);
  const want = TEXTS.map((_, i) => ({ index: i, score: dot(e[0], e[i + 1]) }))
    .sort((a, b) => b.score - a.score || a.index - b.index);
  assert.equal(r.json.results.length, TEXTS.length);
  r.json.results.forEach((res, k) => {
    assert.equal(res.index, want[k].index);
    assert.ok(Math.abs(res.relevance_score - want[k].score) < 1e-5);
    assert.equal(res.document.text, TEXTS[res.index]);
  });
  const top = await post('/rerank', { query, documents: TEXTS, top_n: 2, return_documents: false });
  assert.equal(top.status, 200, top.text);
  assert.deepEqual(top.json.results.map((x) => x.index), want.slice(0, 2).map((x) => x.index));
  assert.ok(!('document' in top.json.results[0]));
  assertError(await post('/v1/rerank', { query, documents: [] }), 400, 'documents');
  assertError(await post('/v1/rerank', { documents: TEXTS }), 400, 'query');
  assertError(await post('/v1/rerank', { query, documents: TEXTS, top_n: 0 }), 400, 'top_n');
});

// f32 / f16 little-endian rows of base64 data
const f32s = (b64) => { const b = Buffer.from(b64, 'base64'); return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(4 * i)); };
function f16s(b64) {
  const b = Buffer.from(b64, 'base64');
  return Array.from({ length: b.length / 2 }, (_, i) => {
    const h = b.readUInt16LE(2 * i), s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  });
}

test('hidden_states on completions: the prompt\'s rows are its states, generated ones follow', async () => {
  const prompt = 'Once upon a time';
  const body = { prompt, max_tokens: 3, temperature: 0, ignore_eos: true, hidden_states: { layers: [0, -1] } };
  const r = await post('/v1/completions', body);
  assert.equal(r.status, 200, r.text);
  const h = r.json.choices[0].hidden_states;
  const nP = r.json.usage.prompt_tokens;
  assert.equal(r.json.usage.completion_tokens, 3);
  const E = h.shape[2];
  assert.deepEqual(h.shape.slice(0, 2), [2, nP + 2]); // the last generated token is never computed
  assert.deepEqual(h.layers, [0, -1]);
  assert.equal(h.first_position, 0);
  const all = f32s(h.data);
  assert.equal(all.length, 2 * (nP + 2) * E);
  const row = (k, pos) => all.slice((k * (nP + 2) + pos) * E, (k * (nP + 2) + pos + 1) * E);
  for (const [k, layer] of [[0, 0], [1, -1]]) {
    const emb = (await embed({ input: prompt, pooling: 'none', normalize: false, layer })).data[0].embedding;
    assert.equal(emb.length, nP);
    for (let pos = 0; pos < nP; pos++) near(row(k, pos), emb[pos]);
  }
  // the same text without the field; generated rows alone; f16
  const plain = await post('/v1/completions', { ...body, hidden_states: undefined });
  assert.equal(plain.json.choices[0].text, r.json.choices[0].text);
  assert.ok(!('hidden_states' in plain.json.choices[0]));
  const gen = (await post('/v1/completions', { ...body, hidden_states: { layers: [-1], tokens: 'generated', dtype: 'f16' } })).json.choices[0].hidden_states;
  assert.deepEqual(gen.shape, [1, 2, E]);
  assert.equal(gen.first_position, nP);
  const g16 = f16s(gen.data);
  for (let pos = 0; pos < 2; pos++) near(g16.slice(pos * E, (pos + 1) * E), row(1, nP + pos), 2e-2);
  assertError(await post('/v1/completions', { ...body, hidden_states: { layers: [99] } }), 400, 'hidden_states');
  assertError(await post('/v1/completions', { ...body, hidden_states: { layers: [0], dtype: 'i8' } }), 400, 'hidden_states');
  assert.equal((await post('/v1/completions', { ...body, stream: true })).status, 200); // streamed: introspect.test.mjs
});

test('hidden_states logit_lens: the last layer decodes to the model\'s own next tokens', async () => {
  const body = { prompt: 'Once upon a time', max_tokens: 3, temperature: 0, ignore_eos: true, logprobs: 2,
    hidden_states: { layers: [0, -1], tokens: 'all', logit_lens: 2 } };
  const r = await post('/v1/completions', body);
  assert.equal(r.status, 200, r.text);
  const c = r.json.choices[0], h = c.hidden_states, nP = r.json.usage.prompt_tokens;
  assert.equal(h.logit_lens.length, 2);
  assert.equal(h.logit_lens[1].length, nP + 2);
  for (let g = 0; g < 2; g++) { // the state before each generated token predicts it: greedy, so its top-1
    const top = h.logit_lens[1][nP - 1 + g];
    assert.equal(top.length, 2);
    assert.equal(top[0].token, c.logprobs.tokens[g]);
    assert.ok(Math.abs(top[0].logprob - c.logprobs.token_logprobs[g]) < 1e-4, `${top[0].logprob} ${c.logprobs.token_logprobs[g]}`);
    assert.ok(top[0].logprob >= top[1].logprob);
  }
  assert.equal(h.logit_lens[0][0].length, 2); // layer 0 has its own guesses
  assertError(await post('/v1/completions', { ...body, hidden_states: { layers: [0], logit_lens: 21 } }), 400, 'hidden_states');
});

test('rerank: too many documents are refused by their own count', async () => {
  const r = await post('/v1/rerank', { query: 'q', documents: Array(2048).fill('d') });
  assertError(r, 400, 'documents');
  assert.match(r.json.error.message, /2048 documents; at most 2047/);
});
