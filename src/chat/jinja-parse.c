/* jinja-parse.c - tokens to a tree of struct jnode, following jinja2's
 * parser (its precedence: condexpr < or < and < not < compare < + - < ~ <
 * * / // % < ** < unary - + < postfix . [] () < filters | and tests is).
 *
 * Statements: if/elif/else, for (else, loop filter, tuple targets), set
 * (expression, block, namespace attribute), macro, call, filter, with,
 * break, continue, generation. include/import/extends/block and recursive
 * loops are HEARTH_EUNSUPPORTED; anything else unknown is HEARTH_EINVAL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "jinja.h"

struct parser {
	const struct jtoken *t;
	size_t n, i;
	struct jarena *a;
	struct hearth_err *err;
	int nest;
};

static const struct jtoken *cur(struct parser *P) { return &P->t[P->i < P->n ? P->i : P->n - 1]; }
static const struct jtoken *peek(struct parser *P, size_t k)
{
	return &P->t[P->i + k < P->n ? P->i + k : P->n - 1];
}
static void adv(struct parser *P)
{
	if (P->i + 1 < P->n)
		P->i++;
}

static int fail_at(struct parser *P, const struct jtoken *t, int code, const char *fmt, const char *arg)
{
	char msg[160];
	snprintf(msg, sizeof msg, fmt, arg ? arg : "");
	return err_set(P->err, code, "template line %u, column %u: %s", (unsigned)t->line, (unsigned)t->col, msg);
}
static int fail(struct parser *P, const char *fmt, const char *arg)
{
	return fail_at(P, cur(P), HEARTH_EINVAL, fmt, arg);
}
static int oom(struct parser *P) { return err_set(P->err, HEARTH_ENOMEM, "template: out of memory"); }

static bool is_op(const struct jtoken *t, const char *op)
{
	return t->type == T_OP && t->len == strlen(op) && !memcmp(t->p, op, t->len);
}
static bool is_name(const struct jtoken *t, const char *nm)
{
	return t->type == T_NAME && t->len == strlen(nm) && !memcmp(t->p, nm, t->len);
}
static bool skip_op(struct parser *P, const char *op)
{
	if (!is_op(cur(P), op))
		return false;
	adv(P);
	return true;
}
static bool skip_name(struct parser *P, const char *nm)
{
	if (!is_name(cur(P), nm))
		return false;
	adv(P);
	return true;
}
static int expect_op(struct parser *P, const char *op)
{
	if (skip_op(P, op))
		return 0;
	char msg[16];
	snprintf(msg, sizeof msg, "%s", op);
	return fail(P, "expected '%s'", msg);
}
static int expect_end(struct parser *P)
{
	if (cur(P)->type == T_BLOCK_END) {
		adv(P);
		return 0;
	}
	return fail(P, "expected the end of the statement ('%%}')%s", NULL);
}

static struct jnode *node(struct parser *P, int kind, const struct jtoken *at)
{
	struct jnode *n = ja_alloc(P->a, sizeof *n);
	if (!n)
		return NULL;
	memset(n, 0, sizeof *n);
	n->kind = (uint8_t)kind;
	n->line = at->line;
	n->col = at->col;
	return n;
}

static const char *dupname(struct parser *P, const struct jtoken *t)
{
	char *s = ja_alloc(P->a, t->len + 1);
	if (!s)
		return NULL;
	jmemcpy(s, t->p, t->len);
	s[t->len] = 0;
	return s;
}

/* a growable array of node pointers, carved from the arena */
struct nvec {
	struct jnode **v;
	size_t n, cap;
};
static int nv_push(struct parser *P, struct nvec *v, struct jnode *x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		struct jnode **nv = ja_alloc(P->a, cap * sizeof *nv);
		if (!nv)
			return oom(P);
		if (v->n)
			jmemcpy(nv, v->v, v->n * sizeof *nv);
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}
struct svec {
	const char **v;
	size_t n, cap;
};
static int sv_push(struct parser *P, struct svec *v, const char *x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		const char **nv = ja_alloc(P->a, cap * sizeof *nv);
		if (!nv)
			return oom(P);
		if (v->n)
			jmemcpy(nv, v->v, v->n * sizeof *nv);
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

static int parse_expr(struct parser *P, bool with_condexpr, struct jnode **out);
static int parse_unary(struct parser *P, bool with_filter, struct jnode **out);
static int parse_primary(struct parser *P, struct jnode **out);
static int parse_postfix(struct parser *P, struct jnode *n, struct jnode **out);
static int parse_or(struct parser *P, struct jnode **out);

static int enter(struct parser *P)
{
	if (++P->nest > JINJA_MAX_NEST)
		return fail_at(P, cur(P), HEARTH_ETOOBIG, "expressions or blocks nested too deep%s", NULL);
	return 0;
}

static bool tuple_end(struct parser *P, const char *extra)
{
	const struct jtoken *t = cur(P);
	if (t->type == T_VAR_END || t->type == T_BLOCK_END || t->type == T_EOF || is_op(t, ")"))
		return true;
	return extra && is_name(t, extra);
}

/* jinja2's parse_tuple */
static int parse_tuple(struct parser *P, bool with_condexpr, const char *extra, bool explicit, struct jnode **out)
{
	const struct jtoken *at = cur(P);
	struct nvec items = { 0 };
	bool is_tuple = false;
	for (;;) {
		if (items.n && expect_op(P, ","))
			return P->err->code;
		if (tuple_end(P, extra))
			break;
		struct jnode *x;
		if (parse_expr(P, with_condexpr, &x) || nv_push(P, &items, x))
			return P->err->code;
		if (is_op(cur(P), ","))
			is_tuple = true;
		else
			break;
	}
	if (!is_tuple) {
		if (items.n) {
			*out = items.v[0];
			return 0;
		}
		if (!explicit)
			return fail(P, "expected an expression%s", NULL);
	}
	struct jnode *n = node(P, E_TUPLE, at);
	if (!n)
		return oom(P);
	n->kids = items.v;
	n->nkids = items.n;
	*out = n;
	return 0;
}

/* call arguments after '(' up to and including ')' */
static int parse_call_args(struct parser *P, struct jnode *n)
{
	struct nvec args = { 0 }, kwv = { 0 };
	struct svec kwn = { 0 };
	if (expect_op(P, "("))
		return P->err->code;
	while (!is_op(cur(P), ")")) {
		if (args.n + kwv.n && expect_op(P, ","))
			return P->err->code;
		if (is_op(cur(P), ")"))
			break;
		if (is_op(cur(P), "*") || is_op(cur(P), "**"))
			return fail_at(P, cur(P), HEARTH_EUNSUPPORTED, "*args and **kwargs in calls are not supported%s",
				       NULL);
		struct jnode *x;
		if (cur(P)->type == T_NAME && is_op(peek(P, 1), "=")) {
			const char *nm = dupname(P, cur(P));
			adv(P);
			adv(P);
			if (!nm || parse_expr(P, true, &x) || sv_push(P, &kwn, nm) || nv_push(P, &kwv, x))
				return P->err->code ? P->err->code : oom(P);
			continue;
		}
		if (kwv.n)
			return fail(P, "a positional argument follows keyword arguments%s", NULL);
		if (parse_expr(P, true, &x) || nv_push(P, &args, x))
			return P->err->code;
	}
	adv(P);
	n->kids = args.v;
	n->nkids = args.n;
	n->names = kwn.v;
	n->kids2 = kwv.v;
	n->nnames = n->nkids2 = kwv.n;
	return 0;
}

static int parse_filter(struct parser *P, struct jnode *operand, bool is_test, struct jnode **out)
{
	const struct jtoken *at = cur(P);
	struct jnode *n = node(P, is_test ? E_TEST : E_FILTER, at);
	if (!n)
		return oom(P);
	n->a = operand;
	if (is_test && skip_name(P, "not"))
		n->flag = 1;
	if (cur(P)->type != T_NAME)
		return fail(P, is_test ? "expected a test name%s" : "expected a filter name%s", NULL);
	const char *nm = dupname(P, cur(P));
	if (!nm)
		return oom(P);
	adv(P);
	while (is_op(cur(P), ".") && peek(P, 1)->type == T_NAME) { /* dotted names */
		adv(P);
		size_t l = strlen(nm);
		char *s = ja_alloc(P->a, l + 2 + cur(P)->len);
		if (!s)
			return oom(P);
		jmemcpy(s, nm, l);
		s[l] = '.';
		jmemcpy(s + l + 1, cur(P)->p, cur(P)->len);
		s[l + 1 + cur(P)->len] = 0;
		nm = s;
		adv(P);
	}
	n->name = nm;
	if (is_op(cur(P), "(")) {
		if (parse_call_args(P, n))
			return P->err->code;
	} else if (is_test) {
		const struct jtoken *t = cur(P);
		bool arg = t->type == T_NAME || t->type == T_STRING || t->type == T_INT || t->type == T_FLOAT ||
			   is_op(t, "[") || is_op(t, "{");
		if (arg && !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
			if (is_name(t, "is"))
				return fail(P, "you cannot chain multiple tests with is%s", NULL);
			struct jnode *x;
			if (parse_primary(P, &x) || parse_postfix(P, x, &x))
				return P->err->code;
			n->kids = ja_alloc(P->a, sizeof *n->kids);
			if (!n->kids)
				return oom(P);
			n->kids[0] = x;
			n->nkids = 1;
		}
	}
	*out = n;
	return 0;
}

static int parse_filter_expr(struct parser *P, struct jnode *n, struct jnode **out)
{
	for (;;) {
		if (is_op(cur(P), "|")) {
			adv(P);
			if (parse_filter(P, n, false, &n))
				return P->err->code;
		} else if (is_name(cur(P), "is")) {
			adv(P);
			if (parse_filter(P, n, true, &n))
				return P->err->code;
		} else if (is_op(cur(P), "(")) {
			struct jnode *c = node(P, E_CALL, cur(P));
			if (!c)
				return oom(P);
			c->a = n;
			if (parse_call_args(P, c))
				return P->err->code;
			n = c;
		} else {
			break;
		}
	}
	*out = n;
	return 0;
}

static int parse_subscript(struct parser *P, struct jnode *obj, struct jnode **out)
{
	const struct jtoken *at = cur(P);
	adv(P); /* '[' */
	struct jnode *parts[3] = { NULL, NULL, NULL };
	int np = 0;
	bool slice = false;
	for (;;) {
		if (is_op(cur(P), ":")) {
			slice = true;
			adv(P);
			if (++np > 2)
				return fail(P, "too many ':' in a slice%s", NULL);
			continue;
		}
		if (is_op(cur(P), "]"))
			break;
		if (parts[np])
			return fail(P, "expected ']'%s", NULL);
		if (!slice && np == 0) {
			if (parse_tuple(P, true, NULL, false, &parts[0]))
				return P->err->code;
			/* a plain subscript ends here unless a ':' follows */
			continue;
		}
		if (parse_expr(P, true, &parts[np]))
			return P->err->code;
	}
	adv(P);
	struct jnode *n = node(P, slice ? E_SLICE : E_ITEM, at);
	if (!n)
		return oom(P);
	n->a = obj;
	if (slice) {
		n->b = parts[0];
		n->c = parts[1];
		n->d = parts[2];
	} else {
		if (!parts[0])
			return fail_at(P, at, HEARTH_EINVAL, "expected a subscript%s", NULL);
		n->b = parts[0];
	}
	*out = n;
	return 0;
}

static int parse_postfix(struct parser *P, struct jnode *n, struct jnode **out)
{
	for (;;) {
		const struct jtoken *at = cur(P);
		if (is_op(at, ".")) {
			adv(P);
			struct jnode *x;
			if (cur(P)->type == T_NAME) {
				if (!(x = node(P, E_ATTR, at)) || !(x->name = dupname(P, cur(P))))
					return oom(P);
				x->a = n;
				adv(P);
			} else if (cur(P)->type == T_INT) {
				struct jnode *k = node(P, E_CONST, cur(P));
				if (!k || !(x = node(P, E_ITEM, at)))
					return oom(P);
				k->val = jv_int(cur(P)->i);
				x->a = n;
				x->b = k;
				adv(P);
			} else {
				return fail(P, "expected a name after '.'%s", NULL);
			}
			n = x;
		} else if (is_op(at, "[")) {
			if (parse_subscript(P, n, &n))
				return P->err->code;
		} else if (is_op(at, "(")) {
			struct jnode *c = node(P, E_CALL, at);
			if (!c)
				return oom(P);
			c->a = n;
			if (parse_call_args(P, c))
				return P->err->code;
			n = c;
		} else {
			break;
		}
	}
	*out = n;
	return 0;
}

static int const_str(struct parser *P, const struct jtoken *at, const char *p, size_t len, struct jnode **out)
{
	struct jnode *n = node(P, E_CONST, at);
	struct jstr *s = jstr_new(P->a, p, len);
	if (!n || !s)
		return oom(P);
	n->val = (struct jv){ .t = JT_STR, .s = s };
	*out = n;
	return 0;
}

static int parse_list_like(struct parser *P, bool dict, struct jnode **out)
{
	const struct jtoken *at = cur(P);
	const char *close = dict ? "}" : "]";
	adv(P);
	struct nvec k = { 0 }, v = { 0 };
	while (!is_op(cur(P), close)) {
		if (k.n && expect_op(P, ","))
			return P->err->code;
		if (is_op(cur(P), close))
			break;
		struct jnode *x, *y;
		if (parse_expr(P, true, &x) || nv_push(P, &k, x))
			return P->err->code;
		if (dict && (expect_op(P, ":") || parse_expr(P, true, &y) || nv_push(P, &v, y)))
			return P->err->code;
	}
	adv(P);
	struct jnode *n = node(P, dict ? E_DICT : E_LIST, at);
	if (!n)
		return oom(P);
	n->kids = k.v;
	n->nkids = k.n;
	n->kids2 = v.v;
	n->nkids2 = v.n;
	*out = n;
	return 0;
}

static int parse_primary(struct parser *P, struct jnode **out)
{
	const struct jtoken *t = cur(P);
	struct jnode *n;
	if (enter(P))
		return P->err->code;
	int rc = 0;
	if (t->type == T_NAME) {
		if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
			if (!(n = node(P, E_CONST, t)))
				return oom(P);
			n->val = jv_bool(t->p[0] == 't' || t->p[0] == 'T');
		} else if (is_name(t, "none") || is_name(t, "None")) {
			if (!(n = node(P, E_CONST, t)))
				return oom(P);
			n->val = jv_none();
		} else {
			if (!(n = node(P, E_NAME, t)) || !(n->name = dupname(P, t)))
				return oom(P);
		}
		adv(P);
	} else if (t->type == T_STRING) {
		size_t len = 0, k = P->i;
		while (P->t[k].type == T_STRING)
			len += P->t[k++].len;
		char *buf = ja_alloc(P->a, len + 1);
		if (!buf)
			return oom(P);
		size_t w = 0;
		while (cur(P)->type == T_STRING) {
			jmemcpy(buf + w, cur(P)->p, cur(P)->len);
			w += cur(P)->len;
			adv(P);
		}
		rc = const_str(P, t, buf, len, &n);
	} else if (t->type == T_INT || t->type == T_FLOAT) {
		if (!(n = node(P, E_CONST, t)))
			return oom(P);
		n->val = t->type == T_INT ? jv_int(t->i) : jv_float(t->f);
		adv(P);
	} else if (is_op(t, "(")) {
		adv(P);
		rc = parse_tuple(P, true, NULL, true, &n) || expect_op(P, ")");
	} else if (is_op(t, "[")) {
		rc = parse_list_like(P, false, &n);
	} else if (is_op(t, "{")) {
		rc = parse_list_like(P, true, &n);
	} else {
		return fail(P, "unexpected token%s", NULL);
	}
	P->nest--;
	if (rc)
		return P->err->code;
	*out = n;
	return 0;
}

