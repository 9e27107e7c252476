/* gemma2.c - the "gemma2" architecture (Gemma 2): gemma3's block without the
 * q/k norms (embeddings times sqrt(n_embd), post-attention and post-FFN
 * norms, GeGLU), plus soft-capping: attention scores become
 * c tanh(s / c) with c = attn_logit_softcapping, and the logits likewise with
 * final_logit_softcapping. Local layers: attention.sliding_window (4096 when
 * absent) on the layers il with il % P < P - 1, P =
 * attention.sliding_window_pattern (2 when absent: every other layer, from
 * the first); they rotate with rope.freq_base_swa when given, else as the
 * global layers. Queries are scaled by 1/sqrt(head_dim), except the 46-layer
 * 27B model's 1/sqrt(n_embd / n_head). The output head is the embedding. */
#include <math.h>

#include "../../base/err.h"
#include "../model.h"

static int gemma2_swa(struct hearth_model *m, struct hearth_err *err)
{
	int32_t n_swa = 4096, period = 2;
	float base_swa = m->hp.rope_base;
	int rc;
	if ((rc = model_hparam_i32(m, "attention.sliding_window", &n_swa, false, err)) ||
	    (rc = model_hparam_i32(m, "attention.sliding_window_pattern", &period, false, err)) ||
	    (rc = model_hparam_f32(m, "rope.freq_base_swa", &base_swa, false, err)))
		return rc;
	if (!(base_swa > 0))
		return err_set(err, HEARTH_EBADGGUF, "%s: gemma2.rope.freq_base_swa is %g", m->gguf->path, (double)base_swa);
	for (int il = 0; il < m->hp.n_layer; il++) {
		struct layer *l = &m->layers[il];
		if (period == 0 || il % period < period - 1) {
			l->n_swa = n_swa;
			if ((rc = model_layer_rope(m, l, base_swa, l->rope_freq_scale, err)))
				return rc;
		}
	}
	return 0;
}

/* Reads a soft-capping value (0 when absent: none). */
static int gemma2_cap(struct hearth_model *m, const char *suffix, float *out, struct hearth_err *err)
{
	int rc = model_hparam_f32(m, suffix, out, false, err);
	if (rc)
		return rc;
	if (!(*out >= 0) || isinf(*out))
		return err_set(err, HEARTH_EBADGGUF, "%s: gemma2.%s is %g", m->gguf->path, suffix, (double)*out);
	return 0;
}

int arch_gemma2_load(struct hearth_model *m, struct hearth_err *err)
{
	struct hparams *h = &m->hp;
	int rc;
	h->rope_type = ROPE_NEOX;
	if ((rc = model_load_transformer(m, err)))
		return rc;
	m->output = m->tok_embd; /* llama.cpp reads no output.weight for gemma2 */
	h->ffn_act = FFN_GELU;
	h->embd_scale = sqrtf((float)h->n_embd);
	h->attn_scale = h->n_layer == 46 ? 1.0f / sqrtf((float)(h->n_embd / h->n_head)) : 1.0f / sqrtf((float)h->head_dim_k);
	if ((rc = gemma2_cap(m, "attn_logit_softcapping", &h->attn_softcap, err)) ||
	    (rc = gemma2_cap(m, "final_logit_softcapping", &h->final_softcap, err)))
		return rc;
	for (int il = 0; il < h->n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->attn_post_norm.data || !l->ffn_post_norm.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: gemma2 layer %d lacks its post norms", m->gguf->path, il);
	}
	return gemma2_swa(m, err);
}
