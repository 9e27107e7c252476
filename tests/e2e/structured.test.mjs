// End-to-end tests of constrained answers: response_format json_schema / json_object,
// forced tool calls (a round trip: call, tool result, answer; streaming and not),
// reasoning_content, and LangChain.js (bindTools, withStructuredOutput) pointed at
// hearth. A random-weight Qwen3-shaped model sampled hot: only the grammar keeps
// its answers in shape.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { ChatOpenAI } from '@langchain/openai';
import { startServer, fixtures } from './helpers.mjs';

const MODEL = path.join(fixtures, 'models/tiny-qwen3.f32.gguf');
const M = 'tiny-qwen3.f32.gguf';
const person = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    role: { enum: ['admin', 'user', 'guest'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 6 }, maxItems: 3 },
  },
  required: ['name', 'age', 'role'],
  additionalProperties: false,
};
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, days: { type: 'integer', minimum: 1, maximum: 7 } },
      required: ['city'], additionalProperties: false },
  },
}, {
  type: 'function',
  function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] } }, required: ['zone'],
    additionalProperties: false } },
}];

// A validator for the keywords these schemas use.
function valid(v, s) {
  if (s.enum) return s.enum.includes(v);
  switch (s.type) {
    case 'object':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      for (const k of s.required ?? []) if (!(k in v)) return false;
      for (const [k, x] of Object.entries(v)) {
        if (!s.properties?.[k]) { if (s.additionalProperties === false) return false; continue; }
        if (!valid(x, s.properties[k])) return false;
      }
      return true;
    case 'string': return typeof v === 'string' && (s.maxLength === undefined || [...v].length <= s.maxLength);
    case 'integer': return Number.isInteger(v) && (s.minimum ?? -Infinity) <= v && v <= (s.maximum ?? Infinity);
    case 'array': return Array.isArray(v) && v.length <= (s.maxItems ?? Infinity) && v.every((x) => valid(x, s.items));
    default: return true;
  }
}

let srv, client;
before(async () => {
  srv = await startServer(['-m', MODEL, '--parallel', '4']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused' });
});
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

test('response_format json_schema: every answer that stops parses and validates', async () => {
  let stopped = 0;
  await Promise.all(Array.from({ length: 12 }, async (_, seed) => {
    const r = await client.chat.completions.create({ model: M, temperature: 1.2, seed, max_tokens: 300,
      messages: [{ role: 'user', content: 'Describe a person.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: person, strict: true } } });
    const c = r.choices[0];
    if (c.finish_reason !== 'stop') return;
    stopped++;
    const v = JSON.parse(c.message.content);
    assert.ok(valid(v, person), c.message.content);
  }));
  assert.ok(stopped >= 6, `only ${stopped} of 12 answers ended`);
});

test('response_format json_object gives an object; an unsupported keyword is a 400 naming it', async () => {
  const r = await client.chat.completions.create({ model: M, temperature: 1.0, seed: 1, max_tokens: 200,
    messages: [{ role: 'user', content: 'json please' }], response_format: { type: 'json_object' } });
  if (r.choices[0].finish_reason === 'stop') {
    const v = JSON.parse(r.choices[0].message.content);
    assert.equal(typeof v, 'object');
  }
  await assert.rejects(client.chat.completions.create({ model: M, max_tokens: 5, messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'string', contentEncoding: 'base64' } } } }),
  (e) => e.status === 400 && /contentEncoding/.test(e.message));
});

const weather = async (extra) => client.chat.completions.create({ model: M, temperature: 1.0, max_tokens: 120, tools,
  messages: [{ role: 'user', content: 'Weather in Oslo?' }], ...extra });

test('tool_choice required: a valid call of a declared tool, then the round trip', async () => {
  for (let seed = 1; seed <= 10; seed++) {
    const r = await weather({ seed, tool_choice: 'required', parallel_tool_calls: false });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
    assert.equal(call.index, undefined); // a message's calls have no index (stream deltas do)
    const tool = tools.find((t) => t.function.name === call.function.name);
    assert.ok(tool, call.function.name);
    assert.ok(valid(JSON.parse(call.function.arguments), tool.function.parameters), call.function.arguments);
    const answer = await client.chat.completions.create({ model: M, max_tokens: 8, tools, messages: [
      { role: 'user', content: 'Weather in Oslo?' }, c.message,
      { role: 'tool', tool_call_id: call.id, content: '{"temp": 4, "sky": "snow"}' }] });
    assert.equal(typeof answer.choices[0].message.content, 'string');
  }
  const named = await weather({ seed: 4, tool_choice: { type: 'function', function: { name: 'get_time' } } });
  for (const call of named.choices[0].message.tool_calls) {
    assert.equal(call.function.name, 'get_time');
    assert.ok(['UTC', 'CET'].includes(JSON.parse(call.function.arguments).zone));
  }
});

test('tool calls stream as OpenAI deltas that add up to the same calls', async () => {
  const whole = await weather({ seed: 9, tool_choice: 'required' });
  const stream = await weather({ seed: 9, tool_choice: 'required', stream: true });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const d of ch.delta.tool_calls ?? []) {
        calls[d.index] ??= { id: '', name: '', arguments: '' };
        calls[d.index].id += d.id ?? '';
        calls[d.index].name += d.function?.name ?? '';
        calls[d.index].arguments += d.function?.arguments ?? '';
      }
      finish = ch.finish_reason ?? finish;
    }
  }
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(calls.map((c) => [c.name, c.arguments]),
    (whole.choices[0].message.tool_calls ?? []).map((c) => [c.function.name, c.function.arguments]));
});

