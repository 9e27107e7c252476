// End-to-end tests of `hearth serve`: the official openai client (streaming and
// not), raw HTTP for bad input, concurrency, prefix caching, API keys, metrics,
// back-pressure, disconnects and a graceful stop. HEARTH_BIN picks the binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import OpenAI from 'openai';
import { startServer, sleep, sanitized, hasPromtool, request, assertError } from './helpers.mjs';

let srv, client;
before(async () => {
  srv = await startServer(['--parallel', '4', '--max-body', '65536', '--timeout', '2']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused' });
});
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

const chat = (content, extra = {}) => client.chat.completions.create({
  model: 'tiny-qwen2.f32.gguf', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 12, ...extra });

async function chatStream(content, extra = {}) {
  const stream = await client.chat.completions.create({
    model: 'tiny-qwen2.f32.gguf', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 12,
    stream: true, stream_options: { include_usage: true }, ...extra });
  let text = '', finish = null, usage = null, role = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.role) role = ch.delta.role;
      text += ch.delta.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { text, finish, usage, role, chunks };
}

const post = (p, body, headers = {}) => request(srv.url, p, { body, headers });

test('chat completion with the openai client', async () => {
  const r = await chat('Hello there');
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('streaming gives the same text as not streaming', async () => {
  const a = await chat('Tell me a story');
  const b = await chatStream('Tell me a story');
  assert.equal(b.text, a.choices[0].message.content);
  assert.equal(b.role, 'assistant');
  assert.equal(b.finish, 'length');
  assert.equal(b.usage.completion_tokens, 12);
});

test('stop strings are cut out, also across token boundaries in streams', async () => {
  const full = (await chat('Count with me', { max_tokens: 16 })).choices[0].message.content;
  assert.ok(full.length >= 6, `need some text: ${JSON.stringify(full)}`);
  const at = Math.floor(full.length / 2);
  const stop = full.slice(at, at + 3);
  const first = full.indexOf(stop);
  const r = await chat('Count with me', { max_tokens: 16, stop: [stop, 'NEVER-HAPPENS'] });
  assert.equal(r.choices[0].message.content, full.slice(0, first));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await chatStream('Count with me', { max_tokens: 16, stop });
  assert.equal(s.text, full.slice(0, first));
  assert.equal(s.finish, 'stop');
  assert.ok(!s.text.includes(stop));
});

test('seeded sampling reproduces; logprobs and top_logprobs', async () => {
  const opts = { temperature: 1.0, seed: 42, max_tokens: 10 };
  const a = await chat('Random words', opts);
  const b = await chat('Random words', opts);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const lp = await chat('Hello', { logprobs: true, top_logprobs: 3, max_tokens: 4 });
  const c = lp.choices[0].logprobs.content;
  assert.equal(c.length, 4);
  for (const t of c) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(Array.isArray(t.bytes));
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4, 'greedy picks the top token');
  }
});

test('n choices: greedy ones agree, sampled ones are drawn apart', async () => {
  const g = await chat('Hello', { n: 3 });
  assert.equal(g.choices.length, 3);
  assert.deepEqual(g.choices.map((c) => c.index), [0, 1, 2]);
  assert.ok(g.choices.every((c) => c.message.content === g.choices[0].message.content));
  assert.equal(g.usage.completion_tokens, 36);
  const r = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: ['a', 'b'], n: 2, max_tokens: 4,
    temperature: 1.5, seed: 7 });
  assert.equal(r.choices.length, 4);
  assertError(await post('/v1/completions', { prompt: 'x', n: 99 }), 400, 'n');
});

test('logit_bias steers the choice', async () => {
  const a = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: 'Hi', max_tokens: 3, temperature: 0 });
  const tok = await post('/tokenize', { content: 'def' });
  const id = tok.json.tokens[0];
  const b = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: 'Hi', max_tokens: 3, temperature: 0,
    logit_bias: { [id]: 100 } });
  assert.equal(b.choices[0].text, 'defdefdef');
  assert.notEqual(a.choices[0].text, b.choices[0].text);
});

