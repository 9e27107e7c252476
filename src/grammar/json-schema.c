/*
 * json-schema.c - a JSON Schema as a GBNF grammar of the JSON texts it accepts.
 *
 * Covered: type (one or an array of types), properties, required,
 * additionalProperties (false, true or a schema; absent means true),
 * enum, const, items, prefixItems, minItems, maxItems, nested objects,
 * anyOf, oneOf (as anyOf: exclusivity is not enforced), allOf (merged when
 * its branches are objects or agree keyword by keyword), $ref to "#",
 * "#/$defs/..." and "#/definitions/..." (recursion too), minLength and
 * maxLength, pattern (schema-regex.c), format date, time, date-time, uuid
 * and email, integer minimum/maximum/exclusiveMinimum/exclusiveMaximum
 * exactly (schema-int.c; bounds clamped to +-10^18), number bounds when
 * they are whole numbers and inclusive (the number is then written without
 * an exponent), and {} / true for any JSON value. Annotations (title,
 * description, examples, default, $schema, $id, $comment, readOnly,
 * writeOnly, deprecated) are ignored; any other keyword is an error that
 * names it and where it is (a JSON pointer), never silently dropped.
 *
 * What the grammar writes: properties in a fixed order, the required ones
 * in their declared order and then the optional ones, each optional, in
 * theirs, then additional ones (names not among the declared, written
 * without escapes); whitespace as JSON generators write it: nothing, one
 * space, or a newline and up to 20 spaces or tabs, after { [ , : and before
 * } ]. Numbers have at most 16 integer and 15 fraction digits and a two-digit
 * exponent, integers at most 18 digits (19 with bounds, which are clamped to
 * +-10^18): every text the grammar writes parses without overflow. Dates
 * are checked field by field (a day up to 31 in any month).
 *
 * Bounded: nesting of the schema (SCHEMA_MAX_DEPTH), the grammar text
 * (SCHEMA_MAX_OUT bytes), the rules made (SCHEMA_MAX_RULES).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "gram.h"
#include "sbuf.h"
#include "schema-int.h"
#include "schema-regex.h"

#define SCHEMA_MAX_DEPTH 64
#define SCHEMA_MAX_OUT (4u << 20)
#define SCHEMA_MAX_RULES 20000
#define SCHEMA_MAX_PREFIX 64
#define SCHEMA_MAX_ITEMS 1000 /* minItems / maxItems beyond this are refused */

enum prim { P_WS, P_CHAR, P_STRING, P_NUMBER, P_INTEGER, P_VALUE, P_OBJECT, P_ARRAY, P_PLAIN, P_COUNT };
static const char *const prim_name[P_COUNT] = { "ws", "char", "string", "number", "integer", "value", "object",
						"array", "plain" };
static const char *const prim_body[P_COUNT] = {
	/* ws */ "| \" \" | \"\\n\" [ \\t]{0,20}",
	/* char */ "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" ([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | "
		   "[dD] [0-7] [0-9a-fA-F]{2}))",
	/* string */ "\"\\\"\" %s-char* \"\\\"\"",
	/* number */ "\"-\"? (\"0\" | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})?",
	/* integer */ "\"-\"? (\"0\" | [1-9] [0-9]{0,17})",
	/* value */ "%s-object | %s-array | %s-string | %s-number | \"true\" | \"false\" | \"null\"",
	/* object */ "\"{\" %s-ws (%s-string %s-ws \":\" %s-ws %s-value (\",\" %s-ws %s-string %s-ws \":\" %s-ws "
		     "%s-value)*)? %s-ws \"}\"",
	/* array */ "\"[\" %s-ws (%s-value (\",\" %s-ws %s-value)*)? %s-ws \"]\"",
	/* plain */ "[^\"\\\\\\x00-\\x1F]",
};
/* the primitives each one uses */
static const unsigned prim_uses[P_COUNT] = {
	[P_STRING] = 1u << P_CHAR,
	[P_VALUE] = 1u << P_OBJECT | 1u << P_ARRAY | 1u << P_STRING | 1u << P_NUMBER,
	[P_OBJECT] = 1u << P_WS | 1u << P_STRING | 1u << P_VALUE,
	[P_ARRAY] = 1u << P_WS | 1u << P_VALUE,
};

struct js_ref {
	char *ref;
	int rule;
};

struct js {
	char prefix[SCHEMA_MAX_PREFIX + 1];
	struct sbuf out;     /* the rules made so far */
	const json_t *root;
	unsigned prims;      /* bit p: primitive p is used */
	int n_rules;
	struct js_ref *refs;
	int n_refs, cap_refs;
	char path[512];      /* JSON pointer of the schema at hand, for messages */
	int depth;
	struct hearth_err *err;
};

static int gen(struct js *c, const json_t *s, int *rule);

static int js_err(struct js *c, int code, const char *fmt, const char *what)
{
	char msg[200];
	const size_t n = strlen(c->path);
	snprintf(msg, sizeof msg, "%s%s", fmt, what ? what : ""); /* fmt may be c->err->msg itself */
	if (!n)
		return err_set(c->err, code, "json schema: %s", msg);
	return err_set(c->err, code, "json schema: %s (at %s%s)", msg, n > 60 ? "..." : "", c->path + (n > 60 ? n - 57 : 0));
}

/* Writes the name of primitive p ("prefix-ws") into o and marks it used. */
static void prim(struct js *c, struct sbuf *o, enum prim p)
{
	c->prims |= 1u << p;
	sbuf_printf(o, "%s-%s", c->prefix, prim_name[p]);
}

static void rule_name(const struct js *c, struct sbuf *o, int r)
{
	if (r == 0)
		sbuf_puts(o, c->prefix);
	else
		sbuf_printf(o, "%s-%d", c->prefix, r);
}

static int new_rule(struct js *c, int *r)
{
	if (c->n_rules >= SCHEMA_MAX_RULES)
		return js_err(c, HEARTH_ETOOBIG, "the schema makes too many rules", NULL);
	*r = c->n_rules++;
	return 0;
}

/* The error of a buffer that failed (out of memory, or past its cap). */
static int sbuf_err(struct js *c, const struct sbuf *b)
{
	return b->bad == HEARTH_ENOMEM ? js_err(c, HEARTH_ENOMEM, "out of memory", NULL)
				       : js_err(c, HEARTH_ETOOBIG, "the grammar grows too large", NULL);
}

/* Appends "name ::= body\n" to the output. */
static int put_rule(struct js *c, int r, struct sbuf *body)
{
	if (body->bad)
		return sbuf_err(c, body);
	rule_name(c, &c->out, r);
	sbuf_puts(&c->out, " ::= ");
	sbuf_add(&c->out, body->s ? body->s : "", body->n);
	sbuf_puts(&c->out, "\n");
	return c->out.bad ? sbuf_err(c, &c->out) : 0;
}

/* Pushes ".../key" onto the path; returns the old length for pop_path. */
static size_t push_path(struct js *c, const char *key)
{
	size_t n = strlen(c->path);
	snprintf(c->path + n, sizeof c->path - n, "/%s", key);
	return n;
}

static void pop_path(struct js *c, size_t n) { c->path[n] = 0; }

/* JSON text of v as a GBNF literal. */
static int literal_of(struct js *c, struct sbuf *o, const json_t *v)
{
	char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	if (!t)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	sbuf_literal(o, t, strlen(t));
	free(t);
	return 0;
}

/* ---- keywords --------------------------------------------------------- */

static const char *const annotations[] = { "title", "description", "examples", "default", "$schema", "$id",
					   "$comment", "readOnly", "writeOnly", "deprecated", "$defs", "definitions",
					   NULL };
static const char *const supported[] = { "type", "properties", "required", "additionalProperties", "enum", "const",
					 "items", "prefixItems", "minItems", "maxItems", "anyOf", "oneOf", "allOf",
					 "$ref", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
					 "exclusiveMaximum", "pattern", "format", NULL };

static bool in_list(const char *const *l, const char *k)
{
	for (; *l; l++)
		if (!strcmp(*l, k))
			return true;
	return false;
}

static int check_keywords(struct js *c, const json_t *s)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)s, k, v)
	{
		(void)v;
		if (!in_list(annotations, k) && !in_list(supported, k))
			return js_err(c, HEARTH_EUNSUPPORTED, "unsupported keyword: ", k);
	}
	return 0;
}

