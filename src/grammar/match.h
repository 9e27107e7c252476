/* match.h - following a grammar over bytes: sets of parse stacks.
 *
 * A matcher state is the set of the grammar's parse stacks that agree with
 * the text so far, each with a character class on top (or the empty stack:
 * the grammar may end here), plus the bytes of an incomplete UTF-8 sequence.
 * Stacks are linked frames (position in gram.el, caller frame) interned in a
 * pool, so equal stacks are one id: a state is a sorted list of ids, and the
 * same state reached twice has the same list (see the mask cache, mask.c).
 * Bounds: GM_MAX_STACKS stacks per state, GM_MAX_DEPTH frames per stack,
 * GM_MAX_NODES frames in all; a step that would pass one fails (the bytes are
 * refused) and sets overflow, instead of growing without end. An allocation
 * that fails during a step is treated the same way (and sets oom): stepping
 * cannot report an error, so under memory pressure a sampler may see its
 * grammar refuse everything and end the text early.
 *
 * A matcher belongs to one thread; the grammar it reads is shared.
 */
#ifndef HEARTH_MATCH_H
#define HEARTH_MATCH_H

#include "gram.h"

#define GM_MAX_STACKS 512
#define GM_MAX_DEPTH 2048
#define GM_MAX_NODES (1 << 22)
#define GM_ACCEPT 0 /* the id of the empty stack */

struct gm_node {
	int32_t pos;    /* element index in gram.el (top frame's next element) */
	int32_t parent; /* caller frame, GM_ACCEPT at the bottom */
	int32_t next;   /* hash chain */
	int32_t depth;
	uint32_t stamp; /* last step that reached it */
};

/* A state: n stack ids at buf[off], and an incomplete UTF-8 sequence (need bytes still to come). */
struct gm_state {
	int32_t off, n;
	uint32_t acc;  /* bits of the incomplete sequence so far */
	uint8_t need;  /* continuation bytes still expected (0: none) */
	uint8_t seq;   /* its full length */
};

struct gmatch {
	const struct gram *g;
	struct gm_node *node;
	int32_t n_node, cap_node;
	int32_t *head; /* [head_mask + 1] hash chains */
	uint32_t head_mask;
	uint32_t stamp;
	int32_t *work;
	int32_t cap_work;
	int32_t *buf; /* states' stack ids; the current state is first */
	int32_t n_buf, cap_buf;
	struct gm_state cur;
	bool overflow; /* a step hit a bound (see above) */
	bool oom;      /* ... or could not allocate: the bytes were refused for that */
	uint64_t spent; /* stacks stepped and frames closed so far (a mask walk's spending is bounded) */
	struct gdfa *dfa; /* the mask walk's transitions (mask.c), or NULL */
};

int gmatch_init(struct gmatch *m, const struct gram *g, struct hearth_err *err);
void gmatch_release(struct gmatch *m);
/* Back to the start of the grammar. HEARTH_ETOOBIG when the start state passes a bound. */
int gmatch_reset(struct gmatch *m, struct hearth_err *err);
/* The state after byte b from in, written at the end of buf into *out (it may
 * share in's ids). False when no stack takes b. May move buf. */
bool gmatch_step(struct gmatch *m, const struct gm_state *in, uint8_t b, struct gm_state *out);
/* Advances the current state by n bytes; false (state unchanged) when refused. */
bool gmatch_feed(struct gmatch *m, const uint8_t *s, size_t n);
/* Would the current state take these bytes? (leaves it unchanged) */
bool gmatch_allows(struct gmatch *m, const uint8_t *s, size_t n);
/* May the text end here? */
bool gmatch_can_end(const struct gmatch *m);
/* Is the grammar complete with nothing that may follow? */
bool gmatch_done(const struct gmatch *m);
/* The state after the code point c from in (no pending UTF-8), written at the end of buf. */
bool gmatch_step_cp(struct gmatch *m, const struct gm_state *in, uint32_t c, struct gm_state *out);
/* Could some of the n stacks take a code point that the incomplete sequence
 * (acc, need more bytes, seq long) can still become? */
bool gmatch_feasible(const struct gmatch *m, const int32_t *ids, int32_t n, uint32_t acc, int need, int seq);
/* Rebuilds the pool from the current state's stacks alone (the ids change,
 * the DFA is cleared); false when out of memory (nothing changed). */
bool gmatch_compact(struct gmatch *m);
/* Frees every frame created after n_node was mark (in creation order). */
void gmatch_rollback(struct gmatch *m, int32_t mark);

#endif /* HEARTH_MATCH_H */