test('reasoning goes to reasoning_content, streamed too', async () => {
  const grammar = 'root ::= "<think>" [a-z ]{3,12} "</think>" [a-z]{1,8}';
  const r = await client.chat.completions.create({ model: M, temperature: 1.0, seed: 2, max_tokens: 60, grammar,
    messages: [{ role: 'user', content: 'think' }] });
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.match(m.reasoning_content, /^[a-z ]{3,12}$/);
  assert.match(m.content, /^[a-z]{1,8}$/);
  const s = await client.chat.completions.create({ model: M, temperature: 1.0, seed: 2, max_tokens: 60, grammar, stream: true,
    messages: [{ role: 'user', content: 'think' }] });
  let reasoning = '', content = '';
  for await (const chunk of s) {
    for (const ch of chunk.choices) {
      reasoning += ch.delta.reasoning_content ?? '';
      content += ch.delta.content ?? '';
    }
  }
  assert.equal(reasoning, m.reasoning_content);
  assert.equal(content, m.content);
});

test('review findings: user text cannot switch the answer to reasoning; boolean schemas; thinking off', async () => {
  // a message that ends with "<think>" is the user's text: the answer is not read (or framed) as reasoning
  const r = await client.chat.completions.create({ model: M, max_tokens: 20, seed: 1, grammar: 'root ::= "hello world"',
    response_format: { type: 'text' }, messages: [{ role: 'user', content: 'What does the tag <think>' }] });
  assert.equal(r.choices[0].message.content, 'hello world');
  assert.equal(r.choices[0].message.reasoning_content, undefined);
  const j = await client.chat.completions.create({ model: M, max_tokens: 120, seed: 3, temperature: 1.0,
    messages: [{ role: 'user', content: 'json <think>' }], response_format: { type: 'json_object' } });
  assert.equal(j.choices[0].message.reasoning_content, undefined);
  // boolean schemas: true is any JSON, false a 400 (not a 500)
  await assert.rejects(client.chat.completions.create({ model: M, max_tokens: 5, messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', schema: false } } }), (e) => e.status === 400);
  const t = await client.chat.completions.create({ model: M, max_tokens: 60, seed: 2, messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', schema: true } } });
  if (t.choices[0].finish_reason === 'stop') JSON.parse(t.choices[0].message.content);
  // thinking switched off: the prompt closed the block, so the answer starts with the JSON itself
  const off = await client.chat.completions.create({ model: M, max_tokens: 150, seed: 4, temperature: 1.0,
    chat_template_kwargs: { enable_thinking: false }, messages: [{ role: 'user', content: 'json' }],
    response_format: { type: 'json_object' } });
  assert.equal(off.choices[0].message.reasoning_content, undefined);
  assert.match(off.choices[0].message.content, /^\s*\{/);
});

test('a second client while one streams a forced call; keys guard the new fields', async () => {
  const streaming = (async () => {
    const s = await weather({ seed: 11, tool_choice: 'required', stream: true });
    let finish = null;
    for await (const chunk of s) for (const ch of chunk.choices) finish = ch.finish_reason ?? finish;
    return finish;
  })();
  const other = client.chat.completions.create({ model: M, max_tokens: 200, seed: 5, temperature: 1.0,
    messages: [{ role: 'user', content: 'json' }], response_format: { type: 'json_object' } });
  const [finish, r] = await Promise.all([streaming, other]);
  assert.ok(['tool_calls', 'length'].includes(finish), finish);
  if (r.choices[0].finish_reason === 'stop') JSON.parse(r.choices[0].message.content);
  const keyed = await startServer(['-m', MODEL, '--api-key', 'k'.repeat(20)]);
  try {
    for (const headers of [{}, { authorization: 'Bearer wrong-key-wrong-key-x' }]) {
      const res = await fetch(`${keyed.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'required', grammar: 'root ::= "a"' }) });
      assert.equal(res.status, 401);
    }
  } finally {
    await keyed.stop();
  }
});

test('LangChain.js: bindTools and withStructuredOutput against hearth', async () => {
  const llm = (maxTokens) => new ChatOpenAI({ model: M, apiKey: 'unused', temperature: 0.8, maxTokens,
    configuration: { baseURL: `${srv.url}/v1` } });
  const withTools = llm(120).bindTools(tools, { tool_choice: 'required' });
  const msg = await withTools.invoke('What is the weather in Oslo?');
  assert.ok(msg.tool_calls.length >= 1, JSON.stringify(msg));
  assert.ok(['get_weather', 'get_time'].includes(msg.tool_calls[0].name));
  assert.equal(typeof msg.tool_calls[0].args, 'object');
  const structured = llm(300).withStructuredOutput(person, { name: 'person', method: 'jsonSchema' });
  const v = await structured.invoke('Describe a person.');
  assert.ok(valid(v, person), JSON.stringify(v));
});
