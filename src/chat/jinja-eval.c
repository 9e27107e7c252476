/* jinja-eval.c - walks the tree: expressions to values, statements to
 * output, with jinja2's scoping (a for body and a macro get a scope of their
 * own, if does not; a macro sees names where it was defined, as they are
 * when it is called), its undefined values, and the sandbox's attribute
 * rules (a.b: attribute first, then item; a[b]: item first, then
 * attribute; names starting with '_' and mutating methods refused).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "jinja.h"

#define MAX_EVAL_NEST 600

static int eval(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out);
static int exec_body(struct jctx *c, struct jframe *f, struct jnode *const *kids, size_t n);

int jstep(struct jctx *c, const struct jnode *n)
{
	if (++c->steps > JINJA_MAX_STEPS)
		return jerr_code(c, n, HEARTH_ETOOBIG, "the render took more than %llu steps",
				 (unsigned long long)JINJA_MAX_STEPS);
	return 0;
}

int jv_check_undef(struct jctx *c, const struct jnode *n, struct jv v)
{
	if (v.t != JT_UNDEF)
		return 0;
	if (v.u && v.u->security)
		return jerr(c, n, "SecurityError: %s", v.u->msg ? v.u->msg : "unsafe");
	return jerr(c, n, "UndefinedError: %s", v.u && v.u->msg ? v.u->msg : "undefined");
}

/* ---- frames ---- */

static struct jframe *frame_new(struct jctx *c, struct jframe *parent)
{
	struct jframe *f = ja_alloc(&c->ar, sizeof *f);
	if (!f)
		return NULL;
	memset(f, 0, sizeof *f);
	f->parent = parent;
	return f;
}

static bool frame_lookup(const struct jframe *f, const char *name, struct jv *out)
{
	for (; f; f = f->parent)
		if (jdict_gets(&f->vars, name, out))
			return true;
	return false;
}

static int frame_set(struct jctx *c, struct jframe *f, const char *name, struct jv v)
{
	struct jv k;
	for (size_t i = 0; i < f->vars.n; i++)
		if (!strcmp(f->vars.k[i].s->p, name)) {
			f->vars.v[i] = v;
			return 0;
		}
	if (jv_cstr(c, name, &k))
		return c->err->code;
	return jdict_set(c, &f->vars, k, v);
}

/* ---- attribute and item access ---- */

static int loop_attr(struct jctx *c, struct jv obj, const char *name, struct jv *out)
{
	struct jloop *L = obj.loop;
	size_t n = L->items->n, i = L->i;
	if (!strcmp(name, "index"))
		*out = jv_int((int64_t)i + 1);
	else if (!strcmp(name, "index0"))
		*out = jv_int((int64_t)i);
	else if (!strcmp(name, "revindex"))
		*out = jv_int((int64_t)(n - i));
	else if (!strcmp(name, "revindex0"))
		*out = jv_int((int64_t)(n - i - 1));
	else if (!strcmp(name, "first"))
		*out = jv_bool(i == 0);
	else if (!strcmp(name, "last"))
		*out = jv_bool(i + 1 == n);
	else if (!strcmp(name, "length"))
		*out = jv_int((int64_t)n);
	else if (!strcmp(name, "depth"))
		*out = jv_int(L->depth + 1);
	else if (!strcmp(name, "depth0"))
		*out = jv_int(L->depth);
	else if (!strcmp(name, "previtem"))
		*out = i > 0 ? L->items->v[i - 1] : jv_undef(c, "there is no previous item");
	else if (!strcmp(name, "nextitem"))
		*out = i + 1 < n ? L->items->v[i + 1] : jv_undef(c, "there is no next item");
	else if (!strcmp(name, "cycle") || !strcmp(name, "changed"))
		return jv_func(c, JF_METHOD, !strcmp(name, "cycle") ? "cycle" : "changed", obj, out);
	else
		return 1;
	return 0;
}

/* Python attribute lookup: 0 found, 1 none, <0 error */
static int py_attr(struct jctx *c, struct jv obj, const char *name, struct jv *out)
{
	bool unsafe = false;
	size_t nl = strlen(name);
	if (nl > 4 && name[0] == '_' && name[1] == '_' && name[nl - 1] == '_' && name[nl - 2] == '_') {
		/* Python's own dunder attributes exist on every object: refused */
		*out = jv_undef(c, "access to attribute '%.80s' of '%s' object is unsafe.", name, jv_type_name(obj));
		if (out->u)
			out->u->security = true;
		return 0;
	}
	switch (obj.t) {
	case JT_NS:
		if (jdict_gets(obj.d, name, out))
			return 0;
		return 1;
	case JT_LOOP:
		return loop_attr(c, obj, name, out);
	case JT_CYCLER:
		if (!strcmp(name, "current")) {
			*out = obj.cy->items->n ? obj.cy->items->v[obj.cy->pos] : jv_none();
			return 0;
		}
		if (!strcmp(name, "next") || !strcmp(name, "reset"))
			return jv_func(c, JF_METHOD, !strcmp(name, "next") ? "next" : "reset", obj, out);
		return 1;
	case JT_LIST:
		if (obj.flag == 2 && obj.l->n == 2 && (!strcmp(name, "grouper") || !strcmp(name, "list"))) {
			*out = obj.l->v[name[0] == 'g' ? 0 : 1];
			return 0;
		}
		break;
	default:
		break;
	}
	if (!jinja_method_exists(obj, name, &unsafe))
		return 1;
	if (unsafe) {
		*out = jv_undef(c, "access to attribute '%.80s' of '%s' object is unsafe.", name, jv_type_name(obj));
		if (out->u)
			out->u->security = true;
		return 0;
	}
	return jv_func(c, JF_METHOD, name, obj, out);
}

