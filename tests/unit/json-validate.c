/* json-validate.c - see json-validate.h. Patterns and formats go through PCRE2. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "json-validate.h"

struct jv {
	const json_t *root;
	char *why;
	size_t why_size;
};

static bool fail(struct jv *c, const char *what, const char *detail)
{
	snprintf(c->why, c->why_size, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
	return false;
}

static bool regex_match(const char *pat, const char *s, size_t n)
{
	int e;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &e, &off, NULL);
	if (!re)
		return false;
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return rc >= 0;
}

static const json_t *resolve(const json_t *root, const char *ref)
{
	if (!strcmp(ref, "#"))
		return root;
	char key[128];
	for (int k = 0; k < 2; k++) {
		const char *pre = k ? "#/definitions/" : "#/$defs/";
		if (!strncmp(ref, pre, strlen(pre))) {
			snprintf(key, sizeof key, "%s", ref + strlen(pre));
			return json_object_get(json_object_get(root, k ? "definitions" : "$defs"), key);
		}
	}
	return NULL;
}

static bool valid(struct jv *c, const json_t *s, const json_t *v, int depth);

static bool is_type(const json_t *v, const char *t)
{
	if (!strcmp(t, "object")) return json_is_object(v);
	if (!strcmp(t, "array")) return json_is_array(v);
	if (!strcmp(t, "string")) return json_is_string(v);
	if (!strcmp(t, "boolean")) return json_is_boolean(v);
	if (!strcmp(t, "null")) return json_is_null(v);
	if (!strcmp(t, "number")) return json_is_number(v);
	if (!strcmp(t, "integer"))
		return json_is_integer(v) || (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)));
	return false;
}

static bool check_number(struct jv *c, const json_t *s, double x)
{
	const json_t *m = json_object_get(s, "minimum"), *M = json_object_get(s, "maximum");
	const json_t *xm = json_object_get(s, "exclusiveMinimum"), *xM = json_object_get(s, "exclusiveMaximum");
	if (m && x < json_number_value(m)) return fail(c, "below minimum", NULL);
	if (M && x > json_number_value(M)) return fail(c, "above maximum", NULL);
	if (xm && json_is_number(xm) && x <= json_number_value(xm)) return fail(c, "not above exclusiveMinimum", NULL);
	if (xM && json_is_number(xM) && x >= json_number_value(xM)) return fail(c, "not below exclusiveMaximum", NULL);
	return true;
}

static bool check_string(struct jv *c, const json_t *s, const json_t *v)
{
	const char *t = json_string_value(v);
	const size_t n = json_string_length(v);
	size_t cps = 0;
	for (size_t i = 0; i < n; i++)
		cps += ((unsigned char)t[i] & 0xc0) != 0x80;
	const json_t *lo = json_object_get(s, "minLength"), *hi = json_object_get(s, "maxLength");
	if (lo && cps < (size_t)json_integer_value(lo)) return fail(c, "shorter than minLength", t);
	if (hi && cps > (size_t)json_integer_value(hi)) return fail(c, "longer than maxLength", t);
	const char *pat = json_string_value(json_object_get(s, "pattern"));
	if (pat && !regex_match(pat, t, n)) return fail(c, "pattern does not match", t);
	const char *fmt = json_string_value(json_object_get(s, "format"));
	static const char *const fmts[][2] = {
		{ "date", "^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])$" },
		{ "time", "^([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$" },
		{ "date-time", "^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])T([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d+)?"
			       "(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$" },
		{ "uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$" },
		{ "email", "^[^@\\s\"]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$" },
	};
	for (size_t i = 0; fmt && i < sizeof fmts / sizeof *fmts; i++)
		if (!strcmp(fmt, fmts[i][0]) && !regex_match(fmts[i][1], t, n))
			return fail(c, "format does not match", t);
	return true;
}

static bool check_object(struct jv *c, const json_t *s, const json_t *v, int depth)
{
	const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
	const json_t *ap = json_object_get(s, "additionalProperties");
	size_t i;
	json_t *x;
	json_array_foreach(req, i, x)
	{
		if (!json_object_get(v, json_string_value(x)))
			return fail(c, "required property missing", json_string_value(x));
	}
	const char *k;
	json_t *val;
	json_object_foreach((json_t *)v, k, val)
	{
		const json_t *ps = json_object_get(props, k);
		if (ps) {
			if (!valid(c, ps, val, depth + 1))
				return false;
		} else if (json_is_false(ap)) {
			return fail(c, "additional property", k);
		} else if (json_is_object(ap) && !valid(c, ap, val, depth + 1)) {
			return false;
		}
	}
	return true;
}

static bool check_array(struct jv *c, const json_t *s, const json_t *v, int depth)
{
	const json_t *pre = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
	const json_t *lo = json_object_get(s, "minItems"), *hi = json_object_get(s, "maxItems");
	const size_t n = json_array_size(v);
	if (lo && n < (size_t)json_integer_value(lo)) return fail(c, "fewer than minItems", NULL);
	if (hi && n > (size_t)json_integer_value(hi)) return fail(c, "more than maxItems", NULL);
	for (size_t i = 0; i < n; i++) {
		const json_t *is = i < json_array_size(pre) ? json_array_get(pre, i) : items;
		if (is && !valid(c, is, json_array_get(v, i), depth + 1))
			return false;
	}
	return true;
}

static bool valid(struct jv *c, const json_t *s, const json_t *v, int depth)
{
	if (depth > 200) return fail(c, "too deep", NULL);
	if (json_is_true(s)) return true;
	if (json_is_false(s)) return fail(c, "schema false", NULL);
	const char *ref = json_string_value(json_object_get(s, "$ref"));
	if (ref) {
		const json_t *t = resolve(c->root, ref);
		return t ? valid(c, t, v, depth + 1) : fail(c, "unresolved $ref", ref);
	}
	size_t i;
	json_t *x;
	const json_t *all = json_object_get(s, "allOf"), *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
	json_array_foreach(all, i, x)
	{
		if (!valid(c, x, v, depth + 1)) return false;
	}
	if (any) {
		bool ok = false;
		json_array_foreach(any, i, x) ok = ok || valid(c, x, v, depth + 1);
		if (!ok) return fail(c, "no anyOf branch holds", NULL);
	}
	if (one) {
		int k = 0;
		json_array_foreach(one, i, x) k += valid(c, x, v, depth + 1);
		if (k != 1) return fail(c, "not exactly one oneOf branch holds", NULL);
	}
	const json_t *cst = json_object_get(s, "const"), *en = json_object_get(s, "enum");
	if (cst && !json_equal(cst, v)) return fail(c, "not the const", NULL);
	if (en) {
		bool ok = false;
		json_array_foreach(en, i, x) ok = ok || json_equal(x, v);
		if (!ok) return fail(c, "not in the enum", NULL);
	}
	const json_t *type = json_object_get(s, "type");
	if (json_is_string(type) && !is_type(v, json_string_value(type)))
		return fail(c, "wrong type, want", json_string_value(type));
	if (json_is_array(type)) {
		bool ok = false;
		json_array_foreach(type, i, x) ok = ok || is_type(v, json_string_value(x));
		if (!ok) return fail(c, "none of the types", NULL);
	}
	if (json_is_number(v) && !check_number(c, s, json_number_value(v))) return false;
	if (json_is_string(v) && !check_string(c, s, v)) return false;
	if (json_is_object(v) && !check_object(c, s, v, depth)) return false;
	if (json_is_array(v) && !check_array(c, s, v, depth)) return false;
	return true;
}

bool jv_valid(const json_t *root, const json_t *s, const json_t *v, char *why, size_t why_size)
{
	struct jv c = { root, why, why_size };
	why[0] = 0;
	return valid(&c, s, v, 0);
}
