/*
 * gbnf.c - GBNF text to the flat rule form of gram.h.
 *
 * The syntax is llama.cpp's GBNF: `name ::= alternatives`, alternatives
 * separated by `|`, sequences of "literals" (escapes \n \r \t \\ \" \' \[ \]
 * \- \^ \/ \xHH \uHHHH \UHHHHHHHH), [classes] with ranges and [^negation],
 * `.` (any code point), rule names, ( groups ), and the postfix operators
 * * + ? {m} {m,} {m,n} {,n}; `#` starts a comment. Rules may be referenced
 * before they are defined. Newlines are white space: a rule's body ends
 * where the next `name ::=` begins (which also accepts every layout
 * llama.cpp accepts).
 *
 * Groups and repeated atoms become generated rules (see gram.h). Limits:
 * GRAM_MAX_TEXT bytes of text, GRAM_MAX_NESTING levels of parentheses,
 * GRAM_MAX_RULES rules, GRAM_MAX_ELEMENTS elements after the expansion of
 * repetitions, GRAM_MAX_REPEAT for the bounds of {m,n}. Left recursion
 * (a rule that can reach itself without consuming a character) is refused
 * with the rule's name, since a top-down matcher could not follow it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/strmap.h"
#include "gram.h"

struct gvec {
	struct gel *v;
	int32_t n, cap;
};

struct grule {
	char *name;        /* NULL for a generated rule */
	int32_t parent;    /* generated: the named rule it came from */
	struct gvec body;
	const char *ref_at; /* first reference (for "undefined rule" errors) */
	bool defined;
};

struct gp {
	const char *s, *p, *end;
	struct grule *rule;
	int32_t n_rule, cap_rule;
	int32_t n_el_total;
	struct strmap names;
	uint32_t *range;
	int32_t n_range, cap_range;
	struct gclass *cls;
	int32_t n_cls, cap_cls;
	int32_t cur;       /* the named rule being parsed */
	struct hearth_err *err;
};

static void where(const struct gp *g, const char *at, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (const char *q = g->s; q < at && q < g->end; q++) {
		if (*q == '\n') {
			++*line;
			*col = 1;
		} else {
			++*col;
		}
	}
}

static int perr(struct gp *g, const char *at, const char *what)
{
	int line, col;
	where(g, at, &line, &col);
	return err_set(g->err, HEARTH_EINVAL, "grammar: line %d, column %d: %s", line, col, what);
}

static bool grow(void **v, int32_t *cap, int32_t need, size_t size)
{
	if (need <= *cap)
		return true;
	int32_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *n = realloc(*v, (size_t)c * size);
	if (!n)
		return false;
	*v = n;
	*cap = c;
	return true;
}

static int emit(struct gp *g, int32_t r, int32_t type, int32_t val)
{
	struct gvec *b = &g->rule[r].body;
	if (g->n_el_total >= GRAM_MAX_ELEMENTS)
		return perr(g, g->p, "the grammar expands to too many elements (repetitions too large)");
	if (!grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v))
		return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
	b->v[b->n++] = (struct gel){ type, val };
	g->n_el_total++;
	return 0;
}

/* A new rule; named (name != NULL, len bytes) or generated. Returns its index or a negative error. */
static int32_t rule_add(struct gp *g, const char *name, size_t len)
{
	if (g->n_rule >= GRAM_MAX_RULES)
		return perr(g, g->p, "too many rules");
	if (!grow((void **)&g->rule, &g->cap_rule, g->n_rule + 1, sizeof *g->rule))
		return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
	struct grule *r = &g->rule[g->n_rule];
	memset(r, 0, sizeof *r);
	r->parent = g->cur;
	if (name) {
		if (!(r->name = malloc(len + 1)))
			return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
		memcpy(r->name, name, len);
		r->name[len] = 0;
		if (strmap_put(&g->names, r->name, len, g->n_rule) < 0) {
			free(r->name);
			return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
		}
	} else {
		r->defined = true;
	}
	return g->n_rule++;
}

