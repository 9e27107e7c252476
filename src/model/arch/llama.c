/* llama.c - the "llama" architecture: LLaMA 1/2/3, Mistral, TinyLlama,
 * DeepSeek-R1-Distill-Llama. RMSNorm, GQA attention with rotary position
 * embedding on adjacent pairs, SwiGLU FFN; optional rope_freqs (Llama 3.1
 * rope scaling) and an optional output head (tied to the embeddings when absent).
 * With expert_count > 0 (Mixtral) every FFN is a mixture of experts of width
 * feed_forward_length: softmax router, top expert_used_count, the chosen
 * weights renormalized to sum 1. */
#include "../model.h"

int arch_llama_load(struct hearth_model *m, struct hearth_err *err)
{
	m->hp.rope_type = ROPE_NORM;
	m->hp.moe_gating = MOE_GATING_SOFTMAX;
	m->hp.moe_norm_w = true;
	m->hp.moe_act = MOE_ACT_SILU;
	return model_load_transformer(m, err);
}