/* Is any key of s other than the annotations and those in allow[]? Names it in *other. */
static bool has_other(const json_t *s, const char *const *allow, const char **other)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)s, k, v)
	{
		(void)v;
		if (!in_list(annotations, k) && !in_list(allow, k)) {
			*other = k;
			return true;
		}
	}
	return false;
}

/* ---- $ref ---------------------------------------------------------- */

static const json_t *resolve(struct js *c, const char *ref)
{
	if (strcmp(ref, "#") == 0)
		return c->root;
	if (strncmp(ref, "#/", 2))
		return NULL;
	const json_t *at = c->root;
	char seg[256];
	const char *p = ref + 2;
	while (at && *p) {
		size_t n = 0;
		while (*p && *p != '/' && n < sizeof seg - 1) {
			if (p[0] == '~' && p[1] == '1')
				seg[n++] = '/', p += 2;
			else if (p[0] == '~' && p[1] == '0')
				seg[n++] = '~', p += 2;
			else
				seg[n++] = *p++;
		}
		seg[n] = 0;
		if (*p == '/')
			p++;
		at = json_is_object(at) ? json_object_get(at, seg) : NULL;
	}
	return at;
}

static int gen_ref(struct js *c, const json_t *s, int *rule)
{
	static const char *const allow[] = { "$ref", NULL };
	const char *ref = json_string_value(json_object_get(s, "$ref")), *other;
	if (!ref)
		return js_err(c, HEARTH_EINVAL, "$ref is not a string", NULL);
	if (has_other(s, allow, &other))
		return js_err(c, HEARTH_EUNSUPPORTED, "unsupported keyword beside $ref: ", other);
	for (int i = 0; i < c->n_refs; i++)
		if (!strcmp(c->refs[i].ref, ref)) {
			*rule = c->refs[i].rule;
			return 0;
		}
	const json_t *t = resolve(c, ref);
	if (!t)
		return js_err(c, HEARTH_EUNSUPPORTED, "$ref is not a local reference that resolves: ", ref);
	if (c->n_refs == c->cap_refs) {
		int cap = c->cap_refs ? 2 * c->cap_refs : 8;
		struct js_ref *r = realloc(c->refs, (size_t)cap * sizeof *r);
		if (!r)
			return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
		c->refs = r;
		c->cap_refs = cap;
	}
	int rc, r = 0, inner = 0;
	char *dup = strdup(ref);
	if (!dup)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	if ((rc = new_rule(c, &r))) {
		free(dup);
		return rc;
	}
	c->refs[c->n_refs++] = (struct js_ref){ dup, r };
	char saved[sizeof c->path];
	memcpy(saved, c->path, sizeof saved);
	snprintf(c->path, sizeof c->path, "%s", ref + 1);
	rc = gen(c, t, &inner);
	memcpy(c->path, saved, sizeof saved);
	if (rc)
		return rc;
	struct sbuf b;
	sbuf_init(&b, SCHEMA_MAX_OUT);
	rule_name(c, &b, inner);
	rc = put_rule(c, r, &b);
	sbuf_free(&b);
	*rule = r;
	return rc;
}

/* ---- allOf: merging schemas keyword by keyword ------------------------- */

static int merge_into(struct js *c, json_t *a, const json_t *b);

/* The types a schema allows as a bit set over type_names (all when absent). */
static const char *const type_names[] = { "object", "array", "string", "integer", "number", "boolean", "null" };
enum { N_TYPES = 7 };

static int type_bits(struct js *c, const json_t *t, unsigned *bits)
{
	*bits = 0;
	if (!t) {
		*bits = (1u << N_TYPES) - 1;
		return 0;
	}
	const size_t n = json_is_array(t) ? json_array_size(t) : 1;
	for (size_t i = 0; i < n; i++) {
		const char *name = json_string_value(json_is_array(t) ? json_array_get(t, i) : t);
		int k = -1;
		for (int j = 0; name && j < N_TYPES; j++)
			if (!strcmp(name, type_names[j]))
				k = j;
		if (k < 0)
			return js_err(c, HEARTH_EINVAL, "unknown type ", name ? name : "(not a string)");
		*bits |= 1u << k;
	}
	return 0;
}