/* obj[key] without the attribute fallback: 0 found, 1 not, <0 error */
static int py_item(struct jctx *c, const struct jnode *n, struct jv obj, struct jv key, struct jv *out)
{
	if (obj.t == JT_DICT)
		return jdict_get(obj.d, key, out) ? 0 : 1;
	if ((obj.t == JT_LIST || obj.t == JT_STR) && (key.t == JT_INT || key.t == JT_BOOL)) {
		int64_t i = key.t == JT_INT ? key.i : key.b;
		size_t len;
		jv_len(obj, &len);
		if (i < 0)
			i += (int64_t)len;
		if (i < 0 || (size_t)i >= len)
			return 1;
		if (obj.t == JT_LIST) {
			*out = obj.l->v[i];
			return 0;
		}
		size_t off = utf8_offset(obj.s->p, obj.s->len, (size_t)i);
		size_t end = utf8_offset(obj.s->p, obj.s->len, (size_t)i + 1);
		return jv_substr(c, obj, off, end - off, out) ? c->err->code : 0;
	}
	(void)n;
	return 1;
}

int jv_attr_only(struct jctx *c, const struct jnode *n, struct jv obj, const char *name, struct jv *out)
{
	if (jv_check_undef(c, n, obj))
		return c->err->code;
	int rc = py_attr(c, obj, name, out);
	if (rc <= 0)
		return rc;
	struct jv key;
	if (jv_cstr(c, name, &key))
		return c->err->code;
	*out = jv_undef_attr(c, obj, key);
	return 0;
}

int jv_getattr(struct jctx *c, const struct jnode *n, struct jv obj, struct jv key, struct jv *out)
{
	if (jv_check_undef(c, n, obj))
		return c->err->code;
	int rc = py_attr(c, obj, key.s->p, out);
	if (rc <= 0)
		return rc;
	rc = py_item(c, n, obj, key, out);
	if (rc <= 0)
		return rc;
	*out = jv_undef_attr(c, obj, key);
	return 0;
}

int jv_getitem(struct jctx *c, const struct jnode *n, struct jv obj, struct jv key, struct jv *out)
{
	if (jv_check_undef(c, n, obj))
		return c->err->code;
	int rc = py_item(c, n, obj, key, out);
	if (rc <= 0)
		return rc;
	if (key.t == JT_STR) {
		rc = py_attr(c, obj, key.s->p, out);
		if (rc <= 0)
			return rc;
	}
	*out = jv_undef_attr(c, obj, key);
	return 0;
}

/* Python slice indices for a sequence of len items */
static void slice_indices(int64_t len, struct jv *sv, int64_t *start, int64_t *stop, int64_t step)
{
	int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
	int64_t s = step < 0 ? hi : lo, e = step < 0 ? lo : hi;
	if (sv[0].t == JT_INT) {
		s = sv[0].i;
		if (s < 0)
			s = s + len < lo ? lo : s + len;
		else if (s > hi)
			s = hi;
	}
	if (sv[1].t == JT_INT) {
		e = sv[1].i;
		if (e < 0)
			e = e + len < lo ? lo : e + len;
		else if (e > hi)
			e = hi;
	}
	*start = s;
	*stop = e;
}

static int eval_slice(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	struct jv obj, sv[3] = { { .t = JT_NONE }, { .t = JT_NONE }, { .t = JT_NONE } };
	const struct jnode *parts[3] = { n->b, n->c, n->d };
	if (eval(c, f, n->a, &obj))
		return c->err->code;
	for (int k = 0; k < 3; k++) {
		if (parts[k] && eval(c, f, parts[k], &sv[k]))
			return c->err->code;
		if (sv[k].t == JT_BOOL)
			sv[k] = jv_int(sv[k].b);
		if (sv[k].t != JT_NONE && sv[k].t != JT_INT)
			return jerr(c, n, "TypeError: slice indices must be integers or None");
	}
	if (jv_check_undef(c, n, obj))
		return c->err->code;
	int64_t step = sv[2].t == JT_INT ? sv[2].i : 1;
	if (step == 0)
		return jerr(c, n, "ValueError: slice step cannot be zero");
	if (obj.t != JT_LIST && obj.t != JT_STR) {
		*out = jv_undef(c, "%s has no element slice", jv_type_name(obj));
		return 0;
	}
	size_t len;
	jv_len(obj, &len);
	int64_t s, e;
	slice_indices((int64_t)len, sv, &s, &e, step);
	if (obj.t == JT_STR && step == 1) {
		if (e < s)
			e = s;
		size_t bo = utf8_offset(obj.s->p, obj.s->len, (size_t)s);
		size_t be = utf8_offset(obj.s->p, obj.s->len, (size_t)e);
		return jv_substr(c, obj, bo, be - bo, out);
	}
	size_t cnt = 0;
	for (int64_t i = s; step > 0 ? i < e : i > e; i += step)
		cnt++;
	if (obj.t == JT_LIST) {
		if (jv_list(c, cnt, out))
			return c->err->code;
		out->flag = obj.flag == 1 ? 1 : 0;
		size_t k = 0;
		for (int64_t i = s; step > 0 ? i < e : i > e; i += step)
			out->l->v[k++] = obj.l->v[i];
		return 0;
	}
	struct jlist *chars;
	struct jsb b;
	if (jv_iter(c, n, obj, &chars) || jsb_init(c, &b, obj.s->len + 1))
		return c->err->code;
	for (int64_t i = s; step > 0 ? i < e : i > e; i += step)
		if (jsb_put_str(c, &b, chars->v[i].s, 0, chars->v[i].s->len))
			return c->err->code;
	return jsb_finish(c, &b, out);
}

