/* jinja-filters.c - jinja2 3.1's built-in filters, with transformers'
 * tojson in place of jinja2's. Each follows jinja2's Python: a str filter
 * works on str(value) (undefined gives ''), sequences are iterated as Python
 * iterates them, attributes (attribute=) are looked up item first, with
 * dotted paths. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../base/utf8.h"
#include "jinja.h"

#define P(...) static const char *const pr[] = { __VA_ARGS__, NULL }

static int bind(struct jctx *c, const struct jnode *n, const char *f, const struct jargs *a, const char *const *pr,
		struct jv *p)
{
	return jargs_bind(c, n, f, a, pr, p);
}

static int to_str(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	return jv_to_str(c, n, v, out);
}

/* jinja2's make_attrgetter: "a.b.0" looked up item first; missing: default (or undefined) */
static int attr_get(struct jctx *c, const struct jnode *n, struct jv obj, struct jv attr, struct jv dflt,
		    struct jv *out)
{
	if (attr.t != JT_STR) {
		if (attr.t == JT_INT)
			return jv_getitem(c, n, obj, attr, out);
		return jv_getitem(c, n, obj, attr, out);
	}
	const char *p = attr.s->p, *end = p + attr.s->len;
	struct jv v = obj;
	while (p <= end) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t len = dot ? (size_t)(dot - p) : (size_t)(end - p);
		struct jv key;
		bool digits = len > 0;
		for (size_t i = 0; i < len; i++)
			digits &= p[i] >= '0' && p[i] <= '9';
		if (digits && len < 18)
			key = jv_int(strtoll(p, NULL, 10));
		else if (jv_str(c, p, len, &key))
			return c->err->code;
		if (jv_getitem(c, n, v, key, &v))
			return c->err->code;
		if (v.t == JT_UNDEF && dflt.t != JT_UNDEF) {
			v = dflt;
			break;
		}
		if (!dot)
			break;
		p = dot + 1;
	}
	*out = v;
	return 0;
}

/* a stable merge sort of vals by keys, Python order; error when unorderable */
static int sort_by(struct jctx *c, const struct jnode *n, struct jv *vals, struct jv *keys, size_t cnt, bool rev)
{
	if (cnt < 2)
		return 0;
	struct jv *tv = ja_alloc(&c->ar, cnt * sizeof *tv), *tk = ja_alloc(&c->ar, cnt * sizeof *tk);
	if (!tv || !tk)
		return joom(c, n);
	for (size_t w = 1; w < cnt; w *= 2) {
		for (size_t lo = 0; lo < cnt; lo += 2 * w) {
			size_t mid = lo + w < cnt ? lo + w : cnt, hi = lo + 2 * w < cnt ? lo + 2 * w : cnt;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi) {
				int r;
				if (jv_cmp(c, n, keys[j], keys[i], "<", &r))
					return c->err->code;
				bool take_right = rev ? r > 0 && r != 2 : r < 0;
				if (rev) { /* reverse keeps stability as Python does: compare i < j */
					int r2;
					if (jv_cmp(c, n, keys[i], keys[j], "<", &r2))
						return c->err->code;
					take_right = r2 < 0;
				}
				if (take_right) {
					tv[k] = vals[j];
					tk[k++] = keys[j++];
				} else {
					tv[k] = vals[i];
					tk[k++] = keys[i++];
				}
			}
			while (i < mid) {
				tv[k] = vals[i];
				tk[k++] = keys[i++];
			}
			while (j < hi) {
				tv[k] = vals[j];
				tk[k++] = keys[j++];
			}
		}
		jmemcpy(vals, tv, cnt * sizeof *vals);
		jmemcpy(keys, tk, cnt * sizeof *keys);
	}
	return 0;
}

/* the key for sort/unique/min/max: attribute, then lower() of strs unless case_sensitive */
static int sort_key(struct jctx *c, const struct jnode *n, struct jv v, struct jv attr, bool cs, struct jv *out)
{
	if (attr.t != JT_UNDEF && attr.t != JT_NONE) {
		if (attr_get(c, n, v, attr, (struct jv){ .t = JT_UNDEF }, &v))
			return c->err->code;
	}
	if (!cs && v.t == JT_STR)
		return jinja_case(c, v, 0, out);
	*out = v;
	return 0;
}

static int copy_list(struct jctx *c, struct jlist *src, struct jv *out)
{
	if (jv_list(c, src->n, out))
		return c->err->code;
	jmemcpy(out->l->v, src->v, src->n * sizeof *src->v);
	return 0;
}

static int f_sort(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("reverse=", "case_sensitive=", "attribute=");
	struct jv p[3];
	struct jlist *items;
	if (bind(c, n, "sort", a, pr, p) || jv_iter(c, n, v, &items) || copy_list(c, items, out))
		return c->err->code;
	struct jv *keys = ja_alloc(&c->ar, (items->n + 1) * sizeof *keys);
	if (!keys)
		return joom(c, n);
	for (size_t i = 0; i < items->n; i++)
		if (sort_key(c, n, items->v[i], p[2], jv_truthy(p[1]), &keys[i]))
			return c->err->code;
	return sort_by(c, n, out->l->v, keys, items->n, jv_truthy(p[0]));
}

static int f_minmax(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, bool max,
		    struct jv *out)
{
	P("case_sensitive=", "attribute=");
	struct jv p[2];
	struct jlist *items;
	if (bind(c, n, max ? "max" : "min", a, pr, p) || jv_iter(c, n, v, &items))
		return c->err->code;
	if (!items->n) {
		*out = jv_undef(c, "No aggregated item, sequence was empty.");
		return 0;
	}
	struct jv best = items->v[0], bk;
	if (sort_key(c, n, best, p[1], jv_truthy(p[0]), &bk))
		return c->err->code;
	for (size_t i = 1; i < items->n; i++) {
		struct jv k;
		int r;
		if (sort_key(c, n, items->v[i], p[1], jv_truthy(p[0]), &k) || jv_cmp(c, n, k, bk, "<", &r))
			return c->err->code;
		if (max ? r == 1 : r == -1) {
			best = items->v[i];
			bk = k;
		}
	}
	*out = best;
	return 0;
}