static int merge_key(struct js *c, json_t *a, const char *k, const json_t *vb)
{
	json_t *va = json_object_get(a, k);
	if (!va || json_equal(va, vb))
		return json_object_set(a, k, (json_t *)vb) ? js_err(c, HEARTH_ENOMEM, "out of memory", NULL) : 0;
	if (!strcmp(k, "properties") && json_is_object(va) && json_is_object(vb)) {
		json_t *m = json_deep_copy(va);
		const char *pk;
		json_t *pv;
		json_object_foreach((json_t *)vb, pk, pv)
		{
			json_t *old = json_object_get(m, pk);
			json_t *nv = old ? json_pack("{s:[OO]}", "allOf", old, pv) : json_incref(pv);
			if (!nv || json_object_set_new(m, pk, nv)) {
				json_decref(m);
				return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
			}
		}
		return json_object_set_new(a, k, m) ? js_err(c, HEARTH_ENOMEM, "out of memory", NULL) : 0;
	}
	if (!strcmp(k, "required") && json_is_array(va) && json_is_array(vb)) {
		json_t *m = json_deep_copy(va);
		size_t i;
		json_t *x;
		json_array_foreach(vb, i, x)
		{
			bool dup = false;
			for (size_t j = 0; j < json_array_size(m); j++)
				dup = dup || json_equal(json_array_get(m, j), x);
			if (!dup)
				json_array_append(m, x);
		}
		return json_object_set_new(a, k, m) ? js_err(c, HEARTH_ENOMEM, "out of memory", NULL) : 0;
	}
	if (!strcmp(k, "type")) {
		unsigned ta, tb;
		int rc;
		if ((rc = type_bits(c, va, &ta)) || (rc = type_bits(c, vb, &tb)))
			return rc;
		unsigned t = ta & tb;
		if ((t & (1u << 4)) == 0 && (ta & (1u << 3 | 1u << 4)) && (tb & (1u << 3 | 1u << 4)))
			t |= (ta | tb) & (1u << 3); /* integer and number: integer */
		if (!t)
			return js_err(c, HEARTH_EUNSUPPORTED, "allOf: the branches allow no common type", NULL);
		json_t *arr = json_array();
		for (int j = 0; j < N_TYPES; j++)
			if (t & (1u << j))
				json_array_append_new(arr, json_string(type_names[j]));
		return json_object_set_new(a, k, arr) ? js_err(c, HEARTH_ENOMEM, "out of memory", NULL) : 0;
	}
	const bool lower = !strcmp(k, "minimum") || !strcmp(k, "minLength") || !strcmp(k, "minItems");
	const bool upper = !strcmp(k, "maximum") || !strcmp(k, "maxLength") || !strcmp(k, "maxItems");
	if ((lower || upper) && json_is_number(va) && json_is_number(vb)) {
		const double x = json_number_value(va), y = json_number_value(vb);
		const json_t *keep = (lower ? x >= y : x <= y) ? va : vb;
		return json_object_set(a, k, (json_t *)keep) ? js_err(c, HEARTH_ENOMEM, "out of memory", NULL) : 0;
	}
	return js_err(c, HEARTH_EUNSUPPORTED, "allOf cannot be merged: the branches differ in ", k);
}

/* A branch's own schema: $ref resolved (one level), booleans refused. */
static const json_t *branch_target(struct js *c, const json_t *b)
{
	for (int i = 0; i < 16 && json_is_object(b) && json_object_get(b, "$ref") && json_object_size(b) == 1; i++)
		b = resolve(c, json_string_value(json_object_get(b, "$ref")) ? json_string_value(json_object_get(b, "$ref")) : "");
	return b;
}

static int merge_into(struct js *c, json_t *a, const json_t *b)
{
	b = branch_target(c, b);
	if (json_is_true(b))
		return 0;
	if (!json_is_object(b))
		return js_err(c, HEARTH_EUNSUPPORTED, "allOf: a branch that is not an object schema (or an unresolved $ref)",
			      NULL);
	int rc = check_keywords(c, b);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)b, k, v)
	{
		if (rc)
			break;
		if (in_list(annotations, k))
			continue;
		if (!strcmp(k, "allOf")) {
			size_t i;
			json_t *x;
			json_array_foreach(v, i, x)
			{
				if ((rc = merge_into(c, a, x)))
					break;
			}
		} else {
			rc = merge_key(c, a, k, v);
		}
	}
	return rc;
}

/* s without `drop`, merged with branch (NULL: none); *out a new reference. */
static int merged(struct js *c, const json_t *s, const char *drop, const json_t *branch, json_t **out)
{
	json_t *a = json_object();
	const char *k;
	json_t *v;
	int rc = 0;
	if (!a)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	json_object_foreach((json_t *)s, k, v)
	{
		if (strcmp(k, drop) && !in_list(annotations, k) && json_object_set(a, k, v)) {
			rc = js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
			break;
		}
	}
	if (!rc && branch)
		rc = merge_into(c, a, branch);
	if (rc) {
		json_decref(a);
		return rc;
	}
	*out = a;
	return 0;
}

static int gen_allof(struct js *c, const json_t *s, struct sbuf *o)
{
	const json_t *all = json_object_get(s, "allOf");
	json_t *m;
	int rc, r = 0;
	if (!json_is_array(all) || !json_array_size(all))
		return js_err(c, HEARTH_EINVAL, "allOf is not a non-empty array", NULL);
	if ((rc = merged(c, s, "allOf", NULL, &m)))
		return rc;
	size_t i;
	json_t *b;
	json_array_foreach(all, i, b)
	{
		if ((rc = merge_into(c, m, b))) {
			json_decref(m);
			return rc;
		}
	}
	rc = gen(c, m, &r);
	json_decref(m);
	if (!rc)
		rule_name(c, o, r);
	return rc;
}

static int gen_anyof(struct js *c, const json_t *s, const char *kw, struct sbuf *o)
{
	const json_t *any = json_object_get(s, kw);
	const char *other;
	static const char *const allow[] = { "anyOf", "oneOf", NULL };
	const bool siblings = has_other(s, allow, &other);
	if (!json_is_array(any) || !json_array_size(any))
		return js_err(c, HEARTH_EINVAL, "anyOf/oneOf is not a non-empty array", NULL);
	if (json_object_get(s, "anyOf") && json_object_get(s, "oneOf"))
		return js_err(c, HEARTH_EUNSUPPORTED, "anyOf together with oneOf", NULL);
	size_t i;
	json_t *b;
	int rc = 0;
	sbuf_puts(o, "(");
	json_array_foreach(any, i, b)
	{
		char idx[48];
		snprintf(idx, sizeof idx, "%s/%zu", kw, i);
		size_t mark = push_path(c, idx);
		json_t *m = NULL;
		int r = 0;
		if (siblings)
			rc = merged(c, s, kw, b, &m);
		if (!rc)
			rc = gen(c, m ? m : b, &r);
		json_decref(m);
		pop_path(c, mark);
		if (rc)
			return rc;
		sbuf_puts(o, i ? " | " : "");
		rule_name(c, o, r);
	}
	sbuf_puts(o, ")");
	return 0;
}

/* ---- objects ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A rule for the names (plain characters, no escapes) that are none of keys[lo..hi),
 * all of which share their first `at` bytes (sorted). */
