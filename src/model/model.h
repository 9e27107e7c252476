/* model.h - a loaded model: hyper-parameters, weight views, vocabulary.
 *
 * Ownership: struct hearth_model owns the GGUF mapping; every struct tensor
 * points into it. Weights are not copied, except that a matrix whose kernels
 * have a packed layout is repacked at load into packed_mem (one bigmem
 * buffer the model owns; tensor.packed points there), and the mapping's pages
 * of the original are given back to the OS. Read-only after load.
 */
#ifndef HEARTH_MODEL_H
#define HEARTH_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "../gguf/gguf.h"
#include "../tok/tok.h"

enum rope_type {
	ROPE_NORM, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
	ROPE_NEOX, /* rotate halves (x[i], x[i + n_rot/2]): qwen2, qwen3 */
};

/* How a token's router logits become its experts' weights. */
enum moe_gating {
	MOE_GATING_SOFTMAX,        /* softmax over all experts, the top k kept */
	MOE_GATING_SIGMOID,        /* sigmoid of each logit, the top k kept */
	MOE_GATING_SOFTMAX_CHOSEN, /* the top k logits, softmax over those k (gpt-oss) */
};

/* An expert's gated activation: act(gate) * up. */
enum moe_act {
	MOE_ACT_SILU,       /* silu(gate) * up */
	MOE_ACT_SWIGLU_OAI, /* gpt-oss: g = min(gate, 7), u = clamp(up, -7, 7): g * sigmoid(1.702 g) * (u + 1) */
};

/* The FFN's gate activation: out = act(x Wgate) * (x Wup). */
enum ffn_act {
	FFN_SILU, /* SwiGLU: llama, qwen, phi3, glm */
	FFN_GELU, /* GeGLU with the tanh approximation of GELU: gemma */
};

struct tensor {
	const char *name;
	int type;
	int64_t ne[4];
	const void *data; /* NULL: absent (optional tensor) */
	void *packed;     /* repacked copy for the kernels (in the model's packed_mem), or NULL */
};

struct hparams {
	int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_ff;
	int32_t n_head, n_head_kv;
	int32_t head_dim_k, head_dim_v; /* per-head key / value widths */
	int32_t n_rot;                  /* rotated dimensions of each head */
	float rms_eps;
	float rope_base;
	float rope_freq_scale;          /* 1 / linear scaling factor */
	enum rope_type rope_type;
	/* YaRN (rope.scaling.type "yarn"): the angles of dimensions below
	 * yarn_corr[0] keep their unscaled value, those above yarn_corr[1] are
	 * scaled by rope_freq_scale, a ramp between; cos and sin are multiplied
	 * by yarn_mscale. rope_ext_factor 0: no YaRN. These are for rope_base
	 * and rope_freq_scale; a layer with its own (struct layer) has its own. */
	float rope_ext_factor, yarn_corr[2], yarn_mscale;
	int32_t yarn_n_ctx_orig;         /* rope.scaling.original_context_length */
	float yarn_attn_factor;          /* rope.scaling.attn_factor */
	/* mixture of experts (n_expert 0: a dense FFN) */
	int32_t n_expert, n_expert_used; /* experts per layer, experts per token */
	int32_t n_ff_exp;                /* each expert's hidden width */
	enum moe_gating moe_gating;
	bool moe_norm_w;                 /* chosen weights renormalized to sum 1 */
	float moe_w_scale;               /* chosen weights multiplied by this (1: none) */
	enum moe_act moe_act;
	/* Set by the loader to neutral values (1 or 0); architectures change them. */
	float rope_attn_factor;         /* multiplies rope's cos and sin (phi3 LongRoPE) */
	int32_t n_ctx_orig;             /* phi3: contexts above it use rope_long's factors */
	float embd_scale;               /* token embeddings are multiplied by it (gemma: sqrt(n_embd)) */
	int32_t pooling;                /* {arch}.pooling_type (enum hearth_pooling), -1: not given */
	float attn_scale;               /* query scale; 0: 1 / sqrt(head_dim_k) */
	float final_softcap;            /* logits = c tanh(logits / c) when c > 0 (gemma) */
	float attn_softcap;             /* attention scores = c tanh(s / c) when c > 0 (gemma2) */
	enum ffn_act ffn_act;
};

