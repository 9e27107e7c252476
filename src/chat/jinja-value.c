/* jinja-value.c - the render arena, values and their Python semantics:
 * str() and repr(), truthiness, ==, ordering, len, iteration, dicts, and the
 * string builder that carries content spans. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../base/err.h"
#include "../base/utf8.h"
#include "jinja.h"

/* ---- arena ---- */

struct jchunk {
	struct jchunk *next;
	size_t size, used;
	_Alignas(16) unsigned char mem[];
};

void *ja_alloc(struct jarena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	struct jchunk *h = a->head;
	if (!h || h->size - h->used < n) {
		size_t sz = n > 65536 - sizeof *h ? n : 65536 - sizeof *h;
		if (a->cap && (a->total + sz > a->cap || sz > a->cap))
			return NULL;
		h = malloc(sizeof *h + sz);
		if (!h)
			return NULL;
		h->size = sz;
		h->used = 0;
		h->next = a->head;
		a->head = h;
		a->total += sz;
	}
	void *p = h->mem + h->used;
	h->used += n;
	return p;
}

void ja_free(struct jarena *a)
{
	for (struct jchunk *h = a->head, *nx; h; h = nx) {
		nx = h->next;
		free(h);
	}
	a->head = NULL;
	a->total = 0;
}

/* ---- errors ---- */

static int jerr_v(struct jctx *c, const struct jnode *n, int code, const char *fmt, va_list ap)
{
	char msg[200];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (n)
		return err_set(c->err, code, "template line %u, column %u: %s", (unsigned)n->line, (unsigned)n->col,
			       msg);
	return err_set(c->err, code, "template: %s", msg);
}

int jerr(struct jctx *c, const struct jnode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = jerr_v(c, n, HEARTH_EINVAL, fmt, ap);
	va_end(ap);
	return rc;
}

int jerr_code(struct jctx *c, const struct jnode *n, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = jerr_v(c, n, code, fmt, ap);
	va_end(ap);
	return rc;
}

int joom(struct jctx *c, const struct jnode *n)
{
	return jerr_code(c, n, HEARTH_ETOOBIG, "the render ran out of memory (limit %zu MiB)",
			 c->ar.cap >> 20);
}

/* ---- strings ---- */

struct jstr *jstr_new(struct jarena *a, const char *p, size_t len)
{
	struct jstr *s = ja_alloc(a, sizeof *s + len + 1);
	if (!s)
		return NULL;
	char *d = (char *)(s + 1);
	if (len)
		jmemcpy(d, p, len);
	d[len] = 0;
	s->p = d;
	s->len = len;
	s->nsp = 0;
	s->sp = NULL;
	return s;
}

int jv_str(struct jctx *c, const char *p, size_t len, struct jv *out)
{
	struct jstr *s = jstr_new(&c->ar, p, len);
	if (!s)
		return joom(c, NULL);
	*out = (struct jv){ .t = JT_STR, .s = s };
	return 0;
}

int jv_cstr(struct jctx *c, const char *s, struct jv *out) { return jv_str(c, s, strlen(s), out); }

bool jv_is_content(struct jv v) { return v.t == JT_STR && v.s->nsp > 0; }

int jv_substr(struct jctx *c, struct jv s, size_t off, size_t n, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, n + 1) || jsb_put_str(c, &b, s.s, off, n) || jsb_finish(c, &b, out))
		return c->err->code;
	out->flag = s.flag & 1;
	return 0;
}

int jv_derived(struct jctx *c, struct jv src, const char *p, size_t n, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, n + 1) || jsb_put(c, &b, p, n))
		return HEARTH_ENOMEM;
	if (jv_is_content(src) && n && jsb_mark(c, &b, 0))
		return HEARTH_ENOMEM;
	return jsb_finish(c, &b, out);
}

struct jv jv_undef(struct jctx *c, const char *fmt, ...)
{
	struct jv v = { .t = JT_UNDEF };
	struct jundef *u = ja_alloc(&c->ar, sizeof *u);
	if (!u)
		return v;
	char buf[240];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	size_t n = strlen(buf);
	char *m = ja_alloc(&c->ar, n + 1);
	if (m)
		jmemcpy(m, buf, n + 1);
	u->msg = m;
	u->security = false;
	v.u = u;
	return v;
}

struct jv jv_undef_name(struct jctx *c, const char *name) { return jv_undef(c, "'%.100s' is undefined", name); }

