/* jinja-lex.c - the Jinja2 lexer, with the environment transformers uses:
 * trim_blocks (the first newline after %} and #} goes), lstrip_blocks
 * (blanks from a line's start up to {% or {# go, unless {%+), the '-'
 * modifiers (all whitespace on that side goes, Unicode whitespace included),
 * raw blocks, comments. Inside {{ }} and {% %} it yields names, strings
 * (Python escapes decoded), integers, floats and operators; a closing
 * delimiter counts only outside brackets, as in jinja2.
 *
 * The source has already had its newlines normalized and one trailing
 * newline dropped (template.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/utf8.h"
#include "jinja.h"

struct lexer {
	const char *s;
	size_t n, pos;
	struct jarena *a;
	struct jtoken *v;
	size_t nv, cap;
	struct hearth_err *err;
};

static void where(const struct lexer *L, size_t pos, uint32_t *line, uint32_t *col)
{
	uint32_t ln = 1;
	size_t bol = 0;
	for (size_t i = 0; i < pos && i < L->n; i++)
		if (L->s[i] == '\n') {
			ln++;
			bol = i + 1;
		}
	*line = ln;
	*col = (uint32_t)utf8_count(L->s + bol, pos - bol) + 1;
}

static int lex_fail(struct lexer *L, size_t pos, const char *msg)
{
	uint32_t line, col;
	where(L, pos, &line, &col);
	return err_set(L->err, HEARTH_EINVAL, "template line %u, column %u: %s", (unsigned)line, (unsigned)col, msg);
}

static struct jtoken *push(struct lexer *L, int type, size_t pos)
{
	if (L->nv == L->cap) {
		size_t cap = L->cap ? L->cap * 2 : 256;
		struct jtoken *v = ja_alloc(L->a, cap * sizeof *v);
		if (!v)
			return NULL;
		if (L->nv)
			jmemcpy(v, L->v, L->nv * sizeof *v);
		L->v = v;
		L->cap = cap;
	}
	struct jtoken *t = &L->v[L->nv++];
	memset(t, 0, sizeof *t);
	t->type = (uint8_t)type;
	t->line = (uint32_t)pos; /* a byte offset until fix_positions() */
	return t;
}

/* Unicode whitespace at s[i] (Python's \s): its byte length, else 0 */
static size_t ws_at(const char *s, size_t n, size_t i)
{
	size_t k;
	uint32_t cp = utf8_cp(s + i, n - i, &k);
	return py_isspace(cp) ? k : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	size_t k;
	while (i < n && (k = ws_at(s, n, i)))
		i += k;
	return i;
}

/* length of text without its trailing Unicode whitespace */
static size_t rstrip_len(const char *s, size_t len)
{
	size_t end = len;
	while (end > 0) {
		size_t st = end - 1;
		while (st > 0 && ((unsigned char)s[st] & 0xc0) == 0x80)
			st--;
		if (!ws_at(s, end, st))
			break;
		end = st;
	}
	return end;
}

/* jinja2's OptionalLStrip: the text before a tag, cut per the tag's sign */
static size_t lstrip_text(const struct lexer *L, size_t start, size_t len, char sign, bool is_var)
{
	const char *t = L->s + start;
	if (sign == '-')
		return rstrip_len(t, len);
	if (sign == '+' || is_var)
		return len;
	size_t lpos = len;
	while (lpos > 0 && t[lpos - 1] != '\n')
		lpos--;
	bool line_starting = start == 0 || L->s[start - 1] == '\n';
	if (lpos == 0 && !line_starting)
		return len;
	if (lpos == len)
		return len;
	if (skip_ws(t, len, lpos) == len)
		return lpos;
	return len;
}

static int emit_data(struct lexer *L, size_t start, size_t len)
{
	if (!len)
		return 0;
	struct jtoken *t = push(L, T_DATA, start);
	if (!t)
		return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
	t->p = L->s + start;
	t->len = len;
	return 0;
}

/* a block end at i: "+%}", "-%}\s*", "%}\n?"; returns the position after it or 0 */
static size_t block_end_at(const struct lexer *L, size_t i, char close)
{
	const char *s = L->s;
	size_t n = L->n;
	if (i + 2 < n + 0 && (s[i] == '+' || s[i] == '-') && i + 2 < n + 1 && s[i + 1] == close && s[i + 2] == '}') {
		if (s[i] == '+')
			return close == '%' ? i + 3 : 0;
		return skip_ws(s, n, i + 3);
	}
	if (i + 1 < n && s[i] == close && s[i + 1] == '}') {
		size_t e = i + 2;
		if (close == '%' && e < n && s[e] == '\n')
			e++;
		return e;
	}
	return 0;
}

