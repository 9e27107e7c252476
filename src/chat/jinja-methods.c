/* jinja-methods.c - methods of str, dict and list as the sandbox allows them
 * (mutating ones are refused by jinja-eval.c before they get here), and the
 * globals: range, dict, namespace, cycler, joiner, lipsum, raise_exception,
 * strftime_now.
 *
 * Provenance: pieces cut out of a string (strip, split, partition) keep the
 * content ranges they hold; other results of a content string (upper,
 * replace, ...) are content as a whole.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "../base/err.h"
#include "../base/utf8.h"
#include "jinja.h"

static const char *const str_methods[] = {
	"capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
	"format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
	"isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
	"maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
	"rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
	"translate", "upper", "zfill", NULL
};
static const char *const dict_methods[] = { "clear", "copy", "fromkeys", "get", "items", "keys",
					    "pop", "popitem", "setdefault", "update", "values", NULL };
static const char *const dict_unsafe[] = { "clear", "pop", "popitem", "setdefault", "update", NULL };
static const char *const list_methods[] = { "append", "clear", "copy", "count", "extend", "index",
					    "insert", "pop", "remove", "reverse", "sort", NULL };
static const char *const list_unsafe[] = { "append", "clear", "extend", "insert", "pop", "remove",
					   "reverse", "sort", NULL };

static bool in_set(const char *const *set, const char *name)
{
	for (int i = 0; set[i]; i++)
		if (!strcmp(set[i], name))
			return true;
	return false;
}

bool jinja_method_exists(struct jv obj, const char *name, bool *unsafe)
{
	*unsafe = false;
	switch (obj.t) {
	case JT_STR:
		return in_set(str_methods, name);
	case JT_DICT:
		*unsafe = in_set(dict_unsafe, name);
		return in_set(dict_methods, name);
	case JT_LIST:
		if (obj.flag)
			return !strcmp(name, "index") || !strcmp(name, "count");
		*unsafe = in_set(list_unsafe, name);
		return in_set(list_methods, name);
	default:
		return false;
	}
}

/* ---- str helpers ---- */

static bool in_chars(uint32_t cp, const struct jstr *chars)
{
	for (size_t i = 0; i < chars->len;) {
		size_t k;
		if (utf8_cp(chars->p + i, chars->len - i, &k) == cp)
			return true;
		i += k;
	}
	return false;
}

/* strip: which 1 left, 2 right, 3 both; chars NULL: whitespace */
static int do_strip(struct jctx *c, struct jv s, const struct jstr *chars, int which, struct jv *out)
{
	const char *p = s.s->p;
	size_t b = 0, e = s.s->len, k;
	if (which & 1)
		while (b < e) {
			uint32_t cp = utf8_cp(p + b, e - b, &k);
			if (chars ? !in_chars(cp, chars) : !py_isspace(cp))
				break;
			b += k;
		}
	if (which & 2)
		while (e > b) {
			size_t st = e - 1;
			while (st > b && ((unsigned char)p[st] & 0xc0) == 0x80)
				st--;
			uint32_t cp = utf8_cp(p + st, e - st, &k);
			if (chars ? !in_chars(cp, chars) : !py_isspace(cp))
				break;
			e = st;
		}
	return jv_substr(c, s, b, e - b, out);
}

int jinja_strip(struct jctx *c, struct jv s, struct jv chars, int which, struct jv *out)
{
	return do_strip(c, s, chars.t == JT_STR ? chars.s : NULL, which, out);
}

int jinja_list_push(struct jctx *c, struct jv *list, struct jv item)
{
	struct jlist *l = list->l;
	/* lists built by pushing grow by doubling: capacity is 4, 8, 16 ... */
	if (l->n == 0 || (l->n >= 4 && !(l->n & (l->n - 1)))) {
		size_t ncap = l->n ? l->n * 2 : 4;
		struct jv *v = ja_alloc(&c->ar, ncap * sizeof *v);
		if (!v)
			return joom(c, NULL);
		if (l->n)
			jmemcpy(v, l->v, l->n * sizeof *v);
		l->v = v;
	}
	l->v[l->n++] = item;
	return 0;
}