static int parse_unary(struct parser *P, bool with_filter, struct jnode **out)
{
	const struct jtoken *t = cur(P);
	struct jnode *n;
	if (enter(P))
		return P->err->code;
	if (is_op(t, "-") || is_op(t, "+")) {
		adv(P);
		if (!(n = node(P, is_op(t, "-") ? E_NEG : E_POS, t)) || parse_unary(P, false, &n->a))
			return P->err->code ? P->err->code : oom(P);
	} else if (parse_primary(P, &n)) {
		return P->err->code;
	}
	if (parse_postfix(P, n, &n) || (with_filter && parse_filter_expr(P, n, &n)))
		return P->err->code;
	P->nest--;
	*out = n;
	return 0;
}

static int binop(struct parser *P, int op, const struct jtoken *at, struct jnode *l, struct jnode *r,
		 struct jnode **out)
{
	struct jnode *n = node(P, E_BIN, at);
	if (!n)
		return oom(P);
	n->flag = (uint8_t)op;
	n->a = l;
	n->b = r;
	*out = n;
	return 0;
}

static int parse_pow(struct parser *P, struct jnode **out)
{
	struct jnode *l, *r;
	if (parse_unary(P, true, &l))
		return P->err->code;
	while (is_op(cur(P), "**")) {
		const struct jtoken *at = cur(P);
		adv(P);
		if (parse_unary(P, true, &r) || binop(P, OP_POW, at, l, r, &l))
			return P->err->code;
	}
	*out = l;
	return 0;
}

