/* qwen3moe.c - the "qwen3moe" architecture (Qwen3-30B-A3B, Qwen3-235B-A22B):
 * qwen3's attention (per-head q/k RMS norms, neox rope, explicit head width)
 * with a mixture of experts in every layer: a softmax router over
 * expert_count experts, the top expert_used_count chosen and their weights
 * renormalized to sum 1 (norm_topk_prob), each expert a SwiGLU FFN of width
 * expert_feed_forward_length. */
#include "../../base/err.h"
#include "../model.h"

int arch_qwen3moe_load(struct hearth_model *m, struct hearth_err *err)
{
	int rc;
	m->hp.rope_type = ROPE_NEOX;
	m->hp.moe_gating = MOE_GATING_SOFTMAX;
	m->hp.moe_norm_w = true;
	m->hp.moe_act = MOE_ACT_SILU;
	if ((rc = model_load_transformer(m, err)))
		return rc;
	if (m->hp.n_expert < 1)
		return err_set(err, HEARTH_EBADGGUF, "%s: qwen3moe needs expert_count and expert_used_count", m->gguf->path);
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->q_norm.data || !l->k_norm.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: qwen3moe layer %d lacks its q/k norms", m->gguf->path, il);
	}
	return 0;
}
