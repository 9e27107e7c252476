/* grammar.h - what a compiled hearth_grammar holds, and the per-sampler
 * follower the sampler drives (follow.c). */
#ifndef HEARTH_GRAMMAR_H
#define HEARTH_GRAMMAR_H

#include "gram.h"
#include "match.h"
#include "vocab.h"

struct hearth_grammar {
	struct gram *g;
	struct gvocab *v; /* the model's vocabulary when compiled */
};

/* The allowed tokens of m's current state into bits ((n_vocab + 31) / 32 words):
 * text tokens whose bytes the grammar takes (a piece may end inside a UTF-8
 * sequence), end-of-generation tokens when the grammar may end. Returns how
 * many are allowed, or -1 (bits all clear) when the state is too costly to
 * mask: more than 64 stack steps per byte of the vocabulary's pieces (a
 * grammar whose states hold hundreds of stacks; the caller ends the text).
 * mask.c */
int32_t gmask_compute(struct gmatch *m, const struct gvocab *v, uint32_t *bits);

/* A sampler's view of a grammar: the matcher state, the text trigger
 * ("after"), and a small cache of masks by state. One thread at a time. */
struct gfollow;
int gfollow_new(struct gfollow **out, const struct hearth_grammar *g, const char *after, struct hearth_err *err);
void gfollow_free(struct gfollow *f);
/* Does the grammar constrain the next token (the trigger, if any, was seen)? */
bool gfollow_active(const struct gfollow *f);
/* May id come next? */
bool gfollow_allows(struct gfollow *f, int32_t id);
/* The allowed set now (valid until the next call on f); *n_allowed gets its size.
 * When it is empty (the grammar is stuck, or the state was too costly to
 * mask) the follower is dead from then on: done, only the end may come. */
const uint32_t *gfollow_mask(struct gfollow *f, int32_t *n_allowed);
/* Advances by an accepted token. A token the grammar refuses leaves it dead
 * (nothing allowed but end of generation; done). */
void gfollow_accept(struct gfollow *f, int32_t id);
bool gfollow_done(const struct gfollow *f);
/* The token to end with when nothing else is allowed (-1: none). */
int32_t gfollow_eog(const struct gfollow *f);

#endif /* HEARTH_GRAMMAR_H */