static int parse_math2(struct parser *P, struct jnode **out)
{
	struct jnode *l, *r;
	if (parse_pow(P, &l))
		return P->err->code;
	for (;;) {
		const struct jtoken *at = cur(P);
		int op = is_op(at, "*") ? OP_MUL : is_op(at, "/") ? OP_DIV : is_op(at, "//") ? OP_FDIV :
			 is_op(at, "%") ? OP_MOD : 0;
		if (!op)
			break;
		adv(P);
		if (parse_pow(P, &r) || binop(P, op, at, l, r, &l))
			return P->err->code;
	}
	*out = l;
	return 0;
}

static int parse_concat(struct parser *P, struct jnode **out)
{
	struct jnode *x;
	if (parse_math2(P, &x))
		return P->err->code;
	if (!is_op(cur(P), "~")) {
		*out = x;
		return 0;
	}
	struct jnode *n = node(P, E_CONCAT, cur(P));
	struct nvec v = { 0 };
	if (!n || nv_push(P, &v, x))
		return oom(P);
	while (skip_op(P, "~"))
		if (parse_math2(P, &x) || nv_push(P, &v, x))
			return P->err->code;
	n->kids = v.v;
	n->nkids = v.n;
	*out = n;
	return 0;
}

static int parse_math1(struct parser *P, struct jnode **out)
{
	struct jnode *l, *r;
	if (parse_concat(P, &l))
		return P->err->code;
	for (;;) {
		const struct jtoken *at = cur(P);
		int op = is_op(at, "+") ? OP_ADD : is_op(at, "-") ? OP_SUB : 0;
		if (!op)
			break;
		adv(P);
		if (parse_concat(P, &r) || binop(P, op, at, l, r, &l))
			return P->err->code;
	}
	*out = l;
	return 0;
}

