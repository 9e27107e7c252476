// Helpers shared by the end-to-end tests: start a server on a free port, wait
// until /health answers, stop it; HTTP requests with the OpenAI error shape checked.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
export const bin = path.resolve(root, process.env.HEARTH_BIN || 'build/hearth');
export const fixtures = path.resolve(root, process.env.HEARTH_FIXTURES || '../shared/fixtures');
export const MODEL = path.join(fixtures, 'models/tiny-qwen2.f32.gguf');
export const sanitized = !!process.env.HEARTH_SAN;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

export function hasPromtool() {
  return spawnSync('promtool', ['--version']).status === 0;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer(extra = [], opts = {}) {
  const port = opts.port ?? await freePort();
  const scheme = opts.scheme ?? 'http';
  // opts.models: the model flags instead of '-m MODEL' (several models, --models-dir)
  const proc = spawn(bin, ['serve', ...(opts.models ?? ['-m', MODEL]), '--port', String(port), '-t', '2', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...(opts.env ?? {}) } });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  const url = `${scheme}://127.0.0.1:${port}`;
  const health = opts.health ?? ((u) => fetch(`${u}/health`).then((r) => r.status));
  for (let i = 0; i < 300 && opts.wait !== false; i++) {
    try {
      if (await health(url) === 200) break;
    } catch { /* not listening yet */ }
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  return { proc, port, url, exited, log: () => log,
    async stop() { proc.kill('SIGTERM'); return exited; } };
}


export async function request(url, p, { method = 'POST', body, headers = {} } = {}) {
  const r = await fetch(url + p, { method, headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) });
  let json = null;
  const text = await r.text();
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

export function assertError(res, status, param) {
  assert.equal(res.status, status, res.text);
  assert.ok(res.json?.error, `OpenAI error shape expected: ${res.text}`);
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in res.json.error, `error.${k}`);
  assert.ok(res.json.error.message.length > 0);
  if (param !== undefined) assert.equal(res.json.error.param, param);
}

// Runs `hearth ARGS` to its end: { code, stderr, stdout }.
export function runHearth(args, opts = {}) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60000, ...opts });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}
