/* pretok.c - the regex chains of each known pre-tokenizer type, and splitting. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "../base/err.h"
#include "../base/utf8.h"
#include "pretok.h"
#include "unicode-cat.h"

/* Contractions, letters, 1-3 digits, punctuation runs, newlines, spaces. */
#define RE_LLAMA3                                                                                       \
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" \
	"| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* As llama3 but digits one at a time. */
#define RE_QWEN2                                                                                        \
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"      \
	"| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* GPT-2's original. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* Hugging Face's spellings of the same splits, for telling a tokenizer.json's
 * type (see pretok_detect). Its ByteLevel pre-tokenizer with use_regex is
 * GPT-2's regex; Digits is \p{N} (one by one) or \p{N}+. */
#define HF_LLAMA3                                                                                       \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
	"|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_QWEN2                                                                                        \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"      \
	"|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_PUNCT "[\\p{P}\\$\\+<=>\\^~\\|`]+" /* the Punctuation pre-tokenizer */

struct pretok_def {
	const char *names; /* space-separated aliases; the first is canonical */
	bool ignore_merges, add_bos;
	bool nfc; /* the tokenizer normalizes text to NFC first (Qwen's do) */
	const char *regex[PRETOK_MAX_REGEX];
	const char *hf[PRETOK_MAX_REGEX]; /* Hugging Face's chain when it is spelled otherwise */
};

static const struct pretok_def defs[] = {
	{ "default", false, false, false, { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" }, { NULL } },
	{ "llama-bpe llama3 llama-v3 falcon3 pixtral", true, true, false, { RE_LLAMA3 }, { HF_LLAMA3 } },
	{ "dbrx smaug-bpe", false, false, false, { RE_LLAMA3 }, { HF_LLAMA3 } },
	{ "qwen2 deepseek-r1-qwen", false, false, true, { RE_QWEN2 }, { HF_QWEN2 } },
	{ "stablelm2 hunyuan", false, false, false, { RE_QWEN2 }, { HF_QWEN2 } },
	{ "gpt-2 gpt2 phi-2 mpt olmo jina-es jina-de", false, false, false, { RE_GPT2 }, { NULL } },
	{ "starcoder refact command-r smollm codeshell exaone", false, false, false, { "\\p{N}", RE_GPT2 }, { NULL } },
	{ "falcon", false, false, false, { HF_PUNCT, RE_GPT2, "[0-9][0-9][0-9]" },
	  { HF_PUNCT, RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" } },
	/* Non-ASCII characters are written as PCRE2 \x{...} escapes: several of
	 * these ranges end at characters that Unicode normalization would change
	 * (U+1F7D, U+1FD3, U+1FDB, U+2126, U+212A), so they must not be literals. */
	{ "deepseek-llm", false, false, false,
	  { "[\r\n]",
	    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
	    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
	    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
	    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
	    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
	    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
	    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
	    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
	    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
	    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
	    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
	    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
	    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
	    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
	    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
	    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
	    "\\s+$",
	    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
	    "\\p{N}+" }, { NULL } },
	{ "deepseek-coder", false, false, false,
	  { "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
	    "\\p{N}" }, { NULL } },
	{ "deepseek-v3", false, false, false,
	  { "\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
	    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
	    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+" }, { NULL } },
};

static const struct pretok_def *find_def(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		const char *s = defs[i].names;
		while (*s) {
			size_t k = strcspn(s, " ");
			if (k == n && memcmp(s, name, n) == 0)
				return &defs[i];
			s += k;
			while (*s == ' ')
				s++;
		}
	}
	return NULL;
}

/* Appends s to out with non-ASCII characters and \x{..} escapes both written
 * as \x{HEX}: Hugging Face's files hold ranges as literal characters, the
 * table above as escapes. Returns false when out is too small. */
static bool canon_regex(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	while (*s) {
		unsigned long cp = 0;
		const unsigned char *u = (const unsigned char *)s;
		char *end;
		if (s[0] == '\\' && s[1] == 'x' && s[2] == '{' && (cp = strtoul(s + 3, &end, 16), *end == '}')) {
			s = end + 1;
		} else if (u[0] >= 0x80) {
			size_t k = hearth_utf8_valid(s, 4); /* stops at the NUL */
			if (!k)
				return false;
			cp = utf8_cp(s, k, &k);
			s += k;
		} else {
			if (s[0] == '\\' && s[1]) { /* keep escape pairs together */
				if (o + 2 >= cap)
					return false;
				out[o++] = *s++;
			}
			if (o + 1 >= cap)
				return false;
			out[o++] = *s++;
			continue;
		}
		int k = snprintf(out + o, cap - o, "\\x{%lX}", cp);
		if (k < 0 || (size_t)k >= cap - o)
			return false;
		o += (size_t)k;
	}
	out[o] = 0;
	return true;
}

static bool same_regex(const char *a, const char *b)
{
	size_t cap = 4 * (strlen(a) + strlen(b)) + 16;
	char *x = malloc(cap), *y = malloc(cap);
	bool same = x && y && canon_regex(a, x, cap) && canon_regex(b, y, cap) && strcmp(x, y) == 0;
	free(x);
	free(y);
	return same;
}

const char *pretok_detect(const char *const *regex, int n, bool ignore_merges, bool nfc)
{
	for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		const struct pretok_def *d = &defs[i];
		const char *const *chain = d->hf[0] ? d->hf : d->regex;
		int k = 0;
		while (k < PRETOK_MAX_REGEX && chain[k])
			k++;
		if (k != n || d->ignore_merges != ignore_merges || d->nfc != nfc)
			continue;
		for (k = 0; k < n && same_regex(chain[k], regex[k]); k++)
			;
		if (k == n)
			return d->names;
	}
	return NULL;
}

const char *pretok_gpt2_regex(void)
{
	return RE_GPT2;
}

const char *pretok_punct_regex(void)
{
	return HF_PUNCT;
}

/* ---- Unicode 16 categories on any PCRE2 -----------------------------------
 *
 * PCRE2 answers \p{L} and friends from the Unicode version it was built with
 * (14.0 in Debian 12); Hugging Face's tokenizers use 16.0, where thousands of
 * characters more are letters, marks, digits, punctuation or symbols (CJK
 * extension H, Garay, ...). Once per process, every character of the 16.0
 * tables (unicode-cat.c) that this PCRE2 does not put in its category is
 * collected, and each \p{X} of a pre-tokenizer regex then also lists those
 * characters explicitly. With a PCRE2 as new as the tables the lists are empty.
 */
static struct {
	pthread_once_t once;
	char *extra[UCAT_N_GROUPS]; /* "\x{..}-\x{..}..." or NULL */
} unicode_fix = { .once = PTHREAD_ONCE_INIT };

static int append(char **buf, size_t *n, size_t *cap, const char *s, size_t k)
{
	if (*n + k + 1 > *cap) {
		size_t c = *cap ? *cap : 256;
		while (*n + k + 1 > c)
			c *= 2;
		char *b = realloc(*buf, c);
		if (!b)
			return -1;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *n, s, k);
	*n += k;
	(*buf)[*n] = 0;
	return 0;
}

static size_t put_utf8(uint32_t cp, char *o)
{
	if (cp < 0x80)
		return o[0] = (char)cp, 1;
	if (cp < 0x800)
		return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
	if (cp < 0x10000)
		return o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		       o[2] = (char)(0x80 | (cp & 0x3f)), 3;
	return o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
	       o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

static void unicode_fix_init(void)
{
	for (int g = 0; g < UCAT_N_GROUPS; g++) {
		char pat[16], item[40], u[4];
		int ec;
		PCRE2_SIZE eo;
		snprintf(pat, sizeof pat, "\\p{%s}", ucat_groups[g].name);
		pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED,
						 &ec, &eo, NULL);
		pcre2_match_data *md = code ? pcre2_match_data_create(1, NULL) : NULL;
		char *buf = NULL;
		size_t n = 0, cap = 0;
		if (!md) {
			pcre2_code_free(code);
			continue;
		}
		pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
		uint32_t run_lo = 0, run_hi = 0;
		bool in_run = false, oom = false;
		for (size_t r = 0; r <= ucat_groups[g].n && !oom; r++) {
			uint32_t lo = r < ucat_groups[g].n ? ucat_groups[g].range[r][0] : 0x110000;
			uint32_t hi = r < ucat_groups[g].n ? ucat_groups[g].range[r][1] : 0x110000;
			for (uint32_t cp = lo; cp <= hi && !oom; cp++) {
				bool known = cp < 0x110000 &&
					     pcre2_match(code, (PCRE2_SPTR)u, put_utf8(cp, u), 0, 0, md, NULL) >= 0;
				if (cp < 0x110000 && !known && in_run && cp == run_hi + 1) {
					run_hi = cp;
					continue;
				}
				if (in_run) { /* close the run */
					int k = run_lo == run_hi ? snprintf(item, sizeof item, "\\x{%X}", run_lo)
								 : snprintf(item, sizeof item, "\\x{%X}-\\x{%X}", run_lo, run_hi);
					oom = append(&buf, &n, &cap, item, (size_t)k) != 0;
					in_run = false;
				}
				if (cp < 0x110000 && !known) {
					run_lo = run_hi = cp;
					in_run = true;
				}
			}
		}
		if (oom) { /* without the lists the regexes still work, on PCRE2's tables */
			free(buf);
			buf = NULL;
		}
		unicode_fix.extra[g] = buf;
		pcre2_match_data_free(md);
		pcre2_code_free(code);
	}
}

/* regex with each \p{X} of the tabled groups widened to Unicode 16;
 * malloc'd, NULL when out of memory. */
static char *widen_regex(const char *re)
{
	char *buf = NULL;
	size_t n = 0, cap = 0;
	bool in_class = false;
	pthread_once(&unicode_fix.once, unicode_fix_init);
	if (append(&buf, &n, &cap, "", 0))
		return NULL;
	for (size_t i = 0; re[i];) {
		int g = -1;
		if (re[i] == '\\' && re[i + 1] == 'p' && re[i + 2] == '{' && re[i + 3] && re[i + 4] == '}')
			for (int k = 0; k < UCAT_N_GROUPS; k++)
				if (re[i + 3] == ucat_groups[k].name[0] && unicode_fix.extra[k])
					g = k;
		if (g >= 0) {
			const char *x = unicode_fix.extra[g];
			if ((!in_class && append(&buf, &n, &cap, "[", 1)) || append(&buf, &n, &cap, re + i, 5) ||
			    append(&buf, &n, &cap, x, strlen(x)) || (!in_class && append(&buf, &n, &cap, "]", 1)))
				goto oom;
			i += 5;
			continue;
		}
		size_t k = re[i] == '\\' && re[i + 1] ? 2 : 1;
		if (k == 1 && re[i] == '[' && !in_class) {
			in_class = true;
			if (re[i + 1] == '^')
				k++;
			if (re[i + k] == ']') /* a ']' first in a class is a literal */
				k++;
		} else if (k == 1 && re[i] == ']' && in_class) {
			in_class = false;
		}
		if (append(&buf, &n, &cap, re + i, k))
			goto oom;
		i += k;
	}
	return buf;
oom:
	free(buf);
	return NULL;
}

int pretok_init(struct pretok *p, const char *name, const char *path, struct hearth_err *err)
{
	const struct pretok_def *d = find_def(name);
	memset(p, 0, sizeof *p);
	if (!d)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: unknown pre-tokenizer type '%s' (tokenizer.ggml.pre)", path, name);
	p->name = d->names;
	p->ignore_merges = d->ignore_merges;
	p->add_bos = d->add_bos;
	p->nfc = d->nfc;
	for (int i = 0; i < PRETOK_MAX_REGEX && d->regex[i]; i++) {
		int ec;
		PCRE2_SIZE eo;
		char *re = widen_regex(d->regex[i]);
		if (!re) {
			pretok_free(p);
			return err_set(err, HEARTH_ENOMEM, "pre-tokenizer '%s': out of memory", name);
		}
		p->code[i] = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
					   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
		free(re);
		if (!p->code[i]) {
			PCRE2_UCHAR msg[128];
			pcre2_get_error_message(ec, msg, sizeof msg);
			pretok_free(p);
			return err_set(err, HEARTH_EINVAL, "pre-tokenizer '%s': regex %d: %s at %zu", name, i, (char *)msg,
				       (size_t)eo);
		}
		if (pcre2_jit_compile(p->code[i], PCRE2_JIT_COMPLETE) != 0) {
			/* JIT is an optimization only */
		}
		p->n_regex = i + 1;
	}
	return 0;
}

void pretok_free(struct pretok *p)
{
	for (int i = 0; i < p->n_regex; i++)
		pcre2_code_free(p->code[i]);
	p->n_regex = 0;
}

/* ---- splitting, one word at a time --------------------------------------
 *
 * Level i of the chain splits each span level i-1 hands it into the matches
 * of regex i and the text between them. Words come out depth first, in text
 * order: the same words as splitting all of the text by regex 0, then every
 * piece by regex 1, and so on, but each found only when asked for, so a
 * caller that stops early has done work for the words it took and no more
 * (regex 0 searching for its next match aside).
 */

/* The next non-empty span of level i's input, or false when it has none left. */
static bool level_next(struct pretok_iter *it, int i, struct pretok_span *out)
{
	struct pretok_level *l = &it->lv[i];
	const char *subject = it->text + l->off;
	if (l->pending.len) { /* the match after a gap already handed out */
		*out = l->pending;
		l->pending.len = 0;
		return true;
	}
	while (!l->done && l->pos <= l->len) {
		int rc = pcre2_match(it->p->code[i], (PCRE2_SPTR)subject, l->len, l->pos, 0, it->md[i], NULL);
		if (rc < 0)
			break; /* no more matches (or PCRE2 gave up): the rest is one span */
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(it->md[i]);
		size_t ms = ov[0], me = ov[1];
		if (me == ms) { /* empty match: step one character */
			size_t step = utf8_seq_len((unsigned char)subject[ms]);
			l->pos = ms + (step < l->len - ms ? step : l->len - ms);
			if (ms >= l->len)
				break;
			continue;
		}
		struct pretok_span gap = { l->off + l->last, ms - l->last }, match = { l->off + ms, me - ms };
		l->last = l->pos = me;
		if (gap.len) {
			l->pending = match;
			*out = gap;
		} else {
			*out = match;
		}
		return true;
	}
	l->done = true;
	if (l->last < l->len) {
		*out = (struct pretok_span){ l->off + l->last, l->len - l->last };
		l->last = l->len;
		return true;
	}
	return false;
}

static void level_start(struct pretok_iter *it, int i, struct pretok_span in)
{
	it->lv[i] = (struct pretok_level){ .off = in.off, .len = in.len };
}

int pretok_iter_init(struct pretok_iter *it, const struct pretok *p, const char *text, size_t len)
{
	memset(it, 0, sizeof *it);
	it->p = p;
	it->text = text;
	it->len = len;
	for (int i = 0; i < p->n_regex; i++)
		if (!(it->md[i] = pcre2_match_data_create_from_pattern(p->code[i], NULL))) {
			pretok_iter_free(it);
			return HEARTH_ENOMEM;
		}
	if (p->n_regex > 0)
		level_start(it, 0, (struct pretok_span){ 0, len });
	return 0;
}

bool pretok_iter_next(struct pretok_iter *it, struct pretok_span *word)
{
	if (!it->p)
		return false;
	if (it->p->n_regex == 0) { /* no regex: the text is one word */
		*word = (struct pretok_span){ 0, it->len };
		it->p = NULL;
		return word->len > 0;
	}
	for (;;) {
		struct pretok_span sp;
		if (!level_next(it, it->depth, &sp)) {
			if (it->depth == 0)
				return false;
			it->depth--;
			continue;
		}
		if (it->depth == it->p->n_regex - 1) {
			*word = sp;
			return true;
		}
		level_start(it, ++it->depth, sp);
	}
}

void pretok_iter_free(struct pretok_iter *it)
{
	for (int i = 0; i < PRETOK_MAX_REGEX; i++)
		pcre2_match_data_free(it->md[i]);
	memset(it, 0, sizeof *it);
}