static int parse_compare(struct parser *P, struct jnode **out)
{
	struct jnode *first, *x;
	const struct jtoken *at = cur(P);
	if (parse_math1(P, &first))
		return P->err->code;
	struct nvec v = { 0 };
	uint8_t ops[64];
	size_t nops = 0;
	for (;;) {
		const struct jtoken *t = cur(P);
		int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT : is_op(t, "<=") ? OP_LE :
			 is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE : is_name(t, "in") ? OP_IN : 0;
		if (!op && is_name(t, "not") && is_name(peek(P, 1), "in")) {
			op = OP_NOTIN;
			adv(P);
		}
		if (!op)
			break;
		adv(P);
		if (nops == sizeof ops)
			return fail(P, "too many chained comparisons%s", NULL);
		if (parse_math1(P, &x) || nv_push(P, &v, x))
			return P->err->code;
		ops[nops++] = (uint8_t)op;
	}
	if (!nops) {
		*out = first;
		return 0;
	}
	struct jnode *n = node(P, E_CMP, at);
	if (!n || !(n->ops = ja_alloc(P->a, nops)))
		return oom(P);
	jmemcpy(n->ops, ops, nops);
	n->a = first;
	n->kids = v.v;
	n->nkids = v.n;
	*out = n;
	return 0;
}

