/* hf-config.h - a Hugging Face config.json read as the hyperparameters that
 * llama.cpp's convert_hf_to_gguf.py writes as GGUF keys (hf-config.c). */
#ifndef HEARTH_HF_CONFIG_H
#define HEARTH_HF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"
#include "../gguf/gguf.h"

enum { HF_MOE_NONE = 0, HF_MOE_MIXTRAL, HF_MOE_QWEN };

struct hf_config {
	char hf_arch[64];     /* architectures[0]: "LlamaForCausalLM", ... */
	const char *arch;     /* general.architecture: "llama", "qwen2", "qwen3", "qwen3moe" */
	bool permute_qk;      /* llama: q/k rows reordered for llama.cpp's rope (see hf-model.c) */
	bool qk_norm;         /* qwen3: per-head q/k RMS norms */
	int moe;              /* HF_MOE_*: how expert tensors are named */
	int64_t n_layer, n_embd, n_ff, n_head, n_head_kv;
	int64_t head_dim;     /* config's head_dim; 0 when absent (then n_embd / n_head) */
	int64_t n_ctx;        /* max_position_embeddings; 0 when absent */
	int64_t n_vocab;      /* vocab_size; 0 when absent */
	int64_t n_expert, n_expert_used; /* 0 when absent */
	int64_t n_ff_exp;     /* moe_intermediate_size (qwen3moe); 0 when absent */
	double rope_theta, rms_eps;
	bool tied;            /* tie_word_embeddings: the output matrix is the embedding */
	/* rope scaling (rope_parameters or rope_scaling) */
	char rope_type[32];   /* "" when none */
	double factor;        /* 0 when absent */
	int64_t orig_ctx;     /* original_max_position_embeddings; 0 when absent */
	double yarn_ext, yarn_attn, yarn_beta_fast, yarn_beta_slow; /* NAN when absent */
	double low_freq_factor, high_freq_factor;                    /* llama3 */
};

/* Reads dir/config.json. HEARTH_EUNSUPPORTED names an architecture hearth
 * cannot convert; HEARTH_EINVAL a missing or bad hyperparameter. */
int hf_config_load(struct hf_config *c, const char *dir, struct hearth_err *err);
/* The attention head size: head_dim, else n_embd / n_head. */
int64_t hf_config_head_dim(const struct hf_config *c);
/* Sets the {arch}.* hyperparameter keys and general.file_type, in the
 * python's order. */
int hf_config_write_keys(const struct hf_config *c, struct gguf_writer *w, int ftype);
/* True when the model gets a rope_freqs.weight tensor (llama with llama3 rope
 * scaling); it has hf_config_head_dim() / 2 elements. */
bool hf_config_has_rope_freqs(const struct hf_config *c);
/* The llama3 rope factors, computed in float32 as the python does. */
void hf_config_rope_freqs(const struct hf_config *c, float *out);

#endif /* HEARTH_HF_CONFIG_H */