test('completions: string, token ids, lists, echo, logprobs', async () => {
  const r = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: 'Once upon', max_tokens: 5,
    temperature: 0, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].logprobs.tokens.length, 5);
  assert.equal(r.choices[0].logprobs.top_logprobs[0] && Object.keys(r.choices[0].logprobs.top_logprobs[0]).length <= 2, true);
  const ids = (await post('/tokenize', { content: 'Once upon' })).json.tokens;
  const r2 = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: ids, max_tokens: 5, temperature: 0 });
  assert.equal(r2.choices[0].text, r.choices[0].text);
  const r3 = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: ['Once upon', 'Hello'],
    max_tokens: 5, temperature: 0 });
  assert.equal(r3.choices.length, 2);
  assert.equal(r3.choices[0].text, r.choices[0].text);
  assert.equal(r3.choices[1].index, 1);
  const r4 = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: 'Once upon', max_tokens: 5,
    temperature: 0, echo: true });
  assert.equal(r4.choices[0].text, 'Once upon' + r.choices[0].text);
  const s = await client.completions.create({ model: 'tiny-qwen2.f32.gguf', prompt: 'Once upon', max_tokens: 5,
    temperature: 0, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('models, tokenize, detokenize', async () => {
  const m = await client.models.list();
  assert.equal(m.data[0].id, 'tiny-qwen2.f32.gguf');
  assert.ok(m.data[0].max_model_len > 0);
  assert.equal((await client.models.retrieve('tiny-qwen2.f32.gguf')).id, 'tiny-qwen2.f32.gguf');
  assert.equal((await fetch(srv.url + '/v1/models/gpt-9')).status, 404);
  const t = await post('/tokenize', { content: '你好，世界' });
  assert.equal(t.status, 200);
  const d = await post('/detokenize', { tokens: t.json.tokens });
  assert.equal(d.json.content, '你好，世界');
});

test('bad input gets the right status and message, never a 500', async () => {
  assertError(await post('/v1/chat/completions', '{"messages": [ '), 400);
  assertError(await post('/v1/chat/completions', '[1,2]'), 400);
  assertError(await post('/v1/chat/completions', {}), 400, 'messages');
  assertError(await post('/v1/chat/completions', { messages: [] }), 400, 'messages');
  assertError(await post('/v1/chat/completions', { messages: 'hi' }), 400, 'messages');
  assertError(await post('/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] }), 400, 'messages');
  assertError(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 5 }] }), 400, 'messages');
  const msgs = [{ role: 'user', content: 'hi' }];
  assertError(await post('/v1/chat/completions', { messages: msgs, temperature: 'hot' }), 400, 'temperature');
  assertError(await post('/v1/chat/completions', { messages: msgs, temperature: 7 }), 400, 'temperature');
  assertError(await post('/v1/chat/completions', { messages: msgs, max_tokens: -5 }), 400, 'max_tokens');
  assertError(await post('/v1/chat/completions', { messages: msgs, max_tokens: 1.5 }), 400, 'max_tokens');
  assertError(await post('/v1/chat/completions', { messages: msgs, stream: 'yes' }), 400, 'stream');
  assertError(await post('/v1/chat/completions', { messages: msgs, stop: [1] }), 400, 'stop');
  assertError(await post('/v1/chat/completions', { messages: msgs, logit_bias: { abc: 1 } }), 400, 'logit_bias');
  assertError(await post('/v1/chat/completions', { messages: msgs, top_logprobs: 3 }), 400, 'top_logprobs');
  const huge = await post('/v1/chat/completions', { messages: msgs, max_tokens: 10000000 });
  assertError(huge, 400);
  assert.match(huge.json.error.message, /maximum context length/);
  const long = await post('/v1/completions', { prompt: 'word '.repeat(3000), max_tokens: 5 });
  assertError(long, 400, 'prompt');
  assert.match(long.json.error.message, /maximum context length.*the prompt/);
  assertError(await post('/v1/chat/completions', { model: 'gpt-9', messages: msgs }), 404, 'model');
  // bad UTF-8 in the body
  const bad = new Uint8Array([...Buffer.from('{"messages":[{"role":"user","content":"'), 0xff, 0xfe, ...Buffer.from('"}]}')]);
  assertError(await post('/v1/chat/completions', bad), 400);
  // oversized body (limit 64 KiB here)
  assertError(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x'.repeat(70000) }] }), 413);
  assertError(await post('/v1/completions', { prompt: 7 }), 400, 'prompt');
  assertError(await post('/v1/completions', { prompt: [1, -3] }), 400, 'prompt');
  assertError(await post('/detokenize', { tokens: [1e9] }), 400, 'tokens');
  const nf = await fetch(srv.url + '/v1/nothing-here');
  assert.equal(nf.status, 404);
  const ma = await fetch(srv.url + '/v1/chat/completions');
  assert.equal(ma.status, 405);
  assert.equal(ma.headers.get('allow'), 'POST');
  assert.equal((await chat('still here')).object, 'chat.completion');
});

test('slow partial requests time out; dropped connections do not hurt others', async () => {
  // a client that sends half a request and stalls is dropped after --timeout (2 s)
  const closed = await new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le'));
    const t0 = Date.now();
    s.resume(); // read what it says (a 408) to see the end
    s.on('close', () => resolve(Date.now() - t0));
    s.on('error', () => {});
    setTimeout(() => { s.destroy(); resolve(-1); }, 8000);
  });
  assert.ok(closed > 0, 'the server closes a stalled connection');
  const n = sanitized ? 200 : 1000;
  const socks = [];
  for (let i = 0; i < n; i++) {
    socks.push(new Promise((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1', () => {
        if (i % 2) s.write('GET /v1/models HTTP/1.1\r\nHost: x\r\n');
        s.destroy();
        resolve();
      });
      s.on('error', () => resolve());
    }));
  }
  await Promise.all(socks);
  assert.equal((await chat('after the storm')).object, 'chat.completion');
});

