/* phi3.c - the "phi3" architecture (Phi-3, Phi-3.5, Phi-4 dense): llama's
 * block with a fused attn_qkv (rows q, k, v) and a fused ffn_up (2 n_ff rows:
 * the SiLU gate's, then up's), rotary embedding on halves, and LongRoPE:
 * rope_factors_short / rope_factors_long divide the angles (the long ones
 * when the context exceeds rope.scaling.original_context_length, see
 * forward.c) and rope.scaling.attn_factor multiplies cos and sin.
 * attention.sliding_window is read and ignored, as llama.cpp ignores it for
 * phi3 (files carry a window as long as the context). Mixture-of-experts
 * Phi (PhiMoE) files are refused. */
#include "../../base/err.h"
#include "../model.h"

int arch_phi3_load(struct hearth_model *m, struct hearth_err *err)
{
	struct hparams *h = &m->hp;
	int rc;
	h->rope_type = ROPE_NEOX;
	if (gguf_find_tensor(m->gguf, "blk.0.ffn_gate_inp.weight") >= 0)
		return err_set(err, HEARTH_EUNSUPPORTED, "%s: phi3 with experts (ffn_gate_inp) is not supported",
			       m->gguf->path);
	if ((rc = model_load_transformer(m, err)))
		return rc;
	if ((rc = model_hparam_i32(m, "rope.scaling.original_context_length", &h->n_ctx_orig, false, err)) ||
	    (rc = model_hparam_f32(m, "rope.scaling.attn_factor", &h->rope_attn_factor, false, err)))
		return rc;
	if (!(h->rope_attn_factor > 0 && h->rope_attn_factor < 1e3f))
		return err_set(err, HEARTH_EBADGGUF, "%s: phi3.rope.scaling.attn_factor is %g", m->gguf->path,
			       (double)h->rope_attn_factor);
	if ((rc = model_tensor(m, &m->rope_short, "rope_factors_short.weight", 0, h->n_rot / 2, 0, TENSOR_OPTIONAL, err)) ||
	    (rc = model_tensor(m, &m->rope_long, "rope_factors_long.weight", 0, h->n_rot / 2, 0, TENSOR_OPTIONAL, err)))
		return rc;
	if (!m->rope_short.data != !m->rope_long.data)
		return err_set(err, HEARTH_EBADGGUF, "%s: phi3 has only one of rope_factors_short and rope_factors_long",
			       m->gguf->path);
	return 0;
}