static int32_t rule_named(struct gp *g, const char *name, size_t len)
{
	int32_t r = strmap_get(&g->names, name, len);
	return r >= 0 ? r : rule_add(g, name, len);
}

static bool is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void skip_space(struct gp *g)
{
	while (g->p < g->end) {
		char c = *g->p;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			g->p++;
		} else if (c == '#') {
			while (g->p < g->end && *g->p != '\n')
				g->p++;
		} else {
			break;
		}
	}
}

static size_t word_len(const struct gp *g, const char *at)
{
	const char *q = at;
	while (q < g->end && is_word(*q))
		q++;
	return (size_t)(q - at);
}

/* Is the text at `at` a rule definition's head, `name ::=`? */
static bool at_definition(struct gp *g, const char *at)
{
	size_t n = word_len(g, at);
	if (!n)
		return false;
	const char *save = g->p;
	g->p = at + n;
	skip_space(g);
	bool yes = g->end - g->p >= 3 && !memcmp(g->p, "::=", 3);
	g->p = save;
	return yes;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One character of a literal or class (escape or UTF-8) into *cp. */
static int parse_char(struct gp *g, uint32_t *cp)
{
	const char *at = g->p;
	if (g->p >= g->end)
		return perr(g, at, "unexpected end of the grammar");
	if (*g->p != '\\') {
		size_t k = hearth_utf8_valid(g->p, (size_t)(g->end - g->p));
		if (!k)
			return perr(g, at, "invalid UTF-8");
		const unsigned char *u = (const unsigned char *)g->p;
		uint32_t c = k == 1 ? u[0] : u[0] & (0x7fu >> k);
		for (size_t j = 1; j < k; j++)
			c = (c << 6) | (u[j] & 0x3fu);
		*cp = c;
		g->p += k;
		return 0;
	}
	if (++g->p >= g->end)
		return perr(g, at, "unexpected end of the grammar after '\\'");
	char e = *g->p++;
	int nhex = 0;
	switch (e) {
	case 'n': *cp = '\n'; return 0;
	case 'r': *cp = '\r'; return 0;
	case 't': *cp = '\t'; return 0;
	case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/':
		*cp = (uint32_t)e;
		return 0;
	case 'x': nhex = 2; break;
	case 'u': nhex = 4; break;
	case 'U': nhex = 8; break;
	default: {
		char msg[64];
		snprintf(msg, sizeof msg, "bad escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
		return perr(g, at, msg);
	}
	}
	uint32_t v = 0;
	for (int i = 0; i < nhex; i++) {
		int h = g->p < g->end ? hexval(*g->p) : -1;
		if (h < 0)
			return perr(g, at, "bad escape: too few hex digits");
		v = v * 16 + (uint32_t)h;
		g->p++;
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return perr(g, at, "bad escape: not a Unicode scalar value");
	*cp = v;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* A class from n ranges (pairs in r, unsorted), negated when neg; returns its index or an error. */
static int32_t class_add(struct gp *g, uint32_t *r, int32_t n, bool neg)
{
	if (n)
		qsort(r, (size_t)n, 2 * sizeof *r, cmp_range);
	int32_t m = 0;
	for (int32_t i = 0; i < n; i++) { /* merge overlapping and adjacent ranges */
		if (m && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
			if (r[2 * i + 1] > r[2 * (m - 1) + 1])
				r[2 * (m - 1) + 1] = r[2 * i + 1];
		} else {
			r[2 * m] = r[2 * i];
			r[2 * m + 1] = r[2 * i + 1];
			m++;
		}
	}
	if (!grow((void **)&g->range, &g->cap_range, g->n_range + m + 1, 2 * sizeof *g->range) ||
	    !grow((void **)&g->cls, &g->cap_cls, g->n_cls + 1, sizeof *g->cls))
		return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
	uint32_t *o = g->range + 2 * (size_t)g->n_range;
	int32_t k = 0;
	if (!neg) {
		if (m)
			memcpy(o, r, (size_t)m * 2 * sizeof *r);
		k = m;
	} else {
		uint32_t next = 0;
		for (int32_t i = 0; i < m; i++) {
			if (r[2 * i] > next) {
				o[2 * k] = next;
				o[2 * k++ + 1] = r[2 * i] - 1;
			}
			next = r[2 * i + 1] + 1;
		}
		if (next <= 0x10ffff) {
			o[2 * k] = next;
			o[2 * k++ + 1] = 0x10ffff;
		}
	}
	struct gclass *c = &g->cls[g->n_cls];
	memset(c, 0, sizeof *c);
	c->off = g->n_range;
	c->n = k;
	for (int32_t i = 0; i < k; i++)
		for (uint32_t x = o[2 * i]; x <= o[2 * i + 1] && x < 128; x++)
			c->ascii[x >> 5] |= 1u << (x & 31);
	g->n_range += k;
	return g->n_cls++;
}

static int parse_class(struct gp *g, int32_t *out)
{
	const char *at = g->p++; /* '[' */
	bool neg = g->p < g->end && *g->p == '^';
	uint32_t *r = NULL;
	int32_t n = 0, cap = 0;
	int rc = 0;
	g->p += neg;
	while (!rc && (g->p >= g->end || *g->p != ']')) {
		uint32_t lo, hi;
		if (g->p >= g->end) {
			rc = perr(g, at, "unterminated character class");
			break;
		}
		if ((rc = parse_char(g, &lo)))
			break;
		hi = lo;
		if (g->end - g->p >= 2 && g->p[0] == '-' && g->p[1] != ']') {
			g->p++;
			if ((rc = parse_char(g, &hi)))
				break;
			if (hi < lo) {
				rc = perr(g, at, "character class range out of order");
				break;
			}
		}
		if (!grow((void **)&r, &cap, n + 1, 2 * sizeof *r)) {
			rc = err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
			break;
		}
		r[2 * n] = lo;
		r[2 * n++ + 1] = hi;
	}
	if (!rc) {
		g->p++;
		int32_t k = class_add(g, r, n, neg);
		if (k < 0)
			rc = k;
		*out = k;
	}
	free(r);
	return rc;
}

static int32_t class_one(struct gp *g, uint32_t lo, uint32_t hi)
{
	uint32_t r[2] = { lo, hi };
	return class_add(g, r, 1, false);
}

static int parse_alts(struct gp *g, int32_t r, int depth);

/* Wraps elements [from, n) of rule r into a new generated rule; leaves one reference in their place. */
static int wrap(struct gp *g, int32_t r, int32_t from)
{
	int32_t w = rule_add(g, NULL, 0);
	if (w < 0)
		return w;
	struct gvec *b = &g->rule[r].body;
	for (int32_t i = from; i < b->n; i++) {
		int rc = emit(g, w, b->v[i].type, b->v[i].val);
		if (rc)
			return rc;
		b = &g->rule[r].body;
	}
	g->n_el_total -= b->n - from;
	b->n = from;
	return emit(g, r, GEL_RULE, w);
}

static int parse_count(struct gp *g, int32_t *v)
{
	int64_t x = 0;
	const char *at = g->p;
	if (g->p >= g->end || *g->p < '0' || *g->p > '9')
		return perr(g, at, "expected a number in {m,n}");
	while (g->p < g->end && *g->p >= '0' && *g->p <= '9') {
		x = x * 10 + (*g->p++ - '0');
		if (x > GRAM_MAX_REPEAT)
			return perr(g, at, "repetition count too large");
	}
	*v = (int32_t)x;
	return 0;
}

/* Reads a postfix operator into min, max (-1: unbounded); false when none is there. */
static int parse_postfix(struct gp *g, int32_t *min, int32_t *max, bool *has)
{
	*has = true;
	char c = g->p < g->end ? *g->p : 0;
	if (c == '*' || c == '+' || c == '?') {
		g->p++;
		*min = c == '+';
		*max = c == '?' ? 1 : -1;
		return 0;
	}
	if (c != '{') {
		*has = false;
		return 0;
	}
	const char *at = g->p++;
	int rc;
	skip_space(g);
	*min = 0;
	if (g->p < g->end && *g->p != ',' && (rc = parse_count(g, min)))
		return rc;
	skip_space(g);
	*max = *min;
	if (g->p < g->end && *g->p == ',') {
		g->p++;
		skip_space(g);
		*max = -1;
		if (g->p < g->end && *g->p != '}' && (rc = parse_count(g, max)))
			return rc;
		skip_space(g);
	}
	if (g->p >= g->end || *g->p != '}')
		return perr(g, at, "expected '}' to close the repetition");
	g->p++;
	if (*max >= 0 && *max < *min)
		return perr(g, at, "repetition {m,n} with n < m");
	return 0;
}

/* Replaces the last element of rule r (one atom) by its repetition min..max. */
static int repeat(struct gp *g, int32_t r, int32_t min, int32_t max)
{
	struct gvec *b = &g->rule[r].body;
	const struct gel x = b->v[--b->n];
	int rc = 0;
	g->n_el_total--;
	for (int32_t i = 0; i < min && !rc; i++)
		rc = emit(g, r, x.type, x.val);
	if (rc || max == min)
		return rc;
	if (max < 0) { /* S ::= x S | (empty) */
		int32_t s = rule_add(g, NULL, 0);
		if (s < 0)
			return s;
		if ((rc = emit(g, s, x.type, x.val)) || (rc = emit(g, s, GEL_RULE, s)) || (rc = emit(g, s, GEL_ALT, 0)))
			return rc;
		return emit(g, r, GEL_RULE, s);
	}
	int32_t prev = -1; /* O_k ::= x O_(k-1) | (empty) */
	for (int32_t k = 1; k <= max - min; k++) {
		int32_t o = rule_add(g, NULL, 0);
		if (o < 0)
			return o;
		if ((rc = emit(g, o, x.type, x.val)) || (prev >= 0 && (rc = emit(g, o, GEL_RULE, prev))) ||
		    (rc = emit(g, o, GEL_ALT, 0)))
			return rc;
		prev = o;
	}
	return emit(g, r, GEL_RULE, prev);
}

/* One atom (literal, class, '.', name, group) appended to rule r. */
static int parse_atom(struct gp *g, int32_t r, int depth)
{
	const char *at = g->p;
	char c = *g->p;
	int rc = 0;
	int32_t k;
	if (c == '"') {
		const int32_t from = g->rule[r].body.n;
		g->p++;
		while (!rc && (g->p >= g->end || *g->p != '"')) {
			uint32_t cp;
			if (g->p >= g->end)
				return perr(g, at, "unterminated literal");
			if ((rc = parse_char(g, &cp)) || (k = class_one(g, cp, cp)) < 0)
				return rc ? rc : k;
			rc = emit(g, r, GEL_CHAR, k);
		}
		g->p++;
		const int32_t n = g->rule[r].body.n - from;
		const bool post = g->p < g->end && (*g->p == '*' || *g->p == '+' || *g->p == '?' || *g->p == '{');
		if (!rc && (n == 0 || (n != 1 && post)))
			rc = wrap(g, r, from); /* a postfix applies to the whole literal; "" is an empty rule */
		return rc;
	}
	if (c == '[') {
		if ((rc = parse_class(g, &k)))
			return rc;
		return emit(g, r, GEL_CHAR, k);
	}
	if (c == '.') {
		g->p++;
		if ((k = class_one(g, 0, 0x10ffff)) < 0)
			return k;
		return emit(g, r, GEL_CHAR, k);
	}
	if (c == '(') {
		if (depth >= GRAM_MAX_NESTING)
			return perr(g, at, "groups nested too deeply");
		g->p++;
		int32_t s = rule_add(g, NULL, 0);
		if (s < 0)
			return s;
		if ((rc = parse_alts(g, s, depth + 1)))
			return rc;
		skip_space(g);
		if (g->p >= g->end || *g->p != ')')
			return perr(g, at, "unclosed '(' (expected ')')");
		g->p++;
		return emit(g, r, GEL_RULE, s);
	}
	size_t n = word_len(g, g->p);
	if (!n) {
		char msg[64];
		snprintf(msg, sizeof msg, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
		return perr(g, at, msg);
	}
	int32_t ref = rule_named(g, g->p, n);
	if (ref < 0)
		return ref;
	if (!g->rule[ref].ref_at)
		g->rule[ref].ref_at = g->p;
	g->p += n;
	return emit(g, r, GEL_RULE, ref);
}

static int parse_seq(struct gp *g, int32_t r, int depth)
{
	for (;;) {
		skip_space(g);
		if (g->p >= g->end || *g->p == '|' || *g->p == ')' || at_definition(g, g->p))
			return 0;
		int rc = parse_atom(g, r, depth);
		int32_t min, max;
		bool has;
		if (rc || (rc = parse_postfix(g, &min, &max, &has)))
			return rc;
		if (has && (rc = repeat(g, r, min, max)))
			return rc;
	}
}

static int parse_alts(struct gp *g, int32_t r, int depth)
{
	int rc = parse_seq(g, r, depth);
	while (!rc && g->p < g->end && *g->p == '|') {
		g->p++;
		if (!(rc = emit(g, r, GEL_ALT, 0)))
			rc = parse_seq(g, r, depth);
	}
	return rc;
}

static int parse_rules(struct gp *g)
{
	for (;;) {
		skip_space(g);
		if (g->p >= g->end)
			return 0;
		const char *at = g->p;
		size_t n = word_len(g, g->p);
		if (!n)
			return perr(g, at, "expected a rule name");
		int32_t r = rule_named(g, g->p, n);
		if (r < 0)
			return r;
		g->p += n;
		skip_space(g);
		if (g->end - g->p < 3 || memcmp(g->p, "::=", 3))
			return perr(g, g->p, "expected '::='");
		g->p += 3;
		if (g->rule[r].defined) {
			char msg[160];
			snprintf(msg, sizeof msg, "rule '%.100s' defined twice", g->rule[r].name);
			return perr(g, at, msg);
		}
		g->rule[r].defined = true;
		g->cur = r;
		int rc = parse_alts(g, r, 0);
		if (rc)
			return rc;
		if (g->p < g->end && *g->p == ')')
			return perr(g, g->p, "unmatched ')'");
	}
}

/* The rule a generated rule came from, for messages. */
static const char *rule_name(const struct gp *g, int32_t r)
{
	for (int i = 0; i < 64 && r >= 0 && !g->rule[r].name; i++)
		r = g->rule[r].parent;
	return r >= 0 && g->rule[r].name ? g->rule[r].name : "?";
}

static int cmp_u32(const void *a, const void *b)
{
	const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* gram.alt and gram.rule_alt: where each rule's alternatives start. */
static int index_alts(struct gram *gr)
{
	int32_t n_alt = 0;
	for (int32_t i = 0; i < gr->n_el; i++)
		n_alt += gr->el[i].type == GEL_ALT || gr->el[i].type == GEL_END;
	gr->alt = malloc((size_t)n_alt * sizeof *gr->alt);
	gr->rule_alt = malloc((size_t)(gr->n_rule + 1) * sizeof *gr->rule_alt);
	if (!gr->alt || !gr->rule_alt)
		return HEARTH_ENOMEM;
	n_alt = 0;
	for (int32_t r = 0; r < gr->n_rule; r++) {
		gr->rule_alt[r] = n_alt;
		gr->alt[n_alt++] = gr->rule_start[r];
		for (int32_t i = gr->rule_start[r]; gr->el[i].type != GEL_END; i++)
			if (gr->el[i].type == GEL_ALT)
				gr->alt[n_alt++] = i + 1;
	}
	gr->rule_alt[gr->n_rule] = n_alt;
	return 0;
}

/* gram.cut: the intervals of code points >= 128 that no class tells apart. */
static int cut_intervals(struct gram *gr)
{
	if (!(gr->cut = malloc(((size_t)gr->n_range * 2 + 1) * sizeof *gr->cut)))
		return HEARTH_ENOMEM;
	gr->cut[gr->n_cut++] = 128;
	for (int32_t i = 0; i < gr->n_range; i++)
		for (int e = 0; e < 2; e++) {
			const uint32_t c = e ? gr->range[2 * i + 1] + 1 : gr->range[2 * i];
			if (c > 128 && c <= 0x10ffff)
				gr->cut[gr->n_cut++] = c;
		}
	qsort(gr->cut, (size_t)gr->n_cut, sizeof *gr->cut, cmp_u32);
	int32_t n_cut = 0;
	for (int32_t i = 0; i < gr->n_cut; i++)
		if (!n_cut || gr->cut[i] != gr->cut[n_cut - 1])
			gr->cut[n_cut++] = gr->cut[i];
	gr->n_cut = n_cut;
	return 0;
}

static int finish(struct gp *g, const char *root, struct gram **out)
{
	for (int32_t r = 0; r < g->n_rule; r++)
		if (!g->rule[r].defined) {
			char msg[160];
			snprintf(msg, sizeof msg, "undefined rule '%.100s'", g->rule[r].name);
			return perr(g, g->rule[r].ref_at ? g->rule[r].ref_at : g->s, msg);
		}
	int32_t rr = strmap_get(&g->names, root, strlen(root));
	if (rr < 0)
		return err_set(g->err, HEARTH_EINVAL, "grammar: no rule named '%.100s' (the start rule)", root);
	struct gram *gr = calloc(1, sizeof *gr);
	if (!gr)
		return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
	gr->n_el = g->n_el_total + g->n_rule;
	gr->n_rule = g->n_rule;
	gr->el = malloc((size_t)gr->n_el * sizeof *gr->el);
	gr->rule_start = malloc((size_t)g->n_rule * sizeof *gr->rule_start);
	if (!gr->el || !gr->rule_start) {
		gram_free(gr);
		return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
	}
	int32_t k = 0;
	for (int32_t r = 0; r < g->n_rule; r++) {
		gr->rule_start[r] = k;
		if (g->rule[r].body.n) /* an empty rule has no body at all */
			memcpy(gr->el + k, g->rule[r].body.v, (size_t)g->rule[r].body.n * sizeof *gr->el);
		k += g->rule[r].body.n;
		gr->el[k++] = (struct gel){ GEL_END, 0 };
	}
	gr->cls = g->cls;
	gr->n_cls = g->n_cls;
	gr->range = g->range;
	gr->n_range = g->n_range;
	g->cls = NULL;
	g->range = NULL;
	if (index_alts(gr) || cut_intervals(gr)) {
		gram_free(gr);
		return err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory");
	}
	gr->root = rr;
	int32_t bad;
	if (gram_check_left_recursion(gr, &bad)) {
		int rc = bad < 0 ? err_set(g->err, HEARTH_ENOMEM, "grammar: out of memory")
				 : err_set(g->err, HEARTH_EINVAL, "grammar: rule '%.100s' is left-recursive",
					   rule_name(g, bad));
		gram_free(gr);
		return rc;
	}
	*out = gr;
	return 0;
}

int gram_parse(const char *text, size_t len, const char *root, struct gram **out, struct hearth_err *err)
{
	struct gp g = { .s = text, .p = text, .end = text + len, .err = err, .cur = -1 };
	*out = NULL;
	if (len > GRAM_MAX_TEXT)
		return err_set(err, HEARTH_ETOOBIG, "grammar: %zu bytes of text (at most %u)", len, GRAM_MAX_TEXT);
	if (strmap_init(&g.names, 64))
		return err_set(err, HEARTH_ENOMEM, "grammar: out of memory");
	int rc = parse_rules(&g);
	if (!rc)
		rc = finish(&g, root ? root : "root", out);
	for (int32_t r = 0; r < g.n_rule; r++) {
		free(g.rule[r].name);
		free(g.rule[r].body.v);
	}
	free(g.rule);
	free(g.cls);
	free(g.range);
	strmap_free(&g.names);
	return rc;
}

void gram_free(struct gram *g)
{
	if (!g)
		return;
	free(g->el);
	free(g->rule_start);
	free(g->alt);
	free(g->rule_alt);
	free(g->cut);
	free(g->cls);
	free(g->range);
	free(g);
}