/* split / rsplit */
static int do_split(struct jctx *c, const struct jnode *n, struct jv s, struct jv sep, int64_t maxsplit, bool right,
		    struct jv *out)
{
	const char *p = s.s->p;
	size_t len = s.s->len;
	struct jv piece;
	if (jv_list(c, 0, out))
		return c->err->code;
	if (sep.t == JT_STR) {
		size_t sl = sep.s->len;
		if (!sl)
			return jerr(c, n, "ValueError: empty separator");
		/* collect split points */
		size_t *cuts = ja_alloc(&c->ar, (len / sl + 2) * sizeof *cuts);
		size_t nc = 0;
		if (!cuts)
			return joom(c, n);
		if (!right) {
			for (size_t i = 0; i + sl <= len && (maxsplit < 0 || (int64_t)nc < maxsplit);) {
				if (!memcmp(p + i, sep.s->p, sl)) {
					cuts[nc++] = i;
					i += sl;
				} else {
					i++;
				}
			}
		} else {
			size_t tmp = len;
			while (tmp >= sl && (maxsplit < 0 || (int64_t)nc < maxsplit)) {
				size_t i = tmp - sl;
				for (;; i--) {
					if (!memcmp(p + i, sep.s->p, sl))
						break;
					if (i == 0) {
						i = SIZE_MAX;
						break;
					}
				}
				if (i == SIZE_MAX)
					break;
				cuts[nc++] = i;
				tmp = i;
			}
			for (size_t a = 0; a < nc / 2; a++) { /* ascending */
				size_t t = cuts[a];
				cuts[a] = cuts[nc - 1 - a];
				cuts[nc - 1 - a] = t;
			}
		}
		size_t from = 0;
		for (size_t k = 0; k <= nc; k++) {
			size_t to = k < nc ? cuts[k] : len;
			if (jv_substr(c, s, from, to - from, &piece) || jinja_list_push(c, out, piece))
				return c->err->code;
			from = to + sl;
		}
		return 0;
	}
	/* whitespace runs */
	size_t i = 0, k;
	int64_t done = 0;
	if (!right) {
		for (;;) {
			while (i < len && py_isspace(utf8_cp(p + i, len - i, &k)))
				i += k;
			if (i >= len)
				break;
			size_t st = i;
			if (maxsplit >= 0 && done >= maxsplit) {
				size_t e = len;
				while (e > st) { /* the rest, right-stripped */
					size_t q = e - 1;
					while (q > st && ((unsigned char)p[q] & 0xc0) == 0x80)
						q--;
					if (!py_isspace(utf8_cp(p + q, e - q, &k)))
						break;
					e = q;
				}
				if (jv_substr(c, s, st, e - st, &piece) || jinja_list_push(c, out, piece))
					return c->err->code;
				break;
			}
			while (i < len && !py_isspace(utf8_cp(p + i, len - i, &k)))
				i += k;
			if (jv_substr(c, s, st, i - st, &piece) || jinja_list_push(c, out, piece))
				return c->err->code;
			done++;
		}
		return 0;
	}
	/* rsplit on whitespace: split fully, then join the leftmost pieces back */
	struct jv all;
	if (do_split(c, n, s, (struct jv){ .t = JT_NONE }, -1, false, &all))
		return c->err->code;
	if (maxsplit < 0 || (int64_t)all.l->n <= maxsplit + 1) {
		*out = all;
		return 0;
	}
	size_t keep = (size_t)maxsplit;
	/* pieces are copies: find the byte range of the head in s by scanning */
	size_t pos = len, cnt = 0;
	while (cnt < keep) {
		while (pos > 0 && py_isspace((unsigned char)p[pos - 1]))
			pos--;
		while (pos > 0 && !py_isspace((unsigned char)p[pos - 1]))
			pos--;
		cnt++;
	}
	size_t hs = 0, he = pos;
	while (hs < he && py_isspace(utf8_cp(p + hs, he - hs, &k)))
		hs += k;
	while (he > hs && py_isspace((unsigned char)p[he - 1]))
		he--;
	if (jv_list(c, 0, out) || jv_substr(c, s, hs, he - hs, &piece) || jinja_list_push(c, out, piece))
		return c->err->code;
	for (size_t j = all.l->n - keep; j < all.l->n; j++)
		if (jinja_list_push(c, out, all.l->v[j]))
			return c->err->code;
	return 0;
}

int jinja_split(struct jctx *c, const struct jnode *n, struct jv s, struct jv sep, int64_t maxsplit, bool right,
		struct jv *out)
{
	return do_split(c, n, s, sep, maxsplit, right, out);
}

/* case mapping: mode 0 lower, 1 upper, 2 title (Python str.title), 3 capitalize, 4 swapcase */
int jinja_case(struct jctx *c, struct jv s, int mode, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, s.s->len + 8))
		return c->err->code;
	bool prev_cased = false, first = true;
	for (size_t i = 0; i < s.s->len;) {
		size_t k;
		uint32_t cp = utf8_cp(s.s->p + i, s.s->len - i, &k);
		utf8proc_int32_t r = (utf8proc_int32_t)cp;
		int cat = utf8proc_category(r);
		bool cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
		switch (mode) {
		case 0: r = utf8proc_tolower(r); break;
		case 1: r = utf8proc_toupper(r); break;
		case 2: r = prev_cased ? utf8proc_tolower(r) : utf8proc_totitle(r); break;
		case 3: r = first ? utf8proc_totitle(r) : utf8proc_tolower(r); break;
		case 4:
			r = cat == UTF8PROC_CATEGORY_LU ? utf8proc_tolower(r) :
			    cat == UTF8PROC_CATEGORY_LL ? utf8proc_toupper(r) : r;
			break;
		}
		prev_cased = cased;
		first = false;
		if (jsb_putcp(c, &b, (uint32_t)r))
			return c->err->code;
		i += k;
	}
	if (jv_is_content(s) && b.len && jsb_mark(c, &b, 0))
		return c->err->code;
	return jsb_finish(c, &b, out);
}

