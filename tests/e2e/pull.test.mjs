// /api/pull against a hub the test runs (Hugging Face's tree listing and
// resolve endpoints, HF_ENDPOINT pointing at it): the official `ollama` client
// pulls a model into a fresh HEARTH_HOME, the server registers it, and it then
// chats; URLs are refused, and a wrong checksum leaves nothing to serve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startServer, fixtures } from './helpers.mjs';

const FILE = fs.readFileSync(path.join(fixtures, 'models/tiny-qwen2.q8_0.gguf'));
const SHA = crypto.createHash('sha256').update(FILE).digest('hex');

// The hub: test/tiny-GGUF holds tiny-Q8_0.gguf; test/bad-GGUF lists a digest its file does not have.
function hub() {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const m = u.pathname.match(/^\/api\/models\/test\/(tiny|bad)-GGUF\/tree\/main$/);
    if (m) {
      const oid = m[1] === 'tiny' ? SHA : '0'.repeat(64);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify([{ type: 'file', path: 'tiny-Q8_0.gguf', size: FILE.length,
        lfs: { oid, size: FILE.length } }]));
      return;
    }
    if (/^\/test\/(tiny|bad)-GGUF\/resolve\/main\/tiny-Q8_0\.gguf$/.test(u.pathname)) {
      res.setHeader('content-length', FILE.length);
      res.end(FILE);
      return;
    }
    res.statusCode = 404;
    res.end('{"error":"not found"}');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

let srv, home, mock, ollama;
before(async () => {
  mock = await hub();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-pull-'));
  const env = { HEARTH_HOME: home, HF_ENDPOINT: `http://127.0.0.1:${mock.address().port}`, HF_TOKEN: '' };
  srv = await startServer(['--allow-pull'], { env });
  ollama = new Ollama({ host: srv.url });
});
after(async () => {
  const { code } = await srv.stop();
  mock.close();
  fs.rmSync(home, { recursive: true, force: true });
  assert.equal(code, 0, `server exit code ${code}\n${srv.log()}`);
});

test('pull a hub model, then chat with it by the name it was pulled as', async () => {
  const ref = 'test/tiny-GGUF:Q8_0';
  const lines = [];
  for await (const part of await ollama.pull({ model: ref, stream: true })) lines.push(part.status);
  assert.equal(lines.at(-1), 'success');
  const stored = path.join(home, 'models/hf/test/tiny-GGUF/tiny-Q8_0.gguf');
  assert.ok(fs.readFileSync(stored).equals(FILE), 'the stored file is the hub\'s');
  assert.ok((await ollama.list()).models.some((m) => m.name === ref));
  const r = await ollama.chat({ model: ref, messages: [{ role: 'user', content: 'hi' }], stream: false,
    options: { temperature: 0, num_predict: 4 } });
  assert.equal(r.done, true);
  assert.equal(r.eval_count, 4);
  assert.equal((await ollama.pull({ model: ref, stream: false })).status, 'success'); // again: nothing to do
});

test('refused: a URL, a corrupt download, an unknown repository', async () => {
  await assert.rejects(ollama.pull({ model: `http://127.0.0.1:${mock.address().port}/x.gguf`, stream: false }),
    (e) => e.status_code === 400 && /URL/.test(e.error));
  await assert.rejects(ollama.pull({ model: 'test/bad-GGUF:Q8_0', stream: false }),
    (e) => e.status_code >= 400 && typeof e.error === 'string' && !e.error.includes(home));
  assert.ok(!fs.existsSync(path.join(home, 'models/hf/test/bad-GGUF/tiny-Q8_0.gguf')));
  assert.ok(!(await ollama.list()).models.some((m) => m.name === 'test/bad-GGUF:Q8_0'));
  await assert.rejects(ollama.pull({ model: 'test/none-GGUF', stream: false }), (e) => e.status_code === 404);
});
