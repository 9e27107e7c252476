/* jinja-tests.c - jinja2's built-in tests (x is defined, x is divisibleby 3 ...). */
#include <string.h>

#include "jinja.h"

static const char *const test_names[] = {
	"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false",
	"filter", "float", "ge", ">=", "gt", ">", "greaterthan", "in", "integer", "iterable", "le", "<=",
	"lower", "lt", "<", "lessthan", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence",
	"string", "test", "true", "undefined", "upper", NULL
};

bool jinja_has_test(const char *name)
{
	for (int i = 0; test_names[i]; i++)
		if (!strcmp(test_names[i], name))
			return true;
	return false;
}

static int one_arg(struct jctx *c, const struct jnode *n, const char *name, const struct jargs *a, struct jv *x)
{
	if (a->nargs + a->nkw != 1)
		return jerr(c, n, "TypeError: the test %s takes one argument", name);
	*x = a->nargs ? a->args[0] : a->kw[0];
	return 0;
}

static int cmp_test(struct jctx *c, const struct jnode *n, const char *name, struct jv v, struct jv x, bool *out)
{
	int op = !strcmp(name, "ge") || !strcmp(name, ">=") ? OP_GE :
		 !strcmp(name, "gt") || !strcmp(name, ">") || !strcmp(name, "greaterthan") ? OP_GT :
		 !strcmp(name, "le") || !strcmp(name, "<=") ? OP_LE : OP_LT;
	static const char *const sym[] = { [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=" };
	int r;
	if (jv_check_undef(c, n, v) || jv_check_undef(c, n, x) || jv_cmp(c, n, v, x, sym[op], &r))
		return c->err->code;
	*out = r != 2 && (op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0);
	return 0;
}

static bool is_lower_upper(struct jctx *c, struct jv v, bool upper)
{
	struct jv s, m;
	struct jargs none = { 0 };
	if (jv_to_str(c, NULL, v, &s) || jinja_method_call(c, NULL, s, upper ? "isupper" : "islower", &none, &m))
		return false;
	return m.b;
}

int jinja_test(struct jctx *c, const struct jnode *n, const char *name, struct jv v, const struct jargs *a,
	       bool *out)
{
	struct jv x;
	if (!jinja_has_test(name))
		return jerr(c, n, "TemplateAssertionError: No test named '%s'.", name);
	bool needs_arg = !strcmp(name, "divisibleby") || !strcmp(name, "eq") || !strcmp(name, "equalto") ||
			 !strcmp(name, "==") || !strcmp(name, "ne") || !strcmp(name, "!=") || !strcmp(name, "in") ||
			 !strcmp(name, "sameas") || !strcmp(name, "ge") || !strcmp(name, ">=") || !strcmp(name, "gt") ||
			 !strcmp(name, ">") || !strcmp(name, "greaterthan") || !strcmp(name, "le") ||
			 !strcmp(name, "<=") || !strcmp(name, "lt") || !strcmp(name, "<") || !strcmp(name, "lessthan");
	if (needs_arg) {
		if (one_arg(c, n, name, a, &x))
			return c->err->code;
	} else if (a->nargs || a->nkw) {
		return jerr(c, n, "TypeError: the test %s takes no arguments", name);
	}
	if (!strcmp(name, "defined"))
		*out = v.t != JT_UNDEF;
	else if (!strcmp(name, "undefined"))
		*out = v.t == JT_UNDEF;
	else if (!strcmp(name, "none"))
		*out = v.t == JT_NONE;
	else if (!strcmp(name, "boolean"))
		*out = v.t == JT_BOOL;
	else if (!strcmp(name, "true") || !strcmp(name, "false"))
		*out = v.t == JT_BOOL && v.b == (name[0] == 't');
	else if (!strcmp(name, "integer"))
		*out = v.t == JT_INT;
	else if (!strcmp(name, "float"))
		*out = v.t == JT_FLOAT;
	else if (!strcmp(name, "number"))
		*out = v.t == JT_INT || v.t == JT_FLOAT || v.t == JT_BOOL;
	else if (!strcmp(name, "string"))
		*out = v.t == JT_STR;
	else if (!strcmp(name, "mapping"))
		*out = v.t == JT_DICT;
	else if (!strcmp(name, "sequence"))
		*out = v.t == JT_STR || v.t == JT_LIST || v.t == JT_DICT || v.t == JT_UNDEF;
	else if (!strcmp(name, "iterable"))
		*out = v.t == JT_STR || v.t == JT_LIST || v.t == JT_DICT || v.t == JT_UNDEF;
	else if (!strcmp(name, "callable"))
		*out = v.t == JT_FUNC || v.t == JT_LOOP;
	else if (!strcmp(name, "escaped"))
		*out = v.t == JT_STR && (v.flag & 1);
	else if (!strcmp(name, "lower") || !strcmp(name, "upper"))
		*out = is_lower_upper(c, v, name[0] == 'u');
	else if (!strcmp(name, "filter") || !strcmp(name, "test"))
		*out = v.t == JT_STR && (name[0] == 'f' ? jinja_has_filter(v.s->p) : jinja_has_test(v.s->p));
	else if (!strcmp(name, "even") || !strcmp(name, "odd") || !strcmp(name, "divisibleby")) {
		struct jv r;
		struct jv d = name[0] == 'd' ? x : jv_int(2);
		if (jv_binop(c, n, OP_MOD, v, d, &r))
			return c->err->code;
		bool zero = !jv_truthy(r);
		*out = name[0] == 'o' ? !zero : zero;
	} else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
		*out = jv_eq(v, x);
	else if (!strcmp(name, "ne") || !strcmp(name, "!="))
		*out = !jv_eq(v, x);
	else if (!strcmp(name, "in"))
		return jv_in(c, n, v, x, out);
	else if (!strcmp(name, "sameas")) {
		/* identity: singletons and small ints by value, containers by address */
		if (v.t != x.t)
			*out = false;
		else if (v.t == JT_NONE || v.t == JT_UNDEF)
			*out = v.t == JT_NONE || v.u == x.u;
		else if (v.t == JT_BOOL)
			*out = v.b == x.b;
		else if (v.t == JT_INT)
			*out = v.i == x.i && v.i >= -5 && v.i <= 256;
		else if (v.t == JT_STR)
			*out = v.s == x.s;
		else if (v.t == JT_LIST)
			*out = v.l == x.l;
		else if (v.t == JT_DICT || v.t == JT_NS)
			*out = v.d == x.d;
		else
			*out = jv_eq(v, x);
	} else
		return cmp_test(c, n, name, v, x, out);
	return 0;
}
