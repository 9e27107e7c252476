/* llama.c - the "llama" architecture: LLaMA 1/2/3, Mistral, TinyLlama,
 * DeepSeek-R1-Distill-Llama. RMSNorm, GQA attention with rotary position
 * embedding on adjacent pairs, SwiGLU FFN; optional rope_freqs (Llama 3.1
 * rope scaling) and an optional output head (tied to the embeddings when absent). */
#include "../model.h"

int arch_llama_load(struct hearth_model *m, struct hearth_err *err)
{
	m->hp.rope_type = ROPE_NORM;
	return model_load_transformer(m, err);
}
