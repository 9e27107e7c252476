/* ref-forward.h - a double-precision forward pass for the tests: the oracle
 * for hearth's hidden states.
 *
 * Written from llama.cpp's definition of each architecture and the GGUF keys,
 * it shares nothing with src/model/ or src/kern/: it reads the file with
 * hearth's GGUF reader, turns every weight into floats with the scalar
 * dequantizers (src/tensor/quant-ref.c, themselves tested against
 * llama.cpp's bytes), and computes everything else in double, one token and
 * one head at a time, as plainly as it can be written. Slow; for tiny models.
 *
 * Architectures: llama (with rope_freqs; with experts: Mixtral), qwen2,
 * qwen3, qwen3moe, gemma3, phi3 (LongRoPE's short factors), glm4, chatglm,
 * gpt-oss (YaRN, attention sinks). Anything else (gemma2, soft-capping, rope
 * scaling other than YaRN) is HEARTH_EUNSUPPORTED with a message naming it.
 */
#ifndef HEARTH_REF_FORWARD_H
#define HEARTH_REF_FORWARD_H

#include <stdint.h>

#include "hearth.h"

/* Runs ids[0 .. n-1] through the model at path as one causal sequence from
 * position 0. On success *out is a malloc'd array of *n_layer x n x *n_embd
 * doubles (layer, token, dimension): the residual stream after each layer,
 * as hearth_get_hidden defines it. Returns 0 or a negative HEARTH_E*. */
int ref_forward(const char *path, const int32_t *ids, int32_t n, double **out, int32_t *n_layer, int32_t *n_embd,
		struct hearth_err *err);

#endif /* HEARTH_REF_FORWARD_H */
