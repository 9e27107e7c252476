/* state.h - saved sequence state (struct hearth_state, hearth.h): the
 * format and its checks, used by context.c and the scheduler. */
#ifndef HEARTH_STATE_H
#define HEARTH_STATE_H

#include "../kv/kv-state.h"
#include "model.h"

/* A saved state: the whole file image in buf, and views into it. */
#define STATE_STEER_SIZE 32 /* a steering digest (cvec_steer_digest); all zero: unsteered */

struct hearth_state {
	uint8_t *buf;
	size_t size;
	int type;                 /* the cache type of the rows */
	int32_t n_layer, n_vocab, n_tokens, n_logits;
	int64_t width_k, width_v;
	uint64_t row_k, row_v;
	uint8_t identity[32];
	uint8_t steering[STATE_STEER_SIZE]; /* what steered its rows; all zero: nothing */
	int32_t n_swa;            /* the local layers' window; 0: none */
	int32_t n_layer_local;    /* layers with a window */
	int32_t local_from;       /* the first position with rows in local layers */
	const int32_t *layer_swa; /* [n_layer]: 0 global, n_swa local */
	const int32_t *tokens;    /* [n_tokens] */
	const float *logits;      /* [n_logits][n_vocab]: after the last token, or NULL */
	const uint8_t *rows;      /* kv_state_get's layout (local rows from local_from) */
};

/* A state of m holding positions [0, n) of s in kv (tokens: s's tokens),
 * with logits (n_vocab floats after token n-1) when not NULL, computed under
 * the steering whose digest is steering (NULL or all zero: none). */
int state_build(struct hearth_state **out, const struct hearth_model *m, const struct kv_cache *kv,
		const struct kv_seq *s, const int32_t *tokens, int32_t n, const float *logits, const uint8_t *steering,
		struct hearth_err *err);
/* 0 when st was computed under the steering of digest steering (all zero:
 * none), else HEARTH_EINVAL saying how they differ. */
int state_check_steering(const struct hearth_state *st, const uint8_t steering[STATE_STEER_SIZE],
			 struct hearth_err *err);
/* 0 when st can be restored into kv of m: the same model identity, cache
 * type, row widths and local layers; else HEARTH_EINVAL saying which
 * differs. (Whether it can continue there: kv_state_put says.) */
int state_check_fits(const struct hearth_state *st, const struct hearth_model *m, const struct kv_cache *kv,
		     struct hearth_err *err);

#endif /* HEARTH_STATE_H */
