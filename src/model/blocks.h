/* blocks.h - the transformer's building blocks on float rows: RMS norm and
 * rotary position embedding. Scalar code, single-threaded; forward.c composes
 * them (attention and SwiGLU are kernels: kern/attn-tile.h). */
#ifndef HEARTH_BLOCKS_H
#define HEARTH_BLOCKS_H

#include <stdint.h>

#include "model.h"

/* y = x / rms(x) * w (w may be NULL); x and y may alias. */
void block_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps);
/* Rotates the first n_rot dims of each of n_heads heads of width head_dim
 * (consecutive in x) for position pos. freq_factors (n_rot/2, may be NULL)
 * divide the angles (Llama 3.1 scaling, LongRoPE); cos and sin are scaled by
 * hp->rope_attn_factor; with YaRN (hp->rope_ext_factor) the angles blend
 * scaled and unscaled ones and cos/sin carry its magnitude too. */
void block_rope(float *x, int n_heads, int head_dim, int n_rot, int32_t pos, const struct hparams *hp,
		const float *freq_factors);
/* The (cos, sin) pairs block_rope uses at position pos: cs[i0], cs[i0 + 1]
 * for the pair starting at rotated dimension i0 (n_rot floats). */
void block_rope_cs(int32_t pos, int n_rot, const struct hparams *hp, const float *freq_factors, float *cs);

/* Layer il's rope parameters: the model's, with the layer's base, scale and
 * YaRN ramp (model_layer_rope) over them. */
struct hparams block_layer_rope(const struct hearth_model *m, int il);
/* The rope frequency factors (n_rot/2, or NULL) for sequences of up to
 * n_ctx_seq positions: Llama 3.1's rope_freqs, or LongRoPE's long factors
 * when n_ctx_seq exceeds the original training context, else its short ones
 * (llama.cpp decides by its context per sequence the same way). */
const float *block_rope_factors(const struct hearth_model *m, int64_t n_ctx_seq);

#endif /* HEARTH_BLOCKS_H */
