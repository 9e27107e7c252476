/* chatglm.c - the "chatglm" architecture (ChatGLM3, GLM-4-9B): a fused
 * attn_qkv with its bias, partial rotary embedding (rope.dimension_count of
 * each head's dims, adjacent pairs), a fused gate+up ffn_up (SwiGLU), pre-norms
 * only. */
#include "../model.h"

int arch_chatglm_load(struct hearth_model *m, struct hearth_err *err)
{
	m->hp.rope_type = ROPE_NORM;
	return model_load_transformer(m, err);
}