static int parse_not(struct parser *P, struct jnode **out)
{
	const struct jtoken *t = cur(P);
	if (is_name(t, "not")) {
		adv(P);
		struct jnode *n = node(P, E_NOT, t);
		if (!n)
			return oom(P);
		if (enter(P) || parse_not(P, &n->a))
			return P->err->code;
		P->nest--;
		*out = n;
		return 0;
	}
	return parse_compare(P, out);
}

/* A left-associative chain `sub (word sub)*` of nodes of kind. */
static int parse_chain(struct parser *P, const char *word, int kind, int (*sub)(struct parser *, struct jnode **),
		       struct jnode **out)
{
	struct jnode *l, *r;
	if (sub(P, &l))
		return P->err->code;
	while (is_name(cur(P), word)) {
		const struct jtoken *at = cur(P);
		adv(P);
		if (sub(P, &r))
			return P->err->code;
		struct jnode *n = node(P, kind, at);
		if (!n)
			return oom(P);
		n->a = l;
		n->b = r;
		l = n;
	}
	*out = l;
	return 0;
}

static int parse_and(struct parser *P, struct jnode **out) { return parse_chain(P, "and", E_AND, parse_not, out); }

static int parse_or(struct parser *P, struct jnode **out) { return parse_chain(P, "or", E_OR, parse_and, out); }

