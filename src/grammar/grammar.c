/* grammar.c - hearth_grammar_new/free: GBNF text compiled against a model's vocabulary. */
#include <stdlib.h>

#include "../base/err.h"
#include "grammar.h"

int hearth_grammar_new(const struct hearth_model *m, const char *gbnf, size_t len, const char *root,
		       struct hearth_grammar **out, struct hearth_err *err)
{
	struct hearth_grammar *g = calloc(1, sizeof *g);
	struct gmatch probe;
	int rc;
	*out = NULL;
	if (!g)
		return err_set(err, HEARTH_ENOMEM, "grammar: out of memory");
	if ((rc = gram_parse(gbnf, len, root, &g->g, err)))
		goto out_free;
	if ((rc = gmatch_init(&probe, g->g, err))) /* refuses a start state past the bounds */
		goto out_free;
	gmatch_release(&probe);
	if ((rc = gvocab_build(m, &g->v, err)))
		goto out_free;
	*out = g;
	return 0;
out_free:
	hearth_grammar_free(g);
	return rc;
}

void hearth_grammar_free(struct hearth_grammar *g)
{
	if (!g)
		return;
	gram_free(g->g);
	gvocab_free(g->v);
	free(g);
}