static int gen_notin(struct js *c, const char **keys, size_t lo, size_t hi, size_t at, int *rule)
{
	struct sbuf b;
	int rc = 0, r = 0;
	bool terminal = false;
	if (c->depth + (int)at / 8 > SCHEMA_MAX_DEPTH * 4)
		return js_err(c, HEARTH_ETOOBIG, "property names too long", NULL);
	if ((rc = new_rule(c, &r)))
		return rc;
	sbuf_init(&b, SCHEMA_MAX_OUT);
	sbuf_puts(&b, "[^\"\\\\\\x00-\\x1F");
	for (size_t i = lo; i < hi;) { /* the next bytes (whole characters) of the keys */
		const char *k = keys[i];
		if (!k[at]) {
			terminal = true;
			i++;
			continue;
		}
		size_t n = hearth_utf8_valid(k + at, strlen(k + at));
		size_t j = i + 1;
		while (j < hi && !strncmp(keys[j] + at, k + at, n ? n : 1))
			j++;
		if (n && (unsigned char)k[at] >= 0x20 && k[at] != '"' && k[at] != '\\') {
			char one[8];
			memcpy(one, k + at, n);
			one[n] = 0;
			if (n == 1 && strchr("]^-[", k[at]))
				sbuf_printf(&b, "\\%c", k[at]);
			else
				sbuf_puts(&b, one);
		}
		i = j;
	}
	sbuf_puts(&b, "] ");
	prim(c, &b, P_PLAIN);
	sbuf_puts(&b, "*");
	if (!terminal)
		sbuf_puts(&b, " | \"\"");
	for (size_t i = lo; i < hi && !rc;) {
		const char *k = keys[i];
		if (!k[at]) {
			i++;
			continue;
		}
		size_t n = hearth_utf8_valid(k + at, strlen(k + at));
		size_t j = i + 1;
		while (j < hi && !strncmp(keys[j] + at, k + at, n ? n : 1))
			j++;
		if (n && (unsigned char)k[at] >= 0x20 && k[at] != '"' && k[at] != '\\') {
			int child;
			if ((rc = gen_notin(c, keys, i, j, at + n, &child)))
				break;
			sbuf_puts(&b, " | ");
			sbuf_literal(&b, k + at, n);
			sbuf_puts(&b, " ");
			rule_name(c, &b, child);
		}
		i = j;
	}
	if (!rc)
		rc = put_rule(c, r, &b);
	sbuf_free(&b);
	*rule = r;
	return rc;
}

/* "name" ws ":" ws value, for a declared property. */
static int gen_kv(struct js *c, const char *name, const json_t *schema, struct sbuf *o)
{
	char seg[200];
	snprintf(seg, sizeof seg, "properties/%s", name);
	size_t mark = push_path(c, seg);
	int r, rc = gen(c, schema, &r);
	pop_path(c, mark);
	if (rc)
		return rc;
	json_t *k = json_string(name);
	rc = literal_of(c, o, k);
	json_decref(k);
	sbuf_puts(o, " ");
	prim(c, o, P_WS);
	sbuf_puts(o, " \":\" ");
	prim(c, o, P_WS);
	sbuf_puts(o, " ");
	rule_name(c, o, r);
	return rc;
}

/* An object's members as grammar text, in the order they are written. */
struct objm {
	char **kv;         /* [n_kv] each declared member's "name" ws ":" ws value */
	bool *req;         /* [n_kv] required */
	const char **keys; /* [n_kv] their names */
	size_t n_kv, n_req;
	int add_rule;      /* the value of additional members, -1: none allowed */
	struct sbuf add;   /* an additional member's text (when add_rule >= 0) */
};

static void objm_free(struct objm *o)
{
	for (size_t i = 0; o->kv && i < o->n_kv; i++)
		free(o->kv[i]);
	free(o->kv);
	free(o->req);
	free(o->keys);
	sbuf_free(&o->add);
}

static bool objm_has(const struct objm *o, const char *name)
{
	for (size_t j = 0; j < o->n_kv; j++)
		if (!strcmp(o->keys[j], name))
			return true;
	return false;
}

/* Appends a declared member (schema ps). */
static int objm_add(struct js *c, struct objm *o, const char *name, const json_t *ps, bool req)
{
	struct sbuf b;
	sbuf_init(&b, SCHEMA_MAX_OUT);
	int rc = gen_kv(c, name, ps, &b);
	o->kv[o->n_kv] = b.s;
	o->req[o->n_kv] = req;
	o->keys[o->n_kv++] = name;
	o->n_req += req;
	if (!rc && b.bad)
		rc = sbuf_err(c, &b);
	return rc;
}

/* The members of s: required ones in their order, then the optional ones in theirs. */
static int objm_collect(struct js *c, const json_t *s, struct objm *o)
{
	const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
	const json_t *ap = json_object_get(s, "additionalProperties");
	int rc = 0;
	if ((props && !json_is_object(props)) || (req && !json_is_array(req)))
		return js_err(c, HEARTH_EINVAL, "properties must be an object and required an array", NULL);
	const size_t n = json_object_size(props) + json_array_size(req) + 1;
	o->add_rule = -1;
	o->kv = calloc(n, sizeof *o->kv);
	o->req = calloc(n, sizeof *o->req);
	o->keys = calloc(n, sizeof *o->keys);
	if (!o->kv || !o->req || !o->keys)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	if (!ap || json_is_true(ap) || json_is_object(ap)) { /* the value of additional members */
		size_t mark = push_path(c, "additionalProperties");
		rc = gen(c, ap && json_is_object(ap) ? ap : json_true(), &o->add_rule);
		pop_path(c, mark);
	} else if (!json_is_false(ap)) {
		rc = js_err(c, HEARTH_EINVAL, "additionalProperties must be a boolean or a schema", NULL);
	}
	for (size_t i = 0; i < json_array_size(req) && !rc; i++) {
		const char *name = json_string_value(json_array_get(req, i));
		if (!name)
			return js_err(c, HEARTH_EINVAL, "required holds a non-string", NULL);
		if (objm_has(o, name))
			continue;
		const json_t *ps = json_object_get(props, name);
		if (!ps && o->add_rule < 0)
			return js_err(c, HEARTH_EUNSUPPORTED, "a required property that additionalProperties forbids: ", name);
		rc = objm_add(c, o, name, ps ? ps : (ap && json_is_object(ap) ? ap : json_true()), true);
	}
	const char *name;
	json_t *ps;
	json_object_foreach((json_t *)props, name, ps)
	{
		if (rc)
			break;
		if (!objm_has(o, name))
			rc = objm_add(c, o, name, ps, false);
	}
	return rc;
}

