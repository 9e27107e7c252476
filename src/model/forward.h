/* forward.h - the batched forward pass over any mix of sequences.
 *
 * A batch is a list of tokens, each with its sequence and its position in it;
 * the tokens of one sequence appear in position order. One pass reads every
 * weight row once for the whole batch. K and V of every token are written to
 * the paged KV cache (the caller has reserved the positions), then each token
 * attends over positions 0..pos of its own sequence.
 *
 * A struct fwd owns a thread pool and scratch sized for n_batch tokens; it
 * is used by one thread at a time.
 */
#ifndef HEARTH_FORWARD_H
#define HEARTH_FORWARD_H

#include <stdint.h>

#include "../kv/kv-cache.h"
#include "model.h"

struct pool;

/* Steering of a sequence: x += strength * dir[il] after block il, for
 * il0 <= il <= il1 (dir: n_layer rows of n_embd floats, row 0 unused). */
struct fwd_steer {
	const float *dir;
	float strength;
	int32_t il0, il1;
};

/* The LoRA adapters of a sequence: in every product with a matrix an
 * adapter adapts, y += scale[k] * s * B (A x) for k = 0 .. n - 1, in order,
 * after the base product (see lora.h). n 0: none. */
struct hearth_lora;
struct fwd_lora {
	int32_t n;
	struct hearth_lora *ad[HEARTH_MAX_LORAS];
	float scale[HEARTH_MAX_LORAS];
};

struct fwd_batch {
	int32_t n;               /* tokens, 1..n_batch */
	const int32_t *tokens;   /* [n] */
	struct kv_seq *const *seq; /* [n] */
	const int32_t *pos;      /* [n] */
	int32_t n_out;           /* rows that need logits */
	const int32_t *out_rows; /* [n_out] indices into the batch, increasing */
	const struct fwd_steer *const *steer; /* [n]: each token's steering (NULL entry: none), or NULL: none */
	const struct fwd_lora *const *lora;   /* [n]: each token's adapters (NULL entry: none), or NULL: none */
};

struct fwd;
int fwd_new(struct fwd **out, const struct hearth_model *m, struct kv_cache *kv, int32_t n_batch, int n_threads,
	    struct hearth_err *err);
void fwd_free(struct fwd *f);
int32_t fwd_n_batch(const struct fwd *f);
/* The pool the passes run on, for other per-batch work of f's owner. */
struct pool *fwd_pool(struct fwd *f);
/* Sets the tap that sees the input of every weight product of f's passes
 * (NULL: none). See hearth_matmul_tap_fn in hearth.h. */
void fwd_set_tap(struct fwd *f, hearth_matmul_tap_fn fn, void *user_data);
/* Sets the tap that sees each expert's rows of f's mixtures of experts
 * (NULL: none). See hearth_expert_tap_fn in hearth.h. */
void fwd_set_expert_tap(struct fwd *f, hearth_expert_tap_fn fn, void *user_data);
/* The longest sequence f's passes serve (default: the cache's size); it
 * picks LongRoPE's short or long factors as llama.cpp's context size does. */
void fwd_set_n_ctx_seq(struct fwd *f, int32_t n_ctx_seq);
/* Called after layer il of a pass with the residual stream x of the whole
 * batch (b->n rows of n_embd floats), valid during the call; read only. */
typedef void (*fwd_layer_fn)(int il, const float *x, const struct fwd_batch *b, void *data);
/* Sets the function that sees every layer's output of f's passes (NULL: none). */
void fwd_set_layer_fn(struct fwd *f, fwd_layer_fn fn, void *data);
/* Logits of n (1..n_batch) rows x of n_embd floats through the final norm and
 * the output head, computed as fwd_run computes its logits (the logit lens);
 * lora: each row's adapters (NULL: none). Not during a pass. */
void fwd_head(struct fwd *f, const float *x, int n, const struct fwd_lora *const *lora, float *logits);
/* Runs the batch; writes n_out rows of n_vocab logits. */
void fwd_run(struct fwd *f, const struct fwd_batch *b, float *logits);

#endif /* HEARTH_FORWARD_H */
