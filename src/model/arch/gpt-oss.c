/* gpt-oss.c - the "gpt-oss" architecture (OpenAI's gpt-oss-20b/120b): GQA
 * attention with q/k/v/o biases, neox rope with YaRN scaling, a learned
 * sink logit per head that joins each softmax's denominator, and sliding-
 * window attention on alternate layers; the FFN norm is named
 * post_attention_norm; every FFN is a mixture of experts with a biased
 * router, whose top expert_used_count logits get a softmax among themselves,
 * each expert a biased FFN with the clamped SwiGLU (alpha 1.702, limit 7,
 * up + 1). The experts usually come in MXFP4. */
#include "../../base/err.h"
#include "../model.h"

int arch_gpt_oss_load(struct hearth_model *m, struct hearth_err *err)
{
	int rc;
	m->hp.rope_type = ROPE_NEOX;
	m->hp.moe_gating = MOE_GATING_SOFTMAX_CHOSEN;
	m->hp.moe_norm_w = false;
	m->hp.moe_act = MOE_ACT_SWIGLU_OAI;
	m->ffn_norm_name = "blk.%d.post_attention_norm.weight";
	if ((rc = model_load_transformer(m, err)))
		return rc;
	if (m->hp.n_expert < 1)
		return err_set(err, HEARTH_EBADGGUF, "%s: gpt-oss needs expert_count and expert_used_count", m->gguf->path);
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->attn_sinks.data || !l->ffn_gate_inp_b.data || !l->bq.data || !l->bo.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: gpt-oss layer %d lacks its attention sinks or biases",
				       m->gguf->path, il);
	}
	return 0;
}
