/* qwen2.c - the "qwen2" architecture: as llama, plus q/k/v projection biases
 * (bound by the shared loader when present, required here) and rotary
 * embedding on halves (neox style). */
#include "../../base/err.h"
#include "../model.h"

int arch_qwen2_load(struct hearth_model *m, struct hearth_err *err)
{
	int rc;
	m->hp.rope_type = ROPE_NEOX;
	if ((rc = model_load_transformer(m, err)))
		return rc;
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *l = &m->layers[il];
		if (!l->bq.data || !l->bk.data || !l->bv.data)
			return err_set(err, HEARTH_EBADGGUF, "%s: qwen2 layer %d lacks its q/k/v biases", m->gguf->path, il);
	}
	return 0;
}