static int parse_expr(struct parser *P, bool with_condexpr, struct jnode **out)
{
	struct jnode *e1;
	if (enter(P) || parse_or(P, &e1))
		return P->err->code;
	while (with_condexpr && is_name(cur(P), "if")) {
		const struct jtoken *at = cur(P);
		adv(P);
		struct jnode *n = node(P, E_COND, at);
		if (!n)
			return oom(P);
		n->a = e1;
		if (parse_or(P, &n->b))
			return P->err->code;
		if (skip_name(P, "else") && parse_expr(P, true, &n->c))
			return P->err->code;
		e1 = n;
	}
	P->nest--;
	*out = e1;
	return 0;
}

/* ---- statements ---- */

static int subparse(struct parser *P, const char *const *ends, struct nvec *body);

static int parse_body(struct parser *P, const char *const *ends, struct jnode ***kids, size_t *n)
{
	struct nvec v = { 0 };
	if (enter(P) || subparse(P, ends, &v))
		return P->err->code;
	P->nest--;
	*kids = v.v;
	*n = v.n;
	return 0;
}

/* after a body: the end tag's name is current; consume "name %}" */
static int end_tag(struct parser *P)
{
	adv(P);
	return expect_end(P);
}

static int parse_target_name(struct parser *P, struct svec *names)
{
	if (cur(P)->type != T_NAME)
		return fail(P, "expected a name to assign to%s", NULL);
	const char *nm = dupname(P, cur(P));
	if (!nm || sv_push(P, names, nm))
		return oom(P);
	adv(P);
	return 0;
}

/* name | name, name ... | (name, name) ; flag 1 when a tuple */
static int parse_targets(struct parser *P, struct jnode *n)
{
	struct svec names = { 0 };
	bool paren = skip_op(P, "(");
	bool tuple = paren;
	if (parse_target_name(P, &names))
		return P->err->code;
	while (skip_op(P, ",")) {
		tuple = true;
		if (cur(P)->type != T_NAME)
			break;
		if (parse_target_name(P, &names))
			return P->err->code;
	}
	if (paren && expect_op(P, ")"))
		return P->err->code;
	n->names = names.v;
	n->nnames = names.n;
	n->flag = tuple;
	return 0;
}

static int parse_for(struct parser *P, struct jnode *n)
{
	static const char *const ends1[] = { "endfor", "else", NULL }, *const ends2[] = { "endfor", NULL };
	if (parse_targets(P, n))
		return P->err->code;
	if (!skip_name(P, "in"))
		return fail(P, "expected 'in'%s", NULL);
	if (parse_tuple(P, false, "recursive", false, &n->a))
		return P->err->code;
	if (skip_name(P, "if") && parse_expr(P, true, &n->b))
		return P->err->code;
	if (is_name(cur(P), "recursive"))
		return fail_at(P, cur(P), HEARTH_EUNSUPPORTED, "recursive loops are not supported%s", NULL);
	if (expect_end(P) || parse_body(P, ends1, &n->kids, &n->nkids))
		return P->err->code;
	if (is_name(cur(P), "else")) {
		if (end_tag(P) || parse_body(P, ends2, &n->kids2, &n->nkids2))
			return P->err->code;
	}
	return end_tag(P);
}

static int parse_if(struct parser *P, struct jnode *n)
{
	static const char *const ends1[] = { "elif", "else", "endif", NULL }, *const ends2[] = { "endif", NULL };
	if (parse_tuple(P, false, NULL, false, &n->a) || expect_end(P) || parse_body(P, ends1, &n->kids, &n->nkids))
		return P->err->code;
	if (is_name(cur(P), "elif")) {
		struct jnode *e = node(P, N_IF, cur(P));
		if (!e || !(n->kids2 = ja_alloc(P->a, sizeof *n->kids2)))
			return oom(P);
		adv(P);
		n->kids2[0] = e;
		n->nkids2 = 1;
		if (enter(P) || parse_if(P, e))
			return P->err->code;
		P->nest--;
		return 0;
	}
	if (is_name(cur(P), "else")) {
		if (end_tag(P) || parse_body(P, ends2, &n->kids2, &n->nkids2))
			return P->err->code;
	}
	return end_tag(P);
}

