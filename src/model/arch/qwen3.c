/* qwen3.c - the "qwen3" architecture: as qwen2 without biases, plus an RMS
 * norm over each query and key head before the rotary embedding, and a head
 * width given explicitly by attention.key_length (may exceed n_embd/n_head). */
#include "../../base/err.h"
#include "../model.h"

int arch_qwen3_load(struct hearth_model *m, struct hearth_err *err)
{
	int rc;
	m->hp.rope_type = ROPE_NEOX;
	if ((rc = model_load_transformer(m, err)))
		return rc;
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->q_norm.data || !l->k_norm.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: qwen3 layer %d lacks its q/k norms", m->gguf->path, il);
	}
	return 0;
}