static int f_unique(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("case_sensitive=", "attribute=");
	struct jv p[2], seen;
	struct jlist *items;
	if (bind(c, n, "unique", a, pr, p) || jv_iter(c, n, v, &items) || jv_list(c, 0, out) || jv_list(c, 0, &seen))
		return c->err->code;
	for (size_t i = 0; i < items->n; i++) {
		struct jv k;
		bool dup = false;
		if (sort_key(c, n, items->v[i], p[1], jv_truthy(p[0]), &k))
			return c->err->code;
		for (size_t j = 0; j < seen.l->n && !dup; j++)
			dup = jv_eq(seen.l->v[j], k);
		if (!dup && (jinja_list_push(c, &seen, k) || jinja_list_push(c, out, items->v[i])))
			return c->err->code;
	}
	return 0;
}

static int f_dictsort(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("case_sensitive=", "by=", "reverse=");
	struct jv p[3];
	if (bind(c, n, "dictsort", a, pr, p))
		return c->err->code;
	if (v.t != JT_DICT)
		return jerr(c, n, "TypeError: dictsort expects a mapping");
	int pos = 0;
	if (p[1].t == JT_STR && !strcmp(p[1].s->p, "value"))
		pos = 1;
	else if (p[1].t == JT_STR && strcmp(p[1].s->p, "key"))
		return jerr(c, n, "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
	struct jv *keys = ja_alloc(&c->ar, (v.d->n + 1) * sizeof *keys);
	if (!keys || jv_list(c, v.d->n, out))
		return joom(c, n);
	for (size_t i = 0; i < v.d->n; i++) {
		struct jv t;
		if (jv_list(c, 2, &t))
			return c->err->code;
		t.flag = 1;
		t.l->v[0] = v.d->k[i];
		t.l->v[1] = v.d->v[i];
		out->l->v[i] = t;
		if (sort_key(c, n, t.l->v[pos], (struct jv){ .t = JT_UNDEF }, jv_truthy(p[0]), &keys[i]))
			return c->err->code;
	}
	return sort_by(c, n, out->l->v, keys, v.d->n, jv_truthy(p[2]));
}

static int f_groupby(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("attribute", "default=", "case_sensitive=");
	struct jv p[3], sorted;
	struct jlist *items;
	if (bind(c, n, "groupby", a, pr, p) || jv_iter(c, n, v, &items) || copy_list(c, items, &sorted))
		return c->err->code;
	struct jv *keys = ja_alloc(&c->ar, (items->n + 1) * sizeof *keys);
	if (!keys)
		return joom(c, n);
	for (size_t i = 0; i < items->n; i++) {
		if (attr_get(c, n, items->v[i], p[0], p[1], &keys[i]))
			return c->err->code;
		if (!jv_truthy(p[2]) && keys[i].t == JT_STR && jinja_case(c, keys[i], 0, &keys[i]))
			return c->err->code;
	}
	if (sort_by(c, n, sorted.l->v, keys, items->n, false) || jv_list(c, 0, out))
		return c->err->code;
	for (size_t i = 0; i < items->n;) {
		size_t j = i;
		while (j < items->n && jv_eq(keys[j], keys[i]))
			j++;
		struct jv g, l;
		if (jv_list(c, 2, &g) || jv_list(c, j - i, &l))
			return c->err->code;
		jmemcpy(l.l->v, sorted.l->v + i, (j - i) * sizeof *l.l->v);
		g.flag = 2;
		g.l->v[0] = keys[i];
		if (!jv_truthy(p[2]) && keys[i].t == JT_STR) /* the grouper is the first item's own value */
			if (attr_get(c, n, sorted.l->v[i], p[0], p[1], &g.l->v[0]))
				return c->err->code;
		g.l->v[1] = l;
		if (jinja_list_push(c, out, g))
			return c->err->code;
		i = j;
	}
	return 0;
}

/* select/reject/selectattr/rejectattr */
static int f_select(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, bool attr,
		    bool keep, struct jv *out)
{
	struct jlist *items;
	if (jv_iter(c, n, v, &items) || jv_list(c, 0, out))
		return c->err->code;
	size_t k = 0;
	struct jv attrname = { .t = JT_UNDEF };
	if (attr) {
		if (!a->nargs)
			return jerr(c, n, "TypeError: Missing parameter for attribute name");
		attrname = a->args[k++];
	}
	const char *test = NULL;
	if (a->nargs > k) {
		if (a->args[k].t != JT_STR)
			return jerr(c, n, "TypeError: the test name must be a string");
		test = a->args[k++].s->p;
		if (!jinja_has_test(test))
			return jerr(c, n, "TemplateRuntimeError: No test named '%s'.", test);
	}
	struct jargs ta = { a->args ? a->args + k : NULL, a->nargs - k, a->names, a->kw, a->nkw };
	for (size_t i = 0; i < items->n; i++) {
		struct jv x = items->v[i];
		bool r;
		if (attr && attr_get(c, n, x, attrname, (struct jv){ .t = JT_UNDEF }, &x))
			return c->err->code;
		if (test) {
			if (jinja_test(c, n, test, x, &ta, &r))
				return c->err->code;
		} else {
			r = jv_truthy(x);
		}
		if (r == keep && jinja_list_push(c, out, items->v[i]))
			return c->err->code;
	}
	return 0;
}

static int f_map(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	struct jlist *items;
	if (jv_iter(c, n, v, &items) || jv_list(c, items->n, out))
		return c->err->code;
	struct jv attr = { .t = JT_UNDEF }, dflt = { .t = JT_UNDEF };
	for (size_t k = 0; k < a->nkw; k++) {
		if (!strcmp(a->names[k], "attribute"))
			attr = a->kw[k];
		else if (!strcmp(a->names[k], "default"))
			dflt = a->kw[k];
		else if (attr.t != JT_UNDEF || !a->nargs)
			return jerr(c, n, "FilterArgumentError: Unexpected keyword argument '%s'", a->names[k]);
	}
	if (attr.t != JT_UNDEF) {
		for (size_t i = 0; i < items->n; i++)
			if (attr_get(c, n, items->v[i], attr, dflt, &out->l->v[i]))
				return c->err->code;
		return 0;
	}
	if (!a->nargs || a->args[0].t != JT_STR)
		return jerr(c, n, "FilterArgumentError: map requires a filter argument");
	const char *f = a->args[0].s->p;
	if (!jinja_has_filter(f))
		return jerr(c, n, "TemplateRuntimeError: No filter named '%s'.", f);
	struct jargs fa = { a->args + 1, a->nargs - 1, a->names, a->kw, a->nkw };
	for (size_t i = 0; i < items->n; i++)
		if (jinja_filter(c, n, f, items->v[i], &fa, &out->l->v[i]))
			return c->err->code;
	return 0;
}

static int f_join(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("d=", "attribute=");
	struct jv p[2], sep;
	struct jlist *items;
	if (bind(c, n, "join", a, pr, p) || jv_iter(c, n, v, &items))
		return c->err->code;
	if (p[0].t == JT_UNDEF) {
		if (jv_cstr(c, "", &sep))
			return c->err->code;
	} else if (to_str(c, n, p[0], &sep)) {
		return c->err->code;
	}
	if (p[1].t != JT_UNDEF && p[1].t != JT_NONE) {
		struct jv m;
		if (jv_list(c, items->n, &m))
			return c->err->code;
		for (size_t i = 0; i < items->n; i++)
			if (attr_get(c, n, items->v[i], p[1], (struct jv){ .t = JT_UNDEF }, &m.l->v[i]))
				return c->err->code;
		items = m.l;
	}
	return jinja_join_strs(c, n, sep, items, true, out);
}

static int f_indent(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("width=", "first=", "blank=");
	struct jv p[3], s, ind, lines;
	if (bind(c, n, "indent", a, pr, p) || to_str(c, n, v, &s))
		return c->err->code;
	if (p[0].t == JT_STR) {
		ind = p[0];
	} else {
		int64_t w = p[0].t == JT_INT ? p[0].i : 4;
		if (w < 0)
			w = 0;
		if (w > 4096)
			return jerr(c, n, "ValueError: indent width past 4096");
		char buf[4097];
		memset(buf, ' ', (size_t)w);
		if (jv_str(c, buf, (size_t)w, &ind))
			return c->err->code;
	}
	struct jv nl, split_sep = { .t = JT_NONE };
	(void)split_sep;
	if (jv_cstr(c, "\n", &nl) || jv_concat(c, s, nl, &s))
		return c->err->code;
	/* s.splitlines() */
	struct jargs none = { 0 };
	struct jv fn;
	if (jv_func(c, JF_METHOD, "splitlines", s, &fn) ||
	    jv_call(c, n, fn, none.args, 0, NULL, NULL, 0, &lines))
		return c->err->code;
	bool blank = jv_truthy(p[2]);
	struct jsb b;
	if (jsb_init(c, &b, s.s->len * 2))
		return c->err->code;
	if (jv_truthy(p[1]) && jsb_put_str(c, &b, ind.s, 0, ind.s->len))
		return c->err->code;
	for (size_t i = 0; i < lines.l->n; i++) {
		struct jstr *ln = lines.l->v[i].s;
		if (i && (jsb_putc(c, &b, '\n') || ((blank || ln->len) && jsb_put_str(c, &b, ind.s, 0, ind.s->len))))
			return c->err->code;
		if (jsb_put_str(c, &b, ln, 0, ln->len))
			return c->err->code;
	}
	return jsb_finish(c, &b, out);
}

static int f_truncate(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("length=", "killwords=", "end=", "leeway=");
	struct jv p[4], s, end;
	if (bind(c, n, "truncate", a, pr, p) || to_str(c, n, v, &s))
		return c->err->code;
	int64_t length = p[0].t == JT_INT ? p[0].i : 255, leeway = p[3].t == JT_INT ? p[3].i : 5;
	if (p[2].t == JT_UNDEF ? jv_cstr(c, "...", &end) : to_str(c, n, p[2], &end))
		return c->err->code;
	int64_t el = (int64_t)utf8_count(end.s->p, end.s->len), sl = (int64_t)utf8_count(s.s->p, s.s->len);
	if (length < el)
		return jerr(c, n, "AssertionError: expected length >= %lld, got %lld", (long long)el, (long long)length);
	if (leeway < 0)
		return jerr(c, n, "AssertionError: expected leeway >= 0, got %lld", (long long)leeway);
	if (sl <= length + leeway) {
		*out = s;
		return 0;
	}
	size_t cut = utf8_offset(s.s->p, s.s->len, (size_t)(length - el));
	struct jv head;
	if (jv_substr(c, s, 0, cut, &head))
		return c->err->code;
	if (!jv_truthy(p[1])) {
		const char *sp = NULL;
		for (size_t i = cut; i-- > 0;)
			if (head.s->p[i] == ' ') {
				sp = head.s->p + i;
				break;
			}
		if (sp && jv_substr(c, head, 0, (size_t)(sp - head.s->p), &head))
			return c->err->code;
	}
	return jv_concat(c, head, end, out);
}

static int f_wordwrap(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("width=", "break_long_words=", "wrapstring=", "break_on_hyphens=");
	struct jv p[4], s, lines;
	if (bind(c, n, "wordwrap", a, pr, p) || to_str(c, n, v, &s))
		return c->err->code;
	int64_t width = p[0].t == JT_INT ? p[0].i : 79;
	bool breaklong = p[1].t == JT_UNDEF || jv_truthy(p[1]);
	const char *wrap = p[2].t == JT_STR ? p[2].s->p : "\n";
	if (width <= 0)
		return jerr(c, n, "ValueError: invalid width %lld (must be > 0)", (long long)width);
	struct jv fn;
	if (jv_func(c, JF_METHOD, "splitlines", s, &fn) || jv_call(c, n, fn, NULL, 0, NULL, NULL, 0, &lines))
		return c->err->code;
	struct jsb b;
	if (jsb_init(c, &b, s.s->len + 16))
		return c->err->code;
	bool first_out = true;
	for (size_t li = 0; li < lines.l->n; li++) {
		/* textwrap.wrap on whitespace-separated chunks (hyphen breaking not modelled) */
		const char *t = lines.l->v[li].s->p;
		size_t tl = lines.l->v[li].s->len, i = 0, linelen = 0;
		bool line_open = false;
		if (li && !first_out && jsb_puts(c, &b, wrap))
			return c->err->code;
		if (li)
			first_out = false;
		while (i < tl) {
			size_t ws = i;
			while (i < tl && (t[i] == ' ' || t[i] == '\t'))
				i++;
			size_t wb = i;
			while (i < tl && t[i] != ' ' && t[i] != '\t')
				i++;
			if (wb == i)
				break;
			size_t wl = utf8_count(t + wb, i - wb), gap = line_open ? utf8_count(t + ws, wb - ws) : 0;
			if (line_open && linelen + gap + wl > (size_t)width) {
				if (jsb_puts(c, &b, wrap))
					return c->err->code;
				line_open = false;
				linelen = 0;
				gap = 0;
			}
			if (line_open && jsb_put(c, &b, t + ws, wb - ws))
				return c->err->code;
			const char *w = t + wb;
			size_t wbytes = i - wb;
			while (breaklong && wl > (size_t)width - linelen - gap && linelen == 0) {
				size_t cut = utf8_offset(w, wbytes, (size_t)width);
				if (jsb_put(c, &b, w, cut) || jsb_puts(c, &b, wrap))
					return c->err->code;
				w += cut;
				wbytes -= cut;
				wl -= (size_t)width;
			}
			if (jsb_put(c, &b, w, wbytes))
				return c->err->code;
			linelen += gap + wl;
			line_open = true;
		}
		first_out = false;
	}
	if (jv_is_content(s) && b.len && jsb_mark(c, &b, 0))
		return c->err->code;
	return jsb_finish(c, &b, out);
}

static int f_batch_slice(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, bool slice,
			 struct jv *out)
{
	const char *const pr[] = { slice ? "slices" : "linecount", "fill_with=", NULL };
	struct jv p[2];
	struct jlist *items;
	if (bind(c, n, slice ? "slice" : "batch", a, pr, p) || jv_iter(c, n, v, &items) || jv_list(c, 0, out))
		return c->err->code;
	if (p[0].t != JT_INT || p[0].i <= 0)
		return jerr(c, n, "ValueError: %s needs a positive integer", slice ? "slice" : "batch");
	int64_t k = p[0].i;
	bool fill = p[1].t != JT_UNDEF && p[1].t != JT_NONE;
	if (!slice) {
		struct jv cur;
		if (jv_list(c, 0, &cur))
			return c->err->code;
		for (size_t i = 0; i < items->n; i++) {
			if ((int64_t)cur.l->n == k) {
				if (jinja_list_push(c, out, cur) || jv_list(c, 0, &cur))
					return c->err->code;
			}
			if (jinja_list_push(c, &cur, items->v[i]))
				return c->err->code;
		}
		if (cur.l->n) {
			while (fill && (int64_t)cur.l->n < k)
				if (jinja_list_push(c, &cur, p[1]))
					return c->err->code;
			if (jinja_list_push(c, out, cur))
				return c->err->code;
		}
		return 0;
	}
	if (k > 100000)
		return jerr(c, n, "ValueError: too many slices");
	size_t len = items->n, per = len / (size_t)k, extra = len % (size_t)k, off = 0;
	for (size_t s = 0; s < (size_t)k; s++) {
		size_t start = off + (s < extra ? s : extra), end = start + per + (s < extra);
		(void)start;
		start = s * per + (s < extra ? s : extra);
		end = start + per + (s < extra);
		struct jv part;
		if (jv_list(c, end - start, &part))
			return c->err->code;
		jmemcpy(part.l->v, items->v + start, (end - start) * sizeof *items->v);
		if (fill && s >= extra && extra && jinja_list_push(c, &part, p[1]))
			return c->err->code;
		if (jinja_list_push(c, out, part))
			return c->err->code;
	}
	return 0;
}

static int f_tojson(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("ensure_ascii=", "indent=", "separators=", "sort_keys=");
	struct jv p[4];
	if (bind(c, n, "tojson", a, pr, p))
		return c->err->code;
	struct jdumps o = { .ensure_ascii = jv_truthy(p[0]), .sort_keys = jv_truthy(p[3]) };
	if (p[1].t == JT_INT || p[1].t == JT_BOOL) {
		int64_t w = p[1].t == JT_INT ? p[1].i : p[1].b;
		if (w > 1024)
			return jerr(c, n, "ValueError: tojson indent past 1024");
		char *sp = ja_alloc(&c->ar, (size_t)(w > 0 ? w : 0) + 1);
		if (!sp)
			return joom(c, n);
		memset(sp, ' ', (size_t)(w > 0 ? w : 0));
		sp[w > 0 ? w : 0] = 0;
		o.indent = sp;
	} else if (p[1].t == JT_STR) {
		o.indent = p[1].s->p;
	} else if (p[1].t != JT_UNDEF && p[1].t != JT_NONE) {
		return jerr(c, n, "TypeError: tojson indent must be an int or a str");
	}
	o.item_sep = o.indent ? "," : ", ";
	o.key_sep = ": ";
	if (p[2].t == JT_LIST && p[2].l->n == 2 && p[2].l->v[0].t == JT_STR && p[2].l->v[1].t == JT_STR) {
		o.item_sep = p[2].l->v[0].s->p;
		o.key_sep = p[2].l->v[1].s->p;
	} else if (p[2].t != JT_UNDEF && p[2].t != JT_NONE) {
		return jerr(c, n, "TypeError: tojson separators must be a pair of str");
	}
	struct jsb b;
	if (jsb_init(c, &b, 256) || jinja_dumps(c, n, &b, v, &o, 0))
		return c->err->code;
	return jsb_finish(c, &b, out);
}

static int f_round(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("precision=", "method=");
	struct jv p[2];
	if (bind(c, n, "round", a, pr, p))
		return c->err->code;
	const char *m = p[1].t == JT_STR ? p[1].s->p : "common";
	if (strcmp(m, "common") && strcmp(m, "ceil") && strcmp(m, "floor"))
		return jerr(c, n, "FilterArgumentError: method must be common, ceil or floor");
	int64_t prec = p[0].t == JT_INT ? p[0].i : 0;
	if (v.t != JT_INT && v.t != JT_FLOAT && v.t != JT_BOOL)
		return jerr(c, n, "TypeError: type %s doesn't define __round__ method", jv_type_name(v));
	if (v.t != JT_FLOAT && !strcmp(m, "common")) { /* round(int, n) stays an int */
		int64_t i = v.t == JT_INT ? v.i : v.b;
		if (prec < 0) {
			int64_t pw = 1;
			for (int64_t k = 0; k < -prec && pw <= INT64_MAX / 10; k++)
				pw *= 10;
			int64_t q = i / pw, r = i % pw;
			if (r < 0) {
				r += pw;
				q--;
			}
			if (2 * (r / 2) != r || r) { /* half to even */
				if (r > pw - r || (r == pw - r && (q & 1)))
					q++;
			}
			if (-prec >= 19 || __builtin_mul_overflow(q, pw, &i))
				i = 0;
		}
		*out = jv_int(i);
		return 0;
	}
	double x = v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.b;
	if (!strcmp(m, "common")) {
		if (!isfinite(x) || prec > 300) {
			*out = jv_float(x);
			return 0;
		}
		if (prec < -300) {
			*out = jv_float(0.0 * x);
			return 0;
		}
		if (prec >= 0) { /* correctly rounded, half to even: as CPython */
			char buf[400];
			snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
			*out = jv_float(strtod(buf, NULL));
		} else {
			double pw = pow(10.0, (double)-prec);
			double y = x / pw, r = round(y);
			if (fabs(y - trunc(y)) == 0.5)
				r = 2.0 * round(y / 2.0);
			*out = jv_float(r * pw);
		}
		return 0;
	}
	double pw = pow(10.0, (double)prec);
	*out = jv_float((m[0] == 'c' ? ceil(x * pw) : floor(x * pw)) / pw);
	return 0;
}

static int f_int(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("default=", "base=");
	struct jv p[2];
	if (bind(c, n, "int", a, pr, p))
		return c->err->code;
	struct jv dflt = p[0].t == JT_UNDEF ? jv_int(0) : p[0];
	int base = p[1].t == JT_INT ? (int)p[1].i : 10;
	if (v.t == JT_INT || v.t == JT_BOOL) {
		*out = jv_int(v.t == JT_INT ? v.i : v.b);
		return 0;
	}
	if (v.t == JT_FLOAT) {
		if (!isfinite(v.f) || fabs(v.f) >= 9.2e18) {
			*out = dflt;
			return 0;
		}
		*out = jv_int((int64_t)v.f);
		return 0;
	}
	if (v.t != JT_STR) {
		*out = dflt;
		return 0;
	}
	struct jv s;
	if (jinja_strip(c, v, (struct jv){ .t = JT_NONE }, 3, &s))
		return c->err->code;
	char buf[64];
	size_t w = 0;
	for (size_t i = 0; i < s.s->len && w < sizeof buf - 1; i++)
		if (s.s->p[i] != '_' || (i && i + 1 < s.s->len))
			buf[w++] = s.s->p[i];
	buf[w] = 0;
	char *end;
	if (w && s.s->len < sizeof buf && base >= 2 && base <= 36) {
		errno = 0;
		long long r = strtoll(buf, &end, base);
		if (!*end && end != buf && errno == 0 && buf[0] != ' ') {
			*out = jv_int(r);
			return 0;
		}
		double d = strtod(buf, &end);
		if (!*end && end != buf && isfinite(d) && fabs(d) < 9.2e18) {
			*out = jv_int((int64_t)d);
			return 0;
		}
	}
	*out = dflt;
	return 0;
}

static int f_float(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("default=");
	struct jv p[1];
	if (bind(c, n, "float", a, pr, p))
		return c->err->code;
	struct jv dflt = p[0].t == JT_UNDEF ? jv_float(0.0) : p[0];
	if (v.t == JT_INT || v.t == JT_BOOL || v.t == JT_FLOAT) {
		*out = jv_float(v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.b);
		return 0;
	}
	if (v.t == JT_STR) {
		struct jv s;
		if (jinja_strip(c, v, (struct jv){ .t = JT_NONE }, 3, &s))
			return c->err->code;
		char *end;
		if (s.s->len && s.s->len < 400 && !memchr(s.s->p, 'x', s.s->len) && !memchr(s.s->p, 'X', s.s->len)) {
			double d = strtod(s.s->p, &end);
			if (!*end) {
				*out = jv_float(d);
				return 0;
			}
		}
	}
	*out = dflt;
	return 0;
}

static int f_striptags(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	struct jv s;
	if (to_str(c, n, v, &s))
		return c->err->code;
	const char *p = s.s->p;
	size_t len = s.s->len;
	struct jsb b;
	if (jsb_init(c, &b, len + 1))
		return c->err->code;
	bool pending_space = false, any = false;
	for (size_t i = 0; i < len;) {
		if (!strncmp(p + i, "<!--", 4)) {
			const char *e = jmemmem(p + i + 4, len - i - 4, "-->", 3);
			if (e) {
				i = (size_t)(e - p) + 3;
				continue;
			}
		}
		if (p[i] == '<') {
			const char *e = memchr(p + i + 1, '>', len - i - 1);
			if (e) {
				i = (size_t)(e - p) + 1;
				continue;
			}
		}
		size_t k;
		uint32_t cp = utf8_cp(p + i, len - i, &k);
		if (py_isspace(cp)) {
			pending_space = any;
		} else {
			if (pending_space && jsb_putc(c, &b, ' '))
				return c->err->code;
			pending_space = false;
			any = true;
			if (jsb_put(c, &b, p + i, k))
				return c->err->code;
		}
		i += k;
	}
	/* entities: the common named ones and numeric references */
	static const char *const ent[][2] = { { "&amp;", "&" }, { "&lt;", "<" },   { "&gt;", ">" },
					      { "&quot;", "\"" }, { "&#39;", "'" }, { "&#34;", "\"" },
					      { "&apos;", "'" }, { "&nbsp;", "\xc2\xa0" } };
	struct jsb o;
	if (jsb_init(c, &o, b.len + 1))
		return c->err->code;
	for (size_t i = 0; i < b.len;) {
		size_t e;
		for (e = 0; e < sizeof ent / sizeof *ent; e++)
			if (!strncmp(b.p + i, ent[e][0], strlen(ent[e][0])))
				break;
		if (e < sizeof ent / sizeof *ent) {
			if (jsb_puts(c, &o, ent[e][1]))
				return c->err->code;
			i += strlen(ent[e][0]);
		} else if (jsb_putc(c, &o, b.p[i++])) {
			return c->err->code;
		}
	}
	if (jv_is_content(s) && o.len && jsb_mark(c, &o, 0))
		return c->err->code;
	return jsb_finish(c, &o, out);
}

static int f_urlencode(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, 64))
		return c->err->code;
	struct jlist pairs = { 0 }, *items = &pairs;
	bool qs = v.t == JT_DICT || v.t == JT_LIST;
	if (v.t == JT_DICT) {
		struct jv l;
		if (jv_list(c, v.d->n, &l))
			return c->err->code;
		for (size_t i = 0; i < v.d->n; i++) {
			struct jv t;
			if (jv_list(c, 2, &t))
				return c->err->code;
			t.l->v[0] = v.d->k[i];
			t.l->v[1] = v.d->v[i];
			l.l->v[i] = t;
		}
		items = l.l;
	} else if (v.t == JT_LIST) {
		items = v.l;
	}
	for (size_t i = 0; i < (qs ? items->n : 1); i++) {
		struct jv parts[2];
		size_t np = 1;
		if (qs) {
			struct jv t = items->v[i];
			if (t.t != JT_LIST || t.l->n != 2)
				return jerr(c, n, "ValueError: urlencode needs pairs");
			parts[0] = t.l->v[0];
			parts[1] = t.l->v[1];
			np = 2;
			if (i && jsb_putc(c, &b, '&'))
				return c->err->code;
		} else {
			parts[0] = v;
		}
		for (size_t k = 0; k < np; k++) {
			struct jv s;
			if ((k && jsb_putc(c, &b, '=')) || to_str(c, n, parts[k], &s))
				return c->err->code;
			for (size_t j = 0; j < s.s->len; j++) {
				unsigned char ch = (unsigned char)s.s->p[j];
				bool safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
					    strchr("_.-~", ch) || (!qs && ch == '/');
				int rc = safe && ch ? jsb_putc(c, &b, (char)ch) :
				       qs && ch == ' ' ? jsb_putc(c, &b, '+') : jsb_printf(c, &b, "%%%02X", ch);
				if (rc)
					return c->err->code;
			}
		}
	}
	if (jv_is_content(v) && b.len && jsb_mark(c, &b, 0))
		return c->err->code;
	return jsb_finish(c, &b, out);
}