int jinja_replace(struct jctx *c, struct jv s, struct jv old, struct jv new, int64_t count, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, s.s->len + 16))
		return c->err->code;
	const char *p = s.s->p;
	size_t len = s.s->len, ol = old.s->len, i = 0;
	int64_t done = 0;
	if (!ol) { /* insert new between every character */
		for (;;) {
			if (count >= 0 && done >= count) {
				if (jsb_put(c, &b, p + i, len - i))
					return c->err->code;
				break;
			}
			if (jsb_put(c, &b, new.s->p, new.s->len))
				return c->err->code;
			done++;
			if (i >= len)
				break;
			size_t k = utf8_seq_len((unsigned char)p[i]);
			if (jsb_put(c, &b, p + i, k))
				return c->err->code;
			i += k;
		}
	} else {
		while (i < len) {
			const char *hit = (count < 0 || done < count) ? jmemmem(p + i, len - i, old.s->p, ol) : NULL;
			size_t to = hit ? (size_t)(hit - p) : len;
			if (jsb_put(c, &b, p + i, to - i))
				return c->err->code;
			if (!hit)
				break;
			if (jsb_put(c, &b, new.s->p, new.s->len))
				return c->err->code;
			done++;
			i = to + ol;
		}
	}
	if ((jv_is_content(s) || jv_is_content(new)) && b.len && jsb_mark(c, &b, 0))
		return c->err->code;
	return jsb_finish(c, &b, out);
}

static int64_t find_sub(struct jv s, struct jv sub, int64_t start, int64_t end, bool right)
{
	/* start/end are code point indices already clamped */
	size_t b = utf8_offset(s.s->p, s.s->len, (size_t)start), e = utf8_offset(s.s->p, s.s->len, (size_t)end);
	size_t sl = sub.s->len;
	if (e < b || e - b < sl)
		return -1;
	size_t pos = SIZE_MAX;
	if (!right) {
		const char *h = sl ? jmemmem(s.s->p + b, e - b, sub.s->p, sl) : s.s->p + b;
		if (h)
			pos = (size_t)(h - s.s->p);
	} else {
		for (size_t i = e - sl + 1; i-- > b;)
			if (!memcmp(s.s->p + i, sub.s->p, sl)) {
				pos = i;
				break;
			}
	}
	if (pos == SIZE_MAX)
		return -1;
	return (int64_t)utf8_count(s.s->p, pos);
}

static void clamp_range(struct jv s, struct jv st, struct jv en, int64_t *a, int64_t *b)
{
	int64_t len = (int64_t)utf8_count(s.s->p, s.s->len);
	int64_t x = st.t == JT_INT ? st.i : 0, y = en.t == JT_INT ? en.i : len;
	if (x < 0)
		x = x + len < 0 ? 0 : x + len;
	if (y < 0)
		y = y + len < 0 ? 0 : y + len;
	if (x > len)
		x = len;
	if (y > len)
		y = len;
	*a = x;
	*b = y;
}

static int pad(struct jctx *c, const struct jnode *n, struct jv s, struct jv width, struct jv fill, int align,
	       struct jv *out)
{
	if (width.t != JT_INT && width.t != JT_BOOL)
		return jerr(c, n, "TypeError: an integer width is required");
	const char *fp = " ";
	size_t fl = 1;
	if (fill.t == JT_STR) {
		if (utf8_count(fill.s->p, fill.s->len) != 1)
			return jerr(c, n, "TypeError: The fill character must be exactly one character long");
		fp = fill.s->p;
		fl = fill.s->len;
	}
	int64_t w = width.t == JT_INT ? width.i : width.b, len = (int64_t)utf8_count(s.s->p, s.s->len);
	if (w <= len) {
		*out = s;
		return 0;
	}
	if (w > (int64_t)(c->ar.cap / 4))
		return joom(c, n);
	int64_t total = w - len, left = align == 0 ? 0 : align == 2 ? total : total / 2 + (total & w & 1);
	int64_t right = total - left;
	struct jsb b;
	if (jsb_init(c, &b, s.s->len + (size_t)total * fl + 1))
		return c->err->code;
	for (int64_t i = 0; i < left; i++)
		if (jsb_put(c, &b, fp, fl))
			return c->err->code;
	if (jsb_put_str(c, &b, s.s, 0, s.s->len))
		return c->err->code;
	for (int64_t i = 0; i < right; i++)
		if (jsb_put(c, &b, fp, fl))
			return c->err->code;
	return jsb_finish(c, &b, out);
}