/* jinja2's object_type_repr */
static void type_repr(struct jv obj, char *buf, size_t size)
{
	if (obj.t == JT_NONE)
		snprintf(buf, size, "None");
	else
		snprintf(buf, size, "%s object", jv_type_name(obj));
}

struct jv jv_undef_attr(struct jctx *c, struct jv obj, struct jv key)
{
	char tr[64];
	type_repr(obj, tr, sizeof tr);
	if (key.t == JT_STR)
		return jv_undef(c, "'%s' has no attribute '%.100s'", tr, key.s->p);
	if (key.t == JT_INT)
		return jv_undef(c, "%s has no element %lld", tr, (long long)key.i);
	return jv_undef(c, "%s has no element of type %s", tr, jv_type_name(key));
}

int jv_list(struct jctx *c, size_t n, struct jv *out)
{
	struct jlist *l = ja_alloc(&c->ar, sizeof *l);
	struct jv *v = n ? ja_alloc(&c->ar, n * sizeof *v) : NULL;
	if (!l || (n && !v) || n > SIZE_MAX / sizeof *v)
		return joom(c, NULL);
	if (n)
		memset(v, 0, n * sizeof *v);
	l->n = n;
	l->v = v;
	*out = (struct jv){ .t = JT_LIST, .l = l };
	return 0;
}

int jv_dict(struct jctx *c, struct jv *out)
{
	struct jdict *d = ja_alloc(&c->ar, sizeof *d);
	if (!d)
		return joom(c, NULL);
	memset(d, 0, sizeof *d);
	*out = (struct jv){ .t = JT_DICT, .d = d };
	return 0;
}

int jv_func(struct jctx *c, int kind, const char *name, struct jv self, struct jv *out)
{
	struct jfunc *f = ja_alloc(&c->ar, sizeof *f);
	if (!f)
		return joom(c, NULL);
	memset(f, 0, sizeof *f);
	f->kind = kind;
	f->name = name;
	f->self = self;
	*out = (struct jv){ .t = JT_FUNC, .fn = f };
	return 0;
}

/* ---- builder ---- */

int jsb_init(struct jctx *c, struct jsb *b, size_t cap)
{
	memset(b, 0, sizeof *b);
	if (cap < 64)
		cap = 64;
	b->p = ja_alloc(&c->ar, cap);
	if (!b->p)
		return joom(c, NULL);
	b->cap = cap;
	b->p[0] = 0;
	return 0;
}

static int jsb_grow(struct jctx *c, struct jsb *b, size_t need)
{
	if (need >= c->max_output + 1 && b == c->out)
		return jerr_code(c, NULL, HEARTH_ETOOBIG, "the render is longer than %zu bytes", c->max_output);
	if (need > ((size_t)1 << 40))
		return joom(c, NULL);
	size_t cap = b->cap * 2;
	while (cap < need)
		cap *= 2;
	char *p = ja_alloc(&c->ar, cap);
	if (!p)
		return joom(c, NULL);
	jmemcpy(p, b->p, b->len + 1);
	b->p = p;
	b->cap = cap;
	return 0;
}

int jsb_put(struct jctx *c, struct jsb *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap && jsb_grow(c, b, b->len + n + 1))
		return c->err->code;
	if (b == c->out && b->len + n > c->max_output)
		return jerr_code(c, NULL, HEARTH_ETOOBIG, "the render is longer than %zu bytes", c->max_output);
	if (n)
		jmemcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int jsb_puts(struct jctx *c, struct jsb *b, const char *s) { return jsb_put(c, b, s, strlen(s)); }
int jsb_putc(struct jctx *c, struct jsb *b, char ch) { return jsb_put(c, b, &ch, 1); }

int jsb_putcp(struct jctx *c, struct jsb *b, uint32_t cp)
{
	utf8proc_uint8_t enc[4];
	const utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, enc);
	return jsb_put(c, b, (const char *)enc, (size_t)(n > 0 ? n : 0));
}

int jsb_printf(struct jctx *c, struct jsb *b, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	return jsb_put(c, b, buf, (size_t)n);
}

static int add_span(struct jctx *c, struct jsb *b, size_t off, size_t len)
{
	if (!len)
		return 0;
	if (b->nsp) {
		struct hearth_span *l = &b->sp[b->nsp - 1];
		if (l->off + l->len >= off) { /* adjacent or overlapping: merge */
			size_t end = off + len > l->off + l->len ? off + len : l->off + l->len;
			l->len = end - l->off;
			return 0;
		}
	}
	if (b->nsp == b->spcap) {
		size_t cap = b->spcap ? b->spcap * 2 : 8;
		struct hearth_span *sp = ja_alloc(&c->ar, cap * sizeof *sp);
		if (!sp)
			return joom(c, NULL);
		if (b->nsp)
			jmemcpy(sp, b->sp, b->nsp * sizeof *sp);
		b->sp = sp;
		b->spcap = cap;
	}
	b->sp[b->nsp++] = (struct hearth_span){ off, len };
	return 0;
}

