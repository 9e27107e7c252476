/* ref-moe.h - a mixture-of-experts feed-forward block in double precision:
 * the oracle for the trainer's (src/train/tmoe.c) forward, and through
 * finite differences for its backward.
 *
 * It reads a loaded model's layer (router, expert stacks, biases; weights
 * dequantized by the scalar references) and computes each token's routing
 * and experts in double, one token and one expert at a time, from the
 * definitions in moe.h (softmax over all experts, sigmoid, or softmax over
 * the chosen; renormalization; scale; silu or gpt-oss's clamped SwiGLU).
 */
#ifndef HEARTH_REF_MOE_H
#define HEARTH_REF_MOE_H

#include <stdint.h>

#include "../src/model/model.h"

/* LoRA adapters on an expert stack: expert e's product gains scale B_e A_e x. */
struct ref_moe_lora {
	int rank;
	double scale;
	double *a, *b;              /* [n_expert][rank][n_in], [n_expert][n_out][rank] (the caller's) */
};

struct ref_moe {
	const struct hparams *h;
	const struct layer *l;
	double *wr;                 /* [n_expert][n_embd] */
	double **wg, **wu, **wd;    /* [n_expert]: [n_ff_exp][n_embd], same, [n_embd][n_ff_exp] */
	const struct ref_moe_lora *lo[3]; /* gate's, up's, down's adapters (NULL: none; set by the caller) */
};

void ref_moe_init(struct ref_moe *r, const struct hearth_model *m, int il);
void ref_moe_free(struct ref_moe *r);
/* out[n][n_embd] (=) the block over x[n][n_embd]; each token's chosen
 * experts are mixed into *choice (a hash: a perturbation that changes a
 * choice changes it). */
void ref_moe_run(const struct ref_moe *r, const double *x, int n, double *out, uint64_t *choice);
/* One token's weights w[K] of the chosen ids[K] from logits[n_expert] (the choice made here too). */
void ref_moe_route(const struct hparams *h, const double *logits, int32_t *ids, double *w);
/* gpt-oss's clamped SwiGLU or silu(g) u, in double. */
double ref_moe_act(enum moe_act act, double g, double u);

#endif /* HEARTH_REF_MOE_H */