static int f_sum(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("attribute=", "start=");
	struct jv p[2];
	struct jlist *items;
	if (bind(c, n, "sum", a, pr, p) || jv_iter(c, n, v, &items))
		return c->err->code;
	struct jv acc = p[1].t == JT_UNDEF ? jv_int(0) : p[1];
	for (size_t i = 0; i < items->n; i++) {
		struct jv x = items->v[i];
		if (p[0].t != JT_UNDEF && attr_get(c, n, x, p[0], (struct jv){ .t = JT_UNDEF }, &x))
			return c->err->code;
		if (jv_binop(c, n, OP_ADD, acc, x, &acc))
			return c->err->code;
	}
	*out = acc;
	return 0;
}

static int f_first_last(struct jctx *c, const struct jnode *n, struct jv v, bool last, struct jv *out)
{
	struct jlist *items;
	if (v.t == JT_DICT && last)
		return jerr(c, n, "TypeError: 'dict' object is not reversible");
	if (jv_iter(c, n, v, &items))
		return c->err->code;
	if (!items->n) {
		*out = jv_undef(c, "No %s item, sequence was empty.", last ? "last" : "first");
		return 0;
	}
	*out = items->v[last ? items->n - 1 : 0];
	return 0;
}

static int f_reverse(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	struct jlist *items;
	if (v.t == JT_STR) {
		if (jv_iter(c, n, v, &items))
			return c->err->code;
		struct jsb b;
		if (jsb_init(c, &b, v.s->len + 1))
			return c->err->code;
		for (size_t i = items->n; i-- > 0;)
			if (jsb_put_str(c, &b, items->v[i].s, 0, items->v[i].s->len))
				return c->err->code;
		return jsb_finish(c, &b, out);
	}
	if (jv_iter(c, n, v, &items) || jv_list(c, items->n, out))
		return c->err->code;
	for (size_t i = 0; i < items->n; i++)
		out->l->v[i] = items->v[items->n - 1 - i];
	return 0;
}

