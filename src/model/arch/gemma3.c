/* gemma3.c - the "gemma3" architecture (Gemma 3): as qwen3 (per-head q/k RMS
 * norms, rotary embedding on halves), plus
 *  - token embeddings multiplied by sqrt(n_embd) on input;
 *  - RMS norms of the attention and FFN outputs before the residual adds
 *    (post_attention_norm, post_ffw_norm; GGUF norm weights are stored as
 *    applied, the converter has added Gemma's 1 already);
 *  - a GeGLU FFN (tanh GELU);
 *  - sliding-window attention on local layers: with attention.sliding_window
 *    W and attention.sliding_window_pattern P (6 when absent, as converted
 *    Gemma 3 files carry none), layer il is local when il % P < P - 1, i.e.
 *    every P-th layer is global. Local layers see the last W positions and
 *    rotate with rope.freq_base_swa (10000 when absent) and no frequency
 *    scaling; global layers use rope.freq_base and the file's rope scaling;
 *  - queries scaled by 1/sqrt(head_dim), except the 62-layer 27B model's
 *    1/sqrt(n_embd / n_head);
 *  - optional final_logit_softcapping. */
#include <math.h>

#include "../../base/err.h"
#include "../model.h"

/* The sliding-window layout: which layers are local, with what window and rope. */
static int gemma3_swa(struct hearth_model *m, struct hearth_err *err)
{
	int32_t n_swa = 0, period = 6;
	float base_swa = 10000.0f;
	int rc;
	if ((rc = model_hparam_i32(m, "attention.sliding_window", &n_swa, false, err)))
		return rc;
	if (n_swa == 0)
		return 0;
	if ((rc = model_hparam_i32(m, "attention.sliding_window_pattern", &period, false, err)) ||
	    (rc = model_hparam_f32(m, "rope.freq_base_swa", &base_swa, false, err)))
		return rc;
	if (!(base_swa > 0))
		return err_set(err, HEARTH_EBADGGUF, "%s: gemma3.rope.freq_base_swa is %g", m->gguf->path, (double)base_swa);
	for (int il = 0; il < m->hp.n_layer; il++) {
		struct layer *l = &m->layers[il];
		if (period == 0 || il % period < period - 1) { /* period 0: every layer local */
			l->n_swa = n_swa;
			if ((rc = model_layer_rope(m, l, base_swa, 1.0f, err)))
				return rc;
		}
	}
	return 0;
}

int arch_gemma3_load(struct hearth_model *m, struct hearth_err *err)
{
	struct hparams *h = &m->hp;
	int rc;
	h->rope_type = ROPE_NEOX;
	if ((rc = model_load_transformer(m, err)))
		return rc;
	h->ffn_act = FFN_GELU;
	h->embd_scale = sqrtf((float)h->n_embd);
	h->attn_scale = h->n_layer == 62 ? 1.0f / sqrtf((float)(h->n_embd / h->n_head)) : 1.0f / sqrtf((float)h->head_dim_k);
	if ((rc = model_hparam_f32(m, "final_logit_softcapping", &h->final_softcap, false, err)))
		return rc;
	if (!(h->final_softcap >= 0) || isinf(h->final_softcap))
		return err_set(err, HEARTH_EBADGGUF, "%s: gemma3.final_logit_softcapping is %g", m->gguf->path,
			       (double)h->final_softcap);
	for (int il = 0; il < h->n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->q_norm.data || !l->k_norm.data || !l->attn_post_norm.data || !l->ffn_post_norm.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: gemma3 layer %d lacks its q/k norms or post norms",
				       m->gguf->path, il);
	}
	return gemma3_swa(m, err);
}