/* An additional member: "name" ws ":" ws value, the name none of the declared ones. */
static int objm_additional(struct js *c, struct objm *o)
{
	int notin, rc;
	const char **keys = malloc((o->n_kv + 1) * sizeof *keys);
	if (!keys)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	memcpy(keys, o->keys, o->n_kv * sizeof *keys);
	qsort(keys, o->n_kv, sizeof *keys, cmp_str);
	rc = gen_notin(c, keys, 0, o->n_kv, 0, &notin);
	free(keys);
	if (rc)
		return rc;
	sbuf_init(&o->add, SCHEMA_MAX_OUT);
	sbuf_puts(&o->add, "\"\\\"\" ");
	rule_name(c, &o->add, notin);
	sbuf_puts(&o->add, " \"\\\"\" ");
	prim(c, &o->add, P_WS);
	sbuf_puts(&o->add, " \":\" ");
	prim(c, &o->add, P_WS);
	sbuf_puts(&o->add, " ");
	rule_name(c, &o->add, o->add_rule);
	return o->add.bad ? sbuf_err(c, &o->add) : 0;
}

/* `"," ws` then text, as an optional (?) or repeated (*) group. */
static void comma_group(struct js *c, struct sbuf *o, const char *text, const char *op)
{
	sbuf_puts(o, "(\",\" ");
	prim(c, o, P_WS);
	sbuf_printf(o, " %s)%s", text ? text : "", op);
}

/* Some required: they come first, each optional one follows or not, then additional ones. */
static void objm_required(struct js *c, const struct objm *m, struct sbuf *o)
{
	for (size_t i = 0; i < m->n_kv; i++) {
		if (!m->req[i]) {
			comma_group(c, o, m->kv[i], "? ");
			continue;
		}
		if (i > 0) {
			sbuf_puts(o, "\",\" ");
			prim(c, o, P_WS);
			sbuf_puts(o, " ");
		}
		sbuf_puts(o, m->kv[i] ? m->kv[i] : "");
		sbuf_puts(o, " ");
	}
	if (m->add_rule >= 0)
		comma_group(c, o, m->add.s, "* ");
}

/* None required: the first member written is any one, and tail rule T_i (members
 * i.. each optional, then additional ones) follows member i - 1. */
static int objm_optional(struct js *c, const struct objm *m, struct sbuf *o)
{
	int rc = 0, next = -1;
	int *tail = calloc(m->n_kv + 1, sizeof *tail);
	if (!tail)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	for (size_t i = m->n_kv + 1; i-- > 1 && !rc;) {
		struct sbuf t;
		sbuf_init(&t, SCHEMA_MAX_OUT);
		if (i < m->n_kv) {
			comma_group(c, &t, m->kv[i], "? ");
			rule_name(c, &t, next);
		} else if (m->add_rule >= 0) {
			comma_group(c, &t, m->add.s, "*");
		} else {
			sbuf_puts(&t, "\"\"");
		}
		if (!(rc = new_rule(c, &tail[i])))
			rc = put_rule(c, tail[i], &t);
		next = tail[i];
		sbuf_free(&t);
	}
	sbuf_puts(o, "(");
	for (size_t i = 0; i < m->n_kv && !rc; i++) {
		sbuf_printf(o, "%s%s ", i ? " | " : "", m->kv[i] ? m->kv[i] : "");
		rule_name(c, o, tail[i + 1]);
	}
	if (m->add_rule >= 0 && !rc) { /* an additional member first: only more of them may follow */
		sbuf_printf(o, "%s%s ", m->n_kv ? " | " : "", m->add.s ? m->add.s : "");
		rule_name(c, o, tail[m->n_kv]);
	}
	sbuf_puts(o, ")? ");
	free(tail);
	return rc;
}

static int gen_object(struct js *c, const json_t *s, struct sbuf *o)
{
	struct objm m = { 0 };
	int rc = objm_collect(c, s, &m);
	if (!rc && m.add_rule >= 0)
		rc = objm_additional(c, &m);
	if (!rc) {
		sbuf_puts(o, "\"{\" ");
		prim(c, o, P_WS);
		sbuf_puts(o, " ");
		if (m.n_req)
			objm_required(c, &m, o);
		else if (m.n_kv || m.add_rule >= 0)
			rc = objm_optional(c, &m, o);
		prim(c, o, P_WS);
		sbuf_puts(o, " \"}\"");
	}
	objm_free(&m);
	return rc;
}

/* ---- arrays ------------------------------------------------------------- */

struct arr {
	const int *pre; /* rules of prefixItems */
	int n_pre;
	int item;       /* rule of items, -1: no more items */
	long min, max;  /* max -1: unbounded */
};

/* Elements from position i (0-based) on, i elements already written. */
static void arr_tail(struct js *c, const struct arr *a, long i, struct sbuf *o)
{
	if (a->max >= 0 && i >= a->max)
		return;
	if (i < a->n_pre) {
		const bool req = i < a->min;
		sbuf_puts(o, req ? "" : "(");
		if (i > 0) {
			sbuf_puts(o, "\",\" ");
			prim(c, o, P_WS);
			sbuf_puts(o, " ");
		}
		rule_name(c, o, a->pre[i]);
		sbuf_puts(o, " ");
		arr_tail(c, a, i + 1, o);
		sbuf_puts(o, req ? "" : ")? ");
		return;
	}
	if (a->item < 0)
		return;
	const long r = a->min > i ? a->min - i : 0, R = a->max < 0 ? -1 : a->max - i;
	if (i == 0) {
		sbuf_puts(o, r ? "" : "(");
		rule_name(c, o, a->item);
		sbuf_puts(o, " (\",\" ");
		prim(c, o, P_WS);
		sbuf_puts(o, " ");
		rule_name(c, o, a->item);
		if (R < 0)
			sbuf_printf(o, "){%ld,}", r ? r - 1 : 0);
		else
			sbuf_printf(o, "){%ld,%ld}", r ? r - 1 : 0, R - 1);
		sbuf_puts(o, r ? " " : ")? ");
		return;
	}
	sbuf_puts(o, "(\",\" ");
	prim(c, o, P_WS);
	sbuf_puts(o, " ");
	rule_name(c, o, a->item);
	if (R < 0)
		sbuf_printf(o, "){%ld,} ", r);
	else
		sbuf_printf(o, "){%ld,%ld} ", r, R);
}

static int count_kw(struct js *c, const json_t *s, const char *k, long *v)
{
	const json_t *x = json_object_get(s, k);
	if (!x)
		return 0;
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return js_err(c, HEARTH_EINVAL, "not a non-negative integer: ", k);
	if (json_integer_value(x) > SCHEMA_MAX_ITEMS)
		return js_err(c, HEARTH_EUNSUPPORTED, "a bound this large (at most 1000): ", k);
	*v = (long)json_integer_value(x);
	return 0;
}