static int decode_string(struct lexer *L, size_t q0, size_t q1, struct jtoken *t);

static const char *const ops3[] = { NULL };
static const char *const ops2[] = { "**", "//", "==", "!=", ">=", "<=", NULL };
static const char ops1[] = "+-*/%~[](){}<>=.:|,;";

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }

/* digits with single underscores between them: end position or i when none */
static size_t digits(const char *s, size_t n, size_t i)
{
	size_t j = i;
	if (j >= n || !is_digit(s[j]))
		return i;
	while (j < n) {
		if (is_digit(s[j]))
			j++;
		else if (s[j] == '_' && j + 1 < n && is_digit(s[j + 1]))
			j++;
		else
			break;
	}
	return j;
}

static int lex_number(struct lexer *L, size_t i, size_t *end)
{
	const char *s = L->s;
	size_t n = L->n;
	size_t j = digits(s, n, i), e = 0;
	bool is_float = false;
	if (!(i > 0 && s[i - 1] == '.')) {
		size_t k = j;
		if (k < n && s[k] == '.' && digits(s, n, k + 1) > k + 1) {
			k = digits(s, n, k + 1);
			is_float = true;
		}
		if (k < n && (s[k] == 'e' || s[k] == 'E')) {
			size_t m = k + 1;
			if (m < n && (s[m] == '+' || s[m] == '-'))
				m++;
			size_t m2 = digits(s, n, m);
			if (m2 > m) {
				k = m2;
				is_float = true;
			}
		}
		if (is_float)
			e = k;
	}
	char buf[128];
	struct jtoken *t;
	if (is_float) {
		size_t w = 0;
		for (size_t x = i; x < e && w < sizeof buf - 1; x++)
			if (s[x] != '_')
				buf[w++] = s[x];
		buf[w] = 0;
		if (!(t = push(L, T_FLOAT, i)))
			return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
		t->f = strtod(buf, NULL);
		*end = e;
		return 0;
	}
	/* integers: 0b 0o 0x, or decimal (a leading 0 only as zeros) */
	int base = 10;
	size_t st = i;
	if (s[i] == '0' && i + 1 < n && strchr("bBoOxX", s[i + 1]) && s[i + 1]) {
		char b = (char)(s[i + 1] | 0x20);
		base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
		st = i + 2;
		j = st;
		while (j < n) {
			char ch = s[j];
			int d = is_digit(ch) ? ch - '0' : (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10 : 99;
			if (ch == '_' && j + 1 < n)
				j++;
			else if (d < base)
				j++;
			else
				break;
		}
		if (j == st)
			return lex_fail(L, i, "invalid integer literal");
	} else if (s[i] == '0') {
		j = i + 1;
		while (j < n && (s[j] == '0' || (s[j] == '_' && j + 1 < n && s[j + 1] == '0')))
			j++;
	}
	uint64_t v = 0;
	for (size_t x = st; x < j; x++) {
		char ch = s[x];
		if (ch == '_')
			continue;
		int d = is_digit(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base || v * (uint64_t)base + (uint64_t)d > (uint64_t)INT64_MAX)
			return err_set(L->err, HEARTH_EUNSUPPORTED, "template: an integer literal past 64 bits");
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (!(t = push(L, T_INT, i)))
		return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
	t->i = (int64_t)v;
	*end = j;
	return 0;
}

/* tokens inside {{ }} or {% %} from L->pos; stops after the end delimiter */
static int lex_tag(struct lexer *L, char close)
{
	const char *s = L->s;
	size_t n = L->n, i = L->pos;
	int depth = 0;
	char stack[JINJA_MAX_NEST];
	for (;;) {
		if (i >= n)
			return lex_fail(L, i, close == '%' ? "unexpected end of template: missing '%}'" :
							     "unexpected end of template: missing '}}'");
		if (depth == 0) {
			size_t e = block_end_at(L, i, close);
			if (e) {
				if (!push(L, close == '%' ? T_BLOCK_END : T_VAR_END, i))
					return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
				L->pos = e;
				return 0;
			}
		}
		size_t k = ws_at(s, n, i);
		if (k) {
			i += k;
			continue;
		}
		char ch = s[i];
		if (is_digit(ch)) {
			if (lex_number(L, i, &i))
				return L->err->code;
			continue;
		}
		if (is_alpha(ch)) {
			size_t j = i + 1;
			while (j < n && (is_alpha(s[j]) || is_digit(s[j])))
				j++;
			struct jtoken *t = push(L, T_NAME, i);
			if (!t)
				return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
			t->p = s + i;
			t->len = j - i;
			i = j;
			continue;
		}
		if (ch == '\'' || ch == '"') {
			size_t j = i + 1;
			while (j < n && s[j] != ch) {
				if (s[j] == '\\' && j + 1 < n)
					j++;
				j++;
			}
			if (j >= n)
				return lex_fail(L, i, "unterminated string");
			struct jtoken *t = push(L, T_STRING, i);
			if (!t)
				return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
			if (decode_string(L, i + 1, j, t))
				return L->err->code;
			i = j + 1;
			continue;
		}
		size_t olen = 0;
		for (int o = 0; ops2[o]; o++)
			if (i + 1 < n && s[i] == ops2[o][0] && s[i + 1] == ops2[o][1])
				olen = 2;
		if (!olen && ch && strchr(ops1, ch))
			olen = 1;
		if (!olen)
			return lex_fail(L, i, "unexpected character");
		if (ch == '(' || ch == '[' || ch == '{') {
			if (depth >= JINJA_MAX_NEST)
				return lex_fail(L, i, "brackets nested too deep");
			stack[depth++] = ch == '(' ? ')' : ch == '[' ? ']' : '}';
		} else if (olen == 1 && (ch == ')' || ch == ']' || ch == '}')) {
			if (!depth)
				return lex_fail(L, i, "unexpected closing bracket");
			if (stack[depth - 1] != ch)
				return lex_fail(L, i, "mismatched closing bracket");
			depth--;
		}
		struct jtoken *t = push(L, T_OP, i);
		if (!t)
			return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
		t->p = s + i;
		t->len = olen;
		i += olen;
	}
	(void)ops3;
}

static int hexval(const char *s, size_t n, size_t i, int nd, uint32_t *v)
{
	*v = 0;
	for (int k = 0; k < nd; k++) {
		if (i + (size_t)k >= n)
			return -1;
		char ch = s[i + (size_t)k];
		int d = is_digit(ch) ? ch - '0' : (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		*v = *v * 16 + (uint32_t)d;
	}
	return 0;
}

static size_t put_cp(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Python's unicode-escape decoding of s[q0, q1) */
static int decode_string(struct lexer *L, size_t q0, size_t q1, struct jtoken *t)
{
	const char *s = L->s;
	char *o = ja_alloc(L->a, (q1 - q0) + 1);
	if (!o)
		return err_set(L->err, HEARTH_ENOMEM, "template: out of memory");
	size_t w = 0;
	for (size_t i = q0; i < q1;) {
		if (s[i] != '\\' || i + 1 >= q1) {
			o[w++] = s[i++];
			continue;
		}
		char e = s[i + 1];
		uint32_t cp;
		int nd = 0;
		static const char from[] = "\\'\"abfnrtv\n", to[] = "\\'\"\a\b\f\n\r\t\v";
		const char *simple = strchr(from, e);
		if (e && simple) {
			size_t k = (size_t)(simple - from);
			if (e != '\n') /* backslash-newline is a line continuation */
				o[w++] = to[k];
			i += 2;
			continue;
		}
		if (e >= '0' && e <= '7') {
			cp = 0;
			size_t j = i + 1;
			for (int k = 0; k < 3 && j < q1 && s[j] >= '0' && s[j] <= '7'; k++, j++)
				cp = cp * 8 + (uint32_t)(s[j] - '0');
			w += put_cp(o + w, cp);
			i = j;
			continue;
		}
		nd = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
		if (nd) {
			if (hexval(s, q1, i + 2, nd, &cp))
				return lex_fail(L, i, "truncated \\x, \\u or \\U escape in a string");
			if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				return err_set(L->err, HEARTH_EUNSUPPORTED,
					       "template: a string escape of a surrogate or past U+10FFFF");
			if (w + 4 > (q1 - q0) + 1) /* \xHH is 4 bytes in, at most 2 out: never */
				return lex_fail(L, i, "escape");
			w += put_cp(o + w, cp);
			i += 2 + (size_t)nd;
			continue;
		}
		if (e == 'N')
			return err_set(L->err, HEARTH_EUNSUPPORTED, "template: \\N{...} string escapes are not supported");
		o[w++] = s[i++]; /* an unknown escape stays as it is */
	}
	o[w] = 0;
	t->p = o;
	t->len = w;
	return 0;
}

/* the comment from L->pos (after "{#" and its sign) to its end */
static int lex_comment(struct lexer *L, size_t open)
{
	const char *s = L->s;
	size_t n = L->n;
	for (size_t i = L->pos; i + 1 < n; i++) {
		if ((s[i] == '+' || s[i] == '-') && i + 2 < n && s[i + 1] == '#' && s[i + 2] == '}') {
			L->pos = s[i] == '-' ? skip_ws(s, n, i + 3) : i + 3;
			return 0;
		}
		if (s[i] == '#' && s[i + 1] == '}') {
			L->pos = i + 2 < n && s[i + 2] == '\n' ? i + 3 : i + 2;
			return 0;
		}
	}
	return lex_fail(L, open, "missing end of comment tag");
}

/* "{%[-+]?\s*raw\s*(-%}\s*|%})" at i: the position after it, else 0 */
static size_t raw_begin_at(const struct lexer *L, size_t i, const char *word)
{
	const char *s = L->s;
	size_t n = L->n, j = i + 2, wl = strlen(word);
	if (j < n && (s[j] == '-' || s[j] == '+'))
		j++;
	j = skip_ws(s, n, j);
	if (j + wl > n || memcmp(s + j, word, wl))
		return 0;
	j += wl;
	if (j < n && (is_alpha(s[j]) || is_digit(s[j])))
		return 0;
	j = skip_ws(s, n, j);
	return j;
}

/* the body of a raw block from L->pos: data up to {% endraw %} */
static int lex_raw(struct lexer *L, size_t open)
{
	const char *s = L->s;
	size_t n = L->n;
	for (size_t i = L->pos; i + 1 < n; i++) {
		if (s[i] != '{' || s[i + 1] != '%')
			continue;
		size_t j = raw_begin_at(L, i, "endraw");
		if (!j)
			continue;
		size_t e = block_end_at(L, j, '%');
		if (!e)
			continue;
		char sign = s[i + 2] == '-' || s[i + 2] == '+' ? s[i + 2] : 0;
		size_t len = lstrip_text(L, L->pos, i - L->pos, sign, false);
		if (emit_data(L, L->pos, len))
			return L->err->code;
		L->pos = e;
		return 0;
	}
	return lex_fail(L, open, "missing end of raw directive");
}

static void fix_positions(struct lexer *L)
{
	uint32_t line = 1;
	size_t bol = 0, at = 0;
	for (size_t k = 0; k < L->nv; k++) {
		size_t pos = L->v[k].line;
		for (; at < pos && at < L->n; at++)
			if (L->s[at] == '\n') {
				line++;
				bol = at + 1;
			}
		L->v[k].line = line;
		L->v[k].col = (uint32_t)utf8_count(L->s + bol, pos - bol) + 1;
	}
}

int jinja_lex(const char *src, size_t len, struct jarena *a, struct jtokens *out, struct hearth_err *err)
{
	struct lexer L = { .s = src, .n = len, .a = a, .err = err };
	while (L.pos < L.n) {
		const char *s = L.s;
		size_t i = L.pos, tag = L.n;
		for (; i + 1 < L.n; i++)
			if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) {
				tag = i;
				break;
			}
		if (tag == L.n) {
			if (emit_data(&L, L.pos, L.n - L.pos))
				return err->code;
			break;
		}
		char kind = s[tag + 1];
		char sign = tag + 2 < L.n && (s[tag + 2] == '-' || s[tag + 2] == '+') ? s[tag + 2] : 0;
		size_t raw_end = 0;
		if (kind == '%') {
			size_t j = raw_begin_at(&L, tag, "raw");
			if (j && j + 1 < L.n && s[j] == '-' && s[j + 1] == '%' && j + 2 < L.n && s[j + 2] == '}')
				raw_end = skip_ws(s, L.n, j + 3);
			else if (j && j + 1 < L.n && s[j] == '%' && s[j + 1] == '}')
				raw_end = j + 2;
		}
		size_t tlen = lstrip_text(&L, L.pos, tag - L.pos, sign, kind == '{');
		if (emit_data(&L, L.pos, tlen))
			return err->code;
		if (raw_end) {
			L.pos = raw_end;
			if (lex_raw(&L, tag))
				return err->code;
			continue;
		}
		L.pos = tag + 2 + (sign ? 1 : 0);
		if (kind == '#') {
			if (lex_comment(&L, tag))
				return err->code;
			continue;
		}
		if (!push(&L, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, tag))
			return err_set(err, HEARTH_ENOMEM, "template: out of memory");
		if (lex_tag(&L, kind == '%' ? '%' : '}'))
			return err->code;
	}
	if (!push(&L, T_EOF, L.n))
		return err_set(err, HEARTH_ENOMEM, "template: out of memory");
	fix_positions(&L);
	out->v = L.v;
	out->n = L.nv;
	return 0;
}
