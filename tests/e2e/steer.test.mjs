// End-to-end tests of activation steering (docs/API.md): control vectors in
// llama.cpp's GGUF format loaded with --control-vector FILE[:SCALE], chosen
// per request with "steering". Raw HTTP only; the vectors are written here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, assertError, fixtures, runHearth } from './helpers.mjs';

const MODEL = path.join(fixtures, 'models/stories260K.f32.gguf');
const N_EMBD = 64, N_LAYER = 5;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-steer-'));

// A control-vector GGUF (v3): general.architecture, controlvector.layer_count, direction.N tensors (f32).
function writeVector(file, dirs /* {N: Float32Array} */, { type = 0 } = {}) {
  const parts = [];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s) => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  const names = Object.keys(dirs);
  parts.push(Buffer.from('GGUF'));
  u32(3); u64(names.length); u64(2);
  str('general.architecture'); u32(8); str('controlvector');
  str('controlvector.layer_count'); u32(5); u32(names.length);
  let off = 0;
  for (const n of names) {
    str(`direction.${n}`); u32(1); u64(dirs[n].length); u32(type); u64(off);
    off += Math.ceil(dirs[n].length * 4 / 32) * 32;
  }
  let head = Buffer.concat(parts);
  head = Buffer.concat([head, Buffer.alloc((32 - head.length % 32) % 32)]);
  const data = names.map((n) => {
    const b = Buffer.alloc(Math.ceil(dirs[n].length * 4 / 32) * 32);
    dirs[n].forEach((v, j) => b.writeFloatLE(v, j * 4));
    return b;
  });
  fs.writeFileSync(file, Buffer.concat([head, ...data]));
}

// A direction per layer 1..N_LAYER-1 from a small deterministic generator.
function makeDirs(seed) {
  let s = seed;
  const out = {};
  for (let il = 1; il < N_LAYER; il++) {
    out[il] = Float32Array.from({ length: N_EMBD }, () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5; });
  }
  return out;
}

const happy = path.join(dir, 'happy.gguf'), sad = path.join(dir, 'sad.gguf');
writeVector(happy, makeDirs(1));
writeVector(sad, makeDirs(2));