int jsb_put_str(struct jctx *c, struct jsb *b, const struct jstr *s, size_t off, size_t n)
{
	size_t base = b->len;
	if (jsb_put(c, b, s->p + off, n))
		return c->err->code;
	for (size_t i = 0; i < s->nsp; i++) {
		size_t a0 = s->sp[i].off, a1 = a0 + s->sp[i].len;
		if (a1 <= off || a0 >= off + n)
			continue;
		if (a0 < off)
			a0 = off;
		if (a1 > off + n)
			a1 = off + n;
		if (add_span(c, b, base + a0 - off, a1 - a0))
			return c->err->code;
	}
	return 0;
}

int jsb_mark(struct jctx *c, struct jsb *b, size_t from)
{
	/* drop spans inside [from, len) then add one covering it */
	while (b->nsp && b->sp[b->nsp - 1].off >= from)
		b->nsp--;
	return add_span(c, b, from, b->len - from);
}

int jsb_finish(struct jctx *c, struct jsb *b, struct jv *out)
{
	struct jstr *s = ja_alloc(&c->ar, sizeof *s);
	if (!s)
		return joom(c, NULL);
	s->p = b->p;
	s->len = b->len;
	s->nsp = b->nsp;
	s->sp = b->sp;
	*out = (struct jv){ .t = JT_STR, .s = s };
	return 0;
}

/* ---- unicode helpers ---- */

const void *jmemmem(const void *hay, size_t hn, const void *needle, size_t nn)
{
	const char *h = hay, *nd = needle;
	if (!nn)
		return hay;
	while (hn >= nn) {
		const char *f = memchr(h, nd[0], hn - nn + 1);
		if (!f)
			return NULL;
		if (!memcmp(f, nd, nn))
			return f;
		hn -= (size_t)(f - h) + 1;
		h = f + 1;
	}
	return NULL;
}

size_t utf8_count(const char *p, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)p[i] & 0xc0) != 0x80;
	return n;
}

size_t utf8_offset(const char *p, size_t len, size_t cp)
{
	size_t i = 0;
	while (i < len && cp) {
		i += utf8_seq_len((unsigned char)p[i]);
		cp--;
	}
	return i > len ? len : i;
}

bool py_isspace(uint32_t cp)
{
	if (cp < 128)
		return cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f);
	switch (cp) {
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
		return true;
	}
	return cp >= 0x2000 && cp <= 0x200a;
}

/* ---- type names, truth ---- */

const char *jv_type_name(struct jv v)
{
	switch (v.t) {
	case JT_UNDEF: return "Undefined";
	case JT_NONE: return "NoneType";
	case JT_BOOL: return "bool";
	case JT_INT: return "int";
	case JT_FLOAT: return "float";
	case JT_STR: return v.flag & 1 ? "Markup" : "str";
	case JT_LIST: return v.flag ? "tuple" : "list";
	case JT_DICT: return "dict";
	case JT_FUNC: return v.fn->kind == JF_MACRO ? "Macro" : "function";
	case JT_NS: return "Namespace";
	case JT_LOOP: return "LoopContext";
	case JT_CYCLER: return "Cycler";
	}
	return "object";
}

bool jv_truthy(struct jv v)
{
	switch (v.t) {
	case JT_UNDEF: case JT_NONE: return false;
	case JT_BOOL: return v.b;
	case JT_INT: return v.i != 0;
	case JT_FLOAT: return v.f != 0;
	case JT_STR: return v.s->len > 0;
	case JT_LIST: return v.l->n > 0;
	case JT_DICT: return v.d->n > 0;
	default: return true;
	}
}

int jv_len(struct jv v, size_t *n)
{
	switch (v.t) {
	case JT_UNDEF: *n = 0; return 0;
	case JT_STR: *n = utf8_count(v.s->p, v.s->len); return 0;
	case JT_LIST: *n = v.l->n; return 0;
	case JT_DICT: *n = v.d->n; return 0;
	default: return -1;
	}
}

/* ---- float repr (Python's shortest round-trip) ---- */