int jinja_center(struct jctx *c, const struct jnode *n, struct jv s, struct jv width, struct jv *out)
{
	return pad(c, n, s, width, (struct jv){ .t = JT_UNDEF }, 1, out);
}

/* str.join(iterable): items must be str */
int jinja_join_strs(struct jctx *c, const struct jnode *n, struct jv sep, struct jlist *items, bool convert,
		    struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, 64))
		return c->err->code;
	for (size_t i = 0; i < items->n; i++) {
		struct jv v = items->v[i];
		if (i && jsb_put_str(c, &b, sep.s, 0, sep.s->len))
			return c->err->code;
		if (v.t != JT_STR && !convert)
			return jerr(c, n, "TypeError: sequence item %zu: expected str instance, %s found", i,
				    jv_type_name(v));
		if (jv_str_into(c, n, &b, v))
			return c->err->code;
	}
	return jsb_finish(c, &b, out);
}

static bool all_chars(struct jv s, int kind)
{
	if (!s.s->len)
		return kind == 9; /* isascii of "" is true */
	bool any_cased = false;
	for (size_t i = 0; i < s.s->len;) {
		size_t k;
		uint32_t cp = utf8_cp(s.s->p + i, s.s->len - i, &k);
		int cat = utf8proc_category((utf8proc_int32_t)cp);
		bool L = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
		bool N = cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
		bool ok;
		switch (kind) {
		case 0: ok = cat == UTF8PROC_CATEGORY_ND || (cp >= 0xb2 && cp <= 0xb3) || cp == 0xb9; break; /* isdigit */
		case 1: ok = L; break;
		case 2: ok = L || N; break;
		case 3: ok = py_isspace(cp); break;
		case 4: ok = N; break;          /* isnumeric (approximation: all N*) */
		case 5: ok = cat == UTF8PROC_CATEGORY_ND; break;
		case 6: /* islower */
			if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT)
				return false;
			any_cased |= cat == UTF8PROC_CATEGORY_LL;
			ok = true;
			break;
		case 7: /* isupper */
			if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
				return false;
			any_cased |= cat == UTF8PROC_CATEGORY_LU;
			ok = true;
			break;
		case 9: ok = cp < 128; break;
		default: ok = false;
		}
		if (!ok)
			return false;
		i += k;
	}
	return kind == 6 || kind == 7 ? any_cased : true;
}

