/* trope.c - rotary position embedding, forward and backward (see
 * train-ops.h). Each rotated pair (a, b) of a head becomes
 * (c x_a - s x_b, s x_a + c x_b), with c and s the inference's (block_rope_cs,
 * magnitudes included); the backward applies the transpose,
 * (c x_a + s x_b, -s x_a + c x_b).
 */
#include "train-ops.h"

struct trope_task {
	float *x;
	int n, n_heads, head_dim, n_rot;
	enum rope_type type;
	const float *cs;
	const int32_t *pos;
	bool inverse;
};

static void rope_run(void *arg, int ith, int nth)
{
	const struct trope_task *t = arg;
	const int half = t->n_rot / 2;
	for (int i = t->n * ith / nth; i < t->n * (ith + 1) / nth; i++) {
		const float *cs = t->cs + (size_t)t->pos[i] * (size_t)t->n_rot;
		for (int h = 0; h < t->n_heads; h++) {
			float *v = t->x + ((size_t)i * (size_t)t->n_heads + (size_t)h) * (size_t)t->head_dim;
			for (int i0 = 0; i0 < t->n_rot; i0 += 2) {
				const int a = t->type == ROPE_NEOX ? i0 / 2 : i0;
				const int b = t->type == ROPE_NEOX ? i0 / 2 + half : i0 + 1;
				const float x0 = v[a], x1 = v[b], c = cs[i0], s = t->inverse ? -cs[i0 + 1] : cs[i0 + 1];
				v[a] = x0 * c - x1 * s;
				v[b] = x0 * s + x1 * c;
			}
		}
	}
}

void trope_apply(struct pool *p, float *x, int n, int n_heads, int head_dim, int n_rot, enum rope_type type,
		 const float *cs, const int32_t *pos, bool inverse)
{
	struct trope_task t = { x, n, n_heads, head_dim, n_rot, type, cs, pos, inverse };
	train_run(p, rope_run, &t, 4 * (int64_t)n * n_heads * n_rot);
}