void fmt_float_repr(double f, char buf[40])
{
	if (isnan(f)) {
		strcpy(buf, "nan");
		return;
	}
	if (isinf(f)) {
		strcpy(buf, f > 0 ? "inf" : "-inf");
		return;
	}
	if (f == 0) {
		strcpy(buf, signbit(f) ? "-0.0" : "0.0");
		return;
	}
	char e[40];
	int prec;
	for (prec = 0; prec < 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec, f);
		if (strtod(e, NULL) == f)
			break;
	}
	/* e: [-]d[.ddd]e[+-]XX */
	char digits[24];
	int nd = 0, neg = e[0] == '-';
	const char *q = e + neg;
	for (; *q && *q != 'e'; q++)
		if (*q >= '0' && *q <= '9')
			digits[nd++] = *q;
	int exp = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	char *o = buf;
	if (neg)
		*o++ = '-';
	if (exp >= -4 && exp < 16) {
		if (exp < 0) {
			*o++ = '0';
			*o++ = '.';
			for (int i = 0; i < -exp - 1; i++)
				*o++ = '0';
			for (int i = 0; i < nd; i++)
				*o++ = digits[i];
		} else {
			for (int i = 0; i <= exp; i++)
				*o++ = i < nd ? digits[i] : '0';
			*o++ = '.';
			if (nd > exp + 1)
				for (int i = exp + 1; i < nd; i++)
					*o++ = digits[i];
			else
				*o++ = '0';
		}
		*o = 0;
	} else {
		*o++ = digits[0];
		if (nd > 1) {
			*o++ = '.';
			for (int i = 1; i < nd; i++)
				*o++ = digits[i];
		}
		int ae = exp < 0 ? -exp : exp;
		*o++ = 'e';
		*o++ = exp < 0 ? '-' : '+';
		if (ae >= 100)
			*o++ = (char)('0' + ae / 100);
		*o++ = (char)('0' + ae / 10 % 10);
		*o++ = (char)('0' + ae % 10);
		*o = 0;
	}
}

/* ---- str() and repr() ---- */

static bool py_printable(uint32_t cp)
{
	if (cp == ' ')
		return true;
	if (cp < 0x20 || cp == 0x7f)
		return false;
	if (cp < 0x7f)
		return true;
	switch (utf8proc_category((utf8proc_int32_t)cp)) {
	case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
	case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
		return false;
	default:
		return true;
	}
}

static int repr_str(struct jctx *c, struct jsb *b, const struct jstr *s, bool markup)
{
	bool sq = memchr(s->p, '\'', s->len) != NULL, dq = memchr(s->p, '"', s->len) != NULL;
	char q = sq && !dq ? '"' : '\'';
	if (markup && jsb_puts(c, b, "Markup("))
		return c->err->code;
	if (jsb_putc(c, b, q))
		return c->err->code;
	size_t from = b->len;
	for (size_t i = 0; i < s->len;) {
		size_t k;
		uint32_t cp = utf8_cp(s->p + i, s->len - i, &k);
		int rc;
		if (cp == '\\' || cp == (uint32_t)q)
			rc = jsb_putc(c, b, '\\') || jsb_putc(c, b, (char)cp);
		else if (cp == '\n')
			rc = jsb_puts(c, b, "\\n");
		else if (cp == '\r')
			rc = jsb_puts(c, b, "\\r");
		else if (cp == '\t')
			rc = jsb_puts(c, b, "\\t");
		else if (py_printable(cp))
			rc = jsb_put(c, b, s->p + i, k);
		else if (cp < 0x100)
			rc = jsb_printf(c, b, "\\x%02x", cp);
		else if (cp < 0x10000)
			rc = jsb_printf(c, b, "\\u%04x", cp);
		else
			rc = jsb_printf(c, b, "\\U%08x", cp);
		if (rc)
			return c->err->code;
		i += k;
	}
	if (s->nsp && jsb_mark(c, b, from))
		return c->err->code;
	if (jsb_putc(c, b, q) || (markup && jsb_putc(c, b, ')')))
		return c->err->code;
	return 0;
}

