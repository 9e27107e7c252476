// highlight.js - a small syntax highlighter for fenced code: keywords,
// strings, comments and numbers of common languages, as <span> nodes whose
// text is set with textContent (the code is model output: never parsed as HTML).

const KEYWORDS = {
  c: 'auto break case char const continue default do double else enum extern float for goto if inline int long ' +
     'register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while ' +
     'bool true false NULL size_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t #include ' +
     '#define #if #ifdef #ifndef #endif #else class namespace template typename public private protected virtual ' +
     'override new delete this nullptr using try catch throw constexpr auto std',
  js: 'await async break case catch class const continue debugger default delete do else export extends false ' +
      'finally for function if import in instanceof let new null of return static super switch this throw true ' +
      'try typeof undefined var void while with yield interface type enum implements readonly',
  py: 'and as assert async await break class continue def del elif else except False finally for from global if ' +
      'import in is lambda None nonlocal not or pass raise return True try while with yield self print',
  rust: 'as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod ' +
        'move mut pub ref return self Self static struct super trait true type unsafe use where while Some None Ok Err',
  go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map ' +
      'package range return select struct switch type var nil true false',
  java: 'abstract boolean break byte case catch char class const continue default do double else enum extends ' +
        'final finally float for if implements import instanceof int interface long new null package private ' +
        'protected public return short static super switch this throw throws try void while true false',
  sh: 'if then else elif fi for while until do done case esac function in return export local echo exit set',
  sql: 'select from where insert into values update set delete create table drop alter and or not null join left ' +
       'right inner outer on group by order having limit as distinct primary key index',
  json: 'true false null',
};
const ALIASES = {
  h: 'c', cpp: 'c', 'c++': 'c', cc: 'c', hpp: 'c', javascript: 'js', mjs: 'js', ts: 'js', typescript: 'js',
  jsx: 'js', tsx: 'js', python: 'py', rs: 'rust', golang: 'go', kotlin: 'java', cs: 'java', csharp: 'java',
  bash: 'sh', shell: 'sh', zsh: 'sh', console: 'sh',
};
const HASH_COMMENT = new Set(['py', 'sh']);
const SETS = {};

function keywords(lang) {
  if (!SETS[lang]) SETS[lang] = new Set(KEYWORDS[lang].split(' '));
  return SETS[lang];
}

// The language a fence's info string names, or '' (plain text).
export function langOf(info) {
  const l = String(info || '').trim().split(/\s+/)[0].toLowerCase();
  const name = ALIASES[l] || l;
  return KEYWORDS[name] ? name : '';
}

// One token at text[i]: [class or '', length].
function token(text, i, lang) {
  const c = text[i], rest = text.slice(i, i + 2);
  if (rest === '//' && !HASH_COMMENT.has(lang) && lang !== 'sql') {
    const e = text.indexOf('\n', i);
    return ['hl-com', (e < 0 ? text.length : e) - i];
  }
  if (rest === '/*' && !HASH_COMMENT.has(lang)) {
    const e = text.indexOf('*/', i + 2);
    return ['hl-com', (e < 0 ? text.length : e + 2) - i];
  }
  if ((c === '#' && HASH_COMMENT.has(lang)) || (rest === '--' && lang === 'sql')) {
    const e = text.indexOf('\n', i);
    return ['hl-com', (e < 0 ? text.length : e) - i];
  }
  if (c === '"' || c === "'" || (c === '`' && lang === 'js')) {
    let j = i + 1;
    while (j < text.length && text[j] !== c) {
      if (text[j] === '\\') j++;
      else if (text[j] === '\n' && c !== '`') break;
      j++;
    }
    return ['hl-str', Math.min(j + 1, text.length) - i];
  }
  const num = /^(0x[0-9a-f]+|\d+(\.\d+)?(e[+-]?\d+)?)/i.exec(text.slice(i, i + 40));
  if (num && !/[\w$]/.test(text[i - 1] || '')) return ['hl-num', num[0].length];
  const word = /^[#A-Za-z_$][\w$]*/.exec(text.slice(i, i + 80));
  if (word) {
    const w = lang === 'sql' ? word[0].toLowerCase() : word[0];
    return [keywords(lang).has(w) ? 'hl-kw' : '', word[0].length];
  }
  return ['', 1];
}

// code highlighted as lang into parent (plain text when lang is unknown).
export function highlight(parent, code, lang) {
  if (!lang || code.length > 200000) {
    parent.textContent = code;
    return;
  }
  let plain = '';
  const flush = () => { if (plain) parent.append(plain); plain = ''; };
  for (let i = 0; i < code.length;) {
    const [cls, n] = token(code, i, lang);
    const piece = code.slice(i, i + n);
    if (cls) {
      flush();
      const s = document.createElement('span');
      s.className = cls;
      s.textContent = piece;
      parent.append(s);
    } else {
      plain += piece;
    }
    i += n;
  }
  flush();
}
