/* chunks.c - evaluating one chunk of a text the way llama-perplexity and
 * llama-imatrix do: from an empty context, its first token replaced by BOS
 * when the vocabulary adds BOS, in batches of n_batch tokens, the second half
 * scored: for j = n_ctx/2 .. n_ctx-2, the logits at j against token j+1.
 * A batch that reaches the scored half keeps its logits, consumed before the
 * next batch, so memory holds n_batch x n_vocab logits at most. */
#include "cli.h"

int chunks_eval(const struct chunk_eval *e, int32_t *chunk, struct hearth_err *err)
{
	const int32_t n_ctx = e->n_ctx, first = n_ctx / 2, saved = chunk[0];
	int rc = 0;
	if (e->bos >= 0)
		chunk[0] = e->bos;
	hearth_context_truncate(e->c, 0);
	for (int32_t b0 = 0; !rc && b0 < n_ctx; b0 += e->n_batch) {
		const int32_t n = n_ctx - b0 < e->n_batch ? n_ctx - b0 : e->n_batch;
		const bool score = e->on_pos && b0 + n > first;
		if ((rc = hearth_decode(e->c, chunk + b0, n, e->all_logits || score, err)) || !score)
			continue;
		/* positions j in [max(first, b0), min(b0 + n, n_ctx - 1)) predict token j+1 */
		const int32_t j1 = b0 + n < n_ctx - 1 ? b0 + n : n_ctx - 1;
		for (int32_t j = first > b0 ? first : b0; !rc && j < j1; j++) {
			const float *logits = hearth_get_logits(e->c, j - b0);
			if (!logits) {
				snprintf(err->msg, sizeof err->msg, "no logits kept");
				rc = err->code = HEARTH_EINVAL;
			} else {
				rc = e->on_pos(e->user, logits, chunk[j + 1], err);
			}
		}
	}
	chunk[0] = saved;
	return rc;
}