static int str_method(struct jctx *c, const struct jnode *n, struct jv s, const char *m, const struct jargs *a,
		      struct jv *out)
{
	struct jv p[3];
	if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
		static const char *const pr[] = { "chars=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_UNDEF && p[0].t != JT_NONE && p[0].t != JT_STR)
			return jerr(c, n, "TypeError: %s arg must be None or str", m);
		return do_strip(c, s, p[0].t == JT_STR ? p[0].s : NULL, m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3, out);
	}
	if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
		static const char *const pr[] = { "sep=", "maxsplit=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_UNDEF && p[0].t != JT_NONE && p[0].t != JT_STR)
			return jerr(c, n, "TypeError: must be str or None, not %s", jv_type_name(p[0]));
		int64_t ms = p[1].t == JT_INT ? p[1].i : -1;
		return do_split(c, n, s, p[0], ms, m[0] == 'r', out);
	}
	if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
		static const char *const pr[] = { "prefix", "start=", "end=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		int64_t x, y;
		clamp_range(s, p[1], p[2], &x, &y);
		size_t b = utf8_offset(s.s->p, s.s->len, (size_t)x), e = utf8_offset(s.s->p, s.s->len, (size_t)y);
		struct jlist one = { 1, &p[0] }, *opts = &one;
		if (p[0].t == JT_LIST && p[0].flag == 1)
			opts = p[0].l;
		else if (p[0].t != JT_STR)
			return jerr(c, n, "TypeError: %s first arg must be str or a tuple of str, not %s", m,
				    jv_type_name(p[0]));
		bool r = false;
		for (size_t i = 0; i < opts->n && !r; i++) {
			struct jv o = opts->v[i];
			if (o.t != JT_STR)
				return jerr(c, n, "TypeError: tuple for %s must only contain str", m);
			if (e >= b && e - b >= o.s->len)
				r = m[0] == 's' ? !memcmp(s.s->p + b, o.s->p, o.s->len) :
						  !memcmp(s.s->p + e - o.s->len, o.s->p, o.s->len);
		}
		*out = jv_bool(r);
		return 0;
	}
	if (!strcmp(m, "replace")) {
		static const char *const pr[] = { "old", "new", "count=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_STR || p[1].t != JT_STR)
			return jerr(c, n, "TypeError: replace() arguments must be str");
		return jinja_replace(c, s, p[0], p[1], p[2].t == JT_INT ? p[2].i : -1, out);
	}
	if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") || !strcmp(m, "capitalize") ||
	    !strcmp(m, "swapcase") || !strcmp(m, "casefold")) {
		if (a->nargs || a->nkw)
			return jerr(c, n, "TypeError: %s() takes no arguments", m);
		int mode = m[0] == 'u' ? 1 : m[0] == 't' ? 2 : m[0] == 's' ? 4 : !strcmp(m, "capitalize") ? 3 : 0;
		return jinja_case(c, s, mode, out);
	}
	if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "rindex") ||
	    !strcmp(m, "count")) {
		static const char *const pr[] = { "sub", "start=", "end=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_STR)
			return jerr(c, n, "TypeError: must be str, not %s", jv_type_name(p[0]));
		int64_t x, y;
		clamp_range(s, p[1], p[2], &x, &y);
		if (!strcmp(m, "count")) {
			int64_t cnt = 0;
			if (!p[0].s->len) {
				cnt = y >= x ? y - x + 1 : (x <= (int64_t)utf8_count(s.s->p, s.s->len) ? 0 : 0);
			} else {
				int64_t at = x;
				while ((at = find_sub(s, p[0], at, y, false)) >= 0) {
					cnt++;
					at += (int64_t)utf8_count(p[0].s->p, p[0].s->len);
				}
			}
			*out = jv_int(cnt);
			return 0;
		}
		int64_t r = find_sub(s, p[0], x, y, m[0] == 'r');
		if (r < 0 && strstr(m, "index"))
			return jerr(c, n, "ValueError: substring not found");
		*out = jv_int(r);
		return 0;
	}
	if (!strcmp(m, "join")) {
		static const char *const pr[] = { "iterable", NULL };
		struct jlist *items;
		if (jargs_bind(c, n, m, a, pr, p) || jv_iter(c, n, p[0], &items))
			return c->err->code;
		return jinja_join_strs(c, n, s, items, false, out);
	}
	if (!strcmp(m, "format"))
		return jinja_str_format(c, n, s, a, out);
	if (!strcmp(m, "isdigit") || !strcmp(m, "isalpha") || !strcmp(m, "isalnum") || !strcmp(m, "isspace") ||
	    !strcmp(m, "isnumeric") || !strcmp(m, "isdecimal") || !strcmp(m, "islower") || !strcmp(m, "isupper") ||
	    !strcmp(m, "isascii")) {
		int kind = !strcmp(m, "isdigit") ? 0 : !strcmp(m, "isalpha") ? 1 : !strcmp(m, "isalnum") ? 2 :
			   !strcmp(m, "isspace") ? 3 : !strcmp(m, "isnumeric") ? 4 : !strcmp(m, "isdecimal") ? 5 :
			   !strcmp(m, "islower") ? 6 : !strcmp(m, "isupper") ? 7 : 9;
		*out = jv_bool(all_chars(s, kind));
		return 0;
	}
	if (!strcmp(m, "splitlines")) {
		static const char *const pr[] = { "keepends=", NULL };
		if (jargs_bind(c, n, m, a, pr, p) || jv_list(c, 0, out))
			return c->err->code;
		bool keep = jv_truthy(p[0]);
		const char *sp = s.s->p;
		size_t len = s.s->len, st = 0, i = 0;
		while (i < len) {
			size_t k;
			uint32_t cp = utf8_cp(sp + i, len - i, &k);
			bool br = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
				  cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
			if (!br) {
				i += k;
				continue;
			}
			size_t e = i + k;
			if (cp == '\r' && e < len && sp[e] == '\n')
				e++;
			struct jv piece;
			if (jv_substr(c, s, st, (keep ? e : i) - st, &piece) || jinja_list_push(c, out, piece))
				return c->err->code;
			st = i = e;
		}
		if (st < len) {
			struct jv piece;
			if (jv_substr(c, s, st, len - st, &piece) || jinja_list_push(c, out, piece))
				return c->err->code;
		}
		return 0;
	}
	if (!strcmp(m, "center") || !strcmp(m, "ljust") || !strcmp(m, "rjust")) {
		static const char *const pr[] = { "width", "fillchar=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		return pad(c, n, s, p[0], p[1], m[0] == 'c' ? 1 : m[0] == 'l' ? 0 : 2, out);
	}
	if (!strcmp(m, "zfill")) {
		static const char *const pr[] = { "width", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_INT)
			return jerr(c, n, "TypeError: an integer width is required");
		int64_t len = (int64_t)utf8_count(s.s->p, s.s->len);
		if (p[0].i <= len) {
			*out = s;
			return 0;
		}
		if (p[0].i > (int64_t)(c->ar.cap / 4))
			return joom(c, n);
		struct jsb b;
		size_t sign = s.s->len && (s.s->p[0] == '+' || s.s->p[0] == '-');
		if (jsb_init(c, &b, (size_t)p[0].i + s.s->len) || jsb_put_str(c, &b, s.s, 0, sign))
			return c->err->code;
		for (int64_t i = 0; i < p[0].i - len; i++)
			if (jsb_putc(c, &b, '0'))
				return c->err->code;
		if (jsb_put_str(c, &b, s.s, sign, s.s->len - sign))
			return c->err->code;
		return jsb_finish(c, &b, out);
	}
	if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
		static const char *const pr[] = { "affix", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_STR)
			return jerr(c, n, "TypeError: %s() argument must be str", m);
		size_t al = p[0].s->len;
		if (al <= s.s->len && m[6] == 'p' && !memcmp(s.s->p, p[0].s->p, al))
			return jv_substr(c, s, al, s.s->len - al, out);
		if (al <= s.s->len && m[6] == 's' && !memcmp(s.s->p + s.s->len - al, p[0].s->p, al))
			return jv_substr(c, s, 0, s.s->len - al, out);
		*out = s;
		return 0;
	}
	if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) {
		static const char *const pr[] = { "sep", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (p[0].t != JT_STR)
			return jerr(c, n, "TypeError: must be str, not %s", jv_type_name(p[0]));
		if (!p[0].s->len)
			return jerr(c, n, "ValueError: empty separator");
		int64_t at = find_sub(s, p[0], 0, (int64_t)utf8_count(s.s->p, s.s->len), m[0] == 'r');
		if (jv_list(c, 3, out))
			return c->err->code;
		out->flag = 1;
		size_t pos = at < 0 ? (m[0] == 'r' ? 0 : s.s->len) : utf8_offset(s.s->p, s.s->len, (size_t)at);
		size_t sl = at < 0 ? 0 : p[0].s->len;
		if (jv_substr(c, s, 0, pos, &out->l->v[0]) || jv_substr(c, s, pos, sl, &out->l->v[1]) ||
		    jv_substr(c, s, pos + sl, s.s->len - pos - sl, &out->l->v[2]))
			return c->err->code;
		if (at < 0 && m[0] == 'r') { /* ('', '', s) */
			struct jv t = out->l->v[0];
			out->l->v[0] = out->l->v[2];
			out->l->v[2] = t;
		}
		return 0;
	}
	return jerr_code(c, n, HEARTH_EUNSUPPORTED, "str.%s() is not supported", m);
}