int jv_repr_into(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v, int depth)
{
	if (depth > 200)
		return jerr(c, n, "RecursionError: maximum recursion depth exceeded in repr");
	switch (v.t) {
	case JT_STR:
		return repr_str(c, b, v.s, v.flag & 1);
	case JT_LIST: {
		bool tup = v.flag != 0;
		if (jsb_putc(c, b, tup ? '(' : '['))
			return c->err->code;
		for (size_t i = 0; i < v.l->n; i++) {
			if ((i && jsb_puts(c, b, ", ")) || jv_repr_into(c, n, b, v.l->v[i], depth + 1))
				return c->err->code;
		}
		if (tup && v.l->n == 1 && jsb_putc(c, b, ','))
			return c->err->code;
		return jsb_putc(c, b, tup ? ')' : ']');
	}
	case JT_DICT:
	case JT_NS: {
		if (v.t == JT_NS && jsb_puts(c, b, "<Namespace "))
			return c->err->code;
		if (jsb_putc(c, b, '{'))
			return c->err->code;
		for (size_t i = 0; i < v.d->n; i++) {
			if ((i && jsb_puts(c, b, ", ")) || jv_repr_into(c, n, b, v.d->k[i], depth + 1) ||
			    jsb_puts(c, b, ": ") || jv_repr_into(c, n, b, v.d->v[i], depth + 1))
				return c->err->code;
		}
		if (jsb_putc(c, b, '}'))
			return c->err->code;
		return v.t == JT_NS ? jsb_putc(c, b, '>') : 0;
	}
	case JT_UNDEF:
		return jsb_puts(c, b, "Undefined");
	default:
		return jv_str_into(c, n, b, v);
	}
}

int jv_str_into(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v)
{
	char buf[40];
	switch (v.t) {
	case JT_UNDEF:
		return 0;
	case JT_NONE: return jsb_puts(c, b, "None");
	case JT_BOOL: return jsb_puts(c, b, v.b ? "True" : "False");
	case JT_INT: return jsb_printf(c, b, "%lld", (long long)v.i);
	case JT_FLOAT: fmt_float_repr(v.f, buf); return jsb_puts(c, b, buf);
	case JT_STR: return jsb_put_str(c, b, v.s, 0, v.s->len);
	case JT_LIST: case JT_DICT: case JT_NS: return jv_repr_into(c, n, b, v, 0);
	case JT_FUNC:
		if (v.fn->kind == JF_MACRO)
			return jsb_printf(c, b, "<Macro '%s'>", v.fn->name ? v.fn->name : "caller");
		return jsb_printf(c, b, "<built-in method %s>", v.fn->name ? v.fn->name : "?");
	case JT_LOOP: return jsb_printf(c, b, "<LoopContext %zu/%zu>", v.loop->i + 1, v.loop->items->n);
	case JT_CYCLER: return jsb_puts(c, b, "<jinja2.utils.Cycler object>");
	}
	return 0;
}

int jv_to_str(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
	if (v.t == JT_STR) {
		*out = v;
		out->flag = 0;
		return 0;
	}
	struct jsb b;
	if (jsb_init(c, &b, 32) || jv_str_into(c, n, &b, v) || jsb_finish(c, &b, out))
		return c->err->code ? c->err->code : HEARTH_ENOMEM;
	return 0;
}

/* ---- equality and order ---- */

static bool is_num(struct jv v) { return v.t == JT_BOOL || v.t == JT_INT || v.t == JT_FLOAT; }
static double num_f(struct jv v) { return v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.b; }
static int64_t num_i(struct jv v) { return v.t == JT_INT ? v.i : v.b; }

bool jv_eq(struct jv a, struct jv b)
{
	if (is_num(a) && is_num(b)) {
		if (a.t != JT_FLOAT && b.t != JT_FLOAT)
			return num_i(a) == num_i(b);
		return num_f(a) == num_f(b);
	}
	if (a.t != b.t)
		return false;
	switch (a.t) {
	case JT_UNDEF: case JT_NONE: return true;
	case JT_STR: return a.s->len == b.s->len && !memcmp(a.s->p, b.s->p, a.s->len);
	case JT_LIST:
		if ((a.flag != 0) != (b.flag != 0) || a.l->n != b.l->n)
			return false;
		for (size_t i = 0; i < a.l->n; i++)
			if (!jv_eq(a.l->v[i], b.l->v[i]))
				return false;
		return true;
	case JT_DICT:
		if (a.d->n != b.d->n)
			return false;
		for (size_t i = 0; i < a.d->n; i++) {
			struct jv x;
			if (!jdict_get(b.d, a.d->k[i], &x) || !jv_eq(a.d->v[i], x))
				return false;
		}
		return true;
	case JT_FUNC: return a.fn == b.fn;
	case JT_NS: return a.d == b.d;
	case JT_LOOP: return a.loop == b.loop;
	case JT_CYCLER: return a.cy == b.cy;
	}
	return false;
}

