/* jinja-json.c - JSON in (the render variables, through jansson, key order
 * kept) and out (Python's json.dumps, as transformers' tojson calls it:
 * ensure_ascii, indent, separators, sort_keys; floats as Python's repr;
 * NaN/Infinity as Python writes them). A str that holds content keeps it:
 * its escaped bytes in the output are content. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../base/utf8.h"
#include "jinja.h"

static int str_val(struct jctx *c, const char *p, size_t len, bool content, struct jv *out)
{
	if (jv_str(c, p, len, out))
		return c->err->code;
	if (content && len) {
		struct hearth_span *sp = ja_alloc(&c->ar, sizeof *sp);
		if (!sp)
			return joom(c, NULL);
		sp->off = 0;
		sp->len = len;
		out->s->sp = sp;
		out->s->nsp = 1;
	}
	return 0;
}

int jinja_from_json(struct jctx *c, const json_t *j, bool content, struct jv *out)
{
	switch (json_typeof(j)) {
	case JSON_NULL: *out = jv_none(); return 0;
	case JSON_TRUE: *out = jv_bool(true); return 0;
	case JSON_FALSE: *out = jv_bool(false); return 0;
	case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return 0;
	case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
	case JSON_STRING:
		return str_val(c, json_string_value(j), json_string_length(j), content, out);
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (jv_list(c, n, out))
			return c->err->code;
		for (size_t i = 0; i < n; i++)
			if (jinja_from_json(c, json_array_get(j, i), content, &out->l->v[i]))
				return c->err->code;
		return 0;
	}
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		if (jv_dict(c, out))
			return c->err->code;
		json_object_foreach((json_t *)j, k, v) {
			struct jv key, val;
			if (str_val(c, k, strlen(k), content, &key) || jinja_from_json(c, v, content, &val) || jdict_set(c, out->d, key, val))
				return c->err->code;
		}
		return 0;
	}
	}
	return 0;
}

/* a JSON string of s (with provenance) */
static int dump_str(struct jctx *c, struct jsb *b, const struct jstr *s, bool ascii)
{
	if (jsb_putc(c, b, '"'))
		return c->err->code;
	size_t from = b->len;
	for (size_t i = 0; i < s->len;) {
		size_t k;
		uint32_t cp = utf8_cp(s->p + i, s->len - i, &k);
		int rc;
		switch (cp) {
		case '"': rc = jsb_puts(c, b, "\\\""); break;
		case '\\': rc = jsb_puts(c, b, "\\\\"); break;
		case '\n': rc = jsb_puts(c, b, "\\n"); break;
		case '\r': rc = jsb_puts(c, b, "\\r"); break;
		case '\t': rc = jsb_puts(c, b, "\\t"); break;
		case '\b': rc = jsb_puts(c, b, "\\b"); break;
		case '\f': rc = jsb_puts(c, b, "\\f"); break;
		default:
			if (cp < 0x20 || (ascii && cp >= 0x7f)) {
				if (cp >= 0x10000) {
					uint32_t v = cp - 0x10000;
					rc = jsb_printf(c, b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
				} else {
					rc = jsb_printf(c, b, "\\u%04x", cp);
				}
			} else {
				rc = jsb_put(c, b, s->p + i, k);
			}
		}
		if (rc)
			return c->err->code;
		i += k;
	}
	if (s->nsp && b->len > from && jsb_mark(c, b, from))
		return c->err->code;
	return jsb_putc(c, b, '"');
}

static int newline_indent(struct jctx *c, struct jsb *b, const struct jdumps *o, int depth)
{
	if (jsb_putc(c, b, '\n'))
		return c->err->code;
	for (int i = 0; i < depth; i++)
		if (jsb_puts(c, b, o->indent))
			return c->err->code;
	return 0;
}

static int dump_float(struct jctx *c, struct jsb *b, double f)
{
	char buf[40];
	if (isnan(f))
		return jsb_puts(c, b, "NaN");
	if (isinf(f))
		return jsb_puts(c, b, f > 0 ? "Infinity" : "-Infinity");
	fmt_float_repr(f, buf);
	return jsb_puts(c, b, buf);
}

/* a dict key as json.dumps converts it */
static int dump_key(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv k, const struct jdumps *o)
{
	switch (k.t) {
	case JT_STR: return dump_str(c, b, k.s, o->ensure_ascii);
	case JT_NONE: return jsb_puts(c, b, "\"null\"");
	case JT_BOOL: return jsb_puts(c, b, k.b ? "\"true\"" : "\"false\"");
	case JT_INT: return jsb_printf(c, b, "\"%lld\"", (long long)k.i);
	case JT_FLOAT: return jsb_putc(c, b, '"') || dump_float(c, b, k.f) || jsb_putc(c, b, '"') ? c->err->code : 0;
	default:
		return jerr(c, n, "TypeError: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
	}
}

static int dump_dict(struct jctx *c, const struct jnode *n, struct jsb *b, struct jdict *d, const struct jdumps *o,
		     int depth)
{
	if (!d->n)
		return jsb_puts(c, b, "{}");
	size_t *ord = ja_alloc(&c->ar, d->n * sizeof *ord);
	if (!ord)
		return joom(c, n);
	for (size_t i = 0; i < d->n; i++)
		ord[i] = i;
	if (o->sort_keys) /* insertion sort, Python order of the keys */
		for (size_t i = 1; i < d->n; i++)
			for (size_t j = i; j > 0; j--) {
				int r;
				if (jv_cmp(c, n, d->k[ord[j]], d->k[ord[j - 1]], "<", &r))
					return c->err->code;
				if (r >= 0)
					break;
				size_t t = ord[j];
				ord[j] = ord[j - 1];
				ord[j - 1] = t;
			}
	if (jsb_putc(c, b, '{'))
		return c->err->code;
	for (size_t i = 0; i < d->n; i++) {
		if (i && jsb_puts(c, b, o->item_sep))
			return c->err->code;
		if (o->indent && newline_indent(c, b, o, depth + 1))
			return c->err->code;
		if (dump_key(c, n, b, d->k[ord[i]], o) || jsb_puts(c, b, o->key_sep) ||
		    jinja_dumps(c, n, b, d->v[ord[i]], o, depth + 1))
			return c->err->code;
	}
	if (o->indent && newline_indent(c, b, o, depth))
		return c->err->code;
	return jsb_putc(c, b, '}');
}

int jinja_dumps(struct jctx *c, const struct jnode *n, struct jsb *b, struct jv v, const struct jdumps *o, int depth)
{
	if (depth > 200)
		return jerr(c, n, "RecursionError: maximum recursion depth exceeded while encoding a JSON object");
	switch (v.t) {
	case JT_NONE: return jsb_puts(c, b, "null");
	case JT_BOOL: return jsb_puts(c, b, v.b ? "true" : "false");
	case JT_INT: return jsb_printf(c, b, "%lld", (long long)v.i);
	case JT_FLOAT: return dump_float(c, b, v.f);
	case JT_STR: return dump_str(c, b, v.s, o->ensure_ascii);
	case JT_LIST:
		if (!v.l->n)
			return jsb_puts(c, b, "[]");
		if (jsb_putc(c, b, '['))
			return c->err->code;
		for (size_t i = 0; i < v.l->n; i++) {
			if (i && jsb_puts(c, b, o->item_sep))
				return c->err->code;
			if (o->indent && newline_indent(c, b, o, depth + 1))
				return c->err->code;
			if (jinja_dumps(c, n, b, v.l->v[i], o, depth + 1))
				return c->err->code;
		}
		if (o->indent && newline_indent(c, b, o, depth))
			return c->err->code;
		return jsb_putc(c, b, ']');
	case JT_DICT:
		return dump_dict(c, n, b, v.d, o, depth);
	case JT_UNDEF:
		if (v.u && v.u->security)
			return jv_check_undef(c, n, v);
		return jerr(c, n, "TypeError: Object of type Undefined is not JSON serializable");
	default:
		return jerr(c, n, "TypeError: Object of type %s is not JSON serializable", jv_type_name(v));
	}
}