static int dict_method(struct jctx *c, const struct jnode *n, struct jv d, const char *m, const struct jargs *a,
		       struct jv *out)
{
	struct jv p[2];
	if (!strcmp(m, "get")) {
		static const char *const pr[] = { "key", "default=", NULL };
		if (jargs_bind(c, n, m, a, pr, p))
			return c->err->code;
		if (!jdict_get(d.d, p[0], out))
			*out = p[1].t == JT_UNDEF && a->nargs + a->nkw < 2 ? jv_none() : p[1];
		return 0;
	}
	if (a->nargs || a->nkw)
		return jerr(c, n, "TypeError: dict.%s() takes no arguments", m);
	if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
		if (jv_list(c, d.d->n, out))
			return c->err->code;
		for (size_t i = 0; i < d.d->n; i++) {
			if (m[0] == 'k') {
				out->l->v[i] = d.d->k[i];
			} else if (m[0] == 'v') {
				out->l->v[i] = d.d->v[i];
			} else {
				struct jv t;
				if (jv_list(c, 2, &t))
					return c->err->code;
				t.flag = 1;
				t.l->v[0] = d.d->k[i];
				t.l->v[1] = d.d->v[i];
				out->l->v[i] = t;
			}
		}
		return 0;
	}
	if (!strcmp(m, "copy")) {
		if (jv_dict(c, out))
			return c->err->code;
		for (size_t i = 0; i < d.d->n; i++)
			if (jdict_set(c, out->d, d.d->k[i], d.d->v[i]))
				return c->err->code;
		return 0;
	}
	return jerr_code(c, n, HEARTH_EUNSUPPORTED, "dict.%s() is not supported", m);
}

static int list_method(struct jctx *c, const struct jnode *n, struct jv l, const char *m, const struct jargs *a,
		       struct jv *out)
{
	struct jv p[1];
	if (!strcmp(m, "copy")) {
		if (jv_list(c, l.l->n, out))
			return c->err->code;
		jmemcpy(out->l->v, l.l->v, l.l->n * sizeof *l.l->v);
		return 0;
	}
	static const char *const pr[] = { "value", NULL };
	if (jargs_bind(c, n, m, a, pr, p))
		return c->err->code;
	int64_t cnt = 0;
	for (size_t i = 0; i < l.l->n; i++)
		if (jv_eq(l.l->v[i], p[0])) {
			if (m[0] == 'i') {
				*out = jv_int((int64_t)i);
				return 0;
			}
			cnt++;
		}
	if (m[0] == 'i')
		return jerr(c, n, "ValueError: value is not in %s", jv_type_name(l));
	*out = jv_int(cnt);
	return 0;
}