static int gen_array(struct js *c, const json_t *s, struct sbuf *o)
{
	const json_t *pre = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
	struct arr a = { .item = -1, .min = 0, .max = -1 };
	int rc;
	if ((rc = count_kw(c, s, "minItems", &a.min)) || (rc = count_kw(c, s, "maxItems", &a.max)))
		return rc;
	if (pre && !json_is_array(pre))
		return js_err(c, HEARTH_EUNSUPPORTED, "prefixItems must be an array (items as an array: use prefixItems)", NULL);
	if (items && json_is_array(items))
		return js_err(c, HEARTH_EUNSUPPORTED, "items as an array (draft 4 tuples; use prefixItems)", NULL);
	int *pr = calloc(json_array_size(pre) + 1, sizeof *pr);
	if (!pr)
		return js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	for (size_t i = 0; i < json_array_size(pre) && !rc; i++) {
		char idx[48];
		snprintf(idx, sizeof idx, "prefixItems/%zu", i);
		size_t mark = push_path(c, idx);
		rc = gen(c, json_array_get(pre, i), &pr[i]);
		pop_path(c, mark);
	}
	if (!rc && !json_is_false(items)) {
		size_t mark = push_path(c, "items");
		rc = gen(c, items ? items : json_true(), &a.item);
		pop_path(c, mark);
	}
	a.pre = pr;
	a.n_pre = (int)json_array_size(pre);
	if (!rc && a.max >= 0 && a.max < a.min)
		rc = js_err(c, HEARTH_EUNSUPPORTED, "maxItems < minItems: no array fits", NULL);
	if (!rc && a.item < 0 && a.min > a.n_pre)
		rc = js_err(c, HEARTH_EUNSUPPORTED, "minItems beyond the prefixItems with items false", NULL);
	if (!rc) {
		sbuf_puts(o, "\"[\" ");
		prim(c, o, P_WS);
		sbuf_puts(o, " ");
		arr_tail(c, &a, 0, o);
		prim(c, o, P_WS);
		sbuf_puts(o, " \"]\"");
	}
	free(pr);
	return rc;
}

/* ---- strings, numbers --------------------------------------------------- */

static const struct {
	const char *name, *gbnf;
} formats[] = {
	{ "date", "[0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01])" },
	{ "time", "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? "
		  "(\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])" },
	{ "uuid", "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}" },
	{ "email", "[a-zA-Z0-9_%+-]{1,32} (\".\" [a-zA-Z0-9_%+-]{1,32}){0,3} \"@\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,30} "
		   "(\".\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,30}){0,3} \".\" [a-zA-Z]{2,10}" },
};

static int gen_string(struct js *c, const json_t *s, struct sbuf *o)
{
	const json_t *fmt = json_object_get(s, "format"), *pat = json_object_get(s, "pattern");
	const bool lens = json_object_get(s, "minLength") || json_object_get(s, "maxLength");
	long lo = 0, hi = -1;
	int rc;
	if ((fmt && pat) || ((fmt || pat) && lens))
		return js_err(c, HEARTH_EUNSUPPORTED, "more than one of format, pattern and minLength/maxLength", NULL);
	if (fmt) {
		const char *f = json_string_value(fmt);
		if (!f)
			return js_err(c, HEARTH_EINVAL, "format is not a string", NULL);
		const bool dt = !strcmp(f, "date-time");
		for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
			if (!strcmp(f, formats[i].name) || (dt && i < 2)) {
				sbuf_puts(o, i == 0 || !dt ? "\"\\\"\" " : " \"T\" ");
				sbuf_printf(o, "(%s)", formats[i].gbnf);
				if (!dt || i == 1) {
					sbuf_puts(o, " \"\\\"\"");
					return 0;
				}
			}
		return js_err(c, HEARTH_EUNSUPPORTED, "unsupported format: ", f);
	}
	if (pat) {
		const char *p = json_string_value(pat);
		if (!p)
			return js_err(c, HEARTH_EINVAL, "pattern is not a string", NULL);
		char chr[SCHEMA_MAX_PREFIX + 8];
		snprintf(chr, sizeof chr, "%s-char", c->prefix);
		c->prims |= 1u << P_CHAR;
		sbuf_puts(o, "\"\\\"\" ");
		if ((rc = schema_regex(p, strlen(p), chr, o, c->err)))
			return js_err(c, rc, c->err->msg, NULL);
		sbuf_puts(o, " \"\\\"\"");
		return 0;
	}
	if (!lens) {
		prim(c, o, P_STRING);
		return 0;
	}
	const json_t *jl = json_object_get(s, "minLength"), *jh = json_object_get(s, "maxLength");
	if ((jl && (!json_is_integer(jl) || json_integer_value(jl) < 0)) ||
	    (jh && (!json_is_integer(jh) || json_integer_value(jh) < 0)))
		return js_err(c, HEARTH_EINVAL, "minLength/maxLength must be non-negative integers", NULL);
	if ((jl && json_integer_value(jl) > GRAM_MAX_REPEAT) || (jh && json_integer_value(jh) > GRAM_MAX_REPEAT))
		return js_err(c, HEARTH_EUNSUPPORTED, "minLength/maxLength beyond 100000", NULL);
	lo = jl ? (long)json_integer_value(jl) : 0;
	hi = jh ? (long)json_integer_value(jh) : -1;
	if (hi >= 0 && hi < lo)
		return js_err(c, HEARTH_EUNSUPPORTED, "maxLength < minLength: no string fits", NULL);
	sbuf_puts(o, "\"\\\"\" ");
	prim(c, o, P_CHAR);
	if (hi < 0)
		sbuf_printf(o, "{%ld,}", lo);
	else
		sbuf_printf(o, "{%ld,%ld}", lo, hi);
	sbuf_puts(o, " \"\\\"\"");
	return 0;
}

/* A bound keyword as a double; has = false when absent. Draft 4's boolean exclusive* is read too. */
static int bound(struct js *c, const json_t *s, const char *k, bool *has, double *v)
{
	const json_t *x = json_object_get(s, k);
	*has = x && !json_is_boolean(x);
	if (!x || json_is_boolean(x))
		return 0;
	if (!json_is_number(x) || !isfinite(json_number_value(x)))
		return js_err(c, HEARTH_EINVAL, "not a number: ", k);
	*v = json_number_value(x);
	return 0;
}

static int int_bounds(struct js *c, const json_t *s, bool *has_lo, int64_t *lo, bool *has_hi, int64_t *hi)
{
	bool hm, hx, hM, hX;
	double m = 0, x = 0, M = 0, X = 0;
	int rc;
	if ((rc = bound(c, s, "minimum", &hm, &m)) || (rc = bound(c, s, "exclusiveMinimum", &hx, &x)) ||
	    (rc = bound(c, s, "maximum", &hM, &M)) || (rc = bound(c, s, "exclusiveMaximum", &hX, &X)))
		return rc;
	const double L = (double)SCHEMA_INT_LIMIT;
	if (json_is_true(json_object_get(s, "exclusiveMinimum")) && hm)
		hx = true, x = m, hm = false;
	if (json_is_true(json_object_get(s, "exclusiveMaximum")) && hM)
		hX = true, X = M, hM = false;
	double lo_d = -L, hi_d = L;
	if (hm)
		lo_d = fmax(lo_d, ceil(m));
	if (hx)
		lo_d = fmax(lo_d, floor(x) + 1);
	if (hM)
		hi_d = fmin(hi_d, floor(M));
	if (hX)
		hi_d = fmin(hi_d, ceil(X) - 1);
	*has_lo = hm || hx;
	*has_hi = hM || hX;
	*lo = (int64_t)fmax(-L, fmin(L, lo_d));
	*hi = (int64_t)fmax(-L, fmin(L, hi_d));
	if (*lo > *hi)
		return js_err(c, HEARTH_EUNSUPPORTED, "the integer range is empty", NULL);
	return 0;
}