static int f_items(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	if (v.t == JT_UNDEF)
		return jv_list(c, 0, out);
	if (v.t != JT_DICT)
		return jerr(c, n, "TypeError: Can only get item pairs from a mapping.");
	if (jv_list(c, v.d->n, out))
		return c->err->code;
	for (size_t i = 0; i < v.d->n; i++) {
		struct jv t;
		if (jv_list(c, 2, &t))
			return c->err->code;
		t.flag = 1;
		t.l->v[0] = v.d->k[i];
		t.l->v[1] = v.d->v[i];
		out->l->v[i] = t;
	}
	return 0;
}

static int f_title(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	/* jinja2: words split at runs of [-\s({[<]; each: first char upper, rest lower */
	struct jv s;
	if (to_str(c, n, v, &s))
		return c->err->code;
	struct jsb b;
	if (jsb_init(c, &b, s.s->len + 8))
		return c->err->code;
	bool start = true;
	for (size_t i = 0; i < s.s->len;) {
		size_t k;
		uint32_t cp = utf8_cp(s.s->p + i, s.s->len - i, &k);
		bool sep = py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
		utf8proc_int32_t r = (utf8proc_int32_t)cp;
		if (!sep)
			r = start ? utf8proc_toupper(r) : utf8proc_tolower(r);
		start = sep;
		if (jsb_putcp(c, &b, (uint32_t)r))
			return c->err->code;
		i += k;
	}
	if (jv_is_content(s) && b.len && jsb_mark(c, &b, 0))
		return c->err->code;
	return jsb_finish(c, &b, out);
}

