/* glm4.c - the "glm4" architecture (GLM-4-0414): q/k/v projections with
 * biases (separate or fused), partial rotary embedding (rope.dimension_count
 * of each head's dims, adjacent pairs), RMS norms of the attention and FFN
 * outputs before the residual adds (post_attention_norm, post_ffw_norm), and
 * a fused gate+up ffn_up (SwiGLU). The multimodal rope (rope.dimension_sections,
 * GLM-4V) and multi-token-prediction layers (nextn_predict_layers) are refused. */
#include "../../base/err.h"
#include "../model.h"

int arch_glm4_load(struct hearth_model *m, struct hearth_err *err)
{
	int32_t nextn = 0;
	int rc;
	m->hp.rope_type = ROPE_NORM;
	if (model_hparam_has(m, "rope.dimension_sections"))
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: glm4 with multimodal rope (glm4.rope.dimension_sections) "
			       "is not supported", m->gguf->path);
	if ((rc = model_hparam_i32(m, "nextn_predict_layers", &nextn, false, err)))
		return rc;
	if (nextn)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: glm4 with %d next-token-prediction layers is not supported",
			       m->gguf->path, nextn);
	if ((rc = model_load_transformer(m, err)))
		return rc;
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->attn_post_norm.data || !l->ffn_post_norm.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: glm4 layer %d lacks its post norms", m->gguf->path, il);
	}
	return 0;
}