/* filters of a {% filter %} or {% set x | f %}: a chain of E_FILTER with a NULL innermost operand */
static int parse_filter_chain(struct parser *P, struct jnode **out)
{
	struct jnode *n = NULL;
	do {
		if (parse_filter(P, n, false, &n))
			return P->err->code;
	} while (skip_op(P, "|"));
	*out = n;
	return 0;
}

static int parse_set(struct parser *P, struct jnode *n)
{
	static const char *const ends[] = { "endset", NULL };
	if (cur(P)->type == T_NAME && is_op(peek(P, 1), ".") && peek(P, 2)->type == T_NAME) {
		struct jnode *ns = node(P, E_NAME, cur(P));
		if (!ns || !(ns->name = dupname(P, cur(P))))
			return oom(P);
		adv(P);
		adv(P);
		if (!(n->name = dupname(P, cur(P))))
			return oom(P);
		adv(P);
		n->a = ns;
	} else if (parse_targets(P, n)) {
		return P->err->code;
	}
	if (skip_op(P, "="))
		return parse_tuple(P, true, NULL, false, &n->b) || expect_end(P);
	n->kind = N_SETBLOCK;
	if (skip_op(P, "|") && parse_filter_chain(P, &n->c))
		return P->err->code;
	if (expect_end(P) || parse_body(P, ends, &n->kids, &n->nkids))
		return P->err->code;
	return end_tag(P);
}

/* (a, b=default, ...) of a macro or a call block */
static int parse_signature(struct parser *P, struct jnode *n)
{
	struct svec names = { 0 };
	struct nvec defs = { 0 };
	if (expect_op(P, "("))
		return P->err->code;
	while (!is_op(cur(P), ")")) {
		if (names.n && expect_op(P, ","))
			return P->err->code;
		if (is_op(cur(P), ")"))
			break;
		if (parse_target_name(P, &names))
			return P->err->code;
		struct jnode *d = NULL;
		if (skip_op(P, "=")) {
			if (parse_expr(P, true, &d))
				return P->err->code;
		} else if (defs.n && defs.v[defs.n - 1]) {
			return fail(P, "non-default argument follows default argument%s", NULL);
		}
		if (nv_push(P, &defs, d))
			return P->err->code;
	}
	adv(P);
	n->names = names.v;
	n->nnames = names.n;
	n->kids2 = defs.v;
	n->nkids2 = defs.n;
	return 0;
}

static int parse_macro(struct parser *P, struct jnode *n)
{
	static const char *const ends[] = { "endmacro", NULL };
	if (cur(P)->type != T_NAME)
		return fail(P, "expected the macro's name%s", NULL);
	if (!(n->name = dupname(P, cur(P))))
		return oom(P);
	adv(P);
	if (parse_signature(P, n) || expect_end(P) || parse_body(P, ends, &n->kids, &n->nkids))
		return P->err->code;
	return end_tag(P);
}

static int parse_call_block(struct parser *P, struct jnode *n)
{
	static const char *const ends[] = { "endcall", NULL };
	if (is_op(cur(P), "(") && parse_signature(P, n))
		return P->err->code;
	struct jnode *call;
	if (parse_expr(P, true, &call))
		return P->err->code;
	if (call->kind != E_CALL)
		return fail(P, "expected a call after {%% call %%}%s", NULL);
	n->a = call;
	if (expect_end(P) || parse_body(P, ends, &n->kids, &n->nkids))
		return P->err->code;
	return end_tag(P);
}

static int parse_with(struct parser *P, struct jnode *n)
{
	static const char *const ends[] = { "endwith", NULL };
	struct svec names = { 0 };
	struct nvec vals = { 0 };
	while (cur(P)->type != T_BLOCK_END) {
		if (names.n && expect_op(P, ","))
			return P->err->code;
		struct jnode *v;
		if (parse_target_name(P, &names) || expect_op(P, "=") || parse_expr(P, true, &v) ||
		    nv_push(P, &vals, v))
			return P->err->code;
	}
	n->names = names.v;
	n->nnames = names.n;
	n->kids2 = vals.v;
	n->nkids2 = vals.n;
	if (expect_end(P) || parse_body(P, ends, &n->kids, &n->nkids))
		return P->err->code;
	return end_tag(P);
}