int jinja_method_call(struct jctx *c, const struct jnode *n, struct jv self, const char *name,
		      const struct jargs *a, struct jv *out)
{
	switch (self.t) {
	case JT_STR: return str_method(c, n, self, name, a, out);
	case JT_DICT: return dict_method(c, n, self, name, a, out);
	case JT_LIST: return list_method(c, n, self, name, a, out);
	default: return jerr(c, n, "TypeError: '%s' object has no method %s", jv_type_name(self), name);
	}
}

/* ---- globals ---- */

static const char *const globals[] = { "range", "dict", "namespace", "cycler", "joiner", "lipsum",
				       "raise_exception", "strftime_now", NULL };

int jinja_global(struct jctx *c, const char *name, struct jv *out)
{
	for (int i = 0; globals[i]; i++)
		if (!strcmp(globals[i], name))
			return jv_func(c, JF_GLOBAL, globals[i], (struct jv){ .t = JT_UNDEF }, out);
	return 1;
}

static int g_range(struct jctx *c, const struct jnode *n, const struct jargs *a, struct jv *out)
{
	if (a->nkw)
		return jerr(c, n, "TypeError: range() takes no keyword arguments");
	if (a->nargs < 1 || a->nargs > 3)
		return jerr(c, n, "TypeError: range expected 1 to 3 arguments, got %zu", a->nargs);
	int64_t v[3] = { 0, 0, 1 };
	for (size_t i = 0; i < a->nargs; i++) {
		struct jv x = a->args[i];
		if (x.t != JT_INT && x.t != JT_BOOL)
			return jerr(c, n, "TypeError: '%s' object cannot be interpreted as an integer", jv_type_name(x));
		v[a->nargs == 1 ? 1 : i] = x.t == JT_INT ? x.i : x.b;
	}
	if (!v[2])
		return jerr(c, n, "ValueError: range() arg 3 must not be zero");
	uint64_t cnt = 0;
	if (v[2] > 0 && v[1] > v[0])
		cnt = ((uint64_t)v[1] - (uint64_t)v[0] - 1) / (uint64_t)v[2] + 1;
	else if (v[2] < 0 && v[1] < v[0])
		cnt = ((uint64_t)v[0] - (uint64_t)v[1] - 1) / (uint64_t)(-(v[2] + 1) + 1) + 1;
	if (cnt > JINJA_MAX_RANGE)
		return jerr(c, n, "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
			    JINJA_MAX_RANGE);
	if (jv_list(c, (size_t)cnt, out))
		return c->err->code;
	for (uint64_t i = 0; i < cnt; i++)
		out->l->v[i] = jv_int(v[0] + (int64_t)i * v[2]);
	return 0;
}

static int g_strftime(struct jctx *c, const struct jnode *n, const struct jargs *a, struct jv *out)
{
	if (a->nargs != 1 || a->nkw || a->args[0].t != JT_STR)
		return jerr(c, n, "TypeError: strftime_now() takes one str argument");
	const char *fmt = a->args[0].s->p;
	if (memchr(fmt, 0, a->args[0].s->len))
		return jerr(c, n, "ValueError: embedded null character");
	locale_t loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!loc)
		return joom(c, n);
	size_t cap = 256 + a->args[0].s->len * 16;
	char *buf = ja_alloc(&c->ar, cap);
	if (!buf) {
		freelocale(loc);
		return joom(c, n);
	}
	size_t len = a->args[0].s->len ? strftime_l(buf, cap, fmt, &c->date, loc) : 0;
	freelocale(loc);
	return jv_str(c, buf, len, out);
}

/* lipsum(n=5, html=True, min=20, max=100): Python's is random; this one draws
 * its words from a fixed generator, so a render is reproducible */