static int gen_integer(struct js *c, const json_t *s, struct sbuf *o)
{
	bool has_lo, has_hi;
	int64_t lo, hi;
	int rc = int_bounds(c, s, &has_lo, &lo, &has_hi, &hi);
	if (rc)
		return rc;
	if (!has_lo && !has_hi)
		prim(c, o, P_INTEGER);
	else
		schema_int_range(o, has_lo, lo, has_hi, hi);
	return 0;
}

/* Magnitudes in [a, b] (b < 0: unbounded) written as numbers without an exponent. */
static void magnitude(struct sbuf *o, int64_t a, int64_t b)
{
	sbuf_puts(o, "(");
	if (b < 0 || b > a) {
		schema_int_range(o, true, a, b >= 0, b - 1);
		sbuf_puts(o, " (\".\" [0-9]{1,15})?");
	}
	if (b >= 0) {
		sbuf_puts(o, b > a ? " | " : "");
		schema_int_range(o, true, b, true, b);
		sbuf_puts(o, " (\".\" \"0\"{1,15})?");
	}
	sbuf_puts(o, ")");
}

static int gen_number(struct js *c, const json_t *s, struct sbuf *o)
{
	bool hm, hM, hx, hX;
	double m = 0, M = 0, x = 0;
	int rc;
	if ((rc = bound(c, s, "minimum", &hm, &m)) || (rc = bound(c, s, "maximum", &hM, &M)) ||
	    (rc = bound(c, s, "exclusiveMinimum", &hx, &x)) || (rc = bound(c, s, "exclusiveMaximum", &hX, &x)))
		return rc;
	if (hx || hX || json_is_true(json_object_get(s, "exclusiveMinimum")) ||
	    json_is_true(json_object_get(s, "exclusiveMaximum")))
		return js_err(c, HEARTH_EUNSUPPORTED, "exclusiveMinimum/exclusiveMaximum on a number (not an integer)", NULL);
	if (!hm && !hM) {
		prim(c, o, P_NUMBER);
		return 0;
	}
	const double L = (double)SCHEMA_INT_LIMIT / 10;
	if ((hm && (m != floor(m) || fabs(m) > L)) || (hM && (M != floor(M) || fabs(M) > L)))
		return js_err(c, HEARTH_EUNSUPPORTED, "minimum/maximum on a number that are not whole numbers (up to 10^17)",
			      NULL);
	const int64_t lo = (int64_t)m, hi = (int64_t)M;
	if (hm && hM && lo > hi)
		return js_err(c, HEARTH_EUNSUPPORTED, "maximum < minimum: no number fits", NULL);
	sbuf_puts(o, "(");
	if (hm && lo >= 0) {
		magnitude(o, lo, hM ? hi : -1);
	} else if (hM && hi <= 0) {
		sbuf_puts(o, "\"-\" ");
		magnitude(o, -hi, hm ? -lo : -1);
	} else {
		magnitude(o, 0, hM ? hi : -1);
		sbuf_puts(o, " | \"-\" ");
		magnitude(o, 0, hm ? -lo : -1);
	}
	sbuf_puts(o, ")");
	return 0;
}

