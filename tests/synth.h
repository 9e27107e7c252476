/* synth.h - writes small synthetic models of any shape with hearth's own GGUF
 * writer and quantizer (random weights, a byte-level SentencePiece vocab). */
#ifndef HEARTH_SYNTH_H
#define HEARTH_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

struct synth_spec {
	const char *arch;   /* "llama", "qwen2", "qwen3", "gemma3", "gemma2", "qwen3moe" */
	int n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim; /* head_dim 0: n_embd / n_head */
	int wtype;          /* type of the 2-D weights */
	int n_vocab;        /* 0: 259 (3 specials + 256 bytes); more adds plain tokens */
	bool tied;          /* no output.weight */
	bool rope_freqs;    /* write a rope_freqs.weight */
	bool skip_ffn_down; /* leave a required tensor out (negative tests) */
	bool skip_bias;     /* qwen2 without its q/k/v biases (negative tests) */
	uint64_t seed;
	int embd_type;      /* token_embd / output type (0: wtype) */
	int round_to;       /* HEARTH_TYPE_F16 / BF16: every value (norms too) rounded through
			     * that type before it is stored, so that a copy in that dtype is
			     * exact (0: none) */
	bool k_m_mix;       /* llama.cpp's Q4_K_M / Q5_K_M mix: q6_K for output.weight (the
			     * embedding when tied) and for attn_v and ffn_down in the first and
			     * last eighth of the layers and every third one between. K-quants
			     * of rows that do not split into 256-blocks fall back as
			     * llama-quantize's do (q4_K to q5_0, q5_K to q5_1, q6_K to q8_0) */
	int n_expert, n_expert_used; /* > 0: every FFN a mixture of n_expert experts of width
				      * n_ff (a f32 router, stacked ffn_*_exps) */
	int n_expert_shared;         /* written as expert_shared_count (negative tests) */
	int n_swa;          /* gemma3, gemma2: the local layers' window (0: 512); every sixth
			     * (gemma2: second) layer global */
};

int synth_model_write(const char *path, const struct synth_spec *s, struct hearth_err *err);

#endif /* HEARTH_SYNTH_H */
