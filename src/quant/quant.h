/* quant.h - llama-quantize's recipes: which type each tensor of a model gets
 * for a file type (hearth_quantize in quantize.c is the driver).
 *
 * The rules are llama.cpp's (src/llama-quant.cpp), restated: only weight
 * matrices are quantized; the output matrix (and a tied embedding) gets q6_K;
 * the _S/_M/_L mixes give more bits to attn_v, ffn_down and attn_output
 * in the layers their rules pick (use_more_bits, the first eighth or
 * sixteenth, GQA and 8-expert models); K-quant rows that do not split into 256-blocks fall back to a
 * 32-block type. Pure data, no I/O: safe from any thread.
 */
#ifndef HEARTH_QUANT_H
#define HEARTH_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

/* The tensor type a file type stores its weight matrices in (-1: unknown). */
int quant_ftype_base_type(int ftype);

/* llama.cpp's layer choice for the _M mixes: the first and last eighth of the
 * layers and every third one between. */
bool quant_use_more_bits(int il, int n_layer);

/* The type llama-quantize stores `type` in when rows of ne0 elements do not
 * split into its blocks (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K and
 * q3_K -> q4_0; f16 when even that does not fit); other cases: type. */
int quant_fallback_type(int type, int64_t ne0);

/* Model facts the recipe reads, and its running counters: fill the first
 * block, zero the rest, then call quant_tensor_type() once per tensor in
 * name order (as llama-quantize visits them). */
struct quant_recipe {
	int ftype;                /* enum hearth_ftype */
	bool pure;
	int output_type;          /* -1: the recipe's */
	int embd_type;            /* -1: the recipe's */
	int n_layer;              /* {arch}.block_count */
	int n_expert;             /* {arch}.expert_count, 0 when none */
	bool tied;                /* no output.weight: token_embd is the output too */
	bool falcon;              /* general.architecture == falcon */
	bool is_70b;              /* llama with 80 layers and GQA (llama.cpp's 70B rule) */
	int n_attn_v;             /* tensors of the attn_v kind (attn_v, attn_qkv, attn_kv_b) */
	int n_gqa;                /* head_count / head_count_kv (layer 0), 0 when unknown */
	bool has_imatrix;         /* an importance matrix was given (changes q4_0/q5_0's ffn_down) */
	/* counters */
	int i_attn_v, i_ffn_down;
};

/* True when llama-quantize would quantize this tensor at all (weight
 * matrices; not norms, routers, positional embeddings, ...). */
bool quant_tensor_allowed(const char *name, int n_dims);

/* The type tensor `name` (type cur, rows of ne[0]) is written in. */
int quant_tensor_type(struct quant_recipe *r, const char *name, int n_dims, const int64_t *ne, int cur);

/* True for the names the recipe counts as attn_v (attn_v, attn_qkv, attn_kv_b). */
bool quant_is_attn_v(const char *name);

#endif /* HEARTH_QUANT_H */