/* ---- dispatch ----------------------------------------------------------- */

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The UTF-8 length of the character at s (texts from jansson are valid). */
static size_t char_len(const char *s)
{
	const unsigned char c = (unsigned char)*s;
	return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* The texts t[lo..hi) (sorted, distinct), which share their first `at` bytes,
 * as alternatives factored by their common prefixes, so that the matcher
 * follows one stack per distinct prefix instead of one per text (an enum
 * of a thousand values would otherwise pass GM_MAX_STACKS). Nesting stops
 * at depth 32: below that the texts are plain alternatives. */
static void lit_trie(struct sbuf *o, char **t, size_t lo, size_t hi, size_t at, int depth)
{
	size_t common = at; /* the bytes all of them share from `at` on */
	while (t[lo][common] && t[hi - 1][common] == t[lo][common] && !strncmp(t[lo], t[hi - 1], common + 1))
		common++;
	while (common > at && (((unsigned char)t[lo][common] & 0xc0) == 0x80))
		common--; /* a character is not split */
	if (common > at) {
		sbuf_literal(o, t[lo] + at, common - at);
		sbuf_puts(o, " ");
	}
	if (hi - lo == 1 || depth >= 32) {
		if (hi - lo == 1)
			return;
		sbuf_puts(o, "(");
		for (size_t i = lo; i < hi; i++) {
			sbuf_puts(o, i > lo ? " | " : "");
			sbuf_literal(o, t[i] + common, strlen(t[i] + common));
		}
		sbuf_puts(o, ")");
		return;
	}
	sbuf_puts(o, "(");
	bool first = true;
	for (size_t i = lo; i < hi;) {
		size_t j = i + 1;
		if (!t[i][common]) { /* a text that ends here (sorted first) */
			sbuf_puts(o, "\"\"");
			first = false;
			i = j;
			continue;
		}
		const size_t n = char_len(t[i] + common);
		while (j < hi && !strncmp(t[j] + common, t[i] + common, n))
			j++;
		sbuf_puts(o, first ? "" : " | ");
		first = false;
		lit_trie(o, t, i, j, common, depth + 1);
		i = j;
	}
	sbuf_puts(o, ")");
}

static int gen_enum(struct js *c, const json_t *s, struct sbuf *o)
{
	const json_t *cst = json_object_get(s, "const"), *en = json_object_get(s, "enum");
	if (cst)
		return literal_of(c, o, cst);
	if (!json_is_array(en) || !json_array_size(en))
		return js_err(c, HEARTH_EINVAL, "enum is not a non-empty array", NULL);
	const size_t n = json_array_size(en);
	char **t = calloc(n, sizeof *t);
	int rc = t ? 0 : js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	for (size_t i = 0; i < n && !rc; i++)
		if (!(t[i] = json_dumps(json_array_get(en, i), JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS)))
			rc = js_err(c, HEARTH_ENOMEM, "out of memory", NULL);
	if (!rc) {
		qsort(t, n, sizeof *t, cmp_cstr);
		size_t m = 0;
		for (size_t i = 0; i < n; i++) { /* distinct */
			if (m && !strcmp(t[m - 1], t[i]))
				free(t[i]);
			else
				t[m++] = t[i];
		}
		for (size_t i = m; i < n; i++)
			t[i] = NULL;
		sbuf_puts(o, "(");
		lit_trie(o, t, 0, m, 0, 0);
		sbuf_puts(o, ")");
	}
	for (size_t i = 0; t && i < n; i++)
		free(t[i]);
	free(t);
	return rc;
}

/* The type a schema without "type" is about, told from its keywords (-1: any value). */
static int implied_type(const json_t *s)
{
	static const char *const by[][6] = {
		{ "properties", "required", "additionalProperties", NULL },
		{ "items", "prefixItems", "minItems", "maxItems", NULL },
		{ "minLength", "maxLength", "pattern", "format", NULL },
		{ NULL },
		{ "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL },
	};
	for (int t = 0; t < 5; t++)
		for (int i = 0; by[t][i]; i++)
			if (json_object_get(s, by[t][i]))
				return t;
	return -1;
}

static int gen_type(struct js *c, const json_t *s, int t, struct sbuf *o)
{
	switch (t) {
	case 0: return gen_object(c, s, o);
	case 1: return gen_array(c, s, o);
	case 2: return gen_string(c, s, o);
	case 3: return gen_integer(c, s, o);
	case 4: return gen_number(c, s, o);
	case 5: sbuf_puts(o, "(\"true\" | \"false\")"); return 0;
	default: sbuf_puts(o, "\"null\""); return 0;
	}
}

static int gen_body(struct js *c, const json_t *s, struct sbuf *o)
{
	int rc;
	if (json_is_true(s)) {
		prim(c, o, P_VALUE);
		return 0;
	}
	if (json_is_false(s))
		return js_err(c, HEARTH_EUNSUPPORTED, "the schema false allows nothing", NULL);
	if (!json_is_object(s))
		return js_err(c, HEARTH_EINVAL, "a schema must be an object or a boolean", NULL);
	if ((rc = check_keywords(c, s)))
		return rc;
	if (json_object_get(s, "$ref")) {
		int r = 0;
		if ((rc = gen_ref(c, s, &r)))
			return rc;
		rule_name(c, o, r);
		return 0;
	}
	if (json_object_get(s, "allOf"))
		return gen_allof(c, s, o);
	if (json_object_get(s, "anyOf"))
		return gen_anyof(c, s, "anyOf", o);
	if (json_object_get(s, "oneOf"))
		return gen_anyof(c, s, "oneOf", o);
	if (json_object_get(s, "const") || json_object_get(s, "enum"))
		return gen_enum(c, s, o);
	const json_t *type = json_object_get(s, "type");
	if (!type) {
		const int t = implied_type(s);
		if (t < 0)
			prim(c, o, P_VALUE);
		return t < 0 ? 0 : gen_type(c, s, t, o);
	}
	unsigned bits;
	if ((rc = type_bits(c, type, &bits)))
		return rc;
	if (!bits)
		return js_err(c, HEARTH_EUNSUPPORTED, "an empty list of types", NULL);
	bool first = true;
	sbuf_puts(o, "(");
	for (int t = 0; t < N_TYPES && !rc; t++)
		if (bits & (1u << t)) {
			sbuf_puts(o, first ? "" : " | ");
			rc = gen_type(c, s, t, o);
			first = false;
		}
	sbuf_puts(o, ")");
	return rc;
}

/* A rule for schema s; its index in *rule. */
static int gen(struct js *c, const json_t *s, int *rule)
{
	int rc, r = 0;
	if (c->depth >= SCHEMA_MAX_DEPTH)
		return js_err(c, HEARTH_ETOOBIG, "the schema nests too deeply", NULL);
	if ((rc = new_rule(c, &r)))
		return rc;
	struct sbuf b;
	sbuf_init(&b, SCHEMA_MAX_OUT);
	c->depth++;
	rc = gen_body(c, s, &b);
	c->depth--;
	if (!rc)
		rc = put_rule(c, r, &b);
	sbuf_free(&b);
	*rule = r;
	return rc;
}

static void put_prims(struct js *c)
{
	unsigned used = c->prims;
	for (int round = 0; round < P_COUNT; round++)
		for (int p = 0; p < P_COUNT; p++)
			if (used & (1u << p))
				used |= prim_uses[p];
	for (int p = 0; p < P_COUNT; p++) {
		if (!(used & (1u << p)))
			continue;
		char body[1024];
		const char *x = c->prefix;
		snprintf(body, sizeof body, prim_body[p], x, x, x, x, x, x, x, x, x, x, x);
		sbuf_printf(&c->out, "%s-%s ::= ", c->prefix, prim_name[p]);
		sbuf_puts(&c->out, body);
		sbuf_puts(&c->out, "\n");
	}
}

int hearth_json_schema_to_gbnf(const char *schema, size_t len, const char *prefix, char **out,
			       struct hearth_err *err)
{
	struct js c = { .err = err };
	json_error_t jerr;
	int rc, r = 0;
	*out = NULL;
	if (!prefix || !*prefix || strlen(prefix) > SCHEMA_MAX_PREFIX)
		return err_set(err, HEARTH_EINVAL, "json schema: the rule prefix must be 1 to %d characters",
			       SCHEMA_MAX_PREFIX);
	for (const char *p = prefix; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return err_set(err, HEARTH_EINVAL, "json schema: the rule prefix '%.64s' has a character other "
				       "than letters, digits, '-' and '_'", prefix);
	snprintf(c.prefix, sizeof c.prefix, "%s", prefix);
	json_t *j = json_loadb(schema, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!j)
		return err_set(err, HEARTH_EINVAL, "json schema: not JSON: line %d, column %d: %.150s", jerr.line,
			       jerr.column, jerr.text);
	c.root = j;
	sbuf_init(&c.out, SCHEMA_MAX_OUT);
	rc = gen(&c, j, &r);
	if (!rc) {
		put_prims(&c);
		if (c.out.bad == HEARTH_ENOMEM)
			rc = err_set(err, HEARTH_ENOMEM, "json schema: out of memory");
		else if (c.out.bad)
			rc = err_set(err, c.out.bad, "json schema: the grammar grows past %u bytes", SCHEMA_MAX_OUT);
	}
	for (int i = 0; i < c.n_refs; i++)
		free(c.refs[i].ref);
	free(c.refs);
	json_decref(j);
	if (rc) {
		sbuf_free(&c.out);
		return rc;
	}
	*out = c.out.s;
	return 0;
}
