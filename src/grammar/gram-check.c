/* gram-check.c - refusing left recursion: which rules can derive the empty
 * string (a fixpoint), then a depth-first search for a cycle among the
 * edges "rule r may begin with rule s" (s preceded only by nullable rules). */
#include <stdlib.h>

#include "gram.h"

static bool *nullable_rules(const struct gram *g)
{
	bool *nul = calloc((size_t)g->n_rule, sizeof *nul);
	bool changed = true;
	while (nul && changed) {
		changed = false;
		for (int32_t r = 0; r < g->n_rule; r++) {
			if (nul[r])
				continue;
			bool ok = true; /* the current alternative is nullable so far */
			for (int32_t i = g->rule_start[r];; i++) {
				const struct gel *e = &g->el[i];
				if (e->type == GEL_ALT || e->type == GEL_END) {
					if (ok) {
						nul[r] = changed = true;
						break;
					}
					if (e->type == GEL_END)
						break;
					ok = true;
				} else if (e->type == GEL_CHAR || !nul[e->val]) {
					ok = false;
				}
			}
		}
	}
	return nul;
}

/* Tarjan's strongly connected components over the edges "r may begin with
 * the rule at element i" (lead[i]), iteratively; comp[r] gets r's component. */
static bool components(const struct gram *g, const bool *lead, int32_t *comp)
{
	const size_t n = (size_t)g->n_rule;
	int32_t *index = malloc(n * sizeof *index), *low = malloc(n * sizeof *low);
	int32_t *stk = malloc(n * sizeof *stk), *fr_rule = malloc(n * sizeof *fr_rule);
	int32_t *fr_pos = malloc(n * sizeof *fr_pos);
	bool *on = calloc(n, sizeof *on);
	bool ok = index && low && stk && fr_rule && fr_pos && on;
	int32_t next_index = 0, n_stk = 0, n_comp = 0;
	for (size_t i = 0; ok && i < n; i++)
		index[i] = -1;
	for (int32_t r0 = 0; ok && r0 < g->n_rule; r0++) {
		if (index[r0] >= 0)
			continue;
		int32_t sp = 0;
		fr_rule[0] = r0;
		fr_pos[0] = g->rule_start[r0];
		index[r0] = low[r0] = next_index++;
		stk[n_stk++] = r0;
		on[r0] = true;
		while (sp >= 0) {
			const int32_t v = fr_rule[sp];
			int32_t i = fr_pos[sp], w = -1;
			for (; g->el[i].type != GEL_END; i++)
				if (lead[i] && g->el[i].type == GEL_RULE) {
					w = g->el[i++].val;
					break;
				}
			fr_pos[sp] = i;
			if (w >= 0) {
				if (index[w] < 0) {
					index[w] = low[w] = next_index++;
					stk[n_stk++] = w;
					on[w] = true;
					fr_rule[++sp] = w;
					fr_pos[sp] = g->rule_start[w];
				} else if (on[w] && index[w] < low[v]) {
					low[v] = index[w];
				}
				continue;
			}
			if (low[v] == index[v]) {
				int32_t x;
				do {
					x = stk[--n_stk];
					on[x] = false;
					comp[x] = n_comp;
				} while (x != v);
				n_comp++;
			}
			if (--sp >= 0 && low[v] < low[fr_rule[sp]])
				low[fr_rule[sp]] = low[v];
		}
	}
	free(index);
	free(low);
	free(stk);
	free(fr_rule);
	free(fr_pos);
	free(on);
	return ok;
}

/* Left recursion that the matcher cannot follow: a rule reaching itself
 * without consuming a character through a reference that is not in tail
 * position (each turn would push a frame). Cycles of tail references only,
 * as in ("a"*)*, are fine: the matcher's closure visits a frame once. */
int gram_check_left_recursion(const struct gram *g, int32_t *bad)
{
	bool *nul = nullable_rules(g);
	bool *lead = malloc((size_t)g->n_el * sizeof *lead);
	int32_t *comp = malloc((size_t)g->n_rule * sizeof *comp);
	int rc = 0;
	*bad = -1;
	if (!nul || !lead || !comp) {
		rc = 1;
		goto out;
	}
	/* lead[i]: element i may be the first to consume in its alternative */
	for (int32_t i = 0, at_start = 1; i < g->n_el; i++) {
		const struct gel *e = &g->el[i];
		lead[i] = at_start;
		if (e->type == GEL_ALT || e->type == GEL_END)
			at_start = 1;
		else if (e->type == GEL_CHAR || !nul[e->val])
			at_start = 0;
	}
	if (!components(g, lead, comp)) {
		rc = 1;
		goto out;
	}
	for (int32_t r = 0; r < g->n_rule && !rc; r++)
		for (int32_t i = g->rule_start[r]; g->el[i].type != GEL_END; i++) {
			const int32_t t = g->el[i + 1].type;
			if (lead[i] && g->el[i].type == GEL_RULE && t != GEL_END && t != GEL_ALT &&
			    comp[g->el[i].val] == comp[r]) {
				*bad = r;
				rc = 1;
				break;
			}
		}
out:
	free(nul);
	free(lead);
	free(comp);
	return rc;
}