/* ---- operators ---- */

static bool is_num(struct jv v) { return v.t == JT_BOOL || v.t == JT_INT || v.t == JT_FLOAT; }
static double as_f(struct jv v) { return v.t == JT_FLOAT ? v.f : v.t == JT_INT ? (double)v.i : v.b; }
static int64_t as_i(struct jv v) { return v.t == JT_INT ? v.i : v.b; }

int jv_concat(struct jctx *c, struct jv a, struct jv b, struct jv *out)
{
	struct jsb sb;
	if (jsb_init(c, &sb, a.s->len + b.s->len + 1) || jsb_put_str(c, &sb, a.s, 0, a.s->len) ||
	    jsb_put_str(c, &sb, b.s, 0, b.s->len) || jsb_finish(c, &sb, out))
		return c->err->code;
	return 0;
}

static int html_escape(struct jctx *c, struct jv s, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, s.s->len + 16))
		return c->err->code;
	for (size_t i = 0; i < s.s->len; i++) {
		char ch = s.s->p[i];
		const char *r = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;" :
				ch == '\'' ? "&#39;" : NULL;
		if (r ? jsb_puts(c, &b, r) : jsb_putc(c, &b, ch))
			return c->err->code;
	}
	if (jv_is_content(s) && jsb_mark(c, &b, 0))
		return c->err->code;
	if (jsb_finish(c, &b, out))
		return c->err->code;
	out->flag = 1;
	return 0;
}

static int repeat(struct jctx *c, const struct jnode *n, struct jv seq, int64_t times, struct jv *out)
{
	if (times < 0)
		times = 0;
	if (seq.t == JT_STR) {
		if (seq.s->len && (uint64_t)times > (c->ar.cap / seq.s->len))
			return joom(c, n);
		struct jsb b;
		if (jsb_init(c, &b, seq.s->len * (size_t)times + 1))
			return c->err->code;
		for (int64_t k = 0; k < times; k++)
			if (jsb_put_str(c, &b, seq.s, 0, seq.s->len))
				return c->err->code;
		return jsb_finish(c, &b, out);
	}
	if (seq.l->n && (uint64_t)times > (c->ar.cap / 16 / seq.l->n))
		return joom(c, n);
	if (jv_list(c, seq.l->n * (size_t)times, out))
		return c->err->code;
	out->flag = seq.flag == 1;
	for (int64_t k = 0; k < times; k++)
		jmemcpy(out->l->v + (size_t)k * seq.l->n, seq.l->v, seq.l->n * sizeof *seq.l->v);
	return 0;
}