struct layer {
	struct tensor attn_norm, wq, wk, wv, wo;
	struct tensor bq, bk, bv, bo;   /* optional biases */
	struct tensor q_norm, k_norm;   /* optional per-head RMS norms (qwen3) */
	struct tensor ffn_norm, ffn_gate, ffn_up, ffn_down;
	struct tensor attn_sinks;       /* optional [n_head]: a logit per head that joins the softmax (gpt-oss) */
	/* mixture of experts (hp.n_expert > 0): the router [n_embd, n_expert]
	 * and its optional bias; the stacked experts [n_in, n_out, n_expert]
	 * with optional biases [n_out, n_expert]; and each expert's slice of
	 * the stacks as a matrix of its own, [n_expert] each (in the model's
	 * expert_views; packed like any matrix) */
	struct tensor ffn_gate_inp, ffn_gate_inp_b;
	struct tensor ffn_gate_exps, ffn_up_exps, ffn_down_exps;
	struct tensor ffn_gate_exps_b, ffn_up_exps_b, ffn_down_exps_b;
	struct tensor *exp_gate, *exp_up, *exp_down;
	/* optional norms of the attention and FFN outputs before they join the
	 * residual stream (gemma, glm4) */
	struct tensor attn_post_norm, ffn_post_norm;
	/* Per-layer attention: n_swa > 0 is a sliding window (position p sees
	 * p - n_swa + 1 .. p), 0 full causal attention; the layer's rope base and
	 * frequency scale (local layers of gemma3 have their own). The loader sets
	 * them from the hparams; an architecture may change any layer's. */
	int32_t n_swa;
	float rope_base, rope_freq_scale;
	float yarn_corr[2], yarn_mscale; /* YaRN's constants for them (see hparams): set with model_layer_rope */
};

struct hearth_model {
	struct hearth_gguf *gguf;
	char arch[32];
	char *chat_template; /* NUL-terminated copy, or NULL */
	struct hparams hp;
	struct tensor tok_embd, output_norm, output, rope_freqs;
	struct tensor rope_short, rope_long; /* optional LongRoPE factors (phi3), n_rot/2 each */
	struct layer *layers;
	struct tensor *expert_views; /* [n_layer][3][n_expert]: see struct layer */
	const char *ffn_norm_name;   /* the pre-FFN norm's name (NULL: blk.%d.ffn_norm.weight) */
	struct tok_vocab vocab;
	bool vocab_only;
	void *packed_mem;   /* one bigmem buffer holding every repacked matrix */
	size_t packed_size;
};

enum tensor_flags { TENSOR_REQUIRED = 0, TENSOR_OPTIONAL = 1 };

/* Binds *t to the tensor named fmt (with %d = il), checking its type and
 * that its shape is exactly ne0 x ne1 (ne1 = 0: a vector). */
int model_tensor(struct hearth_model *m, struct tensor *t, const char *fmt, int il, int64_t ne0, int64_t ne1,
		 enum tensor_flags flags, struct hearth_err *err);
/* The same for a stack of ne2 matrices (ne1 = 0 is not allowed with ne2 > 1). */
int model_tensor3(struct hearth_model *m, struct tensor *t, const char *fmt, int il, int64_t ne0, int64_t ne1,
		  int64_t ne2, enum tensor_flags flags, struct hearth_err *err);
/* Reads "<arch>.<suffix>" as an integer / float into *out; absent keys leave
 * *out untouched unless required. */
int model_hparam_i32(struct hearth_model *m, const char *suffix, int32_t *out, bool required, struct hearth_err *err);
int model_hparam_f32(struct hearth_model *m, const char *suffix, float *out, bool required, struct hearth_err *err);
/* Reads the hyper-parameters every decoder-only transformer here shares and
 * binds the embedding, output and per-layer attention/FFN tensors. */
int model_load_transformer(struct hearth_model *m, struct hearth_err *err);
/* Views rows r0 .. r0 + n - 1 of the bound matrix (or elements of the bound
 * vector) whole as *part: fused tensors (attn_qkv, ffn_up holding gate and
 * up) become the separate ones the forward pass computes with. */
void model_tensor_rows(const struct tensor *whole, struct tensor *part, int64_t r0, int64_t n);
/* Each layer's sliding window into out[n_layer] (0: none); returns the
 * largest (0: no layer has one). */
int32_t model_layer_swa(const struct hearth_model *m, int32_t *out);
/* Gives layer l its own rope base and frequency scale, and under YaRN the
 * constants that follow from them, as llama.cpp's rope does per layer: the
 * ramp from the layer's base, the magnitude from its scale.
 * HEARTH_EBADGGUF when base is not a usable rope base. */
int model_layer_rope(struct hearth_model *m, struct layer *l, float base, float freq_scale, struct hearth_err *err);
/* Whether the GGUF has the key "<arch>.<suffix>". */
bool model_hparam_has(const struct hearth_model *m, const char *suffix);

/* Architecture entry points (arch/<name>.c). */
int arch_llama_load(struct hearth_model *m, struct hearth_err *err);
int arch_qwen2_load(struct hearth_model *m, struct hearth_err *err);
int arch_qwen3_load(struct hearth_model *m, struct hearth_err *err);
int arch_qwen3moe_load(struct hearth_model *m, struct hearth_err *err);
int arch_gpt_oss_load(struct hearth_model *m, struct hearth_err *err);
int arch_gemma3_load(struct hearth_model *m, struct hearth_err *err);
int arch_phi3_load(struct hearth_model *m, struct hearth_err *err);
int arch_glm4_load(struct hearth_model *m, struct hearth_err *err);
int arch_chatglm_load(struct hearth_model *m, struct hearth_err *err);
int arch_gemma2_load(struct hearth_model *m, struct hearth_err *err);

#endif /* HEARTH_MODEL_H */
