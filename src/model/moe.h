/* moe.h - mixture of experts: reading a family's expert hyper-parameters and
 * tensors, routing tokens to experts, and the experts' gated activations.
 * forward.c runs the experts' matrix products (grouped by expert) with these.
 *
 * Routing, for one token (see enum moe_gating): the router's logits (plus its
 * bias) give each expert a score; the n_expert_used best are chosen, best
 * first (ties: the lower index); their weights are the scores (softmax over
 * all, or sigmoid) or a softmax over the chosen logits, then renormalized to
 * sum 1 when the family says so, then scaled. The token's FFN output is
 * sum_k weight_k * expert_k(x), added in the chosen order.
 */
#ifndef HEARTH_MOE_H
#define HEARTH_MOE_H

#include <stdint.h>

#include "model.h"

#define MOE_MAX_EXPERTS 512           /* experts a layer may have (llama.cpp's limit) */
#define MOE_OAI_ALPHA 1.702f          /* gpt-oss's clamped SwiGLU: x sigmoid(alpha x) (y + 1), */
#define MOE_OAI_LIMIT 7.0f            /*   x clamped above at limit, y to +-limit */
#define MOE_NORM_MIN 6.103515625e-5f  /* the smallest sum of weights a renormalization divides by (llama.cpp's) */

/* Reads expert_count, expert_used_count and expert_feed_forward_length
 * (default: feed_forward_length) when the file has experts; refuses what
 * hearth does not do (shared experts, expert groups, clamped SwiGLU). */
int moe_load_hparams(struct hearth_model *m, struct hearth_err *err);
/* Binds layer il's router, stacked experts and their optional biases, and
 * points the layer's per-expert views (in m->expert_views, allocated here on
 * the first layer) at each expert's slice. */
int moe_bind_layer(struct hearth_model *m, int il, struct hearth_err *err);

/* Chooses one token's experts from its router logits (n_expert of them;
 * the router bias already added): ids[k] and weights w[k], k < n_expert_used.
 * scratch holds n_expert floats. */
void moe_route(const struct hparams *h, const float *logits, float *scratch, int32_t *ids, float *w);

/* gate[i] = act(gate[i], up[i]) for n elements. */
void moe_act_rows(enum moe_act act, float *gate, const float *up, int64_t n);

#endif /* HEARTH_MOE_H */