static int py_pow(struct jctx *c, const struct jnode *n, struct jv a, struct jv b, struct jv *out)
{
	if (a.t != JT_FLOAT && b.t != JT_FLOAT && as_i(b) >= 0) {
		int64_t base = as_i(a), e = as_i(b), r = 1;
		while (e > 0) {
			if (e & 1 && __builtin_mul_overflow(r, base, &r))
				return jerr(c, n, "OverflowError: integer result past 64 bits");
			e >>= 1;
			if (e && __builtin_mul_overflow(base, base, &base))
				return jerr(c, n, "OverflowError: integer result past 64 bits");
		}
		*out = jv_int(r);
		return 0;
	}
	double x = as_f(a), y = as_f(b);
	if (x == 0 && y < 0)
		return jerr(c, n, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
	if (x < 0 && y != floor(y))
		return jerr(c, n, "ValueError: a negative number to a fractional power (complex result)");
	*out = jv_float(pow(x, y));
	if (isinf(out->f) && !isinf(x) && !isinf(y))
		return jerr(c, n, "OverflowError: (34, 'Numerical result out of range')");
	return 0;
}

static int arith(struct jctx *c, const struct jnode *n, int op, struct jv a, struct jv b, struct jv *out)
{
	bool fl = a.t == JT_FLOAT || b.t == JT_FLOAT;
	if (op == OP_POW)
		return py_pow(c, n, a, b, out);
	if (!fl) {
		int64_t x = as_i(a), y = as_i(b), r;
		bool ovf = false;
		switch (op) {
		case OP_ADD: ovf = __builtin_add_overflow(x, y, &r); break;
		case OP_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
		case OP_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
		case OP_DIV:
			if (!y)
				return jerr(c, n, "ZeroDivisionError: division by zero");
			*out = jv_float((double)x / (double)y);
			return 0;
		case OP_FDIV:
		case OP_MOD:
			if (!y)
				return jerr(c, n, "ZeroDivisionError: integer division or modulo by zero");
			if (x == INT64_MIN && y == -1)
				return jerr(c, n, "OverflowError: integer result past 64 bits");
			r = op == OP_FDIV ? x / y : x % y;
			if (op == OP_FDIV && (x % y) && ((x < 0) != (y < 0)))
				r--;
			if (op == OP_MOD && r && ((r < 0) != (y < 0)))
				r += y;
			break;
		default: r = 0;
		}
		if (ovf)
			return jerr(c, n, "OverflowError: integer result past 64 bits");
		*out = jv_int(r);
		return 0;
	}
	double x = as_f(a), y = as_f(b), r;
	switch (op) {
	case OP_ADD: r = x + y; break;
	case OP_SUB: r = x - y; break;
	case OP_MUL: r = x * y; break;
	case OP_DIV:
		if (y == 0)
			return jerr(c, n, "ZeroDivisionError: float division by zero");
		r = x / y;
		break;
	case OP_FDIV:
	case OP_MOD: {
		if (y == 0)
			return jerr(c, n, "ZeroDivisionError: float %s", op == OP_MOD ? "modulo" : "floor division by zero");
		double m = fmod(x, y), d = (x - m) / y;
		if (m) {
			if ((y < 0) != (m < 0)) {
				m += y;
				d -= 1.0;
			}
		} else {
			m = copysign(0.0, y);
		}
		if (d) {
			double fd = floor(d);
			if (d - fd > 0.5)
				fd += 1.0;
			d = fd;
		} else {
			d = copysign(0.0, x / y);
		}
		r = op == OP_MOD ? m : d;
		break;
	}
	default: r = 0;
	}
	*out = jv_float(r);
	return 0;
}

int jv_binop(struct jctx *c, const struct jnode *n, int op, struct jv a, struct jv b, struct jv *out)
{
	static const char *const sym[] = { "", "+", "-", "*", "/", "//", "%", "**" };
	if (jv_check_undef(c, n, a) || jv_check_undef(c, n, b))
		return c->err->code;
	if (is_num(a) && is_num(b))
		return arith(c, n, op, a, b, out);
	if (op == OP_ADD && a.t == JT_STR && b.t == JT_STR) {
		if ((a.flag & 1) != (b.flag & 1)) { /* Markup + str escapes the str */
			struct jv e;
			if (html_escape(c, a.flag & 1 ? b : a, &e))
				return c->err->code;
			if (a.flag & 1)
				b = e;
			else
				a = e;
			if (jv_concat(c, a, b, out))
				return c->err->code;
			out->flag = 1;
			return 0;
		}
		if (jv_concat(c, a, b, out))
			return c->err->code;
		out->flag = a.flag & 1;
		return 0;
	}
	if (op == OP_ADD && a.t == JT_LIST && b.t == JT_LIST && (a.flag == 1) == (b.flag == 1)) {
		if (jv_list(c, a.l->n + b.l->n, out))
			return c->err->code;
		out->flag = a.flag == 1;
		jmemcpy(out->l->v, a.l->v, a.l->n * sizeof *a.l->v);
		jmemcpy(out->l->v + a.l->n, b.l->v, b.l->n * sizeof *b.l->v);
		return 0;
	}
	if (op == OP_MUL && (a.t == JT_STR || a.t == JT_LIST) && (b.t == JT_INT || b.t == JT_BOOL))
		return repeat(c, n, a, as_i(b), out);
	if (op == OP_MUL && (b.t == JT_STR || b.t == JT_LIST) && (a.t == JT_INT || a.t == JT_BOOL))
		return repeat(c, n, b, as_i(a), out);
	if (op == OP_MOD && a.t == JT_STR)
		return jinja_percent_format(c, n, a, b, out);
	if (op == OP_ADD && a.t == JT_STR)
		return jerr(c, n, "TypeError: can only concatenate str (not \"%s\") to str", jv_type_name(b));
	if (op == OP_ADD && a.t == JT_LIST)
		return jerr(c, n, "TypeError: can only concatenate %s (not \"%s\") to %s", jv_type_name(a),
			    jv_type_name(b), jv_type_name(a));
	return jerr(c, n, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'", sym[op], jv_type_name(a),
		    jv_type_name(b));
}

int jv_in(struct jctx *c, const struct jnode *n, struct jv item, struct jv seq, bool *r)
{
	*r = false;
	switch (seq.t) {
	case JT_UNDEF:
		return 0;
	case JT_STR:
		if (item.t != JT_STR)
			return jerr(c, n, "TypeError: 'in <string>' requires string as left operand, not %s",
				    jv_type_name(item));
		if (!item.s->len)
			*r = true;
		else if (item.s->len <= seq.s->len)
			*r = jmemmem(seq.s->p, seq.s->len, item.s->p, item.s->len) != NULL;
		return 0;
	case JT_LIST:
		for (size_t i = 0; i < seq.l->n; i++)
			if (jv_eq(seq.l->v[i], item)) {
				*r = true;
				break;
			}
		return 0;
	case JT_DICT:
		*r = jdict_get(seq.d, item, NULL);
		return 0;
	default:
		return jerr(c, n, "TypeError: argument of type '%s' is not iterable", jv_type_name(seq));
	}
}

static int compare(struct jctx *c, const struct jnode *n, int op, struct jv a, struct jv b, bool *r)
{
	static const char *const sym[] = { [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=" };
	if (op == OP_EQ || op == OP_NE) {
		*r = jv_eq(a, b) == (op == OP_EQ);
		return 0;
	}
	if (op == OP_IN || op == OP_NOTIN) {
		if (jv_in(c, n, a, b, r))
			return c->err->code;
		*r = *r == (op == OP_IN);
		return 0;
	}
	if (jv_check_undef(c, n, a) || jv_check_undef(c, n, b))
		return c->err->code;
	int k;
	if (jv_cmp(c, n, a, b, sym[op], &k))
		return c->err->code;
	if (k == 2) {
		*r = false;
		return 0;
	}
	*r = op == OP_LT ? k < 0 : op == OP_LE ? k <= 0 : op == OP_GT ? k > 0 : k >= 0;
	return 0;
}

/* ---- calls ---- */

int jargs_bind(struct jctx *c, const struct jnode *n, const char *fname, const struct jargs *a,
	       const char *const *params, struct jv *out)
{
	size_t np = 0;
	while (params[np])
		np++;
	for (size_t i = 0; i < np; i++)
		out[i] = (struct jv){ .t = JT_UNDEF };
	if (a->nargs > np)
		return jerr(c, n, "TypeError: %s() takes at most %zu arguments (%zu given)", fname, np, a->nargs);
	for (size_t i = 0; i < a->nargs; i++)
		out[i] = a->args[i];
	for (size_t k = 0; k < a->nkw; k++) {
		size_t i;
		for (i = 0; i < np; i++) {
			size_t l = strlen(params[i]);
			if (params[i][l - 1] == '=')
				l--;
			if (strlen(a->names[k]) == l && !memcmp(a->names[k], params[i], l))
				break;
		}
		if (i == np)
			return jerr(c, n, "TypeError: %s() got an unexpected keyword argument '%s'", fname, a->names[k]);
		if (i < a->nargs)
			return jerr(c, n, "TypeError: %s() got multiple values for argument '%s'", fname, a->names[k]);
		out[i] = a->kw[k];
	}
	for (size_t i = 0; i < np; i++) {
		size_t l = strlen(params[i]);
		if (params[i][l - 1] != '=' && out[i].t == JT_UNDEF && i >= a->nargs) {
			bool given = false;
			for (size_t k = 0; k < a->nkw; k++)
				if (!strcmp(a->names[k], params[i]))
					given = true;
			if (!given)
				return jerr(c, n, "TypeError: %s() missing required argument '%s'", fname, params[i]);
		}
	}
	return 0;
}

static int call_macro(struct jctx *c, const struct jnode *at, struct jfunc *fn, const struct jargs *a,
		      struct jv *out)
{
	const struct jnode *m = fn->macro;
	const char *name = fn->name ? fn->name : "caller";
	if (a->nargs > m->nnames)
		return jerr(c, at, "TypeError: macro '%s' takes not more than %zu argument(s)", name, m->nnames);
	if (c->depth >= JINJA_MAX_CALL_DEPTH)
		return jerr_code(c, at, HEARTH_ETOOBIG, "macro calls nested deeper than %d", JINJA_MAX_CALL_DEPTH);
	struct jframe *f = frame_new(c, fn->closure);
	if (!f)
		return joom(c, at);
	bool *set = ja_alloc(&c->ar, m->nnames + 1);
	if (!set)
		return joom(c, at);
	memset(set, 0, m->nnames + 1);
	for (size_t i = 0; i < a->nargs; i++) {
		if (frame_set(c, f, m->names[i], a->args[i]))
			return c->err->code;
		set[i] = true;
	}
	for (size_t k = 0; k < a->nkw; k++) {
		size_t i;
		for (i = 0; i < m->nnames; i++)
			if (!strcmp(m->names[i], a->names[k]))
				break;
		if (i == m->nnames && strcmp(a->names[k], "caller"))
			return jerr(c, at, "TypeError: macro '%s' takes no keyword argument '%s'", name, a->names[k]);
		if (i < m->nnames && set[i])
			return jerr(c, at, "TypeError: macro '%s' got multiple values for argument '%s'", name,
				    a->names[k]);
		if (i < m->nnames)
			set[i] = true;
		if (frame_set(c, f, a->names[k], a->kw[k]))
			return c->err->code;
	}
	for (size_t i = 0; i < m->nnames; i++) {
		if (set[i])
			continue;
		struct jv v;
		if (m->kids2 && m->kids2[i]) {
			if (eval(c, f, m->kids2[i], &v))
				return c->err->code;
		} else {
			v = jv_undef(c, "parameter '%.80s' was not provided", m->names[i]);
		}
		if (frame_set(c, f, m->names[i], v))
			return c->err->code;
	}
	if (fn->caller.t != JT_UNDEF && frame_set(c, f, "caller", fn->caller))
		return c->err->code;
	struct jv tmp;
	if (!jdict_gets(&f->vars, "varargs", &tmp)) {
		struct jv e;
		if (jv_list(c, 0, &e) || frame_set(c, f, "varargs", e))
			return c->err->code;
	}
	if (!jdict_gets(&f->vars, "kwargs", &tmp)) {
		struct jv e;
		if (jv_dict(c, &e) || frame_set(c, f, "kwargs", e))
			return c->err->code;
	}
	struct jsb b, *saved = c->out;
	if (jsb_init(c, &b, 256))
		return c->err->code;
	c->out = &b;
	c->depth++;
	int rc = exec_body(c, f, m->kids, m->nkids);
	c->depth--;
	c->out = saved;
	c->ctl = 0;
	if (rc)
		return rc;
	return jsb_finish(c, &b, out);
}

static int call_method(struct jctx *c, const struct jnode *n, struct jfunc *fn, const struct jargs *a,
		       struct jv *out)
{
	struct jv self = fn->self;
	if (self.t == JT_LOOP) {
		struct jloop *L = self.loop;
		if (!strcmp(fn->name, "cycle")) {
			if (!a->nargs)
				return jerr(c, n, "TypeError: no items for cycling given");
			*out = a->args[L->i % a->nargs];
			return 0;
		}
		/* changed(*values) */
		struct jv now;
		if (jv_list(c, a->nargs, &now))
			return c->err->code;
		jmemcpy(now.l->v, a->args, a->nargs * sizeof *a->args);
		bool ch = !L->changed_used || !jv_eq(now, L->last_changed);
		L->changed_used = true;
		L->last_changed = now;
		*out = jv_bool(ch);
		return 0;
	}
	if (self.t == JT_CYCLER) {
		struct jcycler *cy = self.cy;
		if (!strcmp(fn->name, "reset")) {
			cy->pos = 0;
			*out = jv_none();
			return 0;
		}
		*out = cy->items->n ? cy->items->v[cy->pos] : jv_none();
		if (cy->items->n)
			cy->pos = (cy->pos + 1) % cy->items->n;
		return 0;
	}
	return jinja_method_call(c, n, self, fn->name, a, out);
}

int jv_call(struct jctx *c, const struct jnode *n, struct jv f, struct jv *args, size_t nargs, const char **names,
	    struct jv *kw, size_t nkw, struct jv *out)
{
	struct jargs a = { args, nargs, names, kw, nkw };
	if (f.t == JT_UNDEF)
		return jv_check_undef(c, n, f);
	if (f.t != JT_FUNC)
		return jerr(c, n, "TypeError: '%s' object is not callable", jv_type_name(f));
	struct jfunc *fn = f.fn;
	switch (fn->kind) {
	case JF_MACRO:
		return call_macro(c, n, fn, &a, out);
	case JF_METHOD:
		return call_method(c, n, fn, &a, out);
	case JF_JOINER:
		if (nargs || nkw)
			return jerr(c, n, "TypeError: joiner takes no arguments");
		if (!fn->state) {
			fn->state = 1;
			return jv_cstr(c, "", out);
		}
		return jv_str(c, fn->sep, fn->seplen, out);
	default:
		return jinja_global_call(c, n, fn->name, &a, out);
	}
}

/* evaluates a node's arguments (kids, names/kids2) into a */
static int eval_args(struct jctx *c, struct jframe *f, const struct jnode *n, struct jargs *a)
{
	memset(a, 0, sizeof *a);
	if (n->nkids && !(a->args = ja_alloc(&c->ar, n->nkids * sizeof *a->args)))
		return joom(c, n);
	if (n->nkids2 && !(a->kw = ja_alloc(&c->ar, n->nkids2 * sizeof *a->kw)))
		return joom(c, n);
	for (size_t i = 0; i < n->nkids; i++)
		if (eval(c, f, n->kids[i], &a->args[i]))
			return c->err->code;
	for (size_t i = 0; i < n->nkids2; i++)
		if (eval(c, f, n->kids2[i], &a->kw[i]))
			return c->err->code;
	a->nargs = n->nkids;
	a->names = n->names;
	a->nkw = n->nkids2;
	return 0;
}

static int eval_call(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	struct jv fv;
	struct jargs a;
	if (eval(c, f, n->a, &fv) || eval_args(c, f, n, &a))
		return c->err->code;
	return jv_call(c, n, fv, a.args, a.nargs, a.names, a.kw, a.nkw, out);
}

/* a filter chain; when the innermost operand is NULL it is *body */
static int eval_filter(struct jctx *c, struct jframe *f, const struct jnode *n, const struct jv *body,
		       struct jv *out)
{
	struct jv v;
	struct jargs a;
	if (!n->a)
		v = *body;
	else if (n->a->kind == E_FILTER && eval_filter(c, f, n->a, body, &v))
		return c->err->code;
	else if (n->a->kind != E_FILTER && eval(c, f, n->a, &v))
		return c->err->code;
	if (eval_args(c, f, n, &a))
		return c->err->code;
	return jinja_filter(c, n, n->name, v, &a, out);
}

static int eval_name(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	if (frame_lookup(f, n->name, out))
		return 0;
	int rc = jinja_global(c, n->name, out);
	if (rc <= 0)
		return rc;
	*out = jv_undef_name(c, n->name);
	return 0;
}

static int eval_cmp(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	struct jv l, r;
	bool ok = true;
	if (eval(c, f, n->a, &l))
		return c->err->code;
	for (size_t i = 0; i < n->nkids && ok; i++) {
		if (eval(c, f, n->kids[i], &r) || compare(c, n, n->ops[i], l, r, &ok))
			return c->err->code;
		l = r;
	}
	*out = jv_bool(ok);
	return 0;
}

static int eval_concat(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	struct jsb b;
	if (jsb_init(c, &b, 64))
		return c->err->code;
	for (size_t i = 0; i < n->nkids; i++) {
		struct jv v;
		if (eval(c, f, n->kids[i], &v) || jv_str_into(c, n, &b, v))
			return c->err->code;
	}
	return jsb_finish(c, &b, out);
}

static int eval_items(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	if (n->kind == E_DICT) {
		if (jv_dict(c, out))
			return c->err->code;
		for (size_t i = 0; i < n->nkids; i++) {
			struct jv k, v;
			if (eval(c, f, n->kids[i], &k) || eval(c, f, n->kids2[i], &v))
				return c->err->code;
			if (k.t == JT_LIST && k.flag != 1)
				return jerr(c, n, "TypeError: unhashable type: 'list'");
			if (k.t == JT_DICT || k.t == JT_UNDEF)
				return jerr(c, n, "TypeError: unhashable type: '%s'", jv_type_name(k));
			if (jdict_set(c, out->d, k, v))
				return c->err->code;
		}
		return 0;
	}
	if (jv_list(c, n->nkids, out))
		return c->err->code;
	out->flag = n->kind == E_TUPLE;
	for (size_t i = 0; i < n->nkids; i++)
		if (eval(c, f, n->kids[i], &out->l->v[i]))
			return c->err->code;
	return 0;
}

static int eval_inner(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	struct jv a, b;
	bool r;
	switch (n->kind) {
	case E_CONST:
		*out = n->val;
		return 0;
	case E_NAME:
		return eval_name(c, f, n, out);
	case E_ATTR: {
		struct jv key;
		if (eval(c, f, n->a, &a) || jv_cstr(c, n->name, &key))
			return c->err->code;
		return jv_getattr(c, n, a, key, out);
	}
	case E_ITEM:
		if (eval(c, f, n->a, &a) || eval(c, f, n->b, &b))
			return c->err->code;
		return jv_getitem(c, n, a, b, out);
	case E_SLICE:
		return eval_slice(c, f, n, out);
	case E_CALL:
		return eval_call(c, f, n, out);
	case E_FILTER:
		return eval_filter(c, f, n, NULL, out);
	case E_TEST: {
		struct jargs args;
		if (eval(c, f, n->a, &a) || eval_args(c, f, n, &args) || jinja_test(c, n, n->name, a, &args, &r))
			return c->err->code;
		*out = jv_bool(n->flag ? !r : r);
		return 0;
	}
	case E_BIN:
		if (eval(c, f, n->a, &a) || eval(c, f, n->b, &b))
			return c->err->code;
		return jv_binop(c, n, n->flag, a, b, out);
	case E_NEG:
	case E_POS:
		if (eval(c, f, n->a, &a) || jv_check_undef(c, n, a))
			return c->err->code;
		if (!is_num(a))
			return jerr(c, n, "TypeError: bad operand type for unary %c: '%s'", n->kind == E_NEG ? '-' : '+',
				    jv_type_name(a));
		if (n->kind == E_POS)
			*out = a.t == JT_BOOL ? jv_int(a.b) : a;
		else if (a.t == JT_FLOAT)
			*out = jv_float(-a.f);
		else if (as_i(a) == INT64_MIN)
			return jerr(c, n, "OverflowError: integer result past 64 bits");
		else
			*out = jv_int(-as_i(a));
		return 0;
	case E_AND:
	case E_OR:
		if (eval(c, f, n->a, &a))
			return c->err->code;
		if (jv_truthy(a) == (n->kind == E_OR)) {
			*out = a;
			return 0;
		}
		return eval(c, f, n->b, out);
	case E_NOT:
		if (eval(c, f, n->a, &a))
			return c->err->code;
		*out = jv_bool(!jv_truthy(a));
		return 0;
	case E_CMP:
		return eval_cmp(c, f, n, out);
	case E_COND:
		if (eval(c, f, n->b, &a))
			return c->err->code;
		if (jv_truthy(a))
			return eval(c, f, n->a, out);
		if (n->c)
			return eval(c, f, n->c, out);
		*out = jv_undef(c, "the inline if-expression on line %u evaluated to false and no else section was "
				   "defined.",
				(unsigned)n->line);
		return 0;
	case E_LIST:
	case E_TUPLE:
	case E_DICT:
		return eval_items(c, f, n, out);
	case E_CONCAT:
		return eval_concat(c, f, n, out);
	}
	return jerr(c, n, "internal: not an expression");
}

static int eval(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv *out)
{
	if (jstep(c, n))
		return c->err->code;
	if (++c->nest > MAX_EVAL_NEST) {
		c->nest--;
		return jerr_code(c, n, HEARTH_ETOOBIG, "expressions nested deeper than %d", MAX_EVAL_NEST);
	}
	int rc = eval_inner(c, f, n, out);
	c->nest--;
	return rc;
}

/* ---- statements ---- */

static int assign(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv v)
{
	if (!n->flag)
		return frame_set(c, f, n->names[0], v);
	struct jlist *items;
	if (jv_iter(c, n, v, &items))
		return c->err->code;
	if (items->n < n->nnames)
		return jerr(c, n, "ValueError: not enough values to unpack (expected %zu, got %zu)", n->nnames,
			    items->n);
	if (items->n > n->nnames)
		return jerr(c, n, "ValueError: too many values to unpack (expected %zu)", n->nnames);
	for (size_t i = 0; i < n->nnames; i++)
		if (frame_set(c, f, n->names[i], items->v[i]))
			return c->err->code;
	return 0;
}

static int set_target(struct jctx *c, struct jframe *f, const struct jnode *n, struct jv v)
{
	if (!n->a)
		return assign(c, f, n, v);
	struct jv ns, k;
	if (eval(c, f, n->a, &ns))
		return c->err->code;
	if (ns.t != JT_NS)
		return jerr(c, n, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
	if (jv_cstr(c, n->name, &k))
		return c->err->code;
	return jdict_set(c, ns.d, k, v);
}

/* renders kids into a new string */
static int capture(struct jctx *c, struct jframe *f, struct jnode *const *kids, size_t nk, struct jv *out)
{
	struct jsb b, *saved = c->out;
	if (jsb_init(c, &b, 256))
		return c->err->code;
	c->out = &b;
	int rc = exec_body(c, f, kids, nk);
	c->out = saved;
	if (rc)
		return rc;
	return jsb_finish(c, &b, out);
}

static int exec_for(struct jctx *c, struct jframe *f, const struct jnode *n)
{
	struct jv it;
	struct jlist *items;
	if (eval(c, f, n->a, &it) || jv_iter(c, n->a, it, &items))
		return c->err->code;
	if (n->b) { /* the loop filter sees the targets, not loop */
		struct jv kept;
		if (jv_list(c, items->n, &kept))
			return c->err->code;
		size_t k = 0;
		for (size_t i = 0; i < items->n; i++) {
			struct jframe *g = frame_new(c, f);
			struct jv cond;
			if (!g)
				return joom(c, n);
			if (assign(c, g, n, items->v[i]) || eval(c, g, n->b, &cond))
				return c->err->code;
			if (jv_truthy(cond))
				kept.l->v[k++] = items->v[i];
		}
		kept.l->n = k;
		items = kept.l;
	}
	if (!items->n)
		return exec_body(c, f, n->kids2, n->nkids2);
	struct jloop *L = ja_alloc(&c->ar, sizeof *L);
	if (!L)
		return joom(c, n);
	memset(L, 0, sizeof *L);
	L->items = items;
	struct jv lv = { .t = JT_LOOP, .loop = L };
	for (size_t i = 0; i < items->n; i++) {
		struct jframe *g = frame_new(c, f);
		if (!g)
			return joom(c, n);
		L->i = i;
		if (assign(c, g, n, items->v[i]) || frame_set(c, g, "loop", lv))
			return c->err->code;
		int rc = exec_body(c, g, n->kids, n->nkids);
		if (rc)
			return rc;
		if (c->ctl == 1) {
			c->ctl = 0;
			break;
		}
		c->ctl = 0;
	}
	return 0;
}

static int exec_stmt(struct jctx *c, struct jframe *f, const struct jnode *n)
{
	struct jv v;
	switch (n->kind) {
	case N_TEXT:
		return jsb_put(c, c->out, n->val.s->p, n->val.s->len);
	case N_OUT:
		if (eval(c, f, n->a, &v))
			return c->err->code;
		return jv_str_into(c, n, c->out, v);
	case N_IF:
		if (eval(c, f, n->a, &v))
			return c->err->code;
		if (jv_truthy(v))
			return exec_body(c, f, n->kids, n->nkids);
		return exec_body(c, f, n->kids2, n->nkids2);
	case N_FOR:
		return exec_for(c, f, n);
	case N_SET:
		if (eval(c, f, n->b, &v))
			return c->err->code;
		return set_target(c, f, n, v);
	case N_SETBLOCK:
		if (capture(c, f, n->kids, n->nkids, &v) || (n->c && eval_filter(c, f, n->c, &v, &v)))
			return c->err->code;
		return set_target(c, f, n, v);
	case N_MACRO:
		if (jv_func(c, JF_MACRO, n->name, (struct jv){ .t = JT_UNDEF }, &v))
			return c->err->code;
		v.fn->macro = n;
		v.fn->closure = f;
		return frame_set(c, f, n->name, v);
	case N_CALLBLOCK: {
		struct jv callee, caller;
		struct jargs a;
		if (eval(c, f, n->a->a, &callee) || eval_args(c, f, n->a, &a) ||
		    jv_func(c, JF_MACRO, NULL, (struct jv){ .t = JT_UNDEF }, &caller))
			return c->err->code;
		caller.fn->macro = n;
		caller.fn->closure = f;
		if (callee.t == JT_FUNC && callee.fn->kind == JF_MACRO) { /* pass caller= */
			struct jfunc *copy = ja_alloc(&c->ar, sizeof *copy);
			if (!copy)
				return joom(c, n);
			*copy = *callee.fn;
			copy->caller = caller;
			callee.fn = copy;
		}
		if (jv_call(c, n, callee, a.args, a.nargs, a.names, a.kw, a.nkw, &v))
			return c->err->code;
		return jv_str_into(c, n, c->out, v);
	}
	case N_FILTERBLOCK: {
		struct jframe *g = frame_new(c, f);
		if (!g)
			return joom(c, n);
		if (capture(c, g, n->kids, n->nkids, &v) || eval_filter(c, f, n->c, &v, &v))
			return c->err->code;
		return jv_str_into(c, n, c->out, v);
	}
	case N_WITH: {
		struct jframe *g = frame_new(c, f);
		if (!g)
			return joom(c, n);
		for (size_t i = 0; i < n->nnames; i++)
			if (eval(c, f, n->kids2[i], &v) || frame_set(c, g, n->names[i], v))
				return c->err->code;
		return exec_body(c, g, n->kids, n->nkids);
	}
	case N_BREAK:
		c->ctl = 1;
		return 0;
	case N_CONTINUE:
		c->ctl = 2;
		return 0;
	case N_BODY:
		return exec_body(c, f, n->kids, n->nkids);
	}
	return jerr(c, n, "internal: not a statement");
}

static int exec_body(struct jctx *c, struct jframe *f, struct jnode *const *kids, size_t n)
{
	if (++c->nest > MAX_EVAL_NEST) {
		c->nest--;
		return jerr_code(c, n ? kids[0] : NULL, HEARTH_ETOOBIG, "blocks nested deeper than %d", MAX_EVAL_NEST);
	}
	int rc = 0;
	for (size_t i = 0; i < n && !c->ctl; i++) {
		if ((rc = jstep(c, kids[i])) || (rc = exec_stmt(c, f, kids[i])))
			break;
	}
	c->nest--;
	return rc;
}

int jinja_render(struct jctx *c, const struct jnode *root)
{
	struct jframe *top = frame_new(c, c->globals);
	if (!top)
		return joom(c, root);
	int rc = exec_body(c, top, root->kids, root->nkids);
	c->ctl = 0;
	return rc;
}
