// Hugging Face tokenizers (Rust, npm "tokenizers") encode speed on one core,
// for comparison with build/tokbench on the same text:
//   RAYON_NUM_THREADS=1 node bench/tok-hf.mjs TOKENIZER_DIR TEXT_FILE [REPS]
// Needs tests/conformance's node_modules (cd tests/conformance && npm ci).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../tests/conformance/package.json'));
const { Tokenizer } = require('tokenizers');
const [dir, file, repsArg] = process.argv.slice(2);
const reps = Number(repsArg || 20);
const tok = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
const text = readFileSync(file, 'utf8');
const bytes = Buffer.byteLength(text);
const rates = [];
let n = 0;
for (let r = 0; r < reps; r++) {
  const t0 = process.hrtime.bigint();
  const e = await tok.encode(text, null, { addSpecialTokens: false });
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  n = e.getIds().length;
  rates.push(bytes / dt / 1e6);
}
rates.sort((a, b) => a - b);
console.log(`${path.basename(dir).padEnd(14)} ${bytes} bytes ${n} tokens  encode ${rates[reps >> 1].toFixed(2)} MB/s (Hugging Face tokenizers, median of ${reps})`);
