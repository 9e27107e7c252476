// serve-bench.mjs - load generator for `hearth serve` (and, with LLAMA_SERVER=path,
// llama.cpp's llama-server on the same model, threads and slots, side by side).
//
//   node bench/serve-bench.mjs MODEL.gguf [threads=2] [tokens=64] [levels=1,2,4,8,16]
//
// For each concurrency C, C clients each stream REQS requests (max_tokens tokens,
// distinct prompts so the prefix cache does not help) and the table shows
// aggregate generated tokens/s, time to first token and inter-token latency
// (p50 / p99). Sampling as apps send it: TEMP=0.7 TOP_P=0.9 (default greedy).
// MIXED=N: while the clients decode, a request with an N-token prompt arrives
// every MIXED_EVERY seconds [2]; the ITL columns are the decoding streams' (the
// cost of prefill to them). Benchmarks are run on purpose, never in CI.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const model = process.argv[2];
const threads = Number(process.argv[3] || 2);
const maxTokens = Number(process.argv[4] || 64);
const levels = (process.argv[5] || '1,2,4,8,16').split(',').map(Number);
const REQS = Number(process.env.REQS || 2);
const TEMP = Number(process.env.TEMP || 0), TOP_P = Number(process.env.TOP_P || 1);
const MIXED = Number(process.env.MIXED || 0), MIXED_EVERY = Number(process.env.MIXED_EVERY || 2);
const CTX = MIXED ? MIXED + maxTokens + 64 : 512;
const maxLevel = Math.max(...levels);
if (!model) {
  console.error('usage: node bench/serve-bench.mjs MODEL.gguf [threads] [max_tokens] [levels]');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

async function start(cmd, args) {
  const port = await freePort();
  const proc = spawn(cmd, [...args, '--port', String(port)], { stdio: ['ignore', 'ignore', 'ignore'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 1200; i++) {
    try { if ((await fetch(`${url}/health`)).status === 200) break; } catch { /* starting */ }
    await sleep(100);
  }
  return { proc, url };
}

async function one(url, i) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `Story number ${i}: once upon a time`, max_tokens: maxTokens, temperature: TEMP,
      top_p: TOP_P, seed: i, stream: true, ignore_eos: true }) });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', first = null, last = null, n = 0;
  const itl = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      const text = j.choices?.[0]?.text ?? j.content;
      if (!text) continue;
      const now = performance.now();
      if (first === null) first = now - t0; else itl.push(now - last);
      last = now;
      n++;
    }
  }
  return { ttft: first, itl, n };
}

const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };

const errors = {}; /* server name -> [count, first message] */
/* Long prompts (as token ids, so that both servers see N tokens) arriving every MIXED_EVERY s until stop(). */
function longPrompts(url, stop) {
  let k = 0;
  const run = async () => {
    while (!stop.done) {
      const prompt = Array.from({ length: MIXED }, (_, j) => 100 + ((j * 7919 + k * 104729) % 20000));
      k++;
      try {
        await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt, max_tokens: 1, temperature: 0 }) });
      } catch { /* counted by the streams */ }
      await sleep(MIXED_EVERY * 1000);
    }
  };
  return run();
}

async function sweep(name, url) {
  const rows = [];
  for (const c of levels) {
    const stop = { done: false };
    const bg = MIXED ? longPrompts(url, stop) : null;
    const t0 = performance.now();
    const res = (await Promise.all(Array.from({ length: c }, async (_, k) => {
      const out = [];
      for (let r = 0; r < REQS; r++) {
        try { out.push(await one(url, c * 1000 + k * 10 + r)); } catch (e) {
          const n = (errors[name] ||= [0, `c=${c}: ${e.cause?.code || e.message}`]);
          n[0]++;
        }
      }
      return out;
    }))).flat();
    const secs = (performance.now() - t0) / 1000;
    stop.done = true;
    if (bg) await bg;
    const toks = res.reduce((a, r) => a + r.n, 0);
    const ttft = res.map((r) => r.ttft), itl = res.flatMap((r) => r.itl);
    rows.push({ name, c, tps: toks / secs, ttft50: pct(ttft, 0.5), ttft99: pct(ttft, 0.99), itl50: pct(itl, 0.5), itl99: pct(itl, 0.99) });
    console.error(`${name} c=${c}: ${(toks / secs).toFixed(1)} tok/s`);
  }
  return rows;
}

const hearth = path.resolve(here, '..', process.env.HEARTH_BIN || 'build/hearth');
const all = [];
{
  const s = await start(hearth, ['serve', '-m', model, '-t', String(threads), '--parallel', String(maxLevel + (MIXED ? 1 : 0)),
    '-c', String(CTX), '--max-queue', '1024']);
  all.push(...await sweep('hearth', s.url));
  s.proc.kill('SIGTERM');
}
if (process.env.LLAMA_SERVER) {
  const s = await start(process.env.LLAMA_SERVER, ['-m', model, '-t', String(threads), '-np', String(maxLevel + (MIXED ? 1 : 0)),
    '-c', String(CTX * (maxLevel + (MIXED ? 1 : 0))), '--no-webui']);
  all.push(...await sweep('llama-server', s.url));
  s.proc.kill('SIGTERM');
}

const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
console.log(`model ${path.basename(model)}, ${threads} threads, ${maxTokens} tokens per request, ${REQS} requests per client, ` +
  `temperature ${TEMP}, top_p ${TOP_P}` + (MIXED ? `, a ${MIXED}-token prompt every ${MIXED_EVERY} s` : ''));
console.log('| server | concurrency | aggregate tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of all) console.log(`| ${r.name} | ${r.c} | ${f(r.tps)} | ${f(r.ttft50)} | ${f(r.ttft99)} | ${f(r.itl50)} | ${f(r.itl99)} |`);
const h1 = all.find((r) => r.name === 'hearth' && r.c === 1), h8 = all.find((r) => r.name === 'hearth' && r.c === 8);
const l8 = all.find((r) => r.name === 'llama-server' && r.c === 8);
if (h1 && h8) console.log(`hearth at 8 streams: ${(h8.tps / h1.tps).toFixed(2)}x its single stream`);
if (h8 && l8) console.log(`hearth / llama-server at 8 streams: ${(h8.tps / l8.tps).toFixed(2)}x`);
for (const r of all) if (MIXED) console.log(`${r.name} c=${r.c}: ITL p99 / p50 = ${(r.itl99 / r.itl50).toFixed(2)}`);
for (const [name, [n, msg]] of Object.entries(errors))
  console.log(`${name}: ${n} request(s) failed, left out of the table (first: ${msg})`);