int jv_cmp(struct jctx *c, const struct jnode *n, struct jv a, struct jv b, const char *op, int *r)
{
	if (is_num(a) && is_num(b)) {
		if (a.t != JT_FLOAT && b.t != JT_FLOAT) {
			int64_t x = num_i(a), y = num_i(b);
			*r = x < y ? -1 : x > y;
		} else {
			double x = num_f(a), y = num_f(b);
			*r = x < y ? -1 : x > y ? 1 : x == y ? 0 : 2; /* 2: unordered (nan) */
		}
		return 0;
	}
	if (a.t == JT_STR && b.t == JT_STR) {
		size_t m = a.s->len < b.s->len ? a.s->len : b.s->len;
		int k = memcmp(a.s->p, b.s->p, m);
		*r = k < 0 ? -1 : k > 0 ? 1 : a.s->len < b.s->len ? -1 : a.s->len > b.s->len;
		return 0;
	}
	if (a.t == JT_LIST && b.t == JT_LIST && (a.flag != 0) == (b.flag != 0)) {
		size_t m = a.l->n < b.l->n ? a.l->n : b.l->n;
		for (size_t i = 0; i < m; i++) {
			if (jv_eq(a.l->v[i], b.l->v[i]))
				continue;
			return jv_cmp(c, n, a.l->v[i], b.l->v[i], op, r);
		}
		*r = a.l->n < b.l->n ? -1 : a.l->n > b.l->n;
		return 0;
	}
	return jerr(c, n, "TypeError: '%s' not supported between instances of '%s' and '%s'", op, jv_type_name(a),
		    jv_type_name(b));
}

/* ---- dicts ---- */

bool jdict_get(const struct jdict *d, struct jv k, struct jv *out)
{
	for (size_t i = 0; i < d->n; i++)
		if (jv_eq(d->k[i], k)) {
			if (out)
				*out = d->v[i];
			return true;
		}
	return false;
}

bool jdict_gets(const struct jdict *d, const char *k, struct jv *out)
{
	size_t n = strlen(k);
	for (size_t i = 0; i < d->n; i++)
		if (d->k[i].t == JT_STR && d->k[i].s->len == n && !memcmp(d->k[i].s->p, k, n)) {
			if (out)
				*out = d->v[i];
			return true;
		}
	return false;
}

int jdict_set(struct jctx *c, struct jdict *d, struct jv k, struct jv v)
{
	for (size_t i = 0; i < d->n; i++)
		if (jv_eq(d->k[i], k)) {
			d->v[i] = v;
			return 0;
		}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct jv *nk = ja_alloc(&c->ar, cap * sizeof *nk), *nv = ja_alloc(&c->ar, cap * sizeof *nv);
		if (!nk || !nv)
			return joom(c, NULL);
		if (d->n) {
			jmemcpy(nk, d->k, d->n * sizeof *nk);
			jmemcpy(nv, d->v, d->n * sizeof *nv);
		}
		d->k = nk;
		d->v = nv;
		d->cap = cap;
	}
	d->k[d->n] = k;
	d->v[d->n] = v;
	d->n++;
	return 0;
}

/* ---- iteration ---- */

int jv_iter(struct jctx *c, const struct jnode *n, struct jv v, struct jlist **out)
{
	struct jv l;
	switch (v.t) {
	case JT_UNDEF:
		if (jv_list(c, 0, &l))
			return HEARTH_ENOMEM;
		*out = l.l;
		return 0;
	case JT_LIST:
		*out = v.l;
		return 0;
	case JT_DICT:
		if (jv_list(c, v.d->n, &l))
			return HEARTH_ENOMEM;
		jmemcpy(l.l->v, v.d->k, v.d->n * sizeof *v.d->k);
		*out = l.l;
		return 0;
	case JT_STR: {
		size_t cnt = utf8_count(v.s->p, v.s->len);
		if (jv_list(c, cnt, &l))
			return HEARTH_ENOMEM;
		size_t i = 0;
		for (size_t k = 0; k < cnt; k++) {
			size_t len = utf8_seq_len((unsigned char)v.s->p[i]);
			if (i + len > v.s->len)
				len = v.s->len - i;
			if (jv_substr(c, v, i, len, &l.l->v[k]))
				return c->err->code;
			i += len;
		}
		*out = l.l;
		return 0;
	}
	default:
		return jerr(c, n, "TypeError: '%s' object is not iterable", jv_type_name(v));
	}
}