test('concurrent greedy streams give exactly the tokens they give alone', async () => {
  const prompts = ['The cat', 'A dog', 'Quantum', '今天天气', 'def f(x):', 'Once upon a time'];
  const alone = [];
  for (const p of prompts) alone.push((await chat(p, { max_tokens: 16 })).choices[0].message.content);
  const together = await Promise.all(prompts.map((p) => chatStream(p, { max_tokens: 16 })));
  together.forEach((t, i) => assert.equal(t.text, alone[i], `prompt ${i}`));
});

test('a shared long prefix is served from the cache, with a lower time to first token', async () => {
  const system = 'You are a helpful assistant. '.repeat(35);
  const ask = async (q) => {
    const t0 = performance.now();
    const stream = await client.chat.completions.create({ model: 'tiny-qwen2.f32.gguf', temperature: 0, max_tokens: 4,
      messages: [{ role: 'system', content: system }, { role: 'user', content: q }], stream: true,
      stream_options: { include_usage: true } });
    let ttft = null, usage = null;
    for await (const c of stream) {
      if (ttft === null && c.choices[0]?.delta?.content !== undefined) ttft = performance.now() - t0;
      if (c.usage) usage = c.usage;
    }
    return { ttft, usage };
  };
  const first = await ask('What is 2+2?');
  const second = await ask('And 3+3?');
  assert.ok(first.usage.prompt_tokens > 200);
  assert.ok(second.usage.prompt_tokens_details.cached_tokens > 150, JSON.stringify(second.usage));
  assert.ok(second.ttft < first.ttft, `ttft ${second.ttft} < ${first.ttft}`);
});

test('a client that disconnects cancels its request and frees its cache', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: 'tiny-qwen2.f32.gguf', messages: [{ role: 'user', content: 'Go on' }],
    max_tokens: 400, temperature: 0, stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const c of stream) { if (++n === 3) ac.abort(); }
  } catch { /* aborted */ }
  let running = -1, used = -1;
  for (let i = 0; i < 100; i++) {
    const m = await (await fetch(srv.url + '/metrics')).text();
    running = Number(/^vllm:num_requests_running\{[^}]*\} (\S+)/m.exec(m)[1]);
    used = Number(/^hearth_kv_blocks_used\{[^}]*\} (\S+)/m.exec(m)[1]);
    if (running === 0 && used === 0) break;
    await sleep(50);
  }
  assert.equal(running, 0);
  assert.equal(used, 0);
  const m = await (await fetch(srv.url + '/metrics')).text();
  assert.match(m, /vllm:request_success_total\{finished_reason="abort",model_name="tiny-qwen2.f32.gguf"\} [1-9]/);
});

