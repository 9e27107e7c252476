/* gram.h - a parsed GBNF grammar in the flat form the matcher walks.
 *
 * Every rule is a list of alternatives laid out one after another in el[]:
 * an alternative is a sequence of GEL_CHAR (one code point out of a class)
 * and GEL_RULE (a reference) elements, closed by GEL_ALT when another
 * alternative of the same rule follows and by GEL_END after the last one.
 * An empty alternative is a lone GEL_ALT or GEL_END. Groups and repetitions
 * of the text are already rewritten into generated rules: x* is
 * R ::= x R | (empty), x{2,4} is x x O2 with O2 ::= x O1 | (empty), ...,
 * so every element is one code point or one rule.
 *
 * Character classes are sorted, disjoint, inclusive code point ranges
 * (negation is resolved at parse time), with a bitmap for ASCII.
 * Immutable after gbnf_parse: shared by threads.
 */
#ifndef HEARTH_GRAM_H
#define HEARTH_GRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

enum gel_type { GEL_END = 0, GEL_ALT, GEL_RULE, GEL_CHAR };

struct gel {
	int32_t type; /* enum gel_type */
	int32_t val;  /* GEL_RULE: rule index; GEL_CHAR: class index */
};

struct gclass {
	uint32_t ascii[4]; /* bit c: code point c < 128 is in the class */
	int32_t off, n;    /* ranges lo[i], hi[i] at range[2 * (off + i)] */
};

#define GRAM_MAX_RULES 65536
#define GRAM_MAX_ELEMENTS (1 << 21)
#define GRAM_MAX_NESTING 64    /* parentheses within one another */
#define GRAM_MAX_REPEAT 100000 /* the m and n of {m,n} */
#define GRAM_MAX_TEXT (4u << 20)

struct gram {
	struct gel *el;
	int32_t n_el;
	int32_t *rule_start; /* [n_rule] el index of the first alternative */
	int32_t n_rule;
	struct gclass *cls;
	int32_t n_cls;
	uint32_t *range;     /* [2 * n_range] lo, hi pairs */
	int32_t n_range;
	int32_t root;        /* the start rule */
	int32_t *alt;        /* el indexes of each rule's alternatives: rule r's are */
	int32_t *rule_alt;   /* [n_rule + 1] alt[rule_alt[r] .. rule_alt[r + 1]) */
	/* [n_cut] sorted starts of the intervals of code points >= 128 within which
	 * every class holds all or none (cut[0] = 128): a step by a code point
	 * depends only on its interval */
	uint32_t *cut;
	int32_t n_cut;
};

/* Parses GBNF text (len bytes) with start rule root ("root" when NULL) into
 * *out (caller frees with gram_free). Errors name line:column and the problem. */
int gram_parse(const char *text, size_t len, const char *root, struct gram **out, struct hearth_err *err);
void gram_free(struct gram *g);
/* 0 when no rule of g can reach itself without consuming a character; else
 * nonzero with *bad one rule of such a cycle (-1: out of memory). gram-check.c */
int gram_check_left_recursion(const struct gram *g, int32_t *bad);

static inline bool gram_class_has(const struct gram *g, int32_t k, uint32_t c)
{
	const struct gclass *cl = &g->cls[k];
	if (c < 128)
		return (cl->ascii[c >> 5] >> (c & 31)) & 1;
	const uint32_t *r = g->range + 2 * (size_t)cl->off;
	int32_t lo = 0, hi = cl->n - 1;
	while (lo <= hi) {
		const int32_t mid = (lo + hi) / 2;
		if (c < r[2 * mid])
			hi = mid - 1;
		else if (c > r[2 * mid + 1])
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* The interval (see cut) of a code point >= 128. */
static inline int32_t gram_interval(const struct gram *g, uint32_t c)
{
	int32_t lo = 0, hi = g->n_cut; /* the last cut <= c */
	while (hi - lo > 1) {
		const int32_t mid = (lo + hi) / 2;
		if (g->cut[mid] <= c)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Does class k hold any code point of [lo, hi]? */
static inline bool gram_class_meets(const struct gram *g, int32_t k, uint32_t lo, uint32_t hi)
{
	const struct gclass *cl = &g->cls[k];
	const uint32_t *r = g->range + 2 * (size_t)cl->off;
	for (int32_t i = 0; i < cl->n; i++)
		if (r[2 * i] <= hi && r[2 * i + 1] >= lo)
			return true;
	return false;
}

#endif /* HEARTH_GRAM_H */