static int g_lipsum(struct jctx *c, const struct jnode *n, const struct jargs *a, struct jv *out)
{
	static const char *const words[] = { "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing",
					     "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore",
					     "et", "dolore", "magna", "aliqua", "enim", "ad", "minim", "veniam" };
	static const char *const pr[] = { "n=", "html=", "min=", "max=", NULL };
	struct jv p[4];
	if (jargs_bind(c, n, "lipsum", a, pr, p))
		return c->err->code;
	int64_t np = p[0].t == JT_INT ? p[0].i : 5, mn = p[2].t == JT_INT ? p[2].i : 20,
		mx = p[3].t == JT_INT ? p[3].i : 100;
	bool html = p[1].t == JT_UNDEF || jv_truthy(p[1]);
	if (np < 0 || np > 1000 || mn < 1 || mx < mn || mx > 10000)
		return jerr(c, n, "ValueError: lipsum() arguments out of range");
	uint64_t st = 0x9e3779b97f4a7c15ull;
	struct jsb b;
	if (jsb_init(c, &b, 256))
		return c->err->code;
	for (int64_t k = 0; k < np; k++) {
		if (k && jsb_puts(c, &b, html ? "\n" : "\n\n"))
			return c->err->code;
		if (html && jsb_puts(c, &b, "<p>"))
			return c->err->code;
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		int64_t nw = mn + (int64_t)((st >> 33) % (uint64_t)(mx - mn + 1));
		for (int64_t w = 0; w < nw; w++) {
			st = st * 6364136223846793005ull + 1442695040888963407ull;
			const char *word = words[(st >> 33) % (sizeof words / sizeof *words)];
			char cap[16];
			snprintf(cap, sizeof cap, "%s", word);
			if (w == 0)
				cap[0] = (char)(cap[0] - 32);
			if ((w && jsb_putc(c, &b, ' ')) || jsb_puts(c, &b, cap))
				return c->err->code;
		}
		if (jsb_putc(c, &b, '.') || (html && jsb_puts(c, &b, "</p>")))
			return c->err->code;
	}
	if (jsb_finish(c, &b, out))
		return c->err->code;
	out->flag = html;
	return 0;
}

int jinja_global_call(struct jctx *c, const struct jnode *n, const char *name, const struct jargs *a,
		      struct jv *out)
{
	if (!strcmp(name, "raise_exception")) {
		struct jv msg = a->nargs ? a->args[0] : (struct jv){ .t = JT_UNDEF };
		struct jsb b;
		if (jsb_init(c, &b, 64) || jv_str_into(c, n, &b, msg))
			return c->err->code;
		c->raised = true;
		return err_set(c->err, HEARTH_EINVAL, "%s", b.p);
	}
	if (!strcmp(name, "strftime_now"))
		return g_strftime(c, n, a, out);
	if (!strcmp(name, "range"))
		return g_range(c, n, a, out);
	if (!strcmp(name, "lipsum"))
		return g_lipsum(c, n, a, out);
	if (!strcmp(name, "dict") || !strcmp(name, "namespace")) {
		if (a->nargs > 1)
			return jerr(c, n, "TypeError: %s expected at most 1 argument, got %zu", name, a->nargs);
		if (jv_dict(c, out))
			return c->err->code;
		if (a->nargs) {
			struct jv init = a->args[0];
			if (init.t == JT_DICT || init.t == JT_NS) {
				for (size_t i = 0; i < init.d->n; i++)
					if (jdict_set(c, out->d, init.d->k[i], init.d->v[i]))
						return c->err->code;
			} else {
				struct jlist *items;
				if (jv_iter(c, n, init, &items))
					return c->err->code;
				for (size_t i = 0; i < items->n; i++) {
					struct jv it = items->v[i];
					if (it.t != JT_LIST || it.l->n != 2)
						return jerr(c, n, "ValueError: dictionary update sequence element #%zu has "
								  "the wrong length", i);
					if (jdict_set(c, out->d, it.l->v[0], it.l->v[1]))
						return c->err->code;
				}
			}
		}
		for (size_t k = 0; k < a->nkw; k++) {
			struct jv key;
			if (jv_cstr(c, a->names[k], &key) || jdict_set(c, out->d, key, a->kw[k]))
				return c->err->code;
		}
		if (name[0] == 'n')
			out->t = JT_NS;
		return 0;
	}
	if (!strcmp(name, "cycler")) {
		struct jcycler *cy = ja_alloc(&c->ar, sizeof *cy);
		struct jv l;
		if (!cy || jv_list(c, a->nargs, &l))
			return joom(c, n);
		jmemcpy(l.l->v, a->args, a->nargs * sizeof *a->args);
		cy->items = l.l;
		cy->pos = 0;
		*out = (struct jv){ .t = JT_CYCLER, .cy = cy };
		return 0;
	}
	if (!strcmp(name, "joiner")) {
		static const char *const pr[] = { "sep=", NULL };
		struct jv p[1];
		if (jargs_bind(c, n, name, a, pr, p) || jv_func(c, JF_JOINER, "joiner", (struct jv){ .t = JT_UNDEF }, out))
			return c->err->code;
		struct jv sep = p[0];
		if (sep.t == JT_UNDEF && jv_cstr(c, ", ", &sep))
			return c->err->code;
		if (jv_to_str(c, n, sep, &sep))
			return c->err->code;
		out->fn->sep = sep.s->p;
		out->fn->seplen = sep.s->len;
		return 0;
	}
	return jerr(c, n, "TypeError: '%s' is not callable", name);
}