test('metrics: vLLM names with model_name labels', async () => {
  const same = 'The same words, enough of them to fill a cache block or two of sixteen tokens each. '.repeat(2);
  await chat(same);
  await chat(same);
  const m = await (await fetch(srv.url + '/metrics')).text();
  for (const name of ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc',
    'vllm:gpu_cache_usage_perc', 'vllm:cache_config_info', 'vllm:prefix_cache_queries_total',
    'vllm:prefix_cache_hits_total', 'vllm:prompt_tokens_total', 'vllm:generation_tokens_total',
    'vllm:request_success_total', 'vllm:time_to_first_token_seconds_bucket', 'vllm:inter_token_latency_seconds_count',
    'vllm:e2e_request_latency_seconds_sum', 'vllm:request_queue_time_seconds_bucket', 'hearth_batch_tokens']) {
    assert.match(m, new RegExp(`^${name}\\{[^}]*model_name="tiny-qwen2.f32.gguf"`, 'm'), name);
  }
  assert.match(m, /vllm:cache_config_info\{block_size="16"/);
  assert.ok(Number(/^vllm:prefix_cache_hits_total\{[^}]*\} (\d+)/m.exec(m)[1]) > 0);
});

test('promtool check metrics: no problem but the colons of vLLM\'s names', { skip: !hasPromtool() && 'promtool not installed' }, async () => {
  const m = await (await fetch(srv.url + '/metrics')).text();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' });
  // exit 1 is a parse error; 3 is lint findings, which must all be the colon rule
  assert.ok(r.status === 0 || r.status === 3, `promtool exit ${r.status}: ${r.stderr}${r.stdout}`);
  const problems = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() && !l.includes("should not contain ':'"));
  assert.deepEqual(problems, []);
});

test('API keys guard every endpoint but /health', async () => {
  const s = await startServer(['--api-key', 'sekret-1-0123456789', '--api-key', 'other-2-0123456789']);
  try {
    assert.equal((await fetch(s.url + '/health')).status, 200);
    const noKey = await fetch(s.url + '/v1/models');
    assert.equal(noKey.status, 401);
    assert.equal((await noKey.json()).error.code, 'invalid_api_key');
    assert.equal((await fetch(s.url + '/metrics', { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await fetch(s.url + '/v1/models', { headers: { authorization: 'Bearer sekret-1-0123456789' } })).status, 200);
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'other-2-0123456789' });
    const r = await c.chat.completions.create({ model: 'tiny-qwen2.f32.gguf', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('a full queue answers 429 with Retry-After', async () => {
  const s = await startServer(['--parallel', '1', '--max-queue', '1']);
  try {
    const body = JSON.stringify({ prompt: 'Hello', max_tokens: 60, temperature: 0 });
    const rs = await Promise.all(Array.from({ length: 6 }, () => fetch(s.url + '/v1/completions',
      { method: 'POST', body, headers: { 'content-type': 'application/json' } })));
    const codes = rs.map((r) => r.status);
    assert.ok(codes.includes(200), codes.join());
    const busy = rs.find((r) => r.status === 429);
    assert.ok(busy, codes.join());
    assert.equal(busy.headers.get('retry-after'), '1');
    await Promise.all(rs.map((r) => r.text()));
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('SIGTERM: /health fails, in-flight requests finish, then exit 0', async () => {
  const s = await startServer();
  const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x' });
  const stream = await c.chat.completions.create({ model: 'tiny-qwen2.f32.gguf', messages: [{ role: 'user', content: 'Go' }],
    max_tokens: 400, temperature: 0, stream: true });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  s.proc.kill('SIGTERM');
  await sleep(20);
  assert.equal((await fetch(s.url + '/health')).status, 503);
  let finish = null;
  for (let r = await it.next(); !r.done; r = await it.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
  assert.equal(finish, 'length');
  assert.equal((await s.exited).code, 0);
});

test('soak: requests with cancellations end clean', async () => {
  const n = sanitized ? 300 : 2000;
  let done = 0;
  const one = async (i) => {
    const ac = new AbortController();
    const p = fetch(srv.url + '/v1/completions', { method: 'POST', signal: ac.signal,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: `n${i}`, max_tokens: i % 3 === 0 ? 50 : 2, temperature: 0.5, stream: i % 2 === 0 }) });
    if (i % 3 === 0) setTimeout(() => ac.abort(), 5);
    try { const r = await p; await r.text(); } catch { /* aborted */ }
    done++;
  };
  for (let i = 0; i < n; i += 16) await Promise.all(Array.from({ length: Math.min(16, n - i) }, (_, k) => one(i + k)));
  assert.equal(done, n);
  assert.equal((await chat('still fine')).object, 'chat.completion');
});
