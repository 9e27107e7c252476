/* gpt-oss.c - the "gpt-oss" architecture (OpenAI's gpt-oss-20b/120b): GQA
 * attention with q/k/v/o biases, neox rope with YaRN scaling (local layers
 * with rope.freq_base_swa when given, their YaRN ramp from it), a learned
 * sink logit per head that joins each softmax's denominator, and a sliding
 * window (attention.sliding_window) on the layers the pattern makes local
 * (attention.sliding_window_pattern, 2 when absent as llama.cpp assumes:
 * even layers local, odd ones full). The FFN norm is named
 * post_attention_norm (a pre-FFN norm here, not a post-norm); every FFN is a
 * mixture of experts with a biased router whose top expert_used_count
 * logits get a softmax among themselves, each expert a biased FFN with the
 * clamped SwiGLU (alpha 1.702, limit 7, up + 1). The experts usually come in
 * MXFP4. */
#include "../../base/err.h"
#include "../model.h"

/* The local layers: window and rope as llama.cpp reads them for gpt-oss. */
static int gpt_oss_swa(struct hearth_model *m, struct hearth_err *err)
{
	int32_t n_swa = 0, period = 2;
	float base_swa = m->hp.rope_base;
	int rc;
	if ((rc = model_hparam_i32(m, "attention.sliding_window", &n_swa, true, err)) ||
	    (rc = model_hparam_i32(m, "attention.sliding_window_pattern", &period, false, err)) ||
	    (rc = model_hparam_f32(m, "rope.freq_base_swa", &base_swa, false, err)))
		return rc;
	/* a local base of its own keeps the global frequency scale; under YaRN
	 * the ramp follows the local base (llama.cpp: rope_freq_scale_train_swa
	 * = rope_freq_scale_train, ggml's rope derives the ramp per call) */
	for (int il = 0; n_swa > 0 && il < m->hp.n_layer; il++) {
		struct layer *l = &m->layers[il];
		if (period == 0 || il % period < period - 1) { /* period 0: every layer local */
			l->n_swa = n_swa;
			if ((rc = model_layer_rope(m, l, base_swa, l->rope_freq_scale, err)))
				return rc;
		}
	}
	return 0;
}

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
		struct layer *l = &m->layers[il];
		if (!l->attn_sinks.data || !l->ffn_gate_inp_b.data || !l->bq.data || !l->bo.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: gpt-oss layer %d lacks its attention sinks or biases",
				       m->gguf->path, il);
		/* the shared loader also binds post_attention_norm as a post-norm
		 * of the attention output; here it is the FFN's input norm alone */
		l->attn_post_norm = (struct tensor){ 0 };
	}
	return gpt_oss_swa(m, err);
}