static int parse_statement(struct parser *P, struct jnode **out)
{
	const struct jtoken *t = cur(P);
	static const char *const unsupported[] = { "include", "import", "from", "extends", "block", NULL };
	if (t->type != T_NAME)
		return fail(P, "expected a statement name after '{%%'%s", NULL);
	for (int k = 0; unsupported[k]; k++)
		if (is_name(t, unsupported[k]))
			return fail_at(P, t, HEARTH_EUNSUPPORTED, "{%% %s %%} is not supported in chat templates",
				       unsupported[k]);
	struct jnode *n = node(P, N_BODY, t);
	if (!n)
		return oom(P);
	adv(P);
	int rc;
	if (is_name(t, "for")) {
		n->kind = N_FOR;
		rc = parse_for(P, n);
	} else if (is_name(t, "if")) {
		n->kind = N_IF;
		rc = parse_if(P, n);
	} else if (is_name(t, "set")) {
		n->kind = N_SET;
		rc = parse_set(P, n);
	} else if (is_name(t, "macro")) {
		n->kind = N_MACRO;
		rc = parse_macro(P, n);
	} else if (is_name(t, "call")) {
		n->kind = N_CALLBLOCK;
		rc = parse_call_block(P, n);
	} else if (is_name(t, "filter")) {
		static const char *const ends[] = { "endfilter", NULL };
		n->kind = N_FILTERBLOCK;
		rc = parse_filter_chain(P, &n->c) || expect_end(P) || parse_body(P, ends, &n->kids, &n->nkids) ||
		     end_tag(P);
	} else if (is_name(t, "with")) {
		n->kind = N_WITH;
		rc = parse_with(P, n);
	} else if (is_name(t, "break") || is_name(t, "continue")) {
		n->kind = is_name(t, "break") ? N_BREAK : N_CONTINUE;
		rc = expect_end(P);
	} else if (is_name(t, "generation")) {
		static const char *const ends[] = { "endgeneration", NULL };
		rc = expect_end(P) || parse_body(P, ends, &n->kids, &n->nkids) || end_tag(P);
	} else {
		char nm[64];
		snprintf(nm, sizeof nm, "%.*s", (int)(t->len < 60 ? t->len : 60), t->p);
		return fail_at(P, t, HEARTH_EINVAL, "encountered unknown tag '%s'", nm);
	}
	if (rc)
		return P->err->code ? P->err->code : oom(P);
	*out = n;
	return 0;
}

static int subparse(struct parser *P, const char *const *ends, struct nvec *body)
{
	for (;;) {
		const struct jtoken *t = cur(P);
		struct jnode *n = NULL;
		if (t->type == T_EOF) {
			if (ends) {
				const char *want = ends[0];
				for (int k = 0; ends[k]; k++)
					if (!strncmp(ends[k], "end", 3))
						want = ends[k];
				return fail(P, "unexpected end of template: missing {%% %s %%}", want);
			}
			return 0;
		}
		if (t->type == T_DATA) {
			if (const_str(P, t, t->p, t->len, &n))
				return P->err->code;
			n->kind = N_TEXT;
			adv(P);
		} else if (t->type == T_VAR_BEGIN) {
			adv(P);
			if (!(n = node(P, N_OUT, t)) || parse_tuple(P, true, NULL, false, &n->a))
				return P->err->code ? P->err->code : oom(P);
			if (cur(P)->type != T_VAR_END)
				return fail(P, "expected the end of the print statement ('}}')%s", NULL);
			adv(P);
		} else if (t->type == T_BLOCK_BEGIN) {
			adv(P);
			for (int k = 0; ends && ends[k]; k++)
				if (is_name(cur(P), ends[k]))
					return 0;
			if (parse_statement(P, &n))
				return P->err->code;
		} else {
			return fail(P, "unexpected token%s", NULL);
		}
		if (nv_push(P, body, n))
			return P->err->code;
	}
}

int jinja_parse(const struct jtokens *toks, struct jarena *a, struct jnode **root, struct hearth_err *err)
{
	struct parser P = { .t = toks->v, .n = toks->n, .a = a, .err = err };
	struct jnode *n = node(&P, N_BODY, &toks->v[0]);
	struct nvec body = { 0 };
	if (!n)
		return oom(&P);
	if (subparse(&P, NULL, &body))
		return err->code;
	n->kids = body.v;
	n->nkids = body.n;
	*root = n;
	return 0;
}