let srv, plain;
before(async () => {
  srv = await startServer(['--parallel', '3', '-c', '128', '--control-vector', `${happy}:0`,
    '--control-vector', `${sad}:2.5`], { models: ['-m', MODEL] });
  plain = await startServer(['--parallel', '3', '-c', '128'], { models: ['-m', MODEL] });
});
after(async () => {
  for (const s of [srv, plain]) {
    const { code } = await s.stop();
    assert.equal(code, 0, `server exit code ${code}\n${s.log()}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const body = (steering) => ({ prompt: 'Once upon a time, there was a', max_tokens: 12, temperature: 0, logprobs: 1,
  ...(steering === undefined ? {} : { steering }) });
const complete = async (s, steering) => {
  const r = await request(s.url, '/v1/completions', { body: body(steering) });
  assert.equal(r.status, 200, r.text);
  const c = r.json.choices[0];
  return { text: c.text, lps: c.logprobs.token_logprobs };
};

test('strength 0 is the unsteered model, bit for bit; steering changes the answer', async () => {
  const base = await complete(plain);
  const zero = await complete(srv, { strength: 0 });
  assert.deepEqual(zero, base);
  // the default: every vector, summed (happy at scale 0 adds nothing: sad at 2.5)
  const dflt = await complete(srv);
  const sadOnly = await complete(srv, { vector: 'sad' });
  assert.deepEqual(dflt, sadOnly);
  assert.notDeepEqual(dflt.lps, base.lps);
  // by index; a scale-0 file alone steers nothing
  assert.deepEqual(await complete(srv, { vector: 1 }), sadOnly);
  assert.deepEqual(await complete(srv, { vector: 'happy', strength: 7 }), base);
  // strength and layers change it again
  const strong = await complete(srv, { vector: 'sad', strength: 3 });
  const late = await complete(srv, { vector: 'sad', layers: [4, 4] });
  assert.notDeepEqual(strong.lps, sadOnly.lps);
  assert.notDeepEqual(late.lps, sadOnly.lps);
  assert.notDeepEqual(late.lps, base.lps);
});

test('steered and unsteered requests at once each get their own answer', async () => {
  const alone = [await complete(srv, { strength: 0 }), await complete(srv, { vector: 'sad', strength: -2 }),
    await complete(srv, { vector: 'sad', strength: 1.5, layers: [2, 3] })];
  const steer = [{ strength: 0 }, { vector: 'sad', strength: -2 }, { vector: 'sad', strength: 1.5, layers: [2, 3] }];
  for (let round = 0; round < 2; round++) {
    const together = await Promise.all(steer.map((s) => complete(srv, s)));
    assert.deepEqual(together, alone);
  }
});

test('bad steering is a 400 naming the field', async () => {
  const bad = async (s, param, st = srv) =>
    assertError(await request(st.url, '/v1/completions', { body: body(s) }), 400, param);
  await bad('sad', 'steering');
  await bad({ vector: 'nope' }, 'steering.vector');
  await bad({ vector: 2 }, 'steering.vector');
  await bad({ vector: true }, 'steering.vector');
  await bad({ strength: 'x' }, 'steering.strength');
  await bad({ strength: 1e9 }, 'steering.strength');
  await bad({ layers: [0, 2] }, 'steering.layers');
  await bad({ layers: [3, 2] }, 'steering.layers');
  await bad({ layers: [1, N_LAYER] }, 'steering.layers');
  await bad({ layers: [1] }, 'steering.layers');
  await bad({ colour: 'blue' }, 'steering');
  await bad({ strength: 1 }, 'steering', plain); // no vectors loaded
  // and strength 0 without vectors is just the model
  const r = await request(plain.url, '/v1/completions', { body: body({ strength: 0 }) });
  assert.equal(r.status, 200);
});

test('malformed control-vector files stop the server with a clear message', async () => {
  const cases = [
    ['wide.gguf', { 1: new Float32Array(N_EMBD + 1) }, {}, /n_embd/],
    ['zero.gguf', { 0: new Float32Array(N_EMBD) }, {}, /outside 1\.\./],
    ['deep.gguf', { [N_LAYER]: new Float32Array(N_EMBD) }, {}, /outside 1\.\./],
    ['f16.gguf', { 1: new Float32Array(N_EMBD) }, { type: 1 }, /not f32/],
  ];
  for (const [name, dirs, opts, want] of cases) {
    const f = path.join(dir, name);
    writeVector(f, dirs, opts);
    const r = runHearth(['serve', '-m', MODEL, '--port', '0', '--control-vector', f], { timeout: 30000 });
    assert.notEqual(r.code, 0, name);
    assert.match(r.stderr, want, `${name}: ${r.stderr}`);
  }
  const r = runHearth(['serve', '-m', MODEL, '--control-vector', `${happy}:nan`]);
  assert.notEqual(r.code, 0);
});

test('hearth steer writes a vector the server loads and that moves the answer', async () => {
  const P = path.join(dir, 'P.txt'), N = path.join(dir, 'N.txt'), out = path.join(dir, 'cat.gguf');
  fs.writeFileSync(P, 'The cat sat on the mat and the cat said meow.\n\nLily had a little kitten. The kitten liked to purr.\r\n');
  fs.writeFileSync(N, 'The dog sat on the mat and the dog said woof.\nLily had a little puppy. The puppy liked to bark.\n');
  for (const method of ['mean', 'pca']) {
    const r = runHearth(['steer', '-m', MODEL, '--positive', P, '--negative', N, '-o', out, '--method', method, '-t', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(out).subarray(0, 4).toString(), 'GGUF');
  }
  const s = await startServer(['-c', '128', '--control-vector', `${out}:4`], { models: ['-m', MODEL] });
  try {
    const steered = await complete(s), off = await complete(s, { strength: 0 });
    assert.deepEqual(off, await complete(plain));
    assert.notDeepEqual(steered.lps, off.lps);
  } finally {
    const { code } = await s.stop();
    assert.equal(code, 0, s.log());
  }
  assert.equal(runHearth(['steer', '-m', MODEL, '--positive', P, '--negative', N, '-o', out, '--method', 'x']).code, 2);
  assert.equal(runHearth(['steer', '-m', MODEL, '--positive', P, '-o', out]).code, 2);
  fs.writeFileSync(N, 'one\ntwo\nthree\n');
  const r = runHearth(['steer', '-m', MODEL, '--positive', P, '--negative', N, '-o', out, '--method', 'pca']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /pca pairs the prompts/);
});

test('/v1/score is steered like generation', async () => {
  const score = async (s, steering) => {
    const r = await request(s.url, '/v1/score', { body: { prompt: 'Once upon a time', completion: ' there was a girl',
      ...(steering === undefined ? {} : { steering }) } });
    assert.equal(r.status, 200, r.text);
    return r.json.tokens.map((t) => t.logprob);
  };
  const base = await score(plain);
  assert.deepEqual(await score(srv, { strength: 0 }), base);
  assert.notDeepEqual(await score(srv), base);
  assertError(await request(srv.url, '/v1/score', { body: { prompt: 'a', completion: 'b', steering: { vector: 'x' } } }),
    400, 'steering.vector');
});

test('/v1/cache saves steered state, used only by requests steered alike (both ways)', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-steer-cache-'));
  const s = await startServer(['-c', '256', '--control-vector', `${sad}:2.5`], { models: ['-m', MODEL],
    env: { HEARTH_HOME: home } });
  const SAVED = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park';
  const PROMPT = `${SAVED} with her big red ball.`;
  const save = async (name, steering) => {
    const r = await request(s.url, '/v1/cache', { body: { name, prompt: SAVED, ...(steering === undefined ? {} : { steering }) } });
    assert.equal(r.status, 200, r.text);
  };
  const run = async (steering, cache) => {
    const r = await request(s.url, '/v1/completions', { body: { prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 1,
      ...(steering === undefined ? {} : { steering }), ...(cache ? { cache } : {}) } });
    return r;
  };
  const same = async (steering, cache) => {
    const want = await run(steering), got = await run(steering, cache);
    assert.equal(got.status, 200, got.text);
    assert.ok(got.json.usage.prompt_tokens_details.cached_tokens > 16);
    assert.equal(got.json.choices[0].text, want.json.choices[0].text);
    assert.deepEqual(got.json.choices[0].logprobs.token_logprobs, want.json.choices[0].logprobs.token_logprobs);
  };
  try {
    await save('steered', { vector: 'sad', strength: 2 });
    await save('plain', { strength: 0 });
    await save('default'); // the server's default: every vector at its scale
    await same({ vector: 'sad', strength: 2 }, 'steered');
    await same({ strength: 0 }, 'plain');
    await same(undefined, 'default');
    // steered state, unsteered request; unsteered state, steered request; other strength or layers
    for (const [steering, cache] of [[{ strength: 0 }, 'steered'], [{ vector: 'sad', strength: 2 }, 'plain'],
      [{ vector: 'sad', strength: 3 }, 'steered'], [{ vector: 'sad', strength: 2, layers: [2, 3] }, 'steered'],
      [undefined, 'plain'], [{ strength: 0 }, 'default']]) {
      const r = await run(steering, cache);
      assertError(r, 400, 'cache');
      assert.equal(r.json.error.code, 'cache_steering_mismatch', JSON.stringify(steering));
    }
    assertError(await request(s.url, '/v1/cache', { body: { name: 'x', prompt: SAVED, steering: { vector: 'nope' } } }),
      400, 'steering.vector');
  } finally {
    const { code } = await s.stop();
    assert.equal(code, 0, s.log());
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('the Ollama routes take "steering" too', async () => {
  const gen = async (s, steering) => {
    const r = await request(s.url, '/api/generate', { body: { model: path.basename(MODEL), prompt: 'Once upon a time',
      raw: true, stream: false, options: { temperature: 0, num_predict: 10 }, ...(steering === undefined ? {} : { steering }) } });
    assert.equal(r.status, 200, r.text);
    return r.json.response;
  };
  const base = await gen(plain);
  assert.equal(await gen(srv, { strength: 0 }), base);
  assert.notEqual(await gen(srv), base); // the server's default vectors
  const bad = await request(srv.url, '/api/generate', { body: { model: path.basename(MODEL), prompt: 'x', stream: false,
    steering: { vector: 'nope' } } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /steering\.vector|no control vector/);
});