static int f_wordcount(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	struct jv s;
	if (to_str(c, n, v, &s))
		return c->err->code;
	int64_t cnt = 0;
	bool in = false;
	for (size_t i = 0; i < s.s->len;) {
		size_t k;
		uint32_t cp = utf8_cp(s.s->p + i, s.s->len - i, &k);
		int cat = utf8proc_category((utf8proc_int32_t)cp);
		bool w = cp == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
			 (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
		if (w && !in)
			cnt++;
		in = w;
		i += k;
	}
	*out = jv_int(cnt);
	return 0;
}

static int f_default(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a, struct jv *out)
{
	P("default_value=", "boolean=");
	struct jv p[2];
	if (bind(c, n, "default", a, pr, p))
		return c->err->code;
	if (v.t == JT_UNDEF || (jv_truthy(p[1]) && !jv_truthy(v))) {
		if (p[0].t == JT_UNDEF && a->nargs + a->nkw == 0)
			return jv_cstr(c, "", out);
		*out = p[0];
		return 0;
	}
	*out = v;
	return 0;
}

static const char *const filter_names[] = {
	"abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
	"filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
	"last", "length", "list", "lower", "map", "max", "min", "pprint", "reject", "rejectattr", "replace",
	"reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum",
	"title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount", "wordwrap", NULL
};

bool jinja_has_filter(const char *name)
{
	for (int i = 0; filter_names[i]; i++)
		if (!strcmp(filter_names[i], name))
			return true;
	return false;
}

static int no_args(struct jctx *c, const struct jnode *n, const char *name, const struct jargs *a)
{
	if (a->nargs || a->nkw)
		return jerr(c, n, "TypeError: the filter %s takes no arguments", name);
	return 0;
}

static int f_simple(struct jctx *c, const struct jnode *n, const char *name, struct jv v, struct jv *out)
{
	struct jv s;
	size_t len;
	if (!strcmp(name, "length") || !strcmp(name, "count")) {
		if (jv_len(v, &len))
			return jerr(c, n, "TypeError: object of type '%s' has no len()", jv_type_name(v));
		*out = jv_int((int64_t)len);
		return 0;
	}
	if (!strcmp(name, "list")) {
		struct jlist *items;
		if (jv_iter(c, n, v, &items))
			return c->err->code;
		return copy_list(c, items, out);
	}
	if (!strcmp(name, "string"))
		return v.t == JT_STR ? (*out = v, 0) : to_str(c, n, v, out);
	if (!strcmp(name, "safe")) {
		if (to_str(c, n, v, out))
			return c->err->code;
		out->flag = 1;
		return 0;
	}
	if (!strcmp(name, "abs")) {
		if (v.t == JT_INT) {
			if (v.i == INT64_MIN)
				return jerr(c, n, "OverflowError: integer result past 64 bits");
			*out = jv_int(v.i < 0 ? -v.i : v.i);
		} else if (v.t == JT_BOOL) {
			*out = jv_int(v.b);
		} else if (v.t == JT_FLOAT) {
			*out = jv_float(fabs(v.f));
		} else {
			return jerr(c, n, "TypeError: bad operand type for abs(): '%s'", jv_type_name(v));
		}
		return 0;
	}
	if (!strcmp(name, "escape") || !strcmp(name, "e") || !strcmp(name, "forceescape")) {
		if (v.t == JT_STR && (v.flag & 1) && name[0] != 'f') {
			*out = v;
			return 0;
		}
		/* Markup('') + str(v) escapes it */
		struct jv empty;
		if (to_str(c, n, v, &s) || jv_cstr(c, "", &empty))
			return c->err->code;
		empty.flag = 1;
		return jv_binop(c, n, OP_ADD, empty, s, out);
	}
	if (!strcmp(name, "pprint")) {
		struct jsb b;
		if (jsb_init(c, &b, 64) || jv_repr_into(c, n, &b, v, 0))
			return c->err->code;
		return jsb_finish(c, &b, out);
	}
	if (!strcmp(name, "filesizeformat")) {
		double x = v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.t == JT_BOOL ? v.b : NAN;
		if (isnan(x))
			return jerr(c, n, "ValueError: filesizeformat needs a number");
		static const char *const pre[] = { "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB" };
		char buf[64];
		if (x == 1)
			snprintf(buf, sizeof buf, "1 Byte");
		else if (x < 1000)
			snprintf(buf, sizeof buf, "%d Bytes", (int)x);
		else {
			int i = 0;
			double unit = 1000;
			while (i < 7 && x >= unit * 1000) {
				unit *= 1000;
				i++;
			}
			snprintf(buf, sizeof buf, "%.1f %s", x / unit, pre[i]);
		}
		return jv_cstr(c, buf, out);
	}
	/* str -> str */
	if (to_str(c, n, v, &s))
		return c->err->code;
	if (!strcmp(name, "upper"))
		return jinja_case(c, s, 1, out);
	if (!strcmp(name, "lower"))
		return jinja_case(c, s, 0, out);
	if (!strcmp(name, "capitalize"))
		return jinja_case(c, s, 3, out);
	if (!strcmp(name, "title"))
		return f_title(c, n, s, out);
	if (!strcmp(name, "striptags"))
		return f_striptags(c, n, s, out);
	if (!strcmp(name, "wordcount"))
		return f_wordcount(c, n, s, out);
	return jerr(c, n, "internal: filter %s", name);
}

int jinja_filter(struct jctx *c, const struct jnode *n, const char *name, struct jv v, const struct jargs *a,
		 struct jv *out)
{
	struct jv p[3];
	if (jstep(c, n))
		return c->err->code;
	if (!strcmp(name, "default") || !strcmp(name, "d"))
		return f_default(c, n, v, a, out);
	if (!strcmp(name, "tojson"))
		return f_tojson(c, n, v, a, out);
	if (!strcmp(name, "join"))
		return f_join(c, n, v, a, out);
	if (!strcmp(name, "items"))
		return no_args(c, n, name, a) || f_items(c, n, v, out);
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr") || !strcmp(name, "select") ||
	    !strcmp(name, "reject"))
		return f_select(c, n, v, a, strstr(name, "attr") != NULL, name[0] == 's', out);
	if (!strcmp(name, "map"))
		return f_map(c, n, v, a, out);
	if (!strcmp(name, "sort"))
		return f_sort(c, n, v, a, out);
	if (!strcmp(name, "unique"))
		return f_unique(c, n, v, a, out);
	if (!strcmp(name, "min") || !strcmp(name, "max"))
		return f_minmax(c, n, v, a, name[1] == 'a', out);
	if (!strcmp(name, "dictsort"))
		return f_dictsort(c, n, v, a, out);
	if (!strcmp(name, "groupby"))
		return f_groupby(c, n, v, a, out);
	if (!strcmp(name, "indent"))
		return f_indent(c, n, v, a, out);
	if (!strcmp(name, "truncate"))
		return f_truncate(c, n, v, a, out);
	if (!strcmp(name, "wordwrap"))
		return f_wordwrap(c, n, v, a, out);
	if (!strcmp(name, "batch") || !strcmp(name, "slice"))
		return f_batch_slice(c, n, v, a, name[0] == 's', out);
	if (!strcmp(name, "round"))
		return f_round(c, n, v, a, out);
	if (!strcmp(name, "int"))
		return f_int(c, n, v, a, out);
	if (!strcmp(name, "float"))
		return f_float(c, n, v, a, out);
	if (!strcmp(name, "sum"))
		return f_sum(c, n, v, a, out);
	if (!strcmp(name, "first") || !strcmp(name, "last"))
		return no_args(c, n, name, a) || f_first_last(c, n, v, name[0] == 'l', out);
	if (!strcmp(name, "reverse"))
		return no_args(c, n, name, a) || f_reverse(c, n, v, out);
	if (!strcmp(name, "urlencode"))
		return no_args(c, n, name, a) || f_urlencode(c, n, v, out);
	if (!strcmp(name, "trim")) {
		P("chars=");
		struct jv s;
		if (bind(c, n, name, a, pr, p) || to_str(c, n, v, &s))
			return c->err->code;
		return jinja_strip(c, s, p[0], 3, out);
	}
	if (!strcmp(name, "replace")) {
		P("old", "new", "count=");
		struct jv s, o, w;
		if (bind(c, n, name, a, pr, p) || to_str(c, n, v, &s) || to_str(c, n, p[0], &o) || to_str(c, n, p[1], &w))
			return c->err->code;
		return jinja_replace(c, s, o, w, p[2].t == JT_INT ? p[2].i : -1, out);
	}
	if (!strcmp(name, "center")) {
		P("width=");
		struct jv s;
		if (bind(c, n, name, a, pr, p) || to_str(c, n, v, &s))
			return c->err->code;
		return jinja_center(c, n, s, p[0].t == JT_UNDEF ? jv_int(80) : p[0], out);
	}
	if (!strcmp(name, "format")) {
		struct jv s, args;
		if (to_str(c, n, v, &s))
			return c->err->code;
		if (a->nkw) {
			if (a->nargs)
				return jerr(c, n, "FilterArgumentError: can't handle positional and keyword arguments at "
						  "the same time");
			if (jv_dict(c, &args))
				return c->err->code;
			for (size_t k = 0; k < a->nkw; k++) {
				struct jv key;
				if (jv_cstr(c, a->names[k], &key) || jdict_set(c, args.d, key, a->kw[k]))
					return c->err->code;
			}
		} else {
			if (jv_list(c, a->nargs, &args))
				return c->err->code;
			args.flag = 1;
			jmemcpy(args.l->v, a->args, a->nargs * sizeof *a->args);
		}
		return jinja_percent_format(c, n, s, args, out);
	}
	if (!strcmp(name, "attr")) {
		P("name");
		struct jv s;
		if (bind(c, n, name, a, pr, p) || to_str(c, n, p[0], &s))
			return c->err->code;
		return jv_attr_only(c, n, v, s.s->p, out);
	}
	if (!jinja_has_filter(name))
		return jerr(c, n, "TemplateAssertionError: No filter named '%s'.", name);
	if (no_args(c, n, name, a))
		return c->err->code;
	return f_simple(c, n, name, v, out);
}
